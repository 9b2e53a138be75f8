"""Request and response bodies of the REST API (pydantic); entities know no wire format.

Times are ISO-8601 with an offset. Floats JSON cannot hold (NaN, +/-infinity) are written as
the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` and read back from them, so a
diverging loss survives the trip (see :mod:`conveyor.store.wire`, the client's side).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from fastapi import Response
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from conveyor.core.approval import Approval, ApprovalStatus
from conveyor.core.entities import (
    AliasPointer,
    AuditEvent,
    MetricPoint,
    ModelVersion,
    Run,
    VersionStatus,
)
from conveyor.core.names import NameKind, check_name, check_run_artifact_name
from conveyor.core.run_query import MAX_PAGE_SIZE

_CONFIG = ConfigDict(ser_json_inf_nan="strings", extra="forbid")
Name = Annotated[str, Field(min_length=1, max_length=500)]


def _named(kind: NameKind) -> AfterValidator:
    return AfterValidator(functools.partial(check_name, kind=kind))


# The names of conveyor.core.names: NFC, no surrounding whitespace, at most MAX_NAME_LENGTH
# characters of the allowed set; a refusal is a 422 that names the field.
ProjectName = Annotated[str, _named(NameKind.PROJECT)]
ExperimentName = Annotated[str, _named(NameKind.EXPERIMENT)]
RunName = Annotated[str, _named(NameKind.RUN)]
ArtifactName = Annotated[str, AfterValidator(check_run_artifact_name)]


class Body(BaseModel):
    """Base of every body: unknown fields are refused, non-finite floats travel as strings."""

    model_config = _CONFIG


def render(body: BaseModel | Sequence[BaseModel], status_code: int = 200) -> Response:
    """A JSON response of one body or a list of bodies (NaN and infinities as strings)."""
    if isinstance(body, BaseModel):
        content = body.model_dump_json().encode()
    else:
        content = _LIST.dump_json(list(body))
    return Response(content, status_code=status_code, media_type="application/json")


_LIST: TypeAdapter[list[BaseModel]] = TypeAdapter(
    list[Any], config=ConfigDict(ser_json_inf_nan="strings")
)


# Requests ---------------------------------------------------------------------------------


class RunCreate(Body):
    project: ProjectName = Field(description="The project the run belongs to.")
    experiment: ExperimentName = Field(default="default", description="Its experiment.")
    name: RunName = Field(description="The run's name.")
    parent_id: str | None = Field(default=None, description="The parent run, for nested runs.")
    tags: dict[str, str] = Field(default_factory=dict)


class MetricPointIn(Body):
    """One point; the key and step are checked by the run store, as for a local workspace."""

    key: str
    value: float = Field(description='A number, or "NaN", "Infinity", "-Infinity".')
    step: int | float = Field(default=0, description="An int.")
    timestamp: AwareDatetime

    def to_entity(self) -> MetricPoint:
        return MetricPoint(self.key, self.value, self.step, self.timestamp)  # type: ignore[arg-type]


class LogBatch(Body):
    """Params, tags and metric points written in one transaction: all or nothing."""

    params: dict[Name, str] = Field(default_factory=dict)
    tags: dict[Name, str] = Field(default_factory=dict)
    metrics: list[MetricPointIn] = Field(default_factory=list)


class ArtifactRef(Body):
    name: ArtifactName = Field(description="A relative path; a trailing '/' is a directory.")
    digest: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]


class DatasetsIn(Body):
    dataset_ids: list[Name]


class EndRun(Body):
    status: Literal["finished", "failed"] = "finished"


class SearchRuns(Body):
    """A run search: ``filter``/``order_by`` as text, or ``where``/``order`` as trees."""

    project: str | None = None
    filter: str | None = Field(
        default=None, description="e.g. \"metrics.auc > 0.8 and params.lr = '0.1'\"."
    )
    order_by: list[str] = Field(default_factory=list, description="e.g. ['metrics.auc DESC'].")
    where: dict[str, Any] | None = Field(
        default=None, description="The filter as a tree (what the Python client sends)."
    )
    order: list[dict[str, Any]] = Field(default_factory=list)
    limit: int = Field(default=100, description=f"Runs per page, in [1, {MAX_PAGE_SIZE}].")
    page_token: str | None = None


class VersionCreate(Body):
    artifact: Name
    run_id: str | None = None
    signature: dict[str, Any] = Field(default_factory=dict)
    lineage: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    actor: Name


class Acting(Body):
    actor: Name = Field(description="Who acts, for the audit log.")
    reason: str = ""


class StatusChange(Acting):
    status: VersionStatus


class Decision(Acting):
    distinct_actor: bool = Field(
        default=False, description="Refuse a decision by the requester (four-eyes rule)."
    )


class MetricsMerge(Body):
    metrics: dict[str, Any]


class AliasMove(Acting):
    """Compare-and-swap: the move happens only if the alias is still at ``expected_revision``."""

    version: int = Field(ge=1)
    expected_revision: int | None = Field(
        description="The revision read before; null: the alias must not exist yet."
    )
    action: Name = "set_alias"
    evidence: dict[str, Any] = Field(default_factory=dict)
    require_approval: bool = Field(
        default=False,
        description="Production needs an approved version (the server may require it anyway).",
    )


# Responses --------------------------------------------------------------------------------


class RunOut(Body):
    id: str
    project: str
    experiment: str
    name: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    parent_id: str | None
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    artifacts: dict[str, str]
    datasets: list[str]
    heartbeat_at: datetime | None = None

    @classmethod
    def from_entity(cls, run: Run) -> Self:
        return cls(
            id=run.id,
            project=run.project,
            experiment=run.experiment,
            name=run.name,
            status=str(run.status),
            started_at=run.started_at,
            ended_at=run.ended_at,
            parent_id=run.parent_id,
            params=dict(run.params),
            metrics=dict(run.metrics),
            tags=dict(run.tags),
            artifacts=dict(run.artifacts),
            datasets=list(run.datasets),
            heartbeat_at=run.heartbeat_at,
        )


class MetricPointOut(Body):
    key: str
    value: float
    step: int
    timestamp: datetime

    @classmethod
    def from_entity(cls, point: MetricPoint) -> Self:
        return cls(key=point.key, value=point.value, step=point.step, timestamp=point.timestamp)


class RunPageOut(Body):
    runs: list[RunOut]
    next_page_token: str | None


class ModelVersionOut(Body):
    model: str
    version: int
    artifact: str
    run_id: str | None
    created_at: datetime
    status: VersionStatus
    signature: dict[str, Any]
    lineage: dict[str, Any]
    metrics: dict[str, Any]
    tags: dict[str, str]

    @classmethod
    def from_entity(cls, mv: ModelVersion) -> Self:
        return cls(
            model=mv.model,
            version=mv.version,
            artifact=mv.artifact,
            run_id=mv.run_id,
            created_at=mv.created_at,
            status=mv.status,
            signature=dict(mv.signature),
            lineage=dict(mv.lineage),
            metrics=dict(mv.metrics),
            tags=dict(mv.tags),
        )


class AliasOut(Body):
    model: str
    alias: str
    version: int
    revision: int
    updated_at: datetime

    @classmethod
    def from_entity(cls, pointer: AliasPointer) -> Self:
        return cls(
            model=pointer.model,
            alias=pointer.alias,
            version=pointer.version,
            revision=pointer.revision,
            updated_at=pointer.updated_at,
        )


class AuditEventOut(Body):
    id: int
    model: str
    action: str
    actor: str
    reason: str
    at: datetime
    alias: str | None
    from_version: int | None
    to_version: int | None
    evidence: dict[str, Any]

    @classmethod
    def from_entity(cls, event: AuditEvent) -> Self:
        return cls(
            id=event.id,
            model=event.model,
            action=event.action,
            actor=event.actor,
            reason=event.reason,
            at=event.at,
            alias=event.alias,
            from_version=event.from_version,
            to_version=event.to_version,
            evidence=dict(event.evidence),
        )


class ApprovalOut(Body):
    model: str
    version: int
    status: ApprovalStatus
    requested_by: str
    requested_at: datetime
    request_reason: str
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None

    @classmethod
    def from_entity(cls, approval: Approval) -> Self:
        return cls(
            model=approval.model,
            version=approval.version,
            status=approval.status,
            requested_by=approval.requested_by,
            requested_at=approval.requested_at,
            request_reason=approval.request_reason,
            decided_by=approval.decided_by,
            decided_at=approval.decided_at,
            decision_reason=approval.decision_reason,
        )


class ErrorOut(BaseModel):
    """Every error: the Conveyor error class, a message naming what is wrong, and details."""

    error: str = Field(description="e.g. NotFoundError, ConflictError, InvalidInputError.")
    message: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    errors: list[dict[str, Any]] = Field(default_factory=list)
