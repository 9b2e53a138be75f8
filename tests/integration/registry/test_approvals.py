"""Approval workflow: request, four-eyes decision, release; every step in the audit log."""

from __future__ import annotations

import pytest

from conveyor.core.approval import ApprovalStatus
from conveyor.core.entities import VersionStatus
from conveyor.core.errors import BlockedError, ConflictError, InvalidInputError, NotFoundError
from conveyor.pipeline.gate import gate_version
from conveyor.registry.approvals import approve, is_approved, reject, request_approval
from conveyor.registry.service import PRODUCTION, find_alias_version, promote, rollback


def test_promotion_needing_approval_is_blocked_until_another_person_approves(as_actor, register):
    alice, bob = as_actor("alice"), as_actor("bob")
    v = register()
    with pytest.raises(BlockedError, match="no approval request") as blocked:
        promote(alice, "toy", v.version, reason="ship", require_approval=True)
    assert "conveyor models request-approval 1" in str(blocked.value)
    assert find_alias_version(alice, "toy") is None
    request_approval(alice, "toy", v.version, reason="beats production")
    with pytest.raises(BlockedError, match="pending"):
        promote(alice, "toy", v.version, reason="ship", require_approval=True)
    with pytest.raises(InvalidInputError, match="requested by 'alice'"):
        approve(alice, "toy", v.version, reason="self", distinct_actor=True)
    approval = approve(bob, "toy", v.version, reason="read the card", distinct_actor=True)
    assert approval.decided_by == "bob" and is_approved(alice, "toy", v.version)
    pointer = promote(alice, "toy", v.version, reason="ship", require_approval=True)
    assert pointer.version == v.version
    events = alice.stores.models.list_audit_events("toy")
    assert [(e.action, e.actor) for e in events[1:]] == [
        ("request_approval", "alice"),
        ("approve", "bob"),
        ("promote", "alice"),
    ]
    assert events[-1].evidence["approval"]["approved_by"] == "bob"
    assert events[-1].evidence["approval"]["reason"] == "read the card"


def test_without_the_requirement_promotion_needs_no_approval(ws, register):
    v = register()
    assert promote(ws, "toy", v.version, reason="ship").version == v.version
    assert "approval" not in ws.stores.models.list_audit_events("toy")[-1].evidence


def test_a_rejected_version_stays_out_of_production(as_actor, register):
    alice, bob = as_actor("alice"), as_actor("bob")
    v = register()
    request_approval(alice, "toy", v.version)
    rejected = reject(bob, "toy", v.version, reason="no slice metrics", distinct_actor=True)
    assert rejected.status is ApprovalStatus.REJECTED
    with pytest.raises(BlockedError, match="rejected"):
        promote(alice, "toy", v.version, reason="ship", require_approval=True)
    with pytest.raises(ConflictError, match="not pending"):
        approve(bob, "toy", v.version, reason="changed my mind")


def test_decisions_need_a_reason_and_a_request(as_actor, register):
    alice, bob = as_actor("alice"), as_actor("bob")
    v = register()
    with pytest.raises(NotFoundError, match="request-approval 1"):
        approve(bob, "toy", v.version, reason="ok")
    request_approval(alice, "toy", v.version)
    with pytest.raises(InvalidInputError, match="non-empty"):
        approve(bob, "toy", v.version, reason="  ")
    assert approve(alice, "toy", v.version, reason="solo team").decided_by == "alice"


def test_only_ready_versions_can_be_requested(ws, register):
    v = register()
    ws.stores.models.set_version_status(
        "toy", v.version, VersionStatus.BLOCKED, actor="ops", reason="bad"
    )
    with pytest.raises(InvalidInputError, match="blocked"):
        request_approval(ws, "toy", v.version)
    with pytest.raises(NotFoundError, match="no version 5"):
        request_approval(ws, "toy", 5)


def test_rollback_needs_no_approval(as_actor, register):
    alice, bob = as_actor("alice"), as_actor("bob")
    for _ in range(2):
        v = register(content=b"m%d" % _)
        request_approval(alice, "toy", v.version)
        approve(bob, "toy", v.version, reason="ok", distinct_actor=True)
        promote(alice, "toy", v.version, reason="ship", require_approval=True)
    assert rollback(alice, "toy", reason="incident").version == 1


def test_gate_asks_for_approval_and_promotes_once_approved(ws, as_actor, strict_spec, trained):
    first = gate_version(ws, strict_spec, trained.version)
    assert first.passed and not first.promoted and first.awaiting_approval
    assert find_alias_version(ws, "toy", PRODUCTION) is None
    approval = ws.stores.models.find_approval("toy", trained.version)
    assert approval is not None and approval.status is ApprovalStatus.PENDING
    assert approval.requested_by == ws.actor and approval.request_reason == "passed the gate"
    again = gate_version(ws, strict_spec, trained.version)
    assert again.awaiting_approval, "a pending request is not requested twice"
    approve(as_actor("reviewer"), "toy", trained.version, reason="ok", distinct_actor=True)
    released = gate_version(ws, strict_spec, trained.version)
    assert released.promoted and not released.awaiting_approval
    assert find_alias_version(ws, "toy", PRODUCTION) == trained.version
    stored = ws.stores.models.get_model_version("toy", trained.version)
    assert stored.metrics["gate"]["promoted"] is True


def test_gate_without_the_requirement_promotes_at_once(ws, spec, trained):
    outcome = gate_version(ws, spec, trained.version)
    assert outcome.promoted and not outcome.awaiting_approval
    assert ws.stores.models.find_approval("toy", trained.version) is None
