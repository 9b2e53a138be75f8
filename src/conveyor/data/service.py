"""Ingestion service: a batch becomes an immutable, validated, profiled dataset version."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from conveyor.core.clock import new_id, utcnow
from conveyor.core.entities import BatchStatus, DatasetVersion, DatasetVersionId
from conveyor.core.errors import (
    ConfigError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    QuarantinedError,
    SchemaError,
)
from conveyor.core.schema import Anomaly, Schema, SchemaRecord, Severity, ValidationReport
from conveyor.data.drift_history import batch_drift
from conveyor.data.evolution import (
    SchemaDiff,
    diff_schemas,
    evolve_schema,
    infer_project_schema,
)
from conveyor.data.profiles import profile_frame
from conveyor.data.sources import (
    DEFAULT_CHUNK_ROWS,
    Source,
    SqlQuery,
    open_source,
    read_frame,
)
from conveyor.data.staging import ChunkedChecks, spool_source, write_canonical
from conveyor.data.validation import ValidationPolicy, validate_batch
from conveyor.data.windows import ChangePoint, TrainingWindow, WindowRule, choose_window
from conveyor.spec import ProjectSpec
from conveyor.workspace import Workspace

Progress = Callable[[str], None]

__all__ = [
    "ChangePoint",
    "IngestResult",
    "ReleaseOutcome",
    "Source",
    "SqlQuery",
    "TrainingWindow",
    "WindowRule",
    "accept_batch_schema",
    "choose_training_window",
    "diff_batch_schema",
    "diff_schema_versions",
    "get_schema_record",
    "ingest_batch",
    "load_content",
    "load_versions",
    "policy_from_spec",
    "project_schema",
    "read_source",
    "recent_row_counts",
    "reference_profile",
    "release_batch",
    "training_window",
]


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


@dataclass(frozen=True, slots=True)
class ReleaseOutcome:
    """A released batch, the report of its re-validation, and whether an override did it."""

    version: DatasetVersion
    report: ValidationReport
    overridden: bool


def read_source(source: Source, *, timestamp: str | None = None) -> tuple[pd.DataFrame, str]:
    """Read a whole source (see :mod:`conveyor.data.sources`) into a frame, with a description.

    Raises
    ------
    NotFoundError
        If a path does not exist.
    InvalidInputError
        If the source cannot be parsed or has an unsupported suffix.
    """
    return read_frame(source, timestamp=timestamp)


def policy_from_spec(spec: ProjectSpec) -> ValidationPolicy:
    """The validation policy that ``conveyor.yaml`` declares.

    Raises
    ------
    ConfigError
        If the ``validation`` section holds a value the policy refuses, such as a column
        override of an unknown field or a warning share above the error share.
    """
    try:
        return ValidationPolicy.from_dict(spec.validation.model_dump())
    except InvalidInputError as exc:
        raise ConfigError(f"conveyor.yaml 'validation': {exc}") from exc


def recent_row_counts(ws: Workspace, spec: ProjectSpec) -> list[int]:
    """Row counts of the project's newest accepted batches (oldest first), for ``volume_jump``."""
    window = spec.validation.volume_window
    accepted = ws.stores.datasets.list_dataset_versions(
        spec.project, status=BatchStatus.ACCEPTED, limit=window
    )
    return [v.row_count for v in accepted]


def project_schema(ws: Workspace, spec: ProjectSpec, frame: pd.DataFrame | None = None) -> Schema:
    """The project's current schema, inferred from ``frame`` (and saved) when there is none."""
    schema = ws.stores.datasets.find_schema(spec.project)
    if schema is not None:
        return schema
    if frame is None:
        raise NotFoundError(f"Project '{spec.project}' has no schema yet: ingest a batch first.")
    inferred = infer_project_schema(frame, spec)
    return ws.stores.datasets.save_schema(
        spec.project, inferred, author=ws.actor, reason="inferred from the first batch"
    )


