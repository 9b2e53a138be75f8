"""Where batches come from: files, globs, directories, in-memory tables and SQL queries.

Every source is read as a stream of pandas chunks of at most ``chunk_rows`` rows, so a batch
larger than memory is never held whole: CSV through pandas' chunked reader, Parquet through
``pyarrow.dataset`` record batches, a SQL query through a server-side cursor (SQLAlchemy
``stream_results``) read with ``chunksize``, and in-memory tables by slicing.

Sources
-------
- a path to a ``.csv`` (also ``.csv.gz``, ``.csv.zip``) or ``.parquet`` file;
- a directory, read as every ``*.parquet`` (else every ``*.csv``) file below it, by name;
- a glob such as ``"data/2024-*.parquet"``, its matches read in name order;
- a pandas DataFrame, a polars DataFrame, a pyarrow Table or RecordBatchReader;
- :class:`SqlQuery`: a SQLAlchemy URL and a query.

Errors while reading (a truncated Parquet file, a malformed CSV line, a bad query, an unknown
table) surface as :class:`~conveyor.core.errors.InvalidInputError` naming the source.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from conveyor.core.errors import InvalidInputError, NotFoundError
from conveyor.data.timestamps import TimeColumn, apply_time_column

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "BatchReader",
    "Source",
    "SqlQuery",
    "open_source",
    "read_frame",
]

DEFAULT_CHUNK_ROWS = 200_000
"""Rows per chunk when a source is streamed; a batch no larger is validated in one piece."""

_GLOB_CHARS = frozenset("*?[")
_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.zip")
_READ_ERRORS = (
    pd.errors.ParserError,
    pd.errors.EmptyDataError,
    pa.ArrowException,
    UnicodeDecodeError,
    OSError,
    ValueError,
)


@dataclass(frozen=True, slots=True)
class SqlQuery:
    """A batch defined by a SQL query over a SQLAlchemy URL.

    Examples
    --------
    >>> SqlQuery("sqlite:///shop.db", "SELECT * FROM orders").describe()
    'sql:sqlite:///shop.db: SELECT * FROM orders'
    """

    url: str
    query: str

    def describe(self) -> str:
        """The source as recorded with the dataset version; a password is masked."""
        try:
            shown = make_url(self.url).render_as_string(hide_password=True)
        except sa.exc.ArgumentError:
            shown = "<invalid url>"
        return f"sql:{shown}: {' '.join(self.query.split())}"


Source: TypeAlias = str | Path | pd.DataFrame | pa.Table | pa.RecordBatchReader | SqlQuery | Any
"""Anything :func:`open_source` reads; ``Any`` admits a polars DataFrame without importing it."""


@dataclass(frozen=True, slots=True)
class BatchReader:
    """An opened source: what it is, and its content as chunks (one pass per call)."""

    description: str
    kind: str
    source: Any
    chunk_rows: int
    timestamp: TimeColumn | str | None = None

    def chunks(self) -> Iterator[pd.DataFrame]:
        """Yield the content as pandas frames of at most ``chunk_rows`` rows, at least one.

        Raises
        ------
        InvalidInputError
            If the content cannot be read or parsed; the message names the source.
        """
        reader = _READERS[self.kind]
        try:
            for chunk in reader(self.source, self.chunk_rows):
                yield apply_time_column(chunk, self.timestamp)
        except (InvalidInputError, NotFoundError):
            raise
        except sa.exc.SQLAlchemyError as exc:
            detail = getattr(exc, "orig", None) or exc
            raise InvalidInputError(
                f"SQL source {self.description!r} failed: {str(detail).splitlines()[0]}"
            ) from exc
        except _READ_ERRORS as exc:
            raise InvalidInputError(
                f"Batch source '{self.description}' could not be read: {exc}".strip()
            ) from exc


def open_source(
    source: Source,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    timestamp: TimeColumn | str | None = None,
) -> BatchReader:
    """Recognise ``source`` and return a reader of its chunks; nothing is read yet.

    Parameters
    ----------
    source : path, glob, directory, DataFrame, polars DataFrame, Arrow table, or SqlQuery
        See the module docstring.
    chunk_rows : int
        The most rows a chunk holds.
    timestamp : TimeColumn or str, optional
        A column read as UTC datetimes in every chunk (a name: dates and date-times), see
        :mod:`conveyor.data.timestamps`.

    Raises
    ------
    NotFoundError
        If a path does not exist or a glob or directory matches no data file.
    InvalidInputError
        If ``chunk_rows`` is not positive, a file's suffix is unsupported, files of different
        formats are mixed, or the source is of an unknown type.

    Examples
    --------
    >>> reader = open_source(pd.DataFrame({"x": range(5)}), chunk_rows=2)
    >>> [len(c) for c in reader.chunks()]
    [2, 2, 1]
    """
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise InvalidInputError(
            f"The 'chunk_rows' parameter must be an int in [1, inf). Got {chunk_rows!r} instead."
        )

    def reader(description: str, kind: str, payload: Any) -> BatchReader:
        return BatchReader(description, kind, payload, chunk_rows, timestamp)

    if isinstance(source, pd.DataFrame):
        return reader("dataframe", "pandas", source)
    if isinstance(source, pa.Table):
        return reader("arrow table", "arrow", source)
    if isinstance(source, pa.RecordBatchReader):
        return reader("arrow stream", "arrow", source)
    if type(source).__module__.split(".")[0] == "polars" and hasattr(source, "to_arrow"):
        return reader("polars dataframe", "arrow", source.to_arrow())
    if isinstance(source, SqlQuery):
        if not source.query.strip():
            raise InvalidInputError("The SQL source needs a query. Got an empty one instead.")
        return reader(source.describe(), "sql", source)
    if isinstance(source, str | Path):
        files, kind = _resolve_files(str(source))
        description = str(Path(files[0]).resolve()) if len(files) == 1 else str(source)
        return reader(description, kind, files)
    raise InvalidInputError(
        "A batch source must be a path, glob, directory, pandas/polars DataFrame, pyarrow "
        f"Table or SqlQuery. Got {type(source).__name__} instead."
    )


def read_frame(
    source: Source, *, timestamp: TimeColumn | str | None = None
) -> tuple[pd.DataFrame, str]:
    """Read a whole source into one DataFrame (for samples and small batches)."""
    reader = open_source(source, timestamp=timestamp)
    chunks = list(reader.chunks())
    frame = chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)
    return frame, reader.description


def _file_kind(path: str) -> str:
    name = path.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(_CSV_SUFFIXES):
        return "csv"
    raise InvalidInputError(
        f"Batch file '{path}' has suffix '{Path(path).suffix}'; allowed: .csv, .csv.gz, "
        ".csv.zip, .parquet."
    )


def _resolve_files(spec: str) -> tuple[list[str], str]:
    path = Path(spec)
    if any(ch in spec for ch in _GLOB_CHARS) and not path.exists():
        files = sorted(p for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        if not files:
            raise NotFoundError(f"Batch glob '{spec}' matches no file.")
    elif path.is_dir():
        files = sorted(str(p) for p in path.rglob("*.parquet") if not p.name.startswith("."))
        if not files:
            files = sorted(str(p) for p in path.rglob("*") if p.name.lower().endswith(".csv"))
        if not files:
            raise NotFoundError(f"Batch directory '{path}' holds no .parquet or .csv file.")
    elif path.exists():
        files = [spec]
    else:
        raise NotFoundError(f"Batch file '{path}' does not exist.")
    kinds = {_file_kind(f) for f in files}
    if len(kinds) > 1:
        raise InvalidInputError(
            f"Batch source '{spec}' mixes CSV and Parquet files; one batch is one format."
        )
    return files, kinds.pop()


def _read_csv(files: Sequence[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    # pandas' default float parser can land a few units in the last place away from the
    # nearest double, so a float written by repr and read back would differ from the Parquet,
    # SQL or in-memory copy of the same data; the round-trip parser reads it exactly.
    for f in files:
        yield from pd.read_csv(f, chunksize=chunk_rows, float_precision="round_trip")


def _read_parquet(files: Sequence[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    dataset = pads.dataset(list(files), format="parquet")
    empty = True
    for batch in dataset.to_batches(batch_size=chunk_rows):
        if batch.num_rows:
            empty = False
            yield batch.to_pandas()
    if empty:
        yield dataset.schema.empty_table().to_pandas()


def _read_pandas(frame: pd.DataFrame, chunk_rows: int) -> Iterator[pd.DataFrame]:
    for start in range(0, max(len(frame), 1), chunk_rows):
        yield frame.iloc[start : start + chunk_rows].reset_index(drop=True).copy()


def _read_arrow(table: pa.Table | pa.RecordBatchReader, chunk_rows: int) -> Iterator[pd.DataFrame]:
    batches = table if isinstance(table, pa.RecordBatchReader) else table.to_batches(chunk_rows)
    empty = True
    for batch in batches:
        for start in range(0, batch.num_rows, chunk_rows):
            empty = False
            yield batch.slice(start, chunk_rows).to_pandas()
    if empty:
        yield table.schema.empty_table().to_pandas()


def _read_sql(query: SqlQuery, chunk_rows: int) -> Iterator[pd.DataFrame]:
    try:
        engine = sa.create_engine(query.url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise InvalidInputError(
            f"SQL source URL {query.describe()!r} is not a usable SQLAlchemy URL: {exc}"
        ) from exc
    try:
        with engine.connect() as conn:
            streaming = conn.execution_options(stream_results=True, max_row_buffer=chunk_rows)
            yield from pd.read_sql_query(sa.text(query.query), streaming, chunksize=chunk_rows)
    finally:
        engine.dispose()


_READERS: dict[str, Any] = {
    "csv": _read_csv,
    "parquet": _read_parquet,
    "pandas": _read_pandas,
    "arrow": _read_arrow,
    "sql": _read_sql,
}
