"""Model registry service: register versions, move aliases, promote, roll back, load safely."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from conveyor.core.alias import ALIASES as ALIASES
from conveyor.core.alias import Alias
from conveyor.core.entities import AliasPointer, AuditEvent, ModelVersion, RunId, VersionStatus
from conveyor.core.errors import ConflictError, InvalidInputError, NotFoundError
from conveyor.workspace import Workspace

PRODUCTION = Alias.PRODUCTION.value
_CAS_ATTEMPTS = 5


class Revision(Enum):
    """How an alias move compares: ``ANY`` retries on whatever revision it reads."""

    ANY = "any"


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
    """Register the next version of ``model``; the database allocates the number.

    Raises
    ------
    InvalidInputError
        If ``artifact`` is not a digest, or no blob with that digest is in the workspace's
        artifact store (a version must never point at bytes nobody uploaded).
    """
    if not ws.stores.artifacts.exists(artifact):
        raise InvalidInputError(
            f"A version of model '{model}' cannot be registered with the artifact {artifact}: "
            f"no such blob is in the artifact store; upload it first (put_bytes/put_file, or "
            f"POST /api/v1/artifacts on a `conveyor server`)."
        )
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
    """The version ``alias`` points at, or None if it was never set."""
    pointer = ws.stores.models.find_alias(model, alias)
    return pointer.version if pointer else None


def move_alias(
    ws: Workspace,
    model: str,
    alias: str,
    version: int,
    *,
    expected_revision: int | None,
    action: str,
    reason: str,
    evidence: Mapping[str, Any] | None = None,
    require_approval: bool = False,
) -> AliasPointer:
    """Point ``alias`` at ``version`` if it is still at ``expected_revision``; one attempt.

    Every alias move of every path (Python, CLI, REST, controller) ends here; the model store
    applies :func:`conveyor.core.alias.check_alias_move` in the move's transaction.

    Raises
    ------
    InvalidInputError
        If the alias is unknown, the version archived, or not ready for production.
    BlockedError
        If production needs an approval and the version has none that is approved.
    ConflictError
        If the alias moved since ``expected_revision`` was read; nothing changed.
    """
    return ws.stores.models.move_alias(
        model,
        alias,
        version,
        expected_revision=expected_revision,
        action=action,
        actor=ws.actor,
        reason=reason,
        evidence=evidence,
        require_approval=require_approval,
    )


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
    expected_revision: int | None | Revision = Revision.ANY,
) -> AliasPointer:
    """Point ``alias`` at ``version`` by compare-and-swap.

    An archived version takes no alias; production takes only a ready version and, with
    ``require_approval`` (the project's ``registry.require_approval``), an approved one whose
    approval is added to the audit event's evidence. With ``expected_revision`` (the revision
    the caller validated against; None: the alias must not exist) a concurrent move is a
    conflict; with ``Revision.ANY`` the move is retried on the revision read.

    Raises
    ------
    InvalidInputError
        If the alias is unknown (allowed: see :data:`conveyor.core.alias.ALIASES`), the version
        is archived, or it is not ready for production.
    BlockedError
        If production needs an approval and the version has none that is approved.
    ConflictError
        If the alias is not at ``expected_revision``, or kept changing under retries.
    """
    get_version(ws, model, version)
    kw: dict[str, Any] = {
        "action": action,
        "reason": reason,
        "evidence": evidence,
        "require_approval": require_approval,
    }
    if not isinstance(expected_revision, Revision):
        return move_alias(ws, model, alias, version, expected_revision=expected_revision, **kw)
    for _ in range(_CAS_ATTEMPTS):
        current = ws.stores.models.find_alias(model, alias)
        try:
            return move_alias(
                ws,
                model,
                alias,
                version,
                expected_revision=current.revision if current else None,
                **kw,
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
    expected_revision: int | None | Revision = Revision.ANY,
) -> AliasPointer:
    """Make ``version`` production; an audit event records who, when, why and the evidence.

    With ``require_approval`` the version must have been approved (see
    :mod:`conveyor.registry.approvals`), else BlockedError and production stays. With
    ``expected_revision`` production must still be where the caller validated against, else
    ConflictError and production stays.
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
        expected_revision=expected_revision,
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

    The target is the newest earlier production version that is still ``ready``, read from
    the releases only: a rollback is not a release, so rolling back twice never returns to the
    version the first rollback left. With ``block`` the abandoned version is marked so that it
    is never promoted again.
    """
    pointer = ws.stores.models.find_alias(model, PRODUCTION)
    if pointer is None:
        raise NotFoundError(f"Model '{model}' has no production version to roll back.")
    current = pointer.version
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
    moved = set_alias(
        ws,
        model,
        PRODUCTION,
        target,
        action="rollback",
        reason=reason,
        evidence={"from_version": current, **(evidence or {})},
        expected_revision=pointer.revision,
    )
    if block:
        # After the move, so that a rollback refused as a conflict blocks nothing.
        ws.stores.models.set_version_status(
            model, current, VersionStatus.BLOCKED, actor=ws.actor, reason=reason
        )
    return moved
