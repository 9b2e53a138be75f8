"""The alias vocabulary and the rules every alias move obeys, whatever path makes it.

An alias names the role a model version plays (``production`` answers traffic, a canary's
``candidate`` takes a share of it, ``shadow`` scores mirrored traffic, ...). The set is closed
and declared here once: the registry refuses any other name, and ``conveyor.yaml`` refuses one
in ``serving.canary.alias`` or ``serving.shadow.alias`` when it loads.

:func:`check_alias_move` holds the rules of a move. The model store applies it inside the
move's transaction, on the rows it has locked, so the Python API, the CLI, the REST API and the
controller all pass the same rules and nothing can change between the check and the move.

Examples
--------
>>> parse_alias("candidate") is Alias.CANDIDATE
True
>>> parse_alias("prodution")
Traceback (most recent call last):
...
conveyor.core.errors.InvalidInputError: The alias 'prodution' is not known; allowed: \
'production', 'candidate', 'challenger', 'staging', 'shadow'.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from conveyor.core.approval import Approval, ApprovalStatus
from conveyor.core.entities import ModelVersion, VersionStatus
from conveyor.core.errors import BlockedError, ConflictError, InvalidInputError


class Alias(StrEnum):
    """Every alias a model version can take."""

    PRODUCTION = "production"
    CANDIDATE = "candidate"
    CHALLENGER = "challenger"
    STAGING = "staging"
    SHADOW = "shadow"


ALIASES: tuple[str, ...] = tuple(a.value for a in Alias)
"""The alias names, production first."""


def allowed_aliases() -> str:
    """The known aliases as a quoted, comma-separated list for messages."""
    return ", ".join(repr(a) for a in ALIASES)


def parse_alias(value: str) -> Alias:
    """Return the :class:`Alias` named ``value``.

    Raises
    ------
    InvalidInputError
        If ``value`` is not a known alias; the message lists the allowed ones.
    """
    try:
        return Alias(value)
    except ValueError:
        raise InvalidInputError(
            f"The alias {value!r} is not known; allowed: {allowed_aliases()}."
        ) from None


def check_status_change(
    model: str, version: int, status: VersionStatus, aliases: Sequence[str]
) -> None:
    """Check that a version the ``aliases`` point at may take ``status``.

    The mirror of :func:`check_alias_move`: a version an alias points at is never archived,
    so no alias ever points at an archived version.

    Raises
    ------
    ConflictError
        If ``status`` is ``archived`` and an alias points at the version.
    """
    if status is VersionStatus.ARCHIVED and aliases:
        raise ConflictError(
            f"Version {version} of '{model}' cannot be archived: the alias(es) "
            f"{', '.join(sorted(aliases))} point at it. Promote or roll back to another "
            f"version first."
        )


def check_alias_move(
    alias: str,
    version: ModelVersion,
    approval: Approval | None,
    *,
    require_approval: bool,
) -> dict[str, Any]:
    """Check that ``version`` may take ``alias``; return the evidence the move must record.

    The rules: the alias is known; an archived version takes no alias; production takes only
    a ``ready`` version (never a blocked or archived one) and, with ``require_approval``, only
    an approved one, whose approval is returned as ``{"approval": {...}}`` for the audit event.

    Parameters
    ----------
    alias : str
        The alias to move.
    version : ModelVersion
        The version it would point at, as read in the move's transaction.
    approval : Approval or None
        The version's approval record, read in the same transaction.
    require_approval : bool
        Whether production needs an approval (the project's ``registry.require_approval`` or
        the server's ``CONVEYOR_REQUIRE_APPROVAL``).

    Returns
    -------
    dict
        Evidence to merge into the audit event (empty unless an approval was required).

    Raises
    ------
    InvalidInputError
        If the alias is unknown, the version is archived, or not ready for production.
    BlockedError
        If production needs an approval and the version has none that is approved.
    """
    name = parse_alias(alias)
    model, number = version.model, version.version
    if version.status is VersionStatus.ARCHIVED:
        raise InvalidInputError(
            f"Version {number} of '{model}' is archived and cannot take the alias '{name}'; "
            f"restore it first (`conveyor models restore {number}`)."
        )
    if name is not Alias.PRODUCTION:
        return {}
    if version.status is not VersionStatus.READY:
        raise InvalidInputError(
            f"Version {number} of '{model}' is {version.status} and cannot become production; "
            f"only a '{VersionStatus.READY}' version can."
        )
    if not require_approval:
        return {}
    if approval is None or approval.status is not ApprovalStatus.APPROVED:
        state = (
            "no approval request"
            if approval is None
            else f"an approval that is {approval.status} (requested by {approval.requested_by})"
        )
        raise BlockedError(
            f"Version {number} of '{model}' cannot become production: the project requires "
            f"an approval (registry.require_approval) and the version has {state}. Request one "
            f"with `conveyor models request-approval {number}`; another person approves it "
            f"with `conveyor models approve {number} --reason ...`.",
            evidence={
                "model": model,
                "version": number,
                "approval": str(approval.status) if approval else None,
            },
        )
    return {
        "approval": {
            "approved_by": approval.decided_by,
            "approved_at": approval.decided_at.isoformat() if approval.decided_at else None,
            "reason": approval.decision_reason,
            "requested_by": approval.requested_by,
        }
    }
