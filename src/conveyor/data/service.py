"""Ingestion service: a batch becomes an immutable, validated, profiled dataset version."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from conveyor.core.clock import as_utc, new_id, utcnow
from conveyor.core.entities import BatchStatus, DatasetVersion, DatasetVersionId
from conveyor.core.errors import InvalidInputError, NotFoundError
from conveyor.core.schema import Anomaly, Schema, Severity, ValidationReport
from conveyor.data.profiles import profile_frame
from conveyor.data.schemas import infer_schema
from conveyor.data.validation import ValidationPolicy, validate_batch
from conveyor.spec import ProjectSpec
from conveyor.workspace import Workspace

Source: TypeAlias = str | Path | pd.DataFrame | pa.Table
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What ingesting one batch produced; ``created`` is False when the content was known."""

    version: DatasetVersion
    report: ValidationReport
    schema: Schema
    created: bool

    @property
    def quarantined(self) -> bool:
        return self.version.status is BatchStatus.QUARANTINED


def read_source(source: Source, *, timestamp: str | None = None) -> tuple[pd.DataFrame, str]:
    """Read a CSV/Parquet file, a DataFrame or an Arrow table; return the frame and a description.

    Raises
    ------
    NotFoundError
        If a path does not exist.
    InvalidInputError
        If the file cannot be parsed or has an unsupported suffix.
    """
    if isinstance(source, pd.DataFrame):
        frame, description = source.copy(), "dataframe"
    elif isinstance(source, pa.Table):
        frame, description = source.to_pandas(), "arrow table"
    else:
        path = Path(source)
        if not path.exists():
            raise NotFoundError(f"Batch file '{path}' does not exist.")
        suffixes = "".join(path.suffixes[-2:]).lower()
        try:
            if path.suffix.lower() == ".parquet" or path.is_dir():
                frame = pq.read_table(path).to_pandas()
            elif path.suffix.lower() == ".csv" or suffixes in (".csv.gz", ".csv.zip"):
                frame = pd.read_csv(path)
            else:
                raise InvalidInputError(
                    f"Batch file '{path}' has suffix '{path.suffix}'; allowed: .csv, .csv.gz, "
                    ".csv.zip, .parquet."
                )
        except (
            pd.errors.ParserError,
            pd.errors.EmptyDataError,
            pa.ArrowException,
            UnicodeDecodeError,
            OSError,
        ) as exc:
            raise InvalidInputError(
                f"Batch file '{path}' could not be read: {exc}".strip()
            ) from exc
        description = str(path.resolve())
    if timestamp and timestamp in frame.columns:
        try:
            frame[timestamp] = pd.to_datetime(frame[timestamp], utc=True)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(
                f"Timestamp column '{timestamp}' has values that are not dates: {exc}"
            ) from exc
    return frame, description


def policy_from_spec(spec: ProjectSpec) -> ValidationPolicy:
    """The validation policy that ``conveyor.yaml`` declares."""
    v = spec.validation
    return ValidationPolicy(
        extra_columns=Severity(v.extra_columns),
        missing_columns=Severity(v.missing_columns),
        allow_nan=v.allow_nan,
        unseen_category_share_error=v.unseen_category_share_error,
        min_rows=v.min_rows,
        columns=v.columns,
    )


def project_schema(ws: Workspace, spec: ProjectSpec, frame: pd.DataFrame | None = None) -> Schema:
    """The project's current schema, inferred from ``frame`` (and saved) when there is none."""
    schema = ws.stores.datasets.find_schema(spec.project)
    if schema is not None:
        return schema
    if frame is None:
        raise NotFoundError(f"Project '{spec.project}' has no schema yet: ingest a batch first.")
    inferred = infer_schema(
        frame,
        label=spec.label,
        timestamp=spec.timestamp,
        entities=spec.entities,
        ignore=[
            c
            for c in frame.columns
            if spec.features is not None
            and c not in spec.features
            and c not in (spec.label, spec.timestamp)
            and c not in spec.entities
        ]
        + list(spec.ignore),
        categorical=spec.categorical,
    )
    return ws.stores.datasets.save_schema(spec.project, inferred)


