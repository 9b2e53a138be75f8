"""Batch scoring: stream a CSV or Parquet file through a model in chunks.

The input is read ``chunk_rows`` rows at a time with pyarrow, encoded with
:func:`conveyor.core.signature.encode_frame` (the encoding training used) and scored; the output
keeps every input column and adds ``score``, ``label`` (binary tasks; null otherwise) and
``model_version``. The output is written to a temporary file beside the target and renamed into
place, so a failed or interrupted run leaves no partial output.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from conveyor.core.errors import InvalidInputError, NotFoundError, SchemaError
from conveyor.core.model import Predictor
from conveyor.core.schema import ColumnKind
from conveyor.core.signature import Signature, encode_frame

Progress = Callable[[int, int | None], None]
"""Called after each chunk with (rows scored so far, total rows or ``None`` if unknown)."""

_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _format_of(path: Path, role: str) -> str:
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInputError(
            f"The {role} file {str(path)!r} has suffix {path.suffix!r}; "
            f"allowed suffixes are {', '.join(sorted(_FORMATS))}."
        )
    return fmt


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _csv_types(signature: Signature) -> dict[str, pa.DataType]:
    """Fix feature column types so type inference on one block cannot differ from the next."""
    types: dict[str, pa.DataType] = {}
    for col in signature.inputs:
        if col.kind is ColumnKind.CATEGORICAL or col.kind is ColumnKind.TEXT:
            types[col.name] = pa.string()
        elif col.kind is ColumnKind.NUMERIC:
            types[col.name] = pa.float64()
    return types


def _batches(
    path: Path, fmt: str, signature: Signature, chunk_rows: int
) -> tuple[Iterator[pa.RecordBatch], int | None]:
    if fmt == "parquet":
        reader = pq.ParquetFile(path)
        return reader.iter_batches(batch_size=chunk_rows), reader.metadata.num_rows
    stream = pcsv.open_csv(
        path,
        read_options=pcsv.ReadOptions(block_size=1 << 24),
        convert_options=pcsv.ConvertOptions(column_types=_csv_types(signature)),
    )

    def rebatch() -> Iterator[pa.RecordBatch]:
        for batch in stream:
            for start in range(0, batch.num_rows, chunk_rows):
                yield batch.slice(start, chunk_rows)

    return rebatch(), None


class _Writer:
    """Writes scored batches as Parquet or CSV; the schema comes from the first batch."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path, self.fmt = path, fmt
        self._writer: Any = None
        self.schema: pa.Schema | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            self.schema = batch.schema
            if self.fmt == "parquet":
                self._writer = pq.ParquetWriter(self.path, batch.schema)
            else:
                self._writer = pcsv.CSVWriter(self.path, batch.schema)
        self._writer.write_batch(batch.cast(self.schema) if batch.schema != self.schema else batch)

    def close(self, schema: pa.Schema) -> None:
        """Finish the file; with no batch written, write an empty one of ``schema``."""
        if self._writer is None:
            self.write(pa.RecordBatch.from_pylist([], schema=schema))
        self.discard()

    def discard(self) -> None:
        """Close the underlying writer if open (idempotent)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def score_file(
    predictor: Predictor,
    input_path: Path,
    output_path: Path,
    *,
    chunk_rows: int = 100_000,
    threshold: float = 0.5,
    version: int,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Score every row of ``input_path`` and write the result to ``output_path``.

    Parameters
    ----------
    predictor : Predictor
        The model; its signature names the columns the input must have.
    input_path, output_path : Path
        ``.csv`` or ``.parquet`` each; the output format follows the output suffix.
    chunk_rows : int
        Rows read, scored and written at a time (bounds memory).
    threshold : float
        Binary tasks label a row 1 when its score is at or above this.
    version : int
        The model version, written in column ``model_version``.
    progress : callable, optional
        Called after each chunk with (rows done, total rows or ``None``).

    Returns
    -------
    dict
        ``{"rows", "input_sha256", "output", "model_version"}``.

    Raises
    ------
    NotFoundError
        If ``input_path`` does not exist.
    InvalidInputError
        If a file has an unsupported suffix or the input cannot be read.
    SchemaError
        If the input lacks a column the model takes.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise InvalidInputError(
            f"The 'chunk_rows' parameter of score_file() must be an int in [1, inf). "
            f"Got {chunk_rows!r} instead."
        )
    if not input_path.is_file():
        raise NotFoundError(f"The input file {str(input_path)!r} does not exist.")
    in_fmt, out_fmt = _format_of(input_path, "input"), _format_of(output_path, "output")
    signature = predictor.signature
    binary = signature.task == "binary"
    output_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_path.with_name(f".{output_path.name}.{os.getpid()}.tmp")
    rows = 0
    input_sha256 = _sha256(input_path)
    writer = _Writer(tmp, out_fmt)
    try:
        batches, total = _batches(input_path, in_fmt, signature, chunk_rows)
        last_schema: pa.Schema | None = None
        for batch in batches:
            missing = [n for n in signature.names if n not in batch.schema.names]
            if missing:
                raise SchemaError(
                    f"The input file {str(input_path)!r} lacks model input columns {missing}; "
                    f"the model takes {signature.names}."
                )
            scores = np.asarray(
                predictor.predict_encoded(encode_frame(batch.to_pandas(), signature)),
                dtype=np.float64,
            )
            n = batch.num_rows
            labels = (
                pa.array((scores >= threshold).astype(np.int64))
                if binary
                else pa.nulls(n, pa.int64())
            )
            out = pa.RecordBatch.from_arrays(
                [*batch.columns, pa.array(scores), labels, pa.array(np.full(n, version))],
                names=[*batch.schema.names, "score", "label", "model_version"],
            )
            writer.write(out)
            last_schema = out.schema
            rows += n
            if progress is not None:
                progress(rows, total)
        writer.close(last_schema or _empty_output_schema(signature))
        os.replace(tmp, output_path)
    except pa.ArrowException as exc:
        raise InvalidInputError(
            f"The input file {str(input_path)!r} could not be read as {in_fmt}: {exc}"
        ) from exc
    finally:
        writer.discard()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return {
        "rows": rows,
        "input_sha256": input_sha256,
        "output": str(output_path),
        "model_version": version,
    }


def _empty_output_schema(signature: Signature) -> pa.Schema:
    fields = [
        pa.field(c.name, pa.string() if c.kind is ColumnKind.CATEGORICAL else pa.float64())
        for c in signature.inputs
    ]
    return pa.schema(
        [*fields, ("score", pa.float64()), ("label", pa.int64()), ("model_version", pa.int64())]
    )