def get_schema_record(ws: Workspace, spec: ProjectSpec, version: int | None = None) -> SchemaRecord:
    """A schema version of the project (the newest by default) with who saved it and why.

    Raises
    ------
    NotFoundError
        If the project has no schema yet or no such version.
    """
    history = ws.stores.datasets.list_schemas(spec.project)
    if not history:
        raise NotFoundError(f"Project '{spec.project}' has no schema yet: ingest a batch first.")
    if version is None:
        return history[-1]
    for record in history:
        if record.version == version:
            return record
    raise NotFoundError(
        f"Project '{spec.project}' has no schema version {version}; versions are "
        f"1..{history[-1].version}."
    )


def diff_schema_versions(
    ws: Workspace,
    spec: ProjectSpec,
    *,
    from_version: int | None = None,
    to_version: int | None = None,
) -> SchemaDiff:
    """What changed between two schema versions (default: the previous and the newest)."""
    newest = get_schema_record(ws, spec).version
    to_v = newest if to_version is None else to_version
    from_v = max(to_v - 1, 1) if from_version is None else from_version
    old = get_schema_record(ws, spec, from_v).schema
    return diff_schemas(old, get_schema_record(ws, spec, to_v).schema)


def diff_batch_schema(
    ws: Workspace, spec: ProjectSpec, source: Source, *, from_version: int | None = None
) -> SchemaDiff:
    """How a batch departs from a schema version (default the newest), widening only."""
    frame, _ = read_source(source, timestamp=spec.timestamp)
    current = get_schema_record(ws, spec, from_version).schema
    return diff_schemas(current, infer_project_schema(frame, spec), sample=True)


def accept_batch_schema(
    ws: Workspace, spec: ProjectSpec, source: Source, *, reason: str | None = None
) -> tuple[SchemaRecord, SchemaDiff]:
    """Store the schema evolved to admit ``source`` as the next version, by ``ws.actor``.

    Returns the newest schema record and the diff from the previous one; when the batch needs
    no change nothing is stored and the diff is empty.

    Raises
    ------
    SchemaError
        If a column changed kind: see :func:`conveyor.data.evolution.evolve_schema`.
    """
    frame, description = read_source(source, timestamp=spec.timestamp)
    current = get_schema_record(ws, spec).schema
    evolved = evolve_schema(current, infer_project_schema(frame, spec))
    diff = diff_schemas(current, evolved)
    if diff.is_empty:
        return get_schema_record(ws, spec), diff
    why = reason.strip() if reason and reason.strip() else f"accepted batch {description}"
    stored = ws.stores.datasets.save_schema(spec.project, evolved, author=ws.actor, reason=why)
    return get_schema_record(ws, spec, stored.version), replace(diff, to_version=stored.version)


def reference_profile(ws: Workspace, project: str) -> dict[str, Any] | None:
    """The profile whose histogram edges every later profile of ``project`` reuses."""
    accepted = ws.stores.datasets.list_dataset_versions(project, status=BatchStatus.ACCEPTED)
    return dict(accepted[0].profile) if accepted else None


