"""ModelStore contract: gapless versions, compare-and-swap aliases and the audit log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conveyor.core.approval import ApprovalStatus
from conveyor.core.entities import RunId, VersionStatus
from conveyor.core.errors import BlockedError, ConflictError, InvalidInputError, NotFoundError
from conveyor.store.sql.database import Database
from conveyor.store.sql.model_store import SqlModelStore

ARTIFACT = "sha256:" + "a" * 64


def _register(store: SqlModelStore, model: str = "churn", **overrides: Any) -> Any:
    kwargs: dict[str, Any] = {
        "artifact": ARTIFACT,
        "run_id": None,
        "signature": {"columns": [{"name": "x", "kind": "numeric"}]},
        "lineage": {"datasets": ["d1"]},
        "metrics": {"auc": 0.81},
        "actor": "ci",
    }
    kwargs.update(overrides)
    return store.create_model_version(model, **kwargs)


def _promote(
    store: SqlModelStore,
    version: int,
    expected: int | None,
    *,
    alias: str = "production",
    action: str = "promote",
    reason: str = "r",
) -> Any:
    return store.move_alias(
        "churn",
        alias,
        version,
        expected_revision=expected,
        action=action,
        actor="ci",
        reason=reason,
    )


def test_versions_count_from_one_per_model(models: SqlModelStore) -> None:
    assert [_register(models).version for _ in range(3)] == [1, 2, 3]
    assert _register(models, "fraud").version == 1
    assert [v.version for v in models.list_model_versions("churn")] == [1, 2, 3]
    assert models.list_model_versions("unknown") == []


def test_registered_version_round_trips(models: SqlModelStore) -> None:
    created = _register(models, run_id=RunId("r1"), tags={"team": "risk"})
    stored = models.get_model_version("churn", created.version)
    assert stored == created
    assert stored.status is VersionStatus.READY
    assert stored.run_id == "r1" and stored.tags == {"team": "risk"}
    assert stored.signature == {"columns": [{"name": "x", "kind": "numeric"}]}
    assert stored.created_at.utcoffset() is not None


def test_registration_is_audited(models: SqlModelStore) -> None:
    _register(models, actor="alice")
    [event] = models.list_audit_events("churn")
    assert (event.action, event.actor, event.to_version, event.alias) == (
        "register",
        "alice",
        1,
        None,
    )


def test_missing_version_is_not_found(models: SqlModelStore) -> None:
    _register(models)
    with pytest.raises(NotFoundError, match="'churn' has no version 7"):
        models.get_model_version("churn", 7)
    with pytest.raises(NotFoundError):
        models.set_version_status("churn", 7, VersionStatus.BLOCKED, actor="a", reason="r")
    with pytest.raises(NotFoundError):
        models.update_version_metrics("churn", 7, {"x": 1})


def test_status_change_is_stored_and_audited(models: SqlModelStore) -> None:
    _register(models)
    changed = models.set_version_status(
        "churn", 1, VersionStatus.BLOCKED, actor="bob", reason="bad release"
    )
    assert changed.status is VersionStatus.BLOCKED
    assert models.get_model_version("churn", 1).status is VersionStatus.BLOCKED
    event = models.list_audit_events("churn")[-1]
    assert (event.action, event.actor, event.reason) == ("set_status", "bob", "bad release")
    assert event.evidence == {"from": "ready", "to": "blocked"}


def test_metrics_are_merged(models: SqlModelStore) -> None:
    _register(models, metrics={"auc": 0.8, "f1": 0.5})
    updated = models.update_version_metrics("churn", 1, {"f1": 0.6, "gate": {"passed": True}})
    assert updated.metrics == {"auc": 0.8, "f1": 0.6, "gate": {"passed": True}}
    assert models.get_model_version("churn", 1).metrics == updated.metrics


def test_alias_moves_bump_the_revision_and_are_audited(models: SqlModelStore) -> None:
    _register(models)
    _register(models)
    assert models.find_alias("churn", "production") is None
    first = models.move_alias(
        "churn",
        "production",
        1,
        expected_revision=None,
        action="promote",
        actor="ci",
        reason="first",
        evidence={"auc": 0.8},
    )
    assert (first.version, first.revision) == (1, 1)
    second = models.move_alias(
        "churn",
        "production",
        2,
        expected_revision=1,
        action="promote",
        actor="ci",
        reason="better",
    )
    assert (second.version, second.revision) == (2, 2)
    assert second.updated_at >= first.updated_at
    assert models.find_alias("churn", "production") == second
    events = models.list_audit_events("churn", alias="production")
    assert [(e.from_version, e.to_version, e.reason) for e in events] == [
        (None, 1, "first"),
        (1, 2, "better"),
    ]
    assert events[0].evidence == {"auc": 0.8}
    assert len(models.list_audit_events("churn")) == 4  # two registrations + two moves


def test_stale_alias_move_conflicts_and_changes_nothing(models: SqlModelStore) -> None:
    for _ in range(3):
        _register(models)
    _promote(models, 1, None)
    _promote(models, 2, 1)
    before = models.list_audit_events("churn")
    with pytest.raises(ConflictError, match="revision 2 but the move expected revision 1"):
        _promote(models, 3, 1, reason="stale")
    with pytest.raises(ConflictError):
        _promote(models, 3, None, reason="stale")
    with pytest.raises(ConflictError):
        _promote(models, 3, 4, alias="shadow", reason="stale")
    pointer = models.find_alias("churn", "production")
    assert pointer is not None and (pointer.version, pointer.revision) == (2, 2)
    assert models.find_alias("churn", "shadow") is None
    assert models.list_audit_events("churn") == before


def test_alias_to_missing_version_is_not_found(models: SqlModelStore) -> None:
    _register(models)
    with pytest.raises(NotFoundError, match="no version 9"):
        _promote(models, 9, None)
    assert models.find_alias("churn", "production") is None


def test_aliases_listed_in_order_first_set(models: SqlModelStore) -> None:
    _register(models)
    for alias in ("production", "challenger", "shadow"):
        _promote(models, 1, None, alias=alias, action="set")
    _promote(models, 1, 1, action="set")
    assert [a.alias for a in models.list_aliases("churn")] == [
        "production",
        "challenger",
        "shadow",
    ]
    assert models.list_aliases("fraud") == []


def _register_many(index: int, url: str, count: int) -> list[int]:
    db = Database(url)
    store = SqlModelStore(db)
    versions = [_register(store, actor=f"p{index}").version for _ in range(count)]
    db.dispose()
    return versions


def test_concurrent_registrations_get_gapless_versions(
    database: Database, in_processes: Callable[..., list[Any]]
) -> None:
    outcomes = in_processes(_register_many, 4, database.url, 10)
    for outcome in outcomes:
        assert isinstance(outcome, list), outcome
        assert outcome == sorted(outcome)
    allocated = sorted(v for outcome in outcomes for v in outcome)
    assert allocated == list(range(1, 41))
    stored = SqlModelStore(database).list_model_versions("churn")
    assert [v.version for v in stored] == list(range(1, 41))


def _move(index: int, url: str, expected: int | None) -> int | str:
    db = Database(url)
    try:
        pointer = SqlModelStore(db).move_alias(
            "churn",
            "production",
            index + 1,
            expected_revision=expected,
            action="promote",
            actor=f"p{index}",
            reason="race",
        )
        return pointer.revision
    except ConflictError:
        return "conflict"
    finally:
        db.dispose()


@pytest.mark.parametrize("existing", [False, True])
def test_concurrent_alias_moves_have_one_winner(
    database: Database,
    models: SqlModelStore,
    in_processes: Callable[..., list[Any]],
    existing: bool,
) -> None:
    for _ in range(4):
        _register(models)
    expected = None
    if existing:
        _promote(models, 1, None, reason="start")
        expected = 1
    outcomes = in_processes(_move, 4, database.url, expected)
    winners = [i for i, outcome in enumerate(outcomes) if outcome != "conflict"]
    assert len(winners) == 1, outcomes
    assert outcomes.count("conflict") == 3
    pointer = models.find_alias("churn", "production")
    assert pointer is not None
    assert pointer.version == winners[0] + 1
    assert pointer.revision == (2 if existing else 1)
    moves = models.list_audit_events("churn", alias="production")
    assert len(moves) == (2 if existing else 1)
    assert moves[-1].actor == f"p{winners[0]}"


def test_alias_moves_obey_the_registry_rules_and_change_nothing_when_refused(
    models: SqlModelStore,
) -> None:
    for _ in range(4):
        _register(models)
    models.set_version_status("churn", 2, VersionStatus.BLOCKED, actor="ops", reason="bad")
    models.set_version_status("churn", 3, VersionStatus.ARCHIVED, actor="ops", reason="old")
    before = models.list_audit_events("churn")
    with pytest.raises(InvalidInputError, match="'prodution' is not known"):
        _promote(models, 1, None, alias="prodution")
    with pytest.raises(InvalidInputError, match="blocked and cannot become production"):
        _promote(models, 2, None)
    with pytest.raises(InvalidInputError, match="archived"):
        _promote(models, 3, None, alias="challenger")
    with pytest.raises(BlockedError, match="requires an approval"):
        models.move_alias(
            "churn", "production", 4, expected_revision=None, action="promote", actor="ci",
            reason="r", require_approval=True,
        )  # fmt: skip
    assert models.list_aliases("churn") == []
    assert models.list_audit_events("churn") == before

    models.request_approval("churn", 4, actor="alice", reason="ready")
    models.decide_approval("churn", 4, ApprovalStatus.APPROVED, actor="bob", reason="ok")
    moved = models.move_alias(
        "churn", "production", 4, expected_revision=None, action="promote", actor="ci",
        reason="r", evidence={"why": "approved"}, require_approval=True,
    )  # fmt: skip
    assert moved.version == 4
    event = models.list_audit_events("churn", alias="production")[-1]
    assert event.evidence["why"] == "approved"
    assert event.evidence["approval"]["approved_by"] == "bob"
    assert _promote(models, 2, None, alias="candidate").version == 2, "blocked may be a canary"


def test_a_version_an_alias_points_at_is_never_archived(models: SqlModelStore) -> None:
    _register(models)
    _promote(models, 1, None, alias="shadow")
    with pytest.raises(ConflictError, match="cannot be archived.*shadow"):
        models.set_version_status("churn", 1, VersionStatus.ARCHIVED, actor="ops", reason="r")
    assert models.get_model_version("churn", 1).status is VersionStatus.READY
    assert (
        models.set_version_status("churn", 1, VersionStatus.BLOCKED, actor="ops", reason="r").status
        is VersionStatus.BLOCKED
    )