def reference_profile(ws: Workspace, project: str) -> dict[str, Any] | None:
    """The profile whose histogram edges every later profile of ``project`` reuses."""
    accepted = ws.stores.datasets.list_dataset_versions(project, status=BatchStatus.ACCEPTED)
    return dict(accepted[0].profile) if accepted else None


def ingest_batch(
    ws: Workspace, spec: ProjectSpec, source: Source, *, progress: Progress | None = None
) -> IngestResult:
    """Validate ``source`` and store it as the project's next dataset version.

    A batch with an error-level anomaly is stored as ``quarantined`` with its report: it is kept
    for inspection but never used for training. Re-ingesting identical content returns the
    existing version (``created`` False).
    """
    say = progress or (lambda _msg: None)
    frame, description = read_source(source, timestamp=spec.timestamp)
    say(f"read {len(frame):,} rows from {description}")
    first = ws.stores.datasets.find_schema(spec.project) is None
    schema = project_schema(ws, spec, frame)
    reference = reference_profile(ws, spec.project)
    report = validate_batch(
        frame, schema, policy=policy_from_spec(spec), reference_profile=reference
    )
    if first and not report.passed:
        report = ValidationReport.of(
            [
                *report.anomalies,
                Anomaly(
                    kind="first_batch",
                    severity=Severity.WARNING,
                    message="The schema was inferred from this batch and it still failed "
                    "validation.",
                ),
            ]
        )
    status = BatchStatus.ACCEPTED if report.passed else BatchStatus.QUARANTINED
    profile = profile_frame(frame, schema, reference=reference) if report.passed else {}
    digest = _store_parquet(ws, frame)
    times = _time_range(frame, spec.timestamp)
    version = DatasetVersion(
        id=DatasetVersionId(new_id("ds_")),
        project=spec.project,
        seq=0,
        status=status,
        digest=digest,
        row_count=len(frame),
        schema_version=schema.version,
        source=description,
        created_at=utcnow(),
        min_time=times[0],
        max_time=times[1],
        report=report.to_dict(),
        profile=profile,
    )
    stored = ws.stores.datasets.add_dataset_version(version)
    say(f"batch {stored.seq}: {stored.status} ({report.summary()})")
    return IngestResult(
        version=stored,
        report=ValidationReport.from_dict(stored.report),
        schema=schema,
        created=stored.id == version.id,
    )


def load_versions(ws: Workspace, versions: Sequence[DatasetVersion]) -> pd.DataFrame:
    """Read and concatenate the Parquet content of dataset ``versions``."""
    if not versions:
        raise InvalidInputError("No dataset versions to load: ingest accepted batches first.")
    tables = [pq.read_table(ws.stores.artifacts.local_path(v.digest)) for v in versions]
    return pa.concat_tables(tables, promote_options="default").to_pandas()


def training_window(ws: Workspace, spec: ProjectSpec) -> list[DatasetVersion]:
    """The newest ``training.window_batches`` accepted batches, oldest first."""
    return ws.stores.datasets.list_dataset_versions(
        spec.project, status=BatchStatus.ACCEPTED, limit=spec.training.window_batches
    )


def release_batch(ws: Workspace, version_id: str, *, reason: str) -> DatasetVersion:
    """Accept a quarantined batch by an explicit, recorded override."""
    if not reason.strip():
        raise InvalidInputError("Releasing a quarantined batch needs a non-empty reason.")
    return ws.stores.datasets.set_dataset_status(
        DatasetVersionId(version_id), BatchStatus.ACCEPTED, note=f"released by {ws.actor}: {reason}"
    )


def _store_parquet(ws: Workspace, frame: pd.DataFrame) -> str:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    fd, tmp = tempfile.mkstemp(suffix=".parquet", dir=ws.home)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        return ws.stores.artifacts.put_file(Path(tmp))
    finally:
        Path(tmp).unlink(missing_ok=True)


def _time_range(frame: pd.DataFrame, column: str | None) -> tuple[datetime | None, datetime | None]:
    if not column or column not in frame.columns or len(frame) == 0:
        return None, None
    values = frame[column]
    if not pd.api.types.is_datetime64_any_dtype(values):
        return None, None
    lo, hi = values.min(), values.max()
    if pd.isna(lo):
        return None, None
    return as_utc(lo.to_pydatetime(warn=False)), as_utc(hi.to_pydatetime(warn=False))
