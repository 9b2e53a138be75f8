"""The nouns of the line as plain frozen objects; stores convert them to and from rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NewType

DatasetVersionId = NewType("DatasetVersionId", str)
RunId = NewType("RunId", str)
AlertId = NewType("AlertId", str)
PipelineRunId = NewType("PipelineRunId", str)

Json = Mapping[str, Any]


class BatchStatus(StrEnum):
    """Where a batch stands: accepted batches may train models, quarantined ones never.

    An expired batch had its content deleted by retention; its row, report and profile stay.
    """

    ACCEPTED = "accepted"
    QUARANTINED = "quarantined"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """An ingested batch, stored immutably as Parquet under its content digest."""

    id: DatasetVersionId
    project: str
    seq: int
    status: BatchStatus
    digest: str
    row_count: int
    schema_version: int
    source: str
    created_at: datetime
    min_time: datetime | None = None
    max_time: datetime | None = None
    report: Json = field(default_factory=dict)
    profile: Json = field(default_factory=dict)


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Run:
    """A tracked experiment run: params, latest metrics, tags and artifacts by name."""

    id: RunId
    project: str
    experiment: str
    name: str
    status: RunStatus
    started_at: datetime
    ended_at: datetime | None = None
    parent_id: RunId | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    artifacts: Mapping[str, str] = field(default_factory=dict)
    datasets: tuple[str, ...] = ()
    heartbeat_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One value of a metric series."""

    key: str
    value: float
    step: int
    timestamp: datetime


class VersionStatus(StrEnum):
    """A version's standing: ``blocked`` versions are never promoted again."""

    READY = "ready"
    BLOCKED = "blocked"
    ARCHIVED = "archived"


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """A registered model version: safe artifact, signature, lineage and evaluation."""

    model: str
    version: int
    artifact: str
    run_id: RunId | None
    created_at: datetime
    status: VersionStatus = VersionStatus.READY
    signature: Json = field(default_factory=dict)
    lineage: Json = field(default_factory=dict)
    metrics: Json = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AliasPointer:
    """A movable name on a version; ``revision`` increases on every move (compare-and-swap)."""

    model: str
    alias: str
    version: int
    revision: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One change in the registry: who, when, why and the evidence."""

    id: int
    model: str
    action: str
    actor: str
    reason: str
    at: datetime
    alias: str | None = None
    from_version: int | None = None
    to_version: int | None = None
    evidence: Json = field(default_factory=dict)


class AlertSeverity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Alert:
    """Something a person should know about, with the evidence and a link to its report."""

    id: AlertId
    project: str
    kind: str
    severity: AlertSeverity
    message: str
    created_at: datetime
    evidence: Json = field(default_factory=dict)
    report: str | None = None


@dataclass(frozen=True, slots=True)
class MonitorReport:
    """One monitoring window of one model version: drift, bias, live performance."""

    id: str
    project: str
    model_version: int | None
    window_start: datetime
    window_end: datetime
    created_at: datetime
    stats: Json = field(default_factory=dict)


class PipelineStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    BLOCKED = "blocked"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class PipelineRun:
    """One continuous-training cycle: why it ran, its steps and how it ended."""

    id: PipelineRunId
    project: str
    trigger: str
    status: PipelineStatus
    started_at: datetime
    ended_at: datetime | None = None
    evidence: Json = field(default_factory=dict)
    steps: Json = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Lease:
    """An expiring lock held in the metadata store (one CT cycle per project)."""

    name: str
    holder: str
    expires_at: datetime
