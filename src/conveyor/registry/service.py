"""Model registry service: register versions, move aliases, promote, roll back, load safely."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conveyor.core.approval import ApprovalStatus
from conveyor.core.entities import AliasPointer, AuditEvent, ModelVersion, RunId, VersionStatus
from conveyor.core.errors import BlockedError, ConflictError, InvalidInputError, NotFoundError
from conveyor.workspace import Workspace

PRODUCTION = "production"
ALIASES = ("production", "challenger", "staging", "shadow")
_CAS_ATTEMPTS = 5


def register_version(
    ws: Workspace,
    model: str,
    *,
    artifact: str,
    run_id: RunId | None,
    signature: Mapping[str, Any],
    lineage: Mapping[str, Any],
    metrics: Mapping[str, Any],
    tags: Mapping[str, str] | None = None,
) -> ModelVersion:
    """Register the next version of ``model``; the database allocates the number."""
    return ws.stores.models.create_model_version(
        model,
        artifact=artifact,
        run_id=run_id,
        signature=signature,
        lineage=lineage,
        metrics=metrics,
        tags=tags,
        actor=ws.actor,
    )


def get_version(ws: Workspace, model: str, version: int) -> ModelVersion:
    """Return the version or raise NotFoundError naming the model and the known versions."""
    try:
        return ws.stores.models.get_model_version(model, version)
    except NotFoundError:
        known = [v.version for v in ws.stores.models.list_model_versions(model)]
        deleted = [
            e
            for e in ws.stores.models.list_audit_events(model)
            if e.action == "delete" and e.to_version == version
        ]
        gone = (
            f" (deleted by {deleted[-1].actor} at {deleted[-1].at:%Y-%m-%d %H:%M} UTC)"
            if deleted
            else ""
        )
        raise NotFoundError(
            f"Model '{model}' has no version {version}{gone}; known versions: {known or 'none'}."
        ) from None


def find_alias_version(ws: Workspace, model: str, alias: str = PRODUCTION) -> int | None:
    pointer = ws.stores.models.find_alias(model, alias)
    return pointer.version if pointer else None


def set_alias(
    ws: Workspace,
    model: str,
    alias: str,
    version: int,
    *,
    action: str,
    reason: str,
    evidence: Mapping[str, Any] | None = None,
    require_approval: bool = False,
) -> AliasPointer:
    """Point ``alias`` at ``version`` by compare-and-swap, retrying on a concurrent move.

    An archived version takes no alias. With ``require_approval`` (the project's
    ``registry.require_approval``), production only takes an approved version; the approval
    is added to the audit event's evidence.

    Raises
    ------
    InvalidInputError
        If the alias is unknown, the version is archived, or it is not ready for production.
    BlockedError
        If production needs an approval and the version has none that is approved.
    """
    if alias not in ALIASES:
        raise InvalidInputError(f"Alias '{alias}' is not known; allowed: {', '.join(ALIASES)}.")
    mv = get_version(ws, model, version)
    if mv.status is VersionStatus.ARCHIVED:
        raise InvalidInputError(
            f"Version {version} of '{model}' is archived and cannot take the alias '{alias}'; "
            f"restore it first (`conveyor models restore {version}`)."
        )
    if alias == PRODUCTION and mv.status is not VersionStatus.READY:
        raise InvalidInputError(
            f"Version {version} of '{model}' is {mv.status} and cannot become production."
        )
    if alias == PRODUCTION and require_approval:
        evidence = {**(evidence or {}), "approval": _approval_evidence(ws, model, version)}
    for _ in range(_CAS_ATTEMPTS):
        current = ws.stores.models.find_alias(model, alias)
        try:
            return ws.stores.models.move_alias(
                model,
                alias,
                version,
                expected_revision=current.revision if current else None,
                action=action,
                actor=ws.actor,
                reason=reason,
                evidence=evidence,
            )
        except ConflictError:
            continue
    raise ConflictError(
        f"Alias '{alias}' of '{model}' kept changing; gave up after {_CAS_ATTEMPTS} attempts."
    )


def promote(
    ws: Workspace,
    model: str,
    version: int,
    *,
    reason: str,
    evidence: Mapping[str, Any] | None = None,
    require_approval: bool = False,
) -> AliasPointer:
    """Make ``version`` production; an audit event records who, when, why and the evidence.

    With ``require_approval`` the version must have been approved (see
    :mod:`conveyor.registry.approvals`), else BlockedError and production stays.
    """
    return set_alias(
        ws,
        model,
        PRODUCTION,
        version,
        action="promote",
        reason=reason,
        evidence=evidence,
        require_approval=require_approval,
    )


def _approval_evidence(ws: Workspace, model: str, version: int) -> dict[str, Any]:
    """The approval that releases ``version``, as audit evidence; BlockedError if there is none."""
    approval = ws.stores.models.find_approval(model, version)
    if approval is None or approval.status is not ApprovalStatus.APPROVED:
        state = (
            "no approval request"
            if approval is None
            else f"an approval that is {approval.status} (requested by {approval.requested_by})"
        )
        raise BlockedError(
            f"Version {version} of '{model}' cannot become production: the project requires "
            f"an approval (registry.require_approval) and the version has {state}. Request one "
            f"with `conveyor models request-approval {version}`; another person approves it "
            f"with `conveyor models approve {version} --reason ...`.",
            evidence={
                "model": model,
                "version": version,
                "approval": str(approval.status) if approval else None,
            },
        )
    return {
        "approved_by": approval.decided_by,
        "approved_at": approval.decided_at.isoformat() if approval.decided_at else None,
        "reason": approval.decision_reason,
        "requested_by": approval.requested_by,
    }


def production_history(ws: Workspace, model: str) -> list[AuditEvent]:
    """Every move of the production alias, oldest first."""
    return ws.stores.models.list_audit_events(model, alias=PRODUCTION)


def rollback(
    ws: Workspace,
    model: str,
    *,
    reason: str,
    block: bool = False,
    evidence: Mapping[str, Any] | None = None,
) -> AliasPointer:
    """Return production to the version it had before the current one.

    The target is the newest earlier production version that is still ``ready``, read from
    the releases only: a rollback is not a release, so rolling back twice never returns to the
    version the first rollback left. With ``block`` the abandoned version is marked so that it
    is never promoted again.
    """
    current = find_alias_version(ws, model, PRODUCTION)
    if current is None:
        raise NotFoundError(f"Model '{model}' has no production version to roll back.")
    target = None
    for event in reversed(production_history(ws, model)):
        candidate = event.from_version
        if event.action == "rollback" or candidate is None or candidate == current:
            continue
        if get_version(ws, model, candidate).status is VersionStatus.READY:
            target = candidate
            break
    if target is None:
        raise NotFoundError(
            f"Model '{model}' has no earlier production version to roll back to from {current}."
        )
    if block:
        ws.stores.models.set_version_status(
            model, current, VersionStatus.BLOCKED, actor=ws.actor, reason=reason
        )
    return set_alias(
        ws,
        model,
        PRODUCTION,
        target,
        action="rollback",
        reason=reason,
        evidence={"from_version": current, **(evidence or {})},
    )
