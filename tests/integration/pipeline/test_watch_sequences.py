"""The post-release watch over sequences of releases and rollbacks, on a real SQLite workspace
with real models: it judges releases only, rolls a bad one back to the version it was compared
with, and a restarted watch or agent never rolls back twice."""

from __future__ import annotations

import numpy as np
import pytest
from tests.integration.conftest import make_batch

from conveyor.config import Settings
from conveyor.core.entities import VersionStatus
from conveyor.pipeline.agent import Agent, AgentConfig
from conveyor.pipeline.cycle import run_cycle
from conveyor.pipeline.watch import WatchStatus, watch_release
from conveyor.registry.service import PRODUCTION, find_alias_version, promote, rollback
from conveyor.spec import ProjectSpec
from conveyor.training.service import train_model
from conveyor.workspace import Workspace

from .traffic import serve_and_label


def _good(ws: Workspace, spec: ProjectSpec) -> int:
    return train_model(ws, spec).version.version


def _bad(ws: Workspace, spec: ProjectSpec, seed: int) -> int:
    """A version trained on shuffled labels: no better than a coin on any traffic."""
    rng = np.random.default_rng(seed)
    return train_model(
        ws, spec, label_noise=lambda f: f.assign(late=rng.permutation(f["late"].to_numpy()))
    ).version.version


def _moves(ws: Workspace) -> list[tuple[str, int | None, int | None]]:
    return [
        (e.action, e.from_version, e.to_version)
        for e in ws.stores.models.list_audit_events("toy", alias=PRODUCTION)
    ]


def _released(ws: Workspace, spec: ProjectSpec) -> tuple[int, int]:
    """v1 from a cycle, then a good v2 released over it: the older, unrelated version is v1."""
    run_cycle(ws, spec, sources=[make_batch(0), make_batch(1)])
    first = find_alias_version(ws, "toy", PRODUCTION)
    assert first is not None
    second = _good(ws, spec)
    promote(ws, "toy", second, reason="a good release")
    serve_and_label(ws, spec, make_batch(6), second)
    assert watch_release(ws, spec).status == WatchStatus.HEALTHY
    return first, second


def _serve_where_it_looks_worse(ws: Workspace, spec: ProjectSpec, version: int, week: int) -> None:
    """Traffic on which a good version scores below a coin (its labels are the opposite of what
    it predicts): judged against a blocked coin-flip release, it would look worse."""
    batch = make_batch(week)
    serve_and_label(ws, spec, batch, version, labels=(1 - batch["late"]).tolist())


def test_two_bad_releases_in_a_row_each_go_back_to_the_version_they_replaced(ws, spec):
    first, good = _released(ws, spec)
    bad1 = _bad(ws, spec, seed=1)
    promote(ws, "toy", bad1, reason="forced bad release")
    serve_and_label(ws, spec, make_batch(7), bad1)
    outcome = watch_release(ws, spec)
    assert outcome.status == WatchStatus.ROLLED_BACK
    assert (outcome.version, outcome.previous, outcome.moved_to) == (bad1, good, good)
    assert find_alias_version(ws, "toy", PRODUCTION) == good

    # the restored version serves traffic on which it scores worse than the blocked release:
    # it is not a release, so the watch does not judge it (today: rolled back again, to v1)
    _serve_where_it_looks_worse(ws, spec, good, week=8)
    assert watch_release(ws, spec).status == WatchStatus.NO_RELEASE
    assert find_alias_version(ws, "toy", PRODUCTION) == good

    bad2 = _bad(ws, spec, seed=2)
    promote(ws, "toy", bad2, reason="a second bad release")
    serve_and_label(ws, spec, make_batch(9), bad2)
    outcome = watch_release(ws, spec)
    assert outcome.status == WatchStatus.ROLLED_BACK and outcome.moved_to == good
    assert find_alias_version(ws, "toy", PRODUCTION) == good
    assert _moves(ws)[1:] == [
        ("promote", first, good),
        ("promote", good, bad1),
        ("rollback", bad1, good),
        ("promote", good, bad2),
        ("rollback", bad2, good),
    ]
    for version in (bad1, bad2):
        assert ws.stores.models.get_model_version("toy", version).status is VersionStatus.BLOCKED
    alerts = ws.stores.monitor.list_alerts("toy", kind="rollback")
    assert [a.message.split(":")[0] for a in alerts] == [
        f"Rolled back v{bad1} to v{good}",
        f"Rolled back v{bad2} to v{good}",
    ]
    rollbacks = [e for e in ws.stores.models.list_audit_events("toy") if e.action == "rollback"]
    assert all(f"vs v{good} " in e.reason for e in rollbacks)


