"""Approval workflow: request a release, approve or reject it, then promote.

A project with ``registry.require_approval`` only lets an approved version become production
(:func:`conveyor.registry.service.promote` raises BlockedError otherwise), and the person who
approves or rejects must not be the one who asked. Every request and decision is an audit event
with who, when and why; the version's :class:`~conveyor.core.approval.Approval` holds the
current state. A rollback needs no approval: it returns production to a version that already
served, and speed matters more then.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from conveyor.config import Settings
>>> from conveyor.workspace import Workspace
>>> from conveyor.registry.service import register_version
>>> home = Path(tempfile.mkdtemp())
>>> alice = Workspace.open(Settings(home=home, actor="alice"))
>>> bob = Workspace.open(Settings(home=home, actor="bob"))
>>> v = register_version(alice, "churn", artifact="sha256:" + "0" * 64, run_id=None,
...     signature={}, lineage={}, metrics={})
>>> request_approval(alice, "churn", v.version, reason="beats production").status
<ApprovalStatus.PENDING: 'pending'>
>>> approve(bob, "churn", v.version, reason="reviewed the card", distinct_actor=True).decided_by
'bob'
"""

from __future__ import annotations

from conveyor.core.approval import Approval, ApprovalStatus
from conveyor.core.entities import VersionStatus
from conveyor.core.errors import InvalidInputError, NotFoundError
from conveyor.registry.service import get_version
from conveyor.workspace import Workspace


def request_approval(
    ws: Workspace, model: str, version: int, *, reason: str = "", actor: str | None = None
) -> Approval:
    """Ask for ``version`` to be approved for production; its approval becomes ``pending``.

    Parameters
    ----------
    ws : Workspace
        The workspace.
    model, version : str, int
        The version to release.
    reason : str, optional
        Why it should be released; recorded in the audit log.
    actor : str, optional
        Who asks; the workspace's actor by default.

    Returns
    -------
    Approval
        The pending approval.

    Raises
    ------
    NotFoundError
        If the version does not exist.
    InvalidInputError
        If the version is blocked or archived (it could never become production).
    ConflictError
        If its approval is already pending or approved.
    """
    mv = get_version(ws, model, version)
    if mv.status is not VersionStatus.READY:
        raise InvalidInputError(
            f"Version {version} of '{model}' is {mv.status}; only a ready version can be "
            f"requested for approval."
        )
    return ws.stores.models.request_approval(model, version, actor=actor or ws.actor, reason=reason)


def approve(
    ws: Workspace,
    model: str,
    version: int,
    *,
    reason: str,
    actor: str | None = None,
    distinct_actor: bool = False,
) -> Approval:
    """Approve the pending request of ``version``; see :func:`decide`."""
    return decide(
        ws,
        model,
        version,
        ApprovalStatus.APPROVED,
        reason=reason,
        actor=actor,
        distinct_actor=distinct_actor,
    )


def reject(
    ws: Workspace,
    model: str,
    version: int,
    *,
    reason: str,
    actor: str | None = None,
    distinct_actor: bool = False,
) -> Approval:
    """Reject the pending request of ``version``; see :func:`decide`."""
    return decide(
        ws,
        model,
        version,
        ApprovalStatus.REJECTED,
        reason=reason,
        actor=actor,
        distinct_actor=distinct_actor,
    )


def decide(
    ws: Workspace,
    model: str,
    version: int,
    status: ApprovalStatus,
    *,
    reason: str,
    actor: str | None = None,
    distinct_actor: bool = False,
) -> Approval:
    """Record a decision on the pending approval of ``version``.

    Parameters
    ----------
    status : ApprovalStatus
        ``approved`` or ``rejected``.
    reason : str
        Why; required, recorded in the audit log.
    actor : str, optional
        Who decides; the workspace's actor by default.
    distinct_actor : bool, default False
        Refuse a decision by the person who requested the approval (four-eyes rule; on when
        the project sets ``registry.require_approval``).

    Raises
    ------
    InvalidInputError
        If ``reason`` is empty or the decider is the requester under ``distinct_actor``.
    NotFoundError
        If the version does not exist or has no approval request.
    ConflictError
        If the approval is not pending.
    """
    get_version(ws, model, version)
    if not reason.strip():
        raise InvalidInputError(
            f"The 'reason' of an approval decision on version {version} of '{model}' must be "
            f"a non-empty string. Got {reason!r} instead."
        )
    who = actor or ws.actor
    current = ws.stores.models.find_approval(model, version)
    if current is None:
        raise NotFoundError(
            f"Version {version} of '{model}' has no approval request to decide; request one "
            f"first with `conveyor models request-approval {version}`."
        )
    if distinct_actor and current.requested_by == who:
        raise InvalidInputError(
            f"The approval of version {version} of '{model}' was requested by '{who}', who "
            f"cannot also decide it: the project requires a different person (four-eyes rule)."
        )
    return ws.stores.models.decide_approval(model, version, status, actor=who, reason=reason)


def find_approval(ws: Workspace, model: str, version: int) -> Approval | None:
    """The approval of ``version``, or None if it was never requested."""
    return ws.stores.models.find_approval(model, version)


def is_approved(ws: Workspace, model: str, version: int) -> bool:
    """True if ``version`` has an approved approval."""
    approval = ws.stores.models.find_approval(model, version)
    return approval is not None and approval.is_approved


def list_approvals(
    ws: Workspace, model: str, *, status: ApprovalStatus | None = None
) -> list[Approval]:
    """Approvals of ``model`` by version, only those in ``status`` if given."""
    return ws.stores.models.list_approvals(model, status=status)
