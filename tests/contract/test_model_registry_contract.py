"""ModelStore contract, registry depth: approvals, deleting versions, referenced artifacts; and
the ArtifactStore listing that garbage collection relies on."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from conveyor.core.approval import ApprovalStatus
from conveyor.core.entities import BatchStatus, DatasetVersion, DatasetVersionId
from conveyor.core.errors import ConflictError, InvalidInputError, NotFoundError
from conveyor.store.fs import FsArtifactStore
from conveyor.store.sql.database import Database
from conveyor.store.sql.dataset_store import SqlDatasetStore
from conveyor.store.sql.model_store import SqlModelStore
from conveyor.store.sql.run_store import SqlRunStore


def _digest(n: int) -> str:
    return f"sha256:{n:064x}"


def _register(store: SqlModelStore, model: str = "churn", **overrides: Any) -> Any:
    kwargs: dict[str, Any] = {
        "artifact": _digest(1),
        "run_id": None,
        "signature": {},
        "lineage": {},
        "metrics": {},
        "actor": "ci",
    }
    kwargs.update(overrides)
    return store.create_model_version(model, **kwargs)


def test_request_opens_a_pending_approval_and_audits_it(models: SqlModelStore) -> None:
    v = _register(models)
    assert models.find_approval("churn", v.version) is None
    approval = models.request_approval("churn", v.version, actor="alice", reason="beats prod")
    assert approval.status is ApprovalStatus.PENDING
    assert (approval.requested_by, approval.request_reason) == ("alice", "beats prod")
    assert approval.decided_by is None and approval.decided_at is None
    assert approval.requested_at.tzinfo is not None
    assert models.find_approval("churn", v.version) == approval
    event = models.list_audit_events("churn")[-1]
    assert (event.action, event.actor, event.reason, event.to_version) == (
        "request_approval",
        "alice",
        "beats prod",
        v.version,
    )


def test_request_for_an_unknown_version_changes_nothing(models: SqlModelStore) -> None:
    with pytest.raises(NotFoundError, match="no version 7"):
        models.request_approval("churn", 7, actor="alice", reason="r")
    assert models.list_approvals("churn") == []
    assert models.list_audit_events("churn") == []


def test_decision_records_who_when_why_and_cannot_be_repeated(models: SqlModelStore) -> None:
    v = _register(models)
    models.request_approval("churn", v.version, actor="alice", reason="r")
    approved = models.decide_approval(
        "churn", v.version, ApprovalStatus.APPROVED, actor="bob", reason="read the card"
    )
    assert approved.status is ApprovalStatus.APPROVED and approved.is_approved
    assert (approved.decided_by, approved.decision_reason) == ("bob", "read the card")
    assert approved.decided_at is not None and approved.decided_at >= approved.requested_at
    assert approved.requested_by == "alice"
    event = models.list_audit_events("churn")[-1]
    assert (event.action, event.actor, event.evidence["requested_by"]) == (
        "approve",
        "bob",
        "alice",
    )
    with pytest.raises(ConflictError, match="approved"):
        models.decide_approval("churn", v.version, ApprovalStatus.REJECTED, actor="eve", reason="x")
    with pytest.raises(ConflictError, match="approved"):
        models.request_approval("churn", v.version, actor="alice", reason="again")
    assert models.find_approval("churn", v.version) == approved


def test_decisions_need_a_request_and_a_final_status(models: SqlModelStore) -> None:
    v = _register(models)
    with pytest.raises(NotFoundError, match="no approval request"):
        models.decide_approval("churn", v.version, ApprovalStatus.APPROVED, actor="b", reason="r")
    models.request_approval("churn", v.version, actor="a", reason="r")
    with pytest.raises(InvalidInputError, match="'approved' or 'rejected'"):
        models.decide_approval("churn", v.version, ApprovalStatus.PENDING, actor="b", reason="r")
    assert models.find_approval("churn", v.version).status is ApprovalStatus.PENDING  # type: ignore[union-attr]


def test_a_rejected_version_can_be_requested_again(models: SqlModelStore) -> None:
    v = _register(models)
    models.request_approval("churn", v.version, actor="alice", reason="first")
    with pytest.raises(ConflictError, match="pending"):
        models.request_approval("churn", v.version, actor="alice", reason="twice")
    rejected = models.decide_approval(
        "churn", v.version, ApprovalStatus.REJECTED, actor="bob", reason="too slow"
    )
    assert rejected.status is ApprovalStatus.REJECTED
    reopened = models.request_approval("churn", v.version, actor="carol", reason="faster now")
    assert reopened.status is ApprovalStatus.PENDING
    assert (reopened.requested_by, reopened.decided_by, reopened.decision_reason) == (
        "carol",
        None,
        None,
    )
    actions = [e.action for e in models.list_audit_events("churn")]
    assert actions == ["register", "request_approval", "reject", "request_approval"]


def test_list_approvals_orders_by_version_and_filters_by_status(models: SqlModelStore) -> None:
    for _ in range(3):
        _register(models)
    _register(models, "fraud")
    for version in (3, 1, 2):
        models.request_approval("churn", version, actor="a", reason="r")
    models.request_approval("fraud", 1, actor="a", reason="r")
    models.decide_approval("churn", 2, ApprovalStatus.APPROVED, actor="b", reason="ok")
    assert [a.version for a in models.list_approvals("churn")] == [1, 2, 3]
    pending = models.list_approvals("churn", status=ApprovalStatus.PENDING)
    assert [a.version for a in pending] == [1, 3]
    approved = models.list_approvals("churn", status=ApprovalStatus.APPROVED)
    assert [(a.version, a.decided_by) for a in approved] == [(2, "b")]


def test_delete_removes_the_version_and_keeps_a_tombstone(models: SqlModelStore) -> None:
    _register(models)
    v2 = _register(models, artifact=_digest(2), lineage={"datasets": ["d1"]}, tags={"t": "x"})
    models.request_approval("churn", 2, actor="a", reason="r")
    removed = models.delete_model_version("churn", 2, actor="ops", reason="superseded")
    assert removed == v2
    with pytest.raises(NotFoundError):
        models.get_model_version("churn", 2)
    assert models.find_approval("churn", 2) is None
    assert [v.version for v in models.list_model_versions("churn")] == [1]
    tombstone = models.list_audit_events("churn")[-1]
    assert (tombstone.action, tombstone.actor, tombstone.to_version) == ("delete", "ops", 2)
    assert tombstone.evidence["artifact"] == _digest(2)
    assert tombstone.evidence["lineage"] == {"datasets": ["d1"]}
    assert _register(models).version == 3, "version numbers are never reused"


def test_delete_refuses_a_version_an_alias_points_at(models: SqlModelStore) -> None:
    v = _register(models)
    models.move_alias(
        "churn", "challenger", v.version, expected_revision=None, action="a", actor="c", reason="r"
    )
    with pytest.raises(ConflictError, match="challenger"):
        models.delete_model_version("churn", v.version, actor="ops", reason="r")
    assert models.get_model_version("churn", v.version) == v
    assert [e.action for e in models.list_audit_events("churn")] == ["register", "a"]
    with pytest.raises(NotFoundError):
        models.delete_model_version("churn", 9, actor="ops", reason="r")


def test_referenced_digests_span_versions_runs_and_datasets(
    models: SqlModelStore, runs: SqlRunStore, datasets: SqlDatasetStore
) -> None:
    _register(
        models,
        artifact=_digest(1),
        lineage={"reference_profile": _digest(2), "nested": [{"x": _digest(3)}], "n": "sha256:x"},
    )
    _register(models, artifact=_digest(4))
    run = runs.create_run("churn", "training", "r1")
    runs.log_artifact(run.id, "model.json", _digest(5))
    datasets.add_dataset_version(
        DatasetVersion(
            id=DatasetVersionId("d1"),
            project="churn",
            seq=1,
            status=BatchStatus.ACCEPTED,
            digest=_digest(6),
            row_count=10,
            schema_version=1,
            source="b.csv",
            created_at=datetime(2024, 1, 1, tzinfo=UTC),
        )
    )
    assert models.list_referenced_digests() == {_digest(n) for n in range(1, 7)}
    models.delete_model_version("churn", 2, actor="ops", reason="r")
    assert models.list_referenced_digests() == {_digest(n) for n in (1, 2, 3, 5, 6)}


def _decide(index: int, url: str) -> str:
    db = Database(url)
    try:
        status = ApprovalStatus.APPROVED if index % 2 == 0 else ApprovalStatus.REJECTED
        approval = SqlModelStore(db).decide_approval(
            "churn", 1, status, actor=f"p{index}", reason="race"
        )
        return str(approval.status)
    except ConflictError:
        return "conflict"
    finally:
        db.dispose()


def test_concurrent_decisions_have_one_winner(
    database: Database, models: SqlModelStore, in_processes: Callable[..., list[Any]]
) -> None:
    _register(models)
    models.request_approval("churn", 1, actor="alice", reason="r")
    outcomes = in_processes(_decide, 4, database.url)
    winners = [i for i, outcome in enumerate(outcomes) if outcome != "conflict"]
    assert len(winners) == 1, outcomes
    stored = models.find_approval("churn", 1)
    assert stored is not None and stored.decided_by == f"p{winners[0]}"
    decisions = [e for e in models.list_audit_events("churn") if e.action in ("approve", "reject")]
    assert [e.actor for e in decisions] == [f"p{winners[0]}"]


def test_list_blobs_reports_every_blob_with_its_size(artifacts: FsArtifactStore) -> None:
    assert list(artifacts.list_blobs()) == []
    small = artifacts.put_bytes(b"abc")
    large = artifacts.put_bytes(b"x" * 5000)
    artifacts.put_bytes(b"abc")
    listed = {digest: (size, at) for digest, size, at in artifacts.list_blobs()}
    assert {d: s for d, (s, _) in listed.items()} == {small: 3, large: 5000}
    for _, at in listed.values():
        assert at is None or at.tzinfo is not None
    artifacts.delete(small)
    assert [d for d, _, _ in artifacts.list_blobs()] == [large]
