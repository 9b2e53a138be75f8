"""Triggers, the cycle's lease and the post-release watch with automatic rollback."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from conveyor.core.clock import utcnow
from conveyor.core.entities import VersionStatus
from conveyor.core.errors import ConflictError
from conveyor.monitoring.service import monitor
from conveyor.pipeline.cycle import run_cycle
from conveyor.pipeline.triggers import evaluate_triggers
from conveyor.pipeline.watch import watch_release
from conveyor.registry.service import PRODUCTION, find_alias_version, promote
from conveyor.spec import parse_spec
from conveyor.training.service import train_model

from .conftest import SPEC, make_batch
from .pipeline.traffic import serve_and_label


def test_watch_rolls_back_a_release_worse_on_the_same_traffic(ws, spec):
    run_cycle(ws, spec, sources=[make_batch(0), make_batch(1)])
    good = find_alias_version(ws, "toy", PRODUCTION)
    rng = np.random.default_rng(1)
    bad = train_model(
        ws, spec, label_noise=lambda f: f.assign(late=rng.permutation(f["late"].to_numpy()))
    ).version.version
    promote(ws, "toy", bad, reason="forced for the test")
    assert watch_release(ws, spec).status == "waiting"
    serve_and_label(ws, spec, make_batch(7), bad)
    outcome = watch_release(ws, spec)
    assert outcome.rolled_back and outcome.previous == good
    assert find_alias_version(ws, "toy", PRODUCTION) == good
    assert ws.stores.models.get_model_version("toy", bad).status is VersionStatus.BLOCKED
    assert ws.stores.monitor.list_alerts("toy", kind="rollback")


def test_watch_keeps_a_healthy_release(ws, spec):
    run_cycle(ws, spec, sources=[make_batch(0), make_batch(1)])
    first = find_alias_version(ws, "toy", PRODUCTION)
    second = train_model(ws, spec).version.version
    promote(ws, "toy", second, reason="same data, same quality")
    serve_and_label(ws, spec, make_batch(8), second)
    assert watch_release(ws, spec).status == "healthy"
    assert find_alias_version(ws, "toy", PRODUCTION) == second != first


def test_schedule_and_decay_triggers(ws):
    spec = parse_spec(
        {
            **SPEC,
            "triggers": {"new_data_rows": None, "schedule_every_hours": 24, "metric_floor": 0.99},
        }
    )
    run_cycle(ws, spec, sources=[make_batch(0), make_batch(1)])
    now = utcnow()
    names = {t.name for t in evaluate_triggers(ws, spec, now=now)}
    assert "schedule" not in names
    later = {t.name for t in evaluate_triggers(ws, spec, now=now + timedelta(hours=25))}
    assert "schedule" in later
    run_cycle(ws, spec, sources=[make_batch(2)])
    serve_and_label(ws, spec, make_batch(9), find_alias_version(ws, "toy", PRODUCTION))
    monitor(ws, spec)
    fired = run_cycle(ws, spec, sources=[make_batch(3)]).run
    assert "decay" in fired.trigger and fired.evidence["decay"]["live_metric"] < 0.99


def test_only_one_cycle_per_project_holds_the_lease(ws, spec):
    assert ws.stores.pipeline.acquire_lease("ct:toy", "someone-else", 60)
    with pytest.raises(ConflictError, match="running"):
        run_cycle(ws, spec, manual=True)
    ws.stores.pipeline.release_lease("ct:toy", "someone-else")
    assert run_cycle(ws, spec, sources=[make_batch(0)], manual=True).run.status == "succeeded"
