"""Version lifecycle: archive, restore, delete, and collect the artifact blobs nobody needs.

The rules, in order of a version's life:

- **archive** sets the status ``archived``. An archived version takes no alias (so it is never
  production), and a version that an alias points at cannot be archived. Nothing is removed:
  :func:`restore_version` brings it back to the status it had before (so a blocked version
  stays blocked).
- **delete** removes an archived version's row and its approval. It is refused while an alias
  points at it or while it is one of the last ``keep_production`` versions that were production
  (default :data:`KEEP_PRODUCTION`), so an incident can still be investigated and rolled back
  to. The ``delete`` audit event keeps the removed version's artifact, run, lineage and tags:
  the audit log is the tombstone, and version numbers are never reused.
- **collect_garbage** deletes artifact blobs that no model version, run artifact or dataset
  version refers to. Deleting a version frees its model blob only once its training run no
  longer lists it; blobs orphaned by interrupted writes are the usual harvest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from conveyor.core.clock import utcnow
from conveyor.core.entities import ModelVersion, VersionStatus
from conveyor.core.errors import ConflictError, InvalidInputError, StoreError
from conveyor.registry.service import get_version, production_history
from conveyor.workspace import Workspace

KEEP_PRODUCTION = 3
"""Deleting one of the last this-many production versions is refused."""

GC_MIN_AGE_S = 3600.0
"""Blobs younger than this are kept: their metadata row may not be committed yet."""


def archive_version(
    ws: Workspace, model: str, version: int, *, reason: str, actor: str | None = None
) -> ModelVersion:
    """Retire ``version``: status ``archived``; audited as ``set_status``.

    Archiving an archived version returns it unchanged.

    Raises
    ------
    NotFoundError
        If the version does not exist.
    ConflictError
        If an alias (production, challenger, ...) points at it: move the alias first.
    """
    mv = get_version(ws, model, version)
    if mv.status is VersionStatus.ARCHIVED:
        return mv
    # The store refuses (ConflictError) while an alias points at it, in its transaction.
    return ws.stores.models.set_version_status(
        model, version, VersionStatus.ARCHIVED, actor=actor or ws.actor, reason=reason
    )


def restore_version(
    ws: Workspace, model: str, version: int, *, reason: str, actor: str | None = None
) -> ModelVersion:
    """Bring an archived version back to the status it had before it was archived.

    Raises
    ------
    InvalidInputError
        If the version is not archived.
    """
    mv = get_version(ws, model, version)
    if mv.status is not VersionStatus.ARCHIVED:
        raise InvalidInputError(
            f"Version {version} of '{model}' is {mv.status}, not archived; nothing to restore."
        )
    previous = VersionStatus.READY
    for event in reversed(ws.stores.models.list_audit_events(model)):
        if (
            event.action == "set_status"
            and event.to_version == version
            and event.evidence.get("to") == VersionStatus.ARCHIVED
        ):
            previous = VersionStatus(event.evidence.get("from", VersionStatus.READY))
            break
    return ws.stores.models.set_version_status(
        model, version, previous, actor=actor or ws.actor, reason=reason
    )


def recent_production_versions(ws: Workspace, model: str, count: int) -> list[int]:
    """The last ``count`` distinct versions that were production, newest first."""
    seen: list[int] = []
    for event in reversed(production_history(ws, model)):
        if event.to_version is not None and event.to_version not in seen:
            seen.append(event.to_version)
        if len(seen) >= count:
            break
    return seen


def delete_version(
    ws: Workspace,
    model: str,
    version: int,
    *,
    reason: str,
    actor: str | None = None,
    keep_production: int = KEEP_PRODUCTION,
) -> ModelVersion:
    """Delete an archived version's row and approval; the audit log keeps a tombstone.

    Parameters
    ----------
    keep_production : int, default KEEP_PRODUCTION
        Refuse to delete any of the last this-many versions that were production.

    Returns
    -------
    ModelVersion
        The version as it was before deletion.

    Raises
    ------
    NotFoundError
        If the version does not exist.
    InvalidInputError
        If it is not archived, or ``keep_production`` is negative.
    ConflictError
        If it is a recent production version or an alias points at it.
    """
    if keep_production < 0:
        raise InvalidInputError(
            f"The 'keep_production' parameter of delete_version() must be an int in [0, inf). "
            f"Got {keep_production} instead."
        )
    mv = get_version(ws, model, version)
    if mv.status is not VersionStatus.ARCHIVED:
        raise InvalidInputError(
            f"Version {version} of '{model}' is {mv.status}; only an archived version can be "
            f"deleted (`conveyor models archive {version}` first)."
        )
    recent = recent_production_versions(ws, model, keep_production)
    if version in recent:
        raise ConflictError(
            f"Version {version} of '{model}' was production recently (the last "
            f"{keep_production} production versions are {recent}) and is kept for "
            f"investigation and rollback."
        )
    return ws.stores.models.delete_model_version(
        model, version, actor=actor or ws.actor, reason=reason
    )


@dataclass(frozen=True, slots=True)
class GarbageReport:
    """What :func:`collect_garbage` found and (unless a dry run) deleted."""

    dry_run: bool
    blobs: int
    referenced: int
    young: int
    deleted: tuple[str, ...] = ()
    bytes_freed: int = 0
    errors: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "blobs": self.blobs,
            "referenced": self.referenced,
            "young": self.young,
            "deleted": list(self.deleted),
            "bytes_freed": self.bytes_freed,
            "errors": dict(self.errors),
        }


def collect_garbage(
    ws: Workspace, *, dry_run: bool = False, min_age_s: float = GC_MIN_AGE_S
) -> GarbageReport:
    """Delete the artifact blobs that no model version, run artifact or dataset version uses.

    Blobs are listed before the references are read, and blobs younger than ``min_age_s`` are
    kept, so a write in progress (blob stored, row not committed yet) never loses its blob.

    Parameters
    ----------
    ws : Workspace
        The workspace, whose metadata database is the only source of references.
    dry_run : bool, default False
        Report what would be deleted and the bytes it would free, and delete nothing.
    min_age_s : float, default GC_MIN_AGE_S
        Keep unreferenced blobs modified less than this many seconds ago (and blobs whose
        store reports no time).

    Returns
    -------
    GarbageReport
        Counts, the deleted digests and the bytes freed (or that would be, in a dry run).

    Raises
    ------
    InvalidInputError
        If ``min_age_s`` is negative.
    """
    if min_age_s < 0:
        raise InvalidInputError(
            f"The 'min_age_s' parameter of collect_garbage() must be a float in [0, inf). "
            f"Got {min_age_s} instead."
        )
    blobs = list(ws.stores.artifacts.list_blobs())
    referenced = ws.stores.models.list_referenced_digests()
    cutoff = utcnow() - timedelta(seconds=min_age_s)
    doomed: list[tuple[str, int]] = []
    young = 0
    for digest, size, modified_at in blobs:
        if digest in referenced:
            continue
        if modified_at is None or modified_at > cutoff:
            young += 1
            continue
        doomed.append((digest, size))
    deleted: list[str] = []
    freed = 0
    errors: dict[str, str] = {}
    for digest, size in sorted(doomed):
        if not dry_run:
            try:
                ws.stores.artifacts.delete(digest)
            except StoreError as exc:
                errors[digest] = str(exc)
                continue
        deleted.append(digest)
        freed += size
    return GarbageReport(
        dry_run=dry_run,
        blobs=len(blobs),
        referenced=sum(1 for digest, _, _ in blobs if digest in referenced),
        young=young,
        deleted=tuple(deleted),
        bytes_freed=freed,
        errors=errors,
    )
