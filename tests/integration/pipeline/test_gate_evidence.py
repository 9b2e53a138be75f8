"""The gate records its evidence and report with the version, alerts on a rejection, and
serves the candidate through the real online app first (synthetic weekly batches)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tests.integration.conftest import SPEC, make_batch

from conveyor.config import Settings
from conveyor.core.errors import NotFoundError
from conveyor.core.signature import Signature
from conveyor.data.service import ingest_batch
from conveyor.pipeline.evaluation_report import read_evaluation_report
from conveyor.pipeline.gate import gate_version
from conveyor.pipeline.infra_check import check_serving
from conveyor.registry.service import PRODUCTION, find_alias_version, promote
from conveyor.serving.service import sample_requests
from conveyor.spec import parse_spec
from conveyor.training.service import load_version, train_model
from conveyor.workspace import Workspace

EVALUATION = {
    "slices": ["carrier"],
    "min_slice_rows": 50,
    "invariance": [{"columns": ["flight_id"], "epsilon": 0.0}],
    "directional": [{"feature": "hour", "direction": "increasing", "max_violations": 0.5}],
    "latency_rows": 20,
    "behaviour_rows": 300,
}


@pytest.fixture(scope="module")
def spec():
    return parse_spec({**SPEC, "evaluation": EVALUATION})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, spec) -> tuple[Path, int, int]:
    """A workspace with a sound version and one trained on shuffled labels, built once."""
    home = tmp_path_factory.mktemp("gate") / "ws"
    ws = Workspace.open(Settings(home=home))
    for week in range(4):
        ingest_batch(ws, spec, make_batch(week))
    good = train_model(ws, spec).version.version
    rng = np.random.default_rng(3)
    bad = train_model(
        ws, spec, label_noise=lambda f: f.assign(late=rng.permutation(f["late"].to_numpy()))
    ).version.version
    return home, good, bad


@pytest.fixture
def ws(trained, tmp_path) -> Workspace:
    """A private copy of the trained workspace, so each test starts from the same state."""
    shutil.copytree(trained[0], tmp_path / "ws")
    return Workspace.open(Settings(home=tmp_path / "ws"))


@pytest.fixture
def versions(trained) -> tuple[int, int]:
    return trained[1], trained[2]


def test_a_rejected_challenger_keeps_production_and_alerts_with_every_reason(ws, spec, versions):
    good, bad = versions
    promote(ws, "toy", good, reason="first release")
    outcome = gate_version(ws, spec, bad)
    assert not outcome.passed and not outcome.promoted
    assert find_alias_version(ws, "toy", PRODUCTION) == good
    (alert,) = ws.stores.monitor.list_alerts("toy", kind="gate_rejected")
    assert alert.message.startswith(f"Challenger v{bad} was rejected; production stays v{good}")
    assert "is below the allowed margin" in alert.message
    for problem in outcome.problems:
        assert problem in alert.message

    recorded = ws.stores.models.get_model_version("toy", bad).metrics["gate"]
    assert recorded["passed"] is False and recorded["production"] == good
    evidence = json.loads(ws.stores.artifacts.get_bytes(recorded["evidence"]))
    assert evidence["challenger"] == bad and evidence["production"] == good
    comparison = {row["metric"]: row for row in evidence["comparison"]}
    assert set(comparison) == {"roc_auc", "accuracy", "log_loss", "brier"}
    assert comparison["roc_auc"]["decides"] and comparison["roc_auc"]["ci_high"] < 0
    assert evidence["decision"]["mcnemar"]["only_b"] > evidence["decision"]["mcnemar"]["only_a"]
    assert {s["value"] for s in evidence["slices"]} == {"AA", "B6", "DL", "UA"}
    kinds = [b["kind"] for b in evidence["behaviour"]]
    assert kinds == ["invariance", "directional", "robustness"]
    assert evidence["behaviour"][0]["passed"]  # the id is not a feature
    assert evidence["infra"]["passed"] and evidence["infra"]["max_abs_diff"] <= 1e-9
    assert evidence["size_bytes"] > 1000 and evidence["latency"]["single_p99_ms"] > 0
    challenger = evidence["evaluation"]["challenger"]
    assert challenger["confusion"] and challenger["calibration"]["bins"]

    html = read_evaluation_report(ws, "toy", bad).decode()
    assert html == ws.stores.artifacts.get_bytes(recorded["report"]).decode()
    for heading in ("ROC curve", "Precision-recall curve", "Calibration", "Confusion matrix"):
        assert f">{heading}</h2>" in html
    assert "Challenger vs production" in html and "Slices" in html


def test_a_better_challenger_is_promoted_after_the_infra_check(ws, spec, versions):
    good, bad = versions
    promote(ws, "toy", bad, reason="a bad release to replace")
    outcome = gate_version(ws, spec, good)
    assert outcome.decision.passed and outcome.decision.ci_low > 0
    infra = outcome.checks["infra"]
    assert infra["passed"] and infra["max_abs_diff"] <= 1e-9 and infra["p99_ms"] > 0
    sanity = [p for p in outcome.problems if "baseline" in p]
    assert outcome.promoted == (not outcome.problems)
    assert outcome.problems == tuple(sanity)  # anything else blocking would be a real fault
    assert not ws.stores.monitor.list_alerts("toy", kind="gate_rejected") or sanity


def test_infra_check_replays_the_stored_samples_through_the_online_app(ws, spec, versions):
    good, _ = versions
    model = load_version(ws, "toy", good)
    records = sample_requests(ws, spec, good)
    assert records
    check = check_serving(spec, good, model, records, budget_ms=10_000.0)
    assert check.passed and check.records == len(records) and check.requests >= 101
    assert check.max_abs_diff <= 1e-9 and 0 < check.p50_ms <= check.p99_ms
    slow = check_serving(spec, good, model, records, budget_ms=1e-6)
    assert not slow.passed and "over the 1e-06 ms budget" in slow.problems[0]


class _Broken:
    """A model that loads but answers NaN: the server's warm-up must refuse it."""

    def __init__(self, signature: Signature) -> None:
        self.signature, self.kind = signature, "broken"

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        return np.full(len(matrix), np.nan)


def test_infra_check_fails_a_candidate_the_server_cannot_load(ws, spec, versions, monkeypatch):
    good, _ = versions
    model = load_version(ws, "toy", good)
    monkeypatch.setattr("conveyor.pipeline.infra_check.READY_TIMEOUT_S", 1.0)
    check = check_serving(spec, good, _Broken(model.signature), sample_requests(ws, spec, good))
    assert not check.passed
    assert check.problems == ("The candidate did not become ready within 1 s.",)


def test_infra_check_off_floors_on_and_a_missing_report_is_named(ws, spec, versions):
    good, bad = versions
    gate = {**SPEC["gate"], "infra_check": False, "floors": {"recall": 0.99}}
    off = parse_spec({**SPEC, "gate": gate})
    outcome = gate_version(ws, off, good, promote_if_passed=False)
    assert outcome.checks["infra"] is None and not outcome.passed
    assert any(p.startswith("The challenger's test recall") for p in outcome.problems)
    with pytest.raises(NotFoundError, match=f"version {bad} has no evaluation report"):
        read_evaluation_report(ws, "toy", bad)
