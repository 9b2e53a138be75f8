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
from conveyor.core.labels import Task
from conveyor.core.schema import Anomaly, Schema, SchemaRecord, Severity, ValidationReport
from conveyor.data.drift_history import batch_drift
from conveyor.data.evolution import (
    SchemaDiff,
    apply_spec,
    diff_schemas,
    evolve_schema,
    infer_project_schema,
    learn_schema,
    learned_label_classes,
)
from conveyor.data.profiles import profile_frame
from conveyor.data.sources import (
    DEFAULT_CHUNK_ROWS,
    Source,
    SqlQuery,
    open_source,
    read_frame,
)
from conveyor.data.staging import (
    ChunkedChecks,
    canonical_table,
    spool_source,
    write_canonical,
)
from conveyor.data.timestamps import TimeColumn, time_column_of
from conveyor.data.validation import LabelRules, ValidationPolicy, validate_batch
from conveyor.data.windows import ChangePoint, TrainingWindow, WindowRule, choose_window
from conveyor.spec import ProjectSpec
from conveyor.workspace import Workspace

Progress = Callable[[str], None]

__all__ = [
    "ChangePoint",
    "IngestResult",
    "ReleaseOutcome",
    "Revalidation",
    "accept_proposed_schema",
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
    "label_rules",
    "load_content",
    "load_versions",
    "policy_from_spec",
    "project_schema",
    "proposed_schema_change",
    "read_source",
    "recent_row_counts",
    "reference_profile",
    "reviewed_schema",
    "release_batch",
    "revalidate_batches",
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

    @property
    def missing_labels(self) -> int:
        """Rows stored without a label; training leaves them out."""
        found = [a for a in self.report.anomalies if a.kind == "missing_labels"]
        return sum(int(a.details.get("count", 0)) for a in found)

    @property
    def proposed_changes(self) -> list[dict[str, Any]]:
        """Schema changes this batch proposes (new categories, wider ranges), for review."""
        found = [a.details["proposed"] for a in self.report.anomalies if "proposed" in a.details]
        return [dict(p) for p in found]


@dataclass(frozen=True, slots=True)
class Revalidation:
    """A quarantined batch validated again against the current schema and ``conveyor.yaml``."""

    version: DatasetVersion
    report: ValidationReport
    schema_version: int

    @property
    def accepted(self) -> bool:
        return self.version.status is BatchStatus.ACCEPTED


@dataclass(frozen=True, slots=True)
class ReleaseOutcome:
    """A released batch, the report of its re-validation, and whether an override did it."""

    version: DatasetVersion
    report: ValidationReport
    overridden: bool


def read_source(
    source: Source, *, timestamp: TimeColumn | str | None = None
) -> tuple[pd.DataFrame, str]:
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


def reviewed_schema(ws: Workspace, spec: ProjectSpec, frame: pd.DataFrame | None = None) -> Schema:
    """The project's newest stored (reviewed) schema, inferred from ``frame`` and saved when
    there is none.

    The stored schema's roles follow ``conveyor.yaml``: after the spec changed (an ignored
    column, another label, a column declared categorical) the schema updated by
    :func:`conveyor.data.evolution.apply_spec` is stored as the next version, by ``ws.actor``.

    Raises
    ------
    NotFoundError
        If the project has no schema and no ``frame`` is given.
    ConfigError
        If the spec names a label, timestamp or entity column the schema does not have.
    """
    schema = ws.stores.datasets.find_schema(spec.project)
    if schema is not None:
        updated = apply_spec(schema, spec)
        if updated == schema:
            return schema
        diff = diff_schemas(schema, updated)
        why = "conveyor.yaml changed: " + "; ".join(c.describe() for c in diff.changes)
        return ws.stores.datasets.save_schema(spec.project, updated, author=ws.actor, reason=why)
    if frame is None:
        raise NotFoundError(f"Project '{spec.project}' has no schema yet: ingest a batch first.")
    inferred = infer_project_schema(frame, spec)
    return ws.stores.datasets.save_schema(
        spec.project, inferred, author=ws.actor, reason="inferred from the first batch"
    )


def project_schema(
    ws: Workspace,
    spec: ProjectSpec,
    frame: pd.DataFrame | None = None,
    *,
    accepted: Sequence[DatasetVersion] | None = None,
) -> Schema:
    """The project's schema as validation, training and monitoring use it: the reviewed one
    (:func:`reviewed_schema`) widened by the categories and quantile ranges of every accepted
    batch (:func:`conveyor.data.evolution.learn_schema`), under the reviewed version number.

    Parameters
    ----------
    frame : pandas.DataFrame, optional
        The batch to infer the first schema from when the project has none.
    accepted : sequence of DatasetVersion, optional
        The project's accepted batches when the caller has them already.

    Raises
    ------
    NotFoundError
        If the project has no schema and no ``frame`` is given.
    ConfigError
        If the spec names a label, timestamp or entity column the schema does not have.
    """
    reviewed = reviewed_schema(ws, spec, frame)
    if accepted is None:
        accepted = ws.stores.datasets.list_dataset_versions(
            spec.project, status=BatchStatus.ACCEPTED
        )
    return learn_schema(
        reviewed, [v.profile for v in accepted], range_quantile=spec.validation.range_quantile
    )


def proposed_schema_change(ws: Workspace, spec: ProjectSpec) -> SchemaDiff:
    """What the accepted batches taught the schema beyond its newest reviewed version.

    New categories and wider ranges are learned as batches are accepted, so validation warns
    once per new value; this is the change awaiting review (``to_version`` None), which
    :func:`accept_proposed_schema` stores.

    Raises
    ------
    NotFoundError
        If the project has no schema yet.
    """
    diff = diff_schemas(reviewed_schema(ws, spec), project_schema(ws, spec))
    return replace(diff, to_version=None)


def accept_proposed_schema(
    ws: Workspace, spec: ProjectSpec, *, reason: str | None = None
) -> tuple[SchemaRecord, SchemaDiff]:
    """Store the learned schema (see :func:`proposed_schema_change`) as the next version.

    Returns the newest schema record and the accepted diff; when nothing is proposed nothing is
    stored and the diff is empty.
    """
    diff = proposed_schema_change(ws, spec)
    if diff.is_empty:
        return get_schema_record(ws, spec), diff
    why = reason.strip() if reason and reason.strip() else "accepted the learned domains"
    stored = ws.stores.datasets.save_schema(
        spec.project, project_schema(ws, spec), author=ws.actor, reason=why
    )
    return get_schema_record(ws, spec, stored.version), replace(diff, to_version=stored.version)


def label_rules(
    spec: ProjectSpec, schema: Schema, accepted: Sequence[DatasetVersion]
) -> LabelRules | None:
    """The label checks of ``spec``'s task, with the classes the accepted batches held."""
    task = Task(spec.task)
    if not task.is_classification:
        return None
    classes = learned_label_classes(schema, [v.profile for v in accepted])
    return LabelRules(task, classes, spec.positive_class)


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
    frame, _ = read_source(source, timestamp=time_column_of(spec))
    current = (
        reviewed_schema(ws, spec)
        if from_version is None
        else get_schema_record(ws, spec, from_version).schema
    )
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
    frame, description = read_source(source, timestamp=time_column_of(spec))
    current = reviewed_schema(ws, spec)
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
    reader = open_source(source, chunk_rows=chunk_rows, timestamp=time_column_of(spec))
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
        reviewed = _current_schema(ws, spec, inferred[0] if inferred else None)
        accepted = ws.stores.datasets.list_dataset_versions(
            spec.project, status=BatchStatus.ACCEPTED
        )
        schema = project_schema(ws, spec, accepted=accepted)
        reference = dict(accepted[0].profile) if accepted else None
        checks = ChunkedChecks(
            schema,
            policy_from_spec(spec),
            reference,
            recent_row_counts(ws, spec),
            chunk_count=len(staged.files),
            timestamp=spec.timestamp,
            labels=label_rules(spec, schema, accepted),
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
        span = (checks.min_time, checks.max_time)
        if drift := batch_drift(profile, accepted, spec.drift, span=span):
            profile["drift"] = drift
        digest = ws.stores.artifacts.put_file(canonical)
    version = DatasetVersion(
        id=DatasetVersionId(new_id("ds_")),
        project=spec.project,
        seq=0,
        status=status,
        digest=digest,
        row_count=staged.rows,
        schema_version=reviewed.version,
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
        schema=reviewed,
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
    if ws.stores.datasets.find_schema(spec.project) is not None or inferred is None:
        return reviewed_schema(ws, spec)
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
    tables = [
        canonical_table(pq.read_table(ws.stores.artifacts.local_path(v.digest))) for v in versions
    ]
    # Batches may store a column as int64 in one and float64 in another (a label with missing
    # values): permissive promotion widens it as staging does within one batch. Older batches
    # may hold text as a dictionary or large_string: canonical_table reads them as string.
    return pa.concat_tables(tables, promote_options="permissive").to_pandas()


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
    schema, report, profile = _revalidate(ws, spec, frame)
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
        version.id, BatchStatus.ACCEPTED, note=note, profile=profile
    )
    return ReleaseOutcome(version=released, report=report, overridden=reason is not None)


def revalidate_batches(
    ws: Workspace, spec: ProjectSpec, version_ids: Sequence[str] | None = None
) -> list[Revalidation]:
    """Validate quarantined batches again against the current schema and ``conveyor.yaml``.

    Meant for after the spec or the schema changed (a column ignored, a label renamed, a
    schema change accepted): every batch that passes now is accepted, oldest first, each in
    one transaction that appends the re-validation to its ``report["status_changes"]``, so a
    later batch is checked against the domains the earlier ones brought. A batch that still
    fails stays quarantined and unchanged. Running it again changes nothing.

    Parameters
    ----------
    version_ids : sequence of str, optional
        The batches to re-validate; all quarantined batches of the project when None.

    Returns
    -------
    list of Revalidation
        One per batch re-validated, oldest first.

    Raises
    ------
    NotFoundError
        If a given id is not a dataset version.
    ConflictError
        If a given batch belongs to another project or is not quarantined.
    """
    if version_ids is None:
        targets = ws.stores.datasets.list_dataset_versions(
            spec.project, status=BatchStatus.QUARANTINED
        )
    else:
        targets = [ws.stores.datasets.get_dataset_version(DatasetVersionId(i)) for i in version_ids]
        for v in targets:
            if v.project != spec.project or v.status is not BatchStatus.QUARANTINED:
                raise ConflictError(
                    f"Dataset version {v.id!r} is {v.status} in project {v.project!r}; only "
                    f"quarantined batches of {spec.project!r} can be re-validated."
                )
    outcomes = []
    for target in sorted({v.id: v for v in targets}.values(), key=lambda v: v.seq):
        schema, report, profile = _revalidate(ws, spec, load_content(ws, target))
        version = ws.stores.datasets.get_dataset_version(target.id)
        if report.passed and version.status is BatchStatus.QUARANTINED:
            version = ws.stores.datasets.set_dataset_status(
                version.id,
                BatchStatus.ACCEPTED,
                note=f"re-validated by {ws.actor} against schema v{schema.version} and "
                f"conveyor.yaml: {report.summary()}",
                profile=profile,
            )
        outcomes.append(Revalidation(version, report, schema.version))
    return outcomes


def _revalidate(
    ws: Workspace, spec: ProjectSpec, frame: pd.DataFrame
) -> tuple[Schema, ValidationReport, dict[str, Any]]:
    """A stored batch's report against the learned schema now, and its profile."""
    accepted = ws.stores.datasets.list_dataset_versions(spec.project, status=BatchStatus.ACCEPTED)
    schema = project_schema(ws, spec, accepted=accepted)
    reference = dict(accepted[0].profile) if accepted else None
    report = validate_batch(
        frame,
        schema,
        policy=policy_from_spec(spec),
        reference_profile=reference,
        recent_row_counts=recent_row_counts(ws, spec),
        labels=label_rules(spec, schema, accepted),
    )
    return schema, report, profile_frame(frame, schema, reference=reference)


def load_content(ws: Workspace, version: DatasetVersion) -> pd.DataFrame:
    """The stored content of one dataset version, whatever its status (for inspection)."""
    return pq.read_table(ws.stores.artifacts.local_path(version.digest)).to_pandas()
