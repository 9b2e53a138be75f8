"""A first model is served even when its test set is under the gate's row minimum, with a
recorded warning; a challenger against production on as few rows is still refused."""

from __future__ import annotations

import orjson
from tests.integration.conftest import SPEC, make_batch

from conveyor.data.service import ingest_batch
from conveyor.pipeline.gate import gate_version
from conveyor.registry.service import PRODUCTION, find_alias_version
from conveyor.spec import parse_spec
from conveyor.training.service import train_model
from conveyor.workspace import Workspace


def test_a_first_model_on_a_small_test_set_is_served_with_a_warning(ws: Workspace) -> None:
    spec = parse_spec({**SPEC, "gate": {"min_rows": 200, "n_bootstrap": 100, "infra_check": False}})
    for week in range(4):
        ingest_batch(ws, spec, make_batch(week, rows=250))
    first = train_model(ws, spec).version.version
    outcome = gate_version(ws, spec, first)
    assert outcome.decision.n < 200
    assert outcome.promoted and not outcome.problems, outcome.problems
    assert find_alias_version(ws, "toy", PRODUCTION) == first
    (warning,) = outcome.decision.warnings
    assert f"{outcome.decision.n} rows, fewer than the 200" in warning
    stored = ws.stores.models.get_model_version("toy", first).metrics["gate"]
    assert stored["decision"]["warnings"] == [warning]

    challenger = train_model(ws, spec, reason="retrain").version.version
    refused = gate_version(ws, spec, challenger)
    assert not refused.promoted and not refused.decision.warnings
    assert "fewer than the 200 the gate needs" in refused.decision.reasons[0]
    assert find_alias_version(ws, "toy", PRODUCTION) == first


def test_a_first_model_over_the_noise_limit_is_served_and_its_successor_is_held_to_it(
    ws: Workspace,
) -> None:
    spec = parse_spec(
        {
            **SPEC,
            "gate": {"min_rows": 100, "n_bootstrap": 100, "infra_check": False},
            "evaluation": {"noise": {"scale": 0.5, "max_mean_change": 1e-9}},
        }
    )
    for week in range(4):
        ingest_batch(ws, spec, make_batch(week, rows=400))
    first = train_model(ws, spec).version.version
    outcome = gate_version(ws, spec, first)
    assert outcome.promoted and not outcome.problems, outcome.problems
    record = ws.stores.models.get_model_version("toy", first).metrics["gate"]
    (doubt,) = record["checks"]["warnings"]
    assert "Behavioural test 'noise 0.5 x std' failed" in doubt and "not blocking" in doubt

    # With production there, the noise test blocks again, at twice production's own move.
    challenger = train_model(ws, spec, reason="retrain").version.version
    judged = gate_version(ws, spec, challenger, promote_if_passed=False)
    record = ws.stores.models.get_model_version("toy", challenger).metrics["gate"]
    evidence = orjson.loads(ws.stores.artifacts.get_bytes(record["evidence"]))
    noise = next(b for b in evidence["behaviour"] if b["kind"] == "robustness")
    assert noise["figures"]["allowed"] == 2 * noise["figures"]["reference_change"]
    assert noise["passed"] == (not any("noise" in p for p in judged.problems))
