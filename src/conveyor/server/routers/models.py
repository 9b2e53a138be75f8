"""``/api/v1/models``: versions, aliases (compare-and-swap), audit log, approvals, archive."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from conveyor.core.alias import Alias, parse_alias
from conveyor.core.approval import ApprovalStatus
from conveyor.core.entities import RunId
from conveyor.core.errors import NotFoundError
from conveyor.pipeline.infra_check import require_release_check
from conveyor.registry import approvals, lifecycle
from conveyor.registry import service as registry
from conveyor.server.deps import WRITE, WorkspaceDep, acting
from conveyor.server.schemas import (
    Acting,
    AliasMove,
    AliasOut,
    ApprovalOut,
    AuditEventOut,
    Decision,
    MetricsMerge,
    ModelVersionOut,
    StatusChange,
    VersionCreate,
    render,
)

router = APIRouter(prefix="/models/{model}", tags=["models"])
VERSION = "/versions/{version}"


@router.post("/versions", response_model=ModelVersionOut, status_code=201, dependencies=WRITE)
def create_version(model: str, body: VersionCreate, ws: WorkspaceDep) -> Response:
    """Register the next version of ``model`` (numbers are allocated by the database).

    422 if the artifact is not in the server's artifact store (upload it first).
    """
    mv = registry.register_version(
        acting(ws, body.actor),
        model,
        artifact=body.artifact,
        run_id=RunId(body.run_id) if body.run_id else None,
        signature=body.signature,
        lineage=body.lineage,
        metrics=body.metrics,
        tags=body.tags,
    )
    return render(ModelVersionOut.from_entity(mv), 201)


@router.get("/versions", response_model=list[ModelVersionOut])
def list_versions(model: str, ws: WorkspaceDep) -> Response:
    mvs = ws.stores.models.list_model_versions(model)
    return render([ModelVersionOut.from_entity(mv) for mv in mvs])


@router.get(VERSION, response_model=ModelVersionOut)
def get_version(model: str, version: int, ws: WorkspaceDep) -> Response:
    return render(ModelVersionOut.from_entity(ws.stores.models.get_model_version(model, version)))


@router.delete(VERSION, response_model=ModelVersionOut, dependencies=WRITE)
def delete_version(
    model: str, version: int, ws: WorkspaceDep, actor: str = Query(min_length=1), reason: str = ""
) -> Response:
    """Remove the version (409 while an alias points at it); the audit log keeps it."""
    mv = ws.stores.models.delete_model_version(model, version, actor=actor, reason=reason)
    return render(ModelVersionOut.from_entity(mv))


@router.post(VERSION + "/status", response_model=ModelVersionOut, dependencies=WRITE)
def set_status(model: str, version: int, body: StatusChange, ws: WorkspaceDep) -> Response:
    mv = ws.stores.models.set_version_status(
        model, version, body.status, actor=body.actor, reason=body.reason
    )
    return render(ModelVersionOut.from_entity(mv))


@router.post(VERSION + "/metrics", response_model=ModelVersionOut, dependencies=WRITE)
def merge_metrics(model: str, version: int, body: MetricsMerge, ws: WorkspaceDep) -> Response:
    mv = ws.stores.models.update_version_metrics(model, version, body.metrics)
    return render(ModelVersionOut.from_entity(mv))


@router.post(VERSION + "/archive", response_model=ModelVersionOut, dependencies=WRITE)
def archive(model: str, version: int, body: Acting, ws: WorkspaceDep) -> Response:
    """Archive the version (409 while an alias points at it)."""
    mv = lifecycle.archive_version(ws, model, version, reason=body.reason, actor=body.actor)
    return render(ModelVersionOut.from_entity(mv))


@router.post(VERSION + "/restore", response_model=ModelVersionOut, dependencies=WRITE)
def restore(model: str, version: int, body: Acting, ws: WorkspaceDep) -> Response:
    mv = lifecycle.restore_version(ws, model, version, reason=body.reason, actor=body.actor)
    return render(ModelVersionOut.from_entity(mv))


@router.get("/aliases", response_model=list[AliasOut])
def list_aliases(model: str, ws: WorkspaceDep) -> Response:
    return render([AliasOut.from_entity(p) for p in ws.stores.models.list_aliases(model)])


@router.get("/aliases/{alias}", response_model=AliasOut)
def get_alias(model: str, alias: str, ws: WorkspaceDep) -> Response:
    pointer = ws.stores.models.find_alias(model, alias)
    if pointer is None:
        raise NotFoundError(f"Model '{model}' has no alias '{alias}'.")
    return render(AliasOut.from_entity(pointer))


@router.put("/aliases/{alias}", response_model=AliasOut, dependencies=WRITE)
def move_alias(model: str, alias: str, body: AliasMove, ws: WorkspaceDep) -> Response:
    """Point the alias at a version if it is still at ``expected_revision`` (else 409).

    The registry's rules hold as on every path: 422 for an unknown alias or an archived or
    unready version, 423 when production needs an approval (the body's ``require_approval``
    or the server's ``CONVEYOR_REQUIRE_APPROVAL``) or when the version fails the release
    check (loaded as the server loads it, its sample requests replayed).
    """
    if parse_alias(alias) is Alias.PRODUCTION:
        require_release_check(ws, model, body.version)
    pointer = registry.move_alias(
        acting(ws, body.actor),
        model,
        alias,
        body.version,
        expected_revision=body.expected_revision,
        action=body.action,
        reason=body.reason,
        evidence=body.evidence,
        require_approval=body.require_approval or ws.settings.require_approval,
    )
    return render(AliasOut.from_entity(pointer))


@router.get("/audit", response_model=list[AuditEventOut])
def audit(model: str, ws: WorkspaceDep, alias: str | None = None) -> Response:
    """Every registry change of ``model`` (of one alias if given), oldest first."""
    events = ws.stores.models.list_audit_events(model, alias=alias)
    return render([AuditEventOut.from_entity(e) for e in events])


@router.get("/approvals", response_model=list[ApprovalOut])
def list_approvals(model: str, ws: WorkspaceDep, status: ApprovalStatus | None = None) -> Response:
    items = ws.stores.models.list_approvals(model, status=status)
    return render([ApprovalOut.from_entity(a) for a in items])


@router.get(VERSION + "/approval", response_model=ApprovalOut)
def get_approval(model: str, version: int, ws: WorkspaceDep) -> Response:
    approval = ws.stores.models.find_approval(model, version)
    if approval is None:
        raise NotFoundError(f"Version {version} of '{model}' has no approval request.")
    return render(ApprovalOut.from_entity(approval))


@router.post(VERSION + "/approval/request", response_model=ApprovalOut, dependencies=WRITE)
def request_approval(model: str, version: int, body: Acting, ws: WorkspaceDep) -> Response:
    """Ask for the version to be approved for production (409 if pending or approved)."""
    approval = approvals.request_approval(ws, model, version, reason=body.reason, actor=body.actor)
    return render(ApprovalOut.from_entity(approval))


@router.post(VERSION + "/approval/approve", response_model=ApprovalOut, dependencies=WRITE)
def approve(model: str, version: int, body: Decision, ws: WorkspaceDep) -> Response:
    return _decide(ws, model, version, ApprovalStatus.APPROVED, body)


@router.post(VERSION + "/approval/reject", response_model=ApprovalOut, dependencies=WRITE)
def reject(model: str, version: int, body: Decision, ws: WorkspaceDep) -> Response:
    return _decide(ws, model, version, ApprovalStatus.REJECTED, body)


def _decide(
    ws: WorkspaceDep, model: str, version: int, status: ApprovalStatus, body: Decision
) -> Response:
    approval = approvals.decide(
        acting(ws, body.actor),
        model,
        version,
        status,
        reason=body.reason,
        distinct_actor=body.distinct_actor,
    )
    return render(ApprovalOut.from_entity(approval))
