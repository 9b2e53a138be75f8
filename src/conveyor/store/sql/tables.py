"""ORM rows of the metadata database, each converting explicitly to and from a core entity.

Datetimes are stored as aware UTC (``timestamptz`` on PostgreSQL); SQLite hands them back naive,
so :class:`UtcDateTime` re-attaches UTC on read. Mappings are JSON columns.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from conveyor.core.approval import Approval, ApprovalStatus
from conveyor.core.clock import as_utc
from conveyor.core.entities import (
    Alert,
    AlertId,
    AlertSeverity,
    AliasPointer,
    AuditEvent,
    BatchStatus,
    DatasetVersion,
    DatasetVersionId,
    Lease,
    MetricPoint,
    ModelVersion,
    MonitorReport,
    PipelineRun,
    PipelineRunId,
    PipelineStatus,
    Run,
    RunId,
    RunStatus,
    VersionStatus,
)
from conveyor.core.schema import Schema, SchemaRecord


def _column_values(entity: Any) -> dict[str, Any]:
    """An entity's fields as column values: enums as plain strings, mappings as dicts."""
    values: dict[str, Any] = {}
    for item in dataclasses.fields(entity):
        value = getattr(entity, item.name)
        if isinstance(value, StrEnum):
            value = str(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        values[item.name] = value
    return values


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware datetime that always comes back as aware UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        # SQLite keeps no offset: store the UTC wall time so text order is time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


ID = sa.String(64)
NAME = sa.String(255)
# SQLite only autoincrements a column declared exactly INTEGER PRIMARY KEY.
BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of every Conveyor table."""

    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: sa.JSON()}


class DatasetVersionRow(Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (
        sa.UniqueConstraint("project", "seq", name="uq_dataset_versions_project_seq"),
        sa.UniqueConstraint("project", "digest", name="uq_dataset_versions_project_digest"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project: Mapped[str] = mapped_column(NAME)
    seq: Mapped[int]
    status: Mapped[str] = mapped_column(sa.String(32))
    digest: Mapped[str] = mapped_column(sa.String(80))
    row_count: Mapped[int] = mapped_column(sa.BigInteger)
    schema_version: Mapped[int]
    source: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime]
    min_time: Mapped[datetime | None]
    max_time: Mapped[datetime | None]
    report: Mapped[dict[str, Any]]
    profile: Mapped[dict[str, Any]]

    def to_entity(self) -> DatasetVersion:
        return DatasetVersion(
            id=DatasetVersionId(self.id),
            project=self.project,
            seq=self.seq,
            status=BatchStatus(self.status),
            digest=self.digest,
            row_count=self.row_count,
            schema_version=self.schema_version,
            source=self.source,
            created_at=self.created_at,
            min_time=self.min_time,
            max_time=self.max_time,
            report=dict(self.report),
            profile=dict(self.profile),
        )

    @classmethod
    def from_entity(cls, version: DatasetVersion) -> DatasetVersionRow:
        return cls(**_column_values(version))


class SchemaRow(Base):
    __tablename__ = "schemas"

    project: Mapped[str] = mapped_column(NAME, primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    columns: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]

    def to_entity(self) -> Schema:
        return Schema.from_dict({**self.columns, "version": self.version})

    def to_record(self) -> SchemaRecord:
        meta = self.columns.get("meta") or {}
        return SchemaRecord(
            self.to_entity(), self.created_at, author=meta.get("author"), reason=meta.get("reason")
        )

    @classmethod
    def from_entity(cls, project: str, schema: Schema, created_at: datetime) -> SchemaRow:
        return cls(
            project=project,
            version=schema.version,
            columns=schema.to_dict(),
            created_at=created_at,
        )

    @classmethod
    def from_record(cls, project: str, record: SchemaRecord) -> SchemaRow:
        row = cls.from_entity(project, record.schema, record.created_at)
        row.columns = {**row.columns, "meta": {"author": record.author, "reason": record.reason}}
        return row


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (
        sa.Index("ix_runs_project_experiment", "project", "experiment"),
        # Reads look for stale running runs first: few rows are running, so this stays cheap.
        sa.Index("ix_runs_status", "status"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project: Mapped[str] = mapped_column(NAME)
    experiment: Mapped[str] = mapped_column(NAME)
    name: Mapped[str] = mapped_column(NAME)
    status: Mapped[str] = mapped_column(sa.String(32))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    # The last time the run's client was heard from (a write or a heartbeat).
    heartbeat_at: Mapped[datetime | None]
    parent_id: Mapped[str | None] = mapped_column(ID, sa.ForeignKey("runs.id"))
    # The newest value of each metric by (step, timestamp), kept in step with run_metrics.
    latest_metrics: Mapped[dict[str, Any]]

    params: Mapped[list[RunParamRow]] = relationship(lazy="selectin", cascade="all")
    tags: Mapped[list[RunTagRow]] = relationship(lazy="selectin", cascade="all")
    artifacts: Mapped[list[RunArtifactRow]] = relationship(lazy="selectin", cascade="all")
    datasets: Mapped[list[RunDatasetRow]] = relationship(
        lazy="selectin", cascade="all", order_by="RunDatasetRow.position"
    )

    def to_entity(self) -> Run:
        return Run(
            id=RunId(self.id),
            project=self.project,
            experiment=self.experiment,
            name=self.name,
            status=RunStatus(self.status),
            started_at=self.started_at,
            ended_at=self.ended_at,
            parent_id=RunId(self.parent_id) if self.parent_id is not None else None,
            params={p.key: p.value for p in self.params},
            metrics={k: float(v["value"]) for k, v in self.latest_metrics.items()},
            tags={t.key: t.value for t in self.tags},
            artifacts={a.name: a.digest for a in self.artifacts},
            datasets=tuple(d.dataset_id for d in self.datasets),
            heartbeat_at=self.heartbeat_at,
        )

    @classmethod
    def from_entity(cls, run: Run) -> RunRow:
        return cls(
            id=run.id,
            project=run.project,
            experiment=run.experiment,
            name=run.name,
            status=str(run.status),
            started_at=run.started_at,
            ended_at=run.ended_at,
            heartbeat_at=run.heartbeat_at or run.started_at,
            parent_id=run.parent_id,
            latest_metrics={},
            params=[RunParamRow(key=k, value=v) for k, v in run.params.items()],
            tags=[RunTagRow(key=k, value=v) for k, v in run.tags.items()],
            artifacts=[RunArtifactRow(name=k, digest=v) for k, v in run.artifacts.items()],
            datasets=[RunDatasetRow(dataset_id=d, position=i) for i, d in enumerate(run.datasets)],
        )


def _metric_value(value: float | None) -> float:
    return math.nan if value is None else float(value)


class RunParamRow(Base):
    __tablename__ = "run_params"

    run_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("runs.id"), primary_key=True)
    key: Mapped[str] = mapped_column(NAME, primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)


class RunMetricRow(Base):
    __tablename__ = "run_metrics"
    __table_args__ = (sa.Index("ix_run_metrics_run_key_step", "run_id", "key", "step", "ts"),)

    id: Mapped[int] = mapped_column(BIGINT_ID, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("runs.id"))
    key: Mapped[str] = mapped_column(NAME)
    step: Mapped[int] = mapped_column(sa.BigInteger)
    ts: Mapped[datetime]
    # NULL stands for NaN: SQLite cannot store a NaN REAL.
    value: Mapped[float | None] = mapped_column(sa.Float)

    def to_entity(self) -> MetricPoint:
        return MetricPoint(
            key=self.key, value=_metric_value(self.value), step=self.step, timestamp=self.ts
        )

    @classmethod
    def from_entity(cls, run_id: str, point: MetricPoint) -> RunMetricRow:
        value = None if math.isnan(point.value) else float(point.value)
        return cls(run_id=run_id, key=point.key, step=point.step, ts=point.timestamp, value=value)


class RunTagRow(Base):
    __tablename__ = "run_tags"

    run_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("runs.id"), primary_key=True)
    key: Mapped[str] = mapped_column(NAME, primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)


class RunArtifactRow(Base):
    __tablename__ = "run_artifacts"

    run_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("runs.id"), primary_key=True)
    name: Mapped[str] = mapped_column(NAME, primary_key=True)
    digest: Mapped[str] = mapped_column(sa.String(80))


class RunDatasetRow(Base):
    __tablename__ = "run_datasets"

    run_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("runs.id"), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ID, primary_key=True)
    position: Mapped[int]


class RegisteredModelRow(Base):
    """One row per model name: the counter that hands out gapless version numbers."""

    __tablename__ = "registered_models"
    __table_args__ = (sa.UniqueConstraint("name_key", name="uq_registered_models_name_key"),)

    name: Mapped[str] = mapped_column(NAME, primary_key=True)
    # The case-folded NFC name (conveyor.core.names.name_key): unique, so names differing
    # only in case are one model.
    name_key: Mapped[str] = mapped_column(NAME)
    last_version: Mapped[int]
    created_at: Mapped[datetime]


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (sa.UniqueConstraint("model", "version", name="uq_model_versions_version"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(NAME)
    version: Mapped[int]
    artifact: Mapped[str] = mapped_column(sa.String(80))
    run_id: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(sa.String(32))
    signature: Mapped[dict[str, Any]]
    lineage: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    tags: Mapped[dict[str, Any]]

    def to_entity(self) -> ModelVersion:
        return ModelVersion(
            model=self.model,
            version=self.version,
            artifact=self.artifact,
            run_id=RunId(self.run_id) if self.run_id is not None else None,
            created_at=self.created_at,
            status=VersionStatus(self.status),
            signature=dict(self.signature),
            lineage=dict(self.lineage),
            metrics=dict(self.metrics),
            tags={str(k): str(v) for k, v in self.tags.items()},
        )

    @classmethod
    def from_entity(cls, version: ModelVersion) -> ModelVersionRow:
        return cls(**_column_values(version))


class AliasRow(Base):
    __tablename__ = "aliases"
    __table_args__ = (sa.UniqueConstraint("model", "alias", name="uq_aliases_model_alias"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(NAME)
    alias: Mapped[str] = mapped_column(NAME)
    version: Mapped[int]
    revision: Mapped[int]
    updated_at: Mapped[datetime]

    def to_entity(self) -> AliasPointer:
        return AliasPointer(
            model=self.model,
            alias=self.alias,
            version=self.version,
            revision=self.revision,
            updated_at=self.updated_at,
        )

    @classmethod
    def from_entity(cls, pointer: AliasPointer) -> AliasRow:
        return cls(**_column_values(pointer))


class AuditEventRow(Base):
    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_model_alias", "model", "alias"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(NAME)
    action: Mapped[str] = mapped_column(sa.String(64))
    actor: Mapped[str] = mapped_column(NAME)
    reason: Mapped[str] = mapped_column(sa.Text)
    at: Mapped[datetime]
    alias: Mapped[str | None] = mapped_column(NAME)
    from_version: Mapped[int | None]
    to_version: Mapped[int | None]
    evidence: Mapped[dict[str, Any]]

    def to_entity(self) -> AuditEvent:
        return AuditEvent(
            id=self.id,
            model=self.model,
            action=self.action,
            actor=self.actor,
            reason=self.reason,
            at=self.at,
            alias=self.alias,
            from_version=self.from_version,
            to_version=self.to_version,
            evidence=dict(self.evidence),
        )

    @classmethod
    def from_entity(cls, event: AuditEvent) -> AuditEventRow:
        """Build a row to insert; the database assigns ``id`` (the entity's is ignored)."""
        values = _column_values(event)
        del values["id"]
        return cls(**values)


class MonitorReportRow(Base):
    __tablename__ = "monitor_reports"
    __table_args__ = (sa.Index("ix_monitor_reports_project_window", "project", "window_end"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project: Mapped[str] = mapped_column(NAME)
    model_version: Mapped[int | None]
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    created_at: Mapped[datetime]
    stats: Mapped[dict[str, Any]]

    def to_entity(self) -> MonitorReport:
        return MonitorReport(
            id=self.id,
            project=self.project,
            model_version=self.model_version,
            window_start=self.window_start,
            window_end=self.window_end,
            created_at=self.created_at,
            stats=dict(self.stats),
        )

    @classmethod
    def from_entity(cls, report: MonitorReport) -> MonitorReportRow:
        return cls(**_column_values(report))


class AlertRow(Base):
    __tablename__ = "alerts"
    __table_args__ = (sa.Index("ix_alerts_project_kind", "project", "kind"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project: Mapped[str] = mapped_column(NAME)
    kind: Mapped[str] = mapped_column(sa.String(64))
    severity: Mapped[str] = mapped_column(sa.String(32))
    message: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime]
    evidence: Mapped[dict[str, Any]]
    report: Mapped[str | None] = mapped_column(ID)

    def to_entity(self) -> Alert:
        return Alert(
            id=AlertId(self.id),
            project=self.project,
            kind=self.kind,
            severity=AlertSeverity(self.severity),
            message=self.message,
            created_at=self.created_at,
            evidence=dict(self.evidence),
            report=self.report,
        )

    @classmethod
    def from_entity(cls, alert: Alert) -> AlertRow:
        return cls(**_column_values(alert))


class PipelineRunRow(Base):
    __tablename__ = "pipeline_runs"
    __table_args__ = (sa.Index("ix_pipeline_runs_project", "project", "started_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project: Mapped[str] = mapped_column(NAME)
    trigger: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(32))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    evidence: Mapped[dict[str, Any]]
    steps: Mapped[dict[str, Any]]

    def to_entity(self) -> PipelineRun:
        return PipelineRun(
            id=PipelineRunId(self.id),
            project=self.project,
            trigger=self.trigger,
            status=PipelineStatus(self.status),
            started_at=self.started_at,
            ended_at=self.ended_at,
            evidence=dict(self.evidence),
            steps=dict(self.steps),
        )

    @classmethod
    def from_entity(cls, run: PipelineRun) -> PipelineRunRow:
        return cls(**_column_values(run))


class LeaseRow(Base):
    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(NAME, primary_key=True)
    holder: Mapped[str] = mapped_column(NAME)
    expires_at: Mapped[datetime]

    def to_entity(self) -> Lease:
        return Lease(name=self.name, holder=self.holder, expires_at=self.expires_at)


class StepCacheRow(Base):
    __tablename__ = "step_cache"

    key: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    result: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class ModelApprovalRow(Base):
    """The current approval state of one model version; its history is in the audit log."""

    __tablename__ = "model_approvals"
    __table_args__ = (
        sa.UniqueConstraint("model", "version", name="uq_model_approvals_version"),
        sa.Index("ix_model_approvals_model_status", "model", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(NAME)
    version: Mapped[int]
    status: Mapped[str] = mapped_column(sa.String(32))
    requested_by: Mapped[str] = mapped_column(NAME)
    requested_at: Mapped[datetime]
    request_reason: Mapped[str] = mapped_column(sa.Text)
    decided_by: Mapped[str | None] = mapped_column(NAME)
    decided_at: Mapped[datetime | None]
    decision_reason: Mapped[str | None] = mapped_column(sa.Text)

    def to_entity(self) -> Approval:
        return Approval(
            model=self.model,
            version=self.version,
            status=ApprovalStatus(self.status),
            requested_by=self.requested_by,
            requested_at=self.requested_at,
            request_reason=self.request_reason,
            decided_by=self.decided_by,
            decided_at=self.decided_at,
            decision_reason=self.decision_reason,
        )

    @classmethod
    def from_entity(cls, approval: Approval) -> ModelApprovalRow:
        return cls(**_column_values(approval))