def ingest_batch(
    ws: Workspace,
    spec: ProjectSpec,
    source: Source,
    *,
    progress: Progress | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> IngestResult:
    """Validate ``source`` and store it as the project's next dataset version.

    The source is streamed in chunks of ``chunk_rows`` rows (see
    :mod:`conveyor.data.staging`), so memory stays bounded however large the batch. A batch
    with an error-level anomaly is stored as ``quarantined`` with its report: it is kept for
    inspection but never used for training. Re-ingesting identical content, from any kind of
    source, returns the existing version (``created`` False); a version whose content
    retention deleted gets it back, re-validated.

    Raises
    ------
    NotFoundError
        If a source path does not exist.
    InvalidInputError
        If the source cannot be read (a corrupt file, a bad query); nothing is stored then.
    """
    say = progress or (lambda _msg: None)
    reader = open_source(source, chunk_rows=chunk_rows, timestamp=spec.timestamp)
    first = ws.stores.datasets.find_schema(spec.project) is None
    inferred: list[Schema] = []
    with tempfile.TemporaryDirectory(dir=ws.home, prefix=".ingest-") as tmp:
        staged = spool_source(
            reader,
            Path(tmp),
            on_chunk=(lambda chunk: _widen_inferred(inferred, chunk, spec)) if first else None,
            progress=say,
        )
        say(f"read {staged.rows:,} rows from {staged.description}")
        schema = _current_schema(ws, spec, inferred[0] if inferred else None)
        reference = reference_profile(ws, spec.project)
        checks = ChunkedChecks(
            schema,
            policy_from_spec(spec),
            reference,
            recent_row_counts(ws, spec),
            chunk_count=len(staged.files),
            timestamp=spec.timestamp,
        )
        canonical = Path(tmp) / "batch.parquet"
        write_canonical(staged, canonical, on_chunk=checks.add, progress=say)
        report = checks.report()
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
        profile = checks.profile() if report.passed else {}
        accepted = ws.stores.datasets.list_dataset_versions(
            spec.project, status=BatchStatus.ACCEPTED
        )
        if drift := batch_drift(profile, accepted, spec.drift):
            profile["drift"] = drift
        digest = ws.stores.artifacts.put_file(canonical)
    version = DatasetVersion(
        id=DatasetVersionId(new_id("ds_")),
        project=spec.project,
        seq=0,
        status=status,
        digest=digest,
        row_count=staged.rows,
        schema_version=schema.version,
        source=staged.description,
        created_at=utcnow(),
        min_time=checks.min_time,
        max_time=checks.max_time,
        report=report.to_dict(),
        profile=profile,
    )
    stored = ws.stores.datasets.add_dataset_version(version)
    if stored.status is BatchStatus.EXPIRED:
        stored = ws.stores.datasets.set_dataset_status(
            stored.id,
            status,
            note=f"content re-ingested by {ws.actor} after retention deleted it",
            profile=profile,
        )
    say(f"batch {stored.seq}: {stored.status} ({report.summary()})")
    return IngestResult(
        version=stored,
        report=ValidationReport.from_dict(stored.report),
        schema=schema,
        created=stored.id == version.id,
    )


def _widen_inferred(inferred: list[Schema], chunk: pd.DataFrame, spec: ProjectSpec) -> None:
    """Infer the first batch's schema chunk by chunk, widening ranges and domains."""
    candidate = infer_project_schema(chunk, spec)
    if not inferred:
        inferred.append(candidate)
        return
    # A column whose kind differs in this chunk keeps the first kind; validation reports it.
    with contextlib.suppress(SchemaError):
        inferred[0] = evolve_schema(inferred[0], candidate)


def _current_schema(ws: Workspace, spec: ProjectSpec, inferred: Schema | None) -> Schema:
    schema = ws.stores.datasets.find_schema(spec.project)
    if schema is not None or inferred is None:
        return schema if schema is not None else project_schema(ws, spec)
    return ws.stores.datasets.save_schema(
        spec.project, inferred, author=ws.actor, reason="inferred from the first batch"
    )


def load_versions(ws: Workspace, versions: Sequence[DatasetVersion]) -> pd.DataFrame:
    """Read and concatenate the Parquet content of accepted dataset ``versions``.

    Raises
    ------
    InvalidInputError
        If ``versions`` is empty or one of them is not accepted: a quarantined batch never
        reaches training, whoever asks for it.
    """
    if not versions:
        raise InvalidInputError("No dataset versions to load: ingest accepted batches first.")
    for v in versions:
        current = ws.stores.datasets.get_dataset_version(v.id)
        if current.status is not BatchStatus.ACCEPTED:
            raise InvalidInputError(
                f"Dataset version {v.id} (batch {v.seq}) is {current.status}; only accepted "
                "batches can be loaded for training. Release it with `conveyor quarantine "
                "release` first."
            )
    tables = [pq.read_table(ws.stores.artifacts.local_path(v.digest)) for v in versions]
    return pa.concat_tables(tables, promote_options="default").to_pandas()


def training_window(ws: Workspace, spec: ProjectSpec) -> list[DatasetVersion]:
    """The accepted batches to train on, oldest first (see :func:`choose_training_window`)."""
    return list(choose_training_window(ws, spec).versions)


def choose_training_window(
    ws: Workspace, spec: ProjectSpec, *, since: ChangePoint | None = None
) -> TrainingWindow:
    """Choose the training window in rows: whole accepted batches, newest first.

    Parameters
    ----------
    ws : Workspace
        Where the project's dataset versions are recorded.
    spec : ProjectSpec
        ``training.window_rows`` when set; else enough rows for the gate's test split to hold
        ``gate.min_rows`` rows, and at least ``training.window_batches`` batches.
    since : ChangePoint, optional
        A detected drift or decay: the window shortens to the batches after it, but not below
        the rows the gate needs (:func:`conveyor.data.windows.choose_window`).

    Returns
    -------
    TrainingWindow
        The batches, oldest first, with the rule that sized them; empty without accepted data.
    """
    limit = max(spec.training.window_batches, 8)
    while True:
        newest = ws.stores.datasets.list_dataset_versions(
            spec.project, status=BatchStatus.ACCEPTED, limit=limit
        )
        window = choose_window(spec, newest, since=since)
        if len(newest) < limit or len(window.versions) < len(newest):
            return window
        limit *= 4


def release_batch(
    ws: Workspace, spec: ProjectSpec, version_id: str, *, reason: str | None = None
) -> ReleaseOutcome:
    """Accept a quarantined batch: re-validated against the current schema, or by override.

    Without ``reason`` the stored batch is validated again against the project's current
    schema and policy (say, after ``conveyor schema accept``) and accepted only if it passes
    now. With ``reason`` it is accepted as is, by an explicit override recorded with the actor.
    Either way the change is appended to the batch's ``report["status_changes"]`` and the
    batch gets a profile so it can serve as training data.

    Raises
    ------
    NotFoundError
        If there is no such dataset version.
    ConflictError
        If the version is not quarantined.
    InvalidInputError
        If ``reason`` is given but blank.
    QuarantinedError
        If the re-validation still finds an error; ``evidence["report"]`` holds the report.
    """
    version = ws.stores.datasets.get_dataset_version(DatasetVersionId(version_id))
    if version.project != spec.project or version.status is not BatchStatus.QUARANTINED:
        raise ConflictError(
            f"Dataset version {version_id!r} is {version.status} in project "
            f"{version.project!r}; only a quarantined batch of {spec.project!r} can be released."
        )
    if reason is not None and not reason.strip():
        raise InvalidInputError(
            "The 'reason' of a release must be non-empty text, or absent to re-validate the "
            "batch against the current schema. Got a blank reason instead."
        )
    frame = load_content(ws, version)
    schema = project_schema(ws, spec)
    reference = reference_profile(ws, spec.project)
    report = validate_batch(
        frame,
        schema,
        policy=policy_from_spec(spec),
        reference_profile=reference,
        recent_row_counts=recent_row_counts(ws, spec),
    )
    if reason is None and not report.passed:
        raise QuarantinedError(
            f"Dataset version {version_id} still fails validation against schema "
            f"v{schema.version}: {report.summary()}",
            evidence={"report": report.to_dict()},
        )
    note = (
        f"re-validated by {ws.actor} against schema v{schema.version}: {report.summary()}"
        if reason is None
        else f"released by {ws.actor}: {reason.strip()}"
    )
    released = ws.stores.datasets.set_dataset_status(
        version.id,
        BatchStatus.ACCEPTED,
        note=note,
        profile=profile_frame(frame, schema, reference=reference),
    )
    return ReleaseOutcome(version=released, report=report, overridden=reason is not None)


def load_content(ws: Workspace, version: DatasetVersion) -> pd.DataFrame:
    """The stored content of one dataset version, whatever its status (for inspection)."""
    return pq.read_table(ws.stores.artifacts.local_path(version.digest)).to_pandas()