def test_a_release_after_a_rollback_is_watched_and_the_rollback_is_not(ws, spec):
    _, good = _released(ws, spec)
    bad = _bad(ws, spec, seed=3)
    promote(ws, "toy", bad, reason="forced bad release")
    serve_and_label(ws, spec, make_batch(7), bad)
    assert watch_release(ws, spec).rolled_back
    _serve_where_it_looks_worse(ws, spec, good, week=8)
    assert watch_release(ws, spec).status == WatchStatus.NO_RELEASE

    fresh = _good(ws, spec)
    promote(ws, "toy", fresh, reason="a new release after the rollback")
    outcome = watch_release(ws, spec)
    assert (outcome.status, outcome.version, outcome.previous) == (
        WatchStatus.WAITING,
        fresh,
        good,
    )
    serve_and_label(ws, spec, make_batch(10), fresh)
    outcome = watch_release(ws, spec)
    assert (outcome.status, outcome.version, outcome.previous) == (
        WatchStatus.HEALTHY,
        fresh,
        good,
    )
    assert outcome.evidence is not None
    assert outcome.evidence["release"]["from_version"] == good
    assert find_alias_version(ws, "toy", PRODUCTION) == fresh


def test_an_operators_rollback_is_not_judged_either(ws, spec):
    _, good = _released(ws, spec)
    third = _good(ws, spec)
    promote(ws, "toy", third, reason="another release")
    rollback(ws, "toy", reason="operator: rolled back by hand")
    _serve_where_it_looks_worse(ws, spec, good, week=8)
    assert watch_release(ws, spec).status == WatchStatus.NO_RELEASE
    assert find_alias_version(ws, "toy", PRODUCTION) == good


def test_a_restarted_agent_does_not_roll_back_a_second_time(ws, spec, tmp_path):
    _, good = _released(ws, spec)
    bad = _bad(ws, spec, seed=4)
    promote(ws, "toy", bad, reason="forced bad release")
    serve_and_label(ws, spec, make_batch(7), bad)
    config = AgentConfig(monitor_every_s=None)
    first = Agent(ws, spec, config).tick()
    assert first.watch == "rolled_back"
    assert first.to_dict()["rolled_back"] == {"from": bad, "to": good}
    _serve_where_it_looks_worse(ws, spec, good, week=8)

    restarted = Agent(Workspace.open(Settings(home=tmp_path / "ws")), spec, config)
    for _ in range(2):
        report = restarted.tick()
        assert report.watch == "no_release" and not report.errors
    assert find_alias_version(ws, "toy", PRODUCTION) == good
    assert [m for m in _moves(ws) if m[0] == "rollback"] == [("rollback", bad, good)]
    assert len(ws.stores.monitor.list_alerts("toy", kind="rollback")) == 1


def test_a_bad_release_whose_predecessor_cannot_return_stays_and_alerts_once(ws, spec):
    _, good = _released(ws, spec)
    bad = _bad(ws, spec, seed=5)
    promote(ws, "toy", bad, reason="forced bad release")
    ws.stores.models.set_version_status(
        "toy", good, VersionStatus.BLOCKED, actor="test", reason="found broken after release"
    )
    serve_and_label(ws, spec, make_batch(7), bad)
    for _ in range(2):
        outcome = watch_release(ws, spec)
        assert outcome.status == WatchStatus.CANNOT_ROLL_BACK and outcome.previous == good
    assert find_alias_version(ws, "toy", PRODUCTION) == bad
    assert [m for m in _moves(ws) if m[0] == "rollback"] == []
    (alert,) = ws.stores.monitor.list_alerts("toy", kind="rollback_refused")
    assert f"v{good} is blocked" in alert.message


@pytest.mark.parametrize("lease_s", [0.0, -1.0, 0.5, float("nan"), float("inf")])
def test_the_agent_refuses_a_lease_time_out_of_range(lease_s):
    with pytest.raises(ValueError, match=r"--lease-s.*\[1\.0, inf\)"):
        AgentConfig(lease_ttl_s=lease_s)


def test_a_second_manual_rollback_goes_further_back_never_to_the_version_rolled_back(ws, spec):
    first, good = _released(ws, spec)
    third = _good(ws, spec)
    promote(ws, "toy", third, reason="a third release")
    assert rollback(ws, "toy", reason="operator: back once").version == good
    assert rollback(ws, "toy", reason="operator: back twice").version == first
    assert _moves(ws)[-2:] == [("rollback", third, good), ("rollback", good, first)]
