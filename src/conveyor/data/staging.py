"""Staging a batch chunk by chunk: spool, unify types, write canonical Parquet, check, profile.

Ingest reads a source once, spooling each chunk to a small Parquet file in a private
directory. The spooled chunks' Arrow types are then unified (an int column that gains nulls in
a later chunk becomes float, a column that is all null in one chunk takes the others' type; a
column that is numbers in one chunk and text in another becomes text), and a second pass casts
each chunk to those types and writes the canonical Parquet in row groups of exactly
:data:`ROW_GROUP_ROWS` rows without schema metadata. Types are first brought to one
representation (:func:`canonical_type`: nanosecond times, ``string`` text, no dictionaries) and
the writer's options are pinned (:data:`CANONICAL_WRITER_OPTIONS`). The canonical file depends on
the content and its types only, not on the source's format or chunking, so its content digest
identifies the data: re-ingesting the same data gives the same digest and the same dataset
version.

Validation and profiling see one chunk at a time in that second pass, so memory stays bounded
by the chunk size; :class:`ChunkedChecks` merges their outcomes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from conveyor.core.clock import as_utc
from conveyor.core.errors import InvalidInputError
from conveyor.core.schema import Anomaly, ColumnRole, Schema, Severity, ValidationReport
from conveyor.data.batch_checks import check_volume
from conveyor.data.profiles import merge_profiles, profile_frame
from conveyor.data.sources import BatchReader
from conveyor.data.validation import LabelRules, ValidationPolicy, label_keys, validate_batch

ROW_GROUP_ROWS = 65_536
"""Rows per row group of a stored batch; fixed so the stored bytes do not depend on chunking."""

CANONICAL_WRITER_OPTIONS: Mapping[str, Any] = {
    "version": "2.6",
    "data_page_version": "1.0",
    "compression": "zstd",
    "compression_level": 1,
    "use_dictionary": True,
    "dictionary_pagesize_limit": 1024 * 1024,
    "data_page_size": 1024 * 1024,
    "write_batch_size": 1024,
    "use_byte_stream_split": False,
    "write_statistics": True,
    "write_page_index": False,
    "write_page_checksum": False,
    "use_compliant_nested_type": True,
    "store_schema": True,
}
"""Every Parquet writer option that shapes a stored batch's bytes, pinned rather than left to
pyarrow's defaults (which change between releases), so the digest follows the content. Only the
writer's ``created_by`` footer string, which pyarrow does not let callers set, still names the
pyarrow release."""

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class StagedBatch:
    """A source spooled to local chunk files, with the Arrow schema all chunks unify to."""

    description: str
    files: tuple[Path, ...]
    schema: pa.Schema
    rows: int

    def chunks(self) -> Iterator[pd.DataFrame]:
        """Each spooled chunk, cast to the unified types, as a DataFrame."""
        for path in self.files:
            yield _cast(pq.read_table(path), self.schema).to_pandas()


def spool_source(
    reader: BatchReader,
    directory: Path,
    *,
    on_chunk: Callable[[pd.DataFrame], None] | None = None,
    progress: Progress | None = None,
) -> StagedBatch:
    """Read ``reader`` once, writing each chunk to ``directory``; ``on_chunk`` sees each frame.

    Raises
    ------
    InvalidInputError
        If the source cannot be read, or a chunk holds values Arrow cannot store in a column
        (say, numbers and dicts mixed).
    """
    files: list[Path] = []
    schemas: list[pa.Schema] = []
    rows = 0
    for i, frame in enumerate(reader.chunks()):
        if on_chunk is not None:
            on_chunk(frame)
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata()
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise InvalidInputError(
                f"Batch source '{reader.description}' has a column Arrow cannot store "
                f"(rows {rows:,}..{rows + len(frame):,}): {exc}"
            ) from exc
        path = directory / f"chunk-{i:06d}.parquet"
        pq.write_table(table, path, compression="lz4")
        files.append(path)
        schemas.append(table.schema)
        rows += len(frame)
        if progress is not None and i % 10 == 9:
            progress(f"read {rows:,} rows from {reader.description}")
    return StagedBatch(reader.description, tuple(files), unify_schemas(schemas), rows)


def unify_schemas(schemas: Sequence[pa.Schema]) -> pa.Schema:
    """One schema every chunk casts to; see the module docstring for the rules."""
    names: list[str] = []
    types: dict[str, list[pa.DataType]] = {}
    for schema in schemas:
        for f in schema:
            if f.name not in types:
                names.append(f.name)
                types[f.name] = []
            types[f.name].append(f.type)
    return pa.schema([pa.field(n, _unify_types(types[n])) for n in names])


def canonical_type(dtype: pa.DataType) -> pa.DataType:
    """The type a column of ``dtype`` is stored as, whatever representation the source chose.

    The same values arrive as different Arrow types depending on the source and the library
    versions: times in seconds to nanoseconds (PostgreSQL gives microseconds, a parsed CSV
    nanoseconds), text as ``string``, ``large_string`` or ``string_view``, a pandas or polars
    categorical as a dictionary. They are stored as nanosecond times, ``string``, ``binary`` and
    the dictionary's value type, so the same content gives the same bytes.

    Parameters
    ----------
    dtype : pyarrow.DataType
        A column's type as read from a source.

    Returns
    -------
    pyarrow.DataType
        Its canonical stored type; other types are returned unchanged.

    Examples
    --------
    >>> canonical_type(pa.dictionary(pa.int8(), pa.large_string()))
    DataType(string)
    """
    if pa.types.is_dictionary(dtype):
        return canonical_type(dtype.value_type)
    if pa.types.is_timestamp(dtype):
        return pa.timestamp("ns", tz=dtype.tz)
    if pa.types.is_large_string(dtype) or _is_view(dtype, "is_string_view"):
        return pa.string()
    if pa.types.is_large_binary(dtype) or _is_view(dtype, "is_binary_view"):
        return pa.binary()
    return dtype


def canonical_table(table: pa.Table) -> pa.Table:
    """``table`` with every column cast to its :func:`canonical_type`.

    Batches stored before types were made canonical may hold a dictionary or ``large_string``
    column where newer ones hold ``string``; reading them through this lets both concatenate.
    """
    schema = pa.schema([pa.field(f.name, canonical_type(f.type)) for f in table.schema])
    return table if schema == table.schema else _cast(table, schema)


def _is_view(dtype: pa.DataType, check: str) -> bool:
    """Whether ``dtype`` is a view type (pyarrow 16+); older pyarrow has none."""
    test = getattr(pa.types, check, None)
    return bool(test is not None and test(dtype))


def _unify_types(candidates: Sequence[pa.DataType]) -> pa.DataType:
    known = [canonical_type(t) for t in dict.fromkeys(candidates) if not pa.types.is_null(t)]
    known = list(dict.fromkeys(known))
    if not known:
        return pa.null()
    if len(known) == 1:
        return known[0]
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in known):
        return pa.float64()
    try:
        merged = pa.unify_schemas(
            [pa.schema([pa.field("c", t)]) for t in known], promote_options="permissive"
        )
        return merged.field("c").type
    except (pa.ArrowException, TypeError):
        return pa.string()


def _cast(table: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = []
    for f in schema:
        if f.name in table.column_names:
            column = table.column(f.name)
            if column.type != f.type:
                column = column.cast(f.type)
            columns.append(column)
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def write_canonical(
    staged: StagedBatch,
    target: Path,
    *,
    on_chunk: Callable[[pd.DataFrame], None] | None = None,
    progress: Progress | None = None,
) -> None:
    """Write the staged chunks as one Parquet file in fixed-size row groups (see module doc)."""
    buffered: list[pa.Table] = []
    pending = 0
    done = 0
    with pq.ParquetWriter(target, staged.schema, **CANONICAL_WRITER_OPTIONS) as writer:
        for path in staged.files:
            table = _cast(pq.read_table(path), staged.schema)
            if on_chunk is not None:
                on_chunk(table.to_pandas())
            buffered.append(table)
            pending += table.num_rows
            while pending >= ROW_GROUP_ROWS:
                block = pa.concat_tables(buffered)
                writer.write_table(block.slice(0, ROW_GROUP_ROWS), row_group_size=ROW_GROUP_ROWS)
                rest = block.slice(ROW_GROUP_ROWS)
                buffered, pending = [rest], rest.num_rows
            done += table.num_rows
            if progress is not None and len(staged.files) > 1:
                progress(f"checked {done:,} of {staged.rows:,} rows")
        if pending or staged.rows == 0:
            tail = pa.concat_tables(buffered) if buffered else staged.schema.empty_table()
            writer.write_table(tail, row_group_size=ROW_GROUP_ROWS)


@dataclass(slots=True)
class ChunkedChecks:
    """Validation and profile of a batch assembled from its chunks.

    A batch of one chunk is validated exactly as a whole frame. With several chunks each is
    validated with the row-level and column-level checks; the batch-level ones (row count,
    volume against recent batches) run once on the total; an anomaly found in several chunks
    is reported once, its details saying in how many. Duplicate rows and label leaks are
    looked for within each chunk. Profiles of the chunks are merged with ``merge_profiles``.
    """

    schema: Schema
    policy: ValidationPolicy
    reference: Mapping[str, Any] | None
    recent_row_counts: Sequence[int]
    chunk_count: int
    timestamp: str | None = None
    labels: LabelRules | None = None
    anomalies: list[Anomaly] = field(default_factory=list)
    profiles: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0
    min_time: datetime | None = None
    max_time: datetime | None = None

    def add(self, chunk: pd.DataFrame) -> None:
        """Validate and profile one chunk."""
        single = self.chunk_count <= 1
        policy = self.policy if single else replace(self.policy, min_rows=0)
        report = validate_batch(
            chunk,
            self.schema,
            policy=policy,
            reference_profile=self.reference,
            recent_row_counts=self.recent_row_counts if single else (),
            labels=self.labels,
        )
        self.anomalies.extend(report.anomalies)
        self._learn_label_classes(chunk)
        base = self.reference or (self.profiles[0] if self.profiles else None)
        self.profiles.append(profile_frame(chunk, self.schema, reference=base))
        self.rows += len(chunk)
        self._widen_time(chunk)

    def report(self) -> ValidationReport:
        """The batch's report: the chunks' anomalies merged, plus the batch-level checks."""
        if self.chunk_count <= 1:
            return ValidationReport.of(self.anomalies)
        merged = _merge_anomalies(self.anomalies, self.chunk_count)
        if self.rows < self.policy.min_rows:
            details = {"rows": self.rows, "min_rows": self.policy.min_rows}
            message = (
                f"The batch has {self.rows} rows; the policy requires at least "
                f"{self.policy.min_rows}."
            )
            merged.append(Anomaly("too_few_rows", Severity.ERROR, message, None, details))
        merged.extend(check_volume(self.rows, self.recent_row_counts, self.policy))
        return ValidationReport.of(merged)

    def profile(self) -> dict[str, Any]:
        """The batch's profile (one chunk's, or the chunks' merged)."""
        if len(self.profiles) == 1:
            return self.profiles[0]
        return merge_profiles(self.profiles)

    def _learn_label_classes(self, chunk: pd.DataFrame) -> None:
        """Later chunks see the label values of earlier ones, as later batches do."""
        names = [c.name for c in self.schema.with_role(ColumnRole.LABEL) if c.name in chunk]
        if self.labels is None or len(names) != 1 or not chunk.columns.is_unique:
            return
        seen = label_keys(chunk[names[0]])
        classes = tuple(dict.fromkeys([*self.labels.classes, *seen]))
        self.labels = replace(self.labels, classes=classes)

    def _widen_time(self, chunk: pd.DataFrame) -> None:
        column = self.timestamp
        if not column or column not in chunk.columns or len(chunk) == 0:
            return
        values = chunk[column]
        if not pd.api.types.is_datetime64_any_dtype(values):
            return
        lo, hi = values.min(), values.max()
        if pd.isna(lo):
            return
        lo_t = as_utc(lo.to_pydatetime(warn=False))
        hi_t = as_utc(hi.to_pydatetime(warn=False))
        self.min_time = lo_t if self.min_time is None else min(self.min_time, lo_t)
        self.max_time = hi_t if self.max_time is None else max(self.max_time, hi_t)


def _merge_anomalies(anomalies: Sequence[Anomaly], chunks: int) -> list[Anomaly]:
    grouped: dict[tuple[str, str | None], list[Anomaly]] = {}
    for a in anomalies:
        grouped.setdefault((a.kind, a.column), []).append(a)
    merged = []
    for found in grouped.values():
        first = found[0]
        severity = (
            Severity.ERROR if any(a.severity is Severity.ERROR for a in found) else first.severity
        )
        details = {**first.details, "chunks_with_anomaly": len(found), "chunks": chunks}
        message = first.message
        if len(found) > 1:
            message = f"{message} (first of {len(found)} of {chunks} chunks)"
        merged.append(Anomaly(first.kind, severity, message, first.column, details))
    return merged
