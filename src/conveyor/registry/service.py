"""Model registry service: register versions, move aliases, promote, roll back, load safely."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conveyor.core.entities import AliasPointer, AuditEvent, ModelVersion, RunId, VersionStatus
from conveyor.core.errors import ConflictError, InvalidInputError, NotFoundError
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
        raise NotFoundError(
            f"Model '{model}' has no version {version}; known versions: {known or 'none'}."
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
) -> AliasPointer:
    """Point ``alias`` at ``version`` by compare-and-swap, retrying on a concurrent move."""
    if alias not in ALIASES:
        raise InvalidInputError(f"Alias '{alias}' is not known; allowed: {', '.join(ALIASES)}.")
    mv = get_version(ws, model, version)
    if alias == PRODUCTION and mv.status is not VersionStatus.READY:
        raise InvalidInputError(
            f"Version {version} of '{model}' is {mv.status} and cannot become production."
        )
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
) -> AliasPointer:
    """Make ``version`` production; an audit event records who, when, why and the evidence."""
    return set_alias(
        ws, model, PRODUCTION, version, action="promote", reason=reason, evidence=evidence
    )


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

    The target is the newest earlier production version that is still ``ready``; with
    ``block`` the abandoned version is marked so that it is never promoted again.
    """
    current = find_alias_version(ws, model, PRODUCTION)
    if current is None:
        raise NotFoundError(f"Model '{model}' has no production version to roll back.")
    target = None
    for event in reversed(production_history(ws, model)):
        candidate = event.from_version
        if candidate is None or candidate == current:
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
