"""The decay trigger is on by default, for a regression too: when the live RMSE of production
grows well past its test RMSE, a cycle runs, trains on the batches since the decay began and
serves a model of the new relation."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from conveyor.core.signature import encode_frame
from conveyor.monitoring.service import monitor
from conveyor.pipeline.cycle import run_cycle
from conveyor.pipeline.triggers import Signals, Window, decide
from conveyor.registry.service import PRODUCTION, find_alias_version
from conveyor.serving.feedback import FeedbackLog
from conveyor.serving.predlog import PredictionLogWriter, iso_now, prediction_entry
from conveyor.spec import TriggerSpec, parse_spec
from conveyor.training import service as training
from conveyor.workspace import Workspace

SPEC = {
    "project": "rent",
    "task": "regression",
    "label": "bikers",
    "timestamp": "ts",
    "training": {"window_batches": 6, "params": {"num_boost_round": 60}},
    "gate": {"min_rows": 100, "n_bootstrap": 100},
    "evaluation": {"noise": None},
    "monitoring": {"min_labels": 200},
}


def _week(week: int, *, flipped: bool, rows: int = 1000) -> pd.DataFrame:
    """Hourly-like rentals: temperature and hour drive the count; after the change, the
    effect of temperature reverses (the features keep their distribution)."""
    rng = np.random.default_rng(500 + week)
    temp = rng.uniform(0, 30, rows)
    hour = rng.uniform(0, 24, rows)
    effect = -8.0 if flipped else 8.0
    start = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(weeks=week)
    return pd.DataFrame(
        {
            "ts": start + pd.to_timedelta(np.sort(rng.uniform(0, 7 * 86400, rows)), unit="s"),
            "temp": temp,
            "hour": hour,
            "bikers": 200 + effect * (temp - 15) + 3 * hour + rng.normal(0, 10, rows),
        }
    )


def _week_end(week: int) -> datetime:
    return (pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(weeks=week + 1)).to_pydatetime()


def _serve(ws: Workspace, spec, batch: pd.DataFrame, version: int, tag: str) -> None:
    model = training.load_version(ws, spec.model_name, version)
    scores = model.predict_encoded(encode_frame(batch, model.signature))
    ids = [f"{tag}-{i}" for i in range(len(batch))]
    writer = PredictionLogWriter(ws.project_dir(spec.project, "predictions"))
    writer.write(
        [
            prediction_entry(
                request_id=rid,
                ts=iso_now(),
                model_version=version,
                inputs={"ts": r["ts"].isoformat(), "temp": r["temp"], "hour": r["hour"]},
                score=float(s),
                label=None,
                latency_ms=1.0,
            )
            for rid, r, s in zip(ids, batch.to_dict(orient="records"), scores, strict=True)
        ]
    )
    writer.close()
    FeedbackLog(ws.project_dir(spec.project, "feedback")).record(
        [
            {"request_id": rid, "label": float(y)}
            for rid, y in zip(ids, batch["bikers"], strict=True)
        ]
    )


def test_the_default_policy_fires_on_a_decayed_rmse_and_not_on_a_steady_one() -> None:
    policy = TriggerSpec(new_data_rows=None, drift_share=None)
    at = datetime(2024, 3, 1, tzinfo=UTC)

    def decided(live: float, metric: str, test: float) -> str:
        window = Window(end=at, live=live, labels=500, report="r")
        signals = Signals(
            now=at, has_model=True, metric=metric, training_score=test, windows=(window,)
        )
        return decide(policy, signals).name

    assert decided(151.0, "rmse", 86.0) == "decay"  # the live RMSE almost doubled
    assert decided(90.0, "rmse", 86.0) == "none"  # within 10% of the test RMSE
    assert decided(0.60, "roc_auc", 0.75) == "decay"
    assert decided(0.70, "roc_auc", 0.75) == "none"


@pytest.mark.slow
def test_a_decayed_regression_retrains_on_the_rows_since_the_decay_and_serves(ws):
    spec = parse_spec(SPEC)  # triggers: the defaults
    first = run_cycle(
        ws, spec, sources=[_week(w, flipped=False) for w in range(6)], now=_week_end(5)
    )
    assert first.promoted
    v1 = find_alias_version(ws, "rent", PRODUCTION)
    assert v1 is not None

    changed = [_week(6, flipped=True), _week(7, flipped=True)]
    _serve(ws, spec, changed[0], v1, "w6")
    report = monitor(ws, spec, write_html=False).report
    live = report.stats["live"]
    assert live["metric_name"] == "rmse" and live["labels"] >= 200

    cycle = run_cycle(ws, spec, sources=changed, now=_week_end(7))
    # 2,000 new rows are under the new-data threshold and the features did not move: decay.
    assert cycle.run.trigger == "decay"
    decay = cycle.run.evidence["decay"]
    assert decay["margin_kind"] == "relative" and decay["live_metric"] > decay["bar"]
    assert cycle.steps["window"]["rule"] == "since_change"
    assert cycle.steps["window"]["batches"] == [7, 8]
    assert cycle.promoted and find_alias_version(ws, "rent", PRODUCTION) != v1
