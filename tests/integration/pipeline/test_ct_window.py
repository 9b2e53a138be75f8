"""The cycle's training window on a real workspace: sized in rows for the gate, and after a
detected drift shortened to the batches since it, so the gate compares on post-drift rows."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest
from tests.integration.conftest import SPEC, make_batch

from conveyor.data.service import ingest_batch, training_window
from conveyor.monitoring.service import monitor
from conveyor.pipeline.cycle import run_cycle
from conveyor.registry.service import PRODUCTION, find_alias_version, get_version
from conveyor.spec import parse_spec
from conveyor.training import service as training

from .traffic import serve_and_label


def _week_end(week: int) -> datetime:
    return (pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(weeks=week + 1)).to_pydatetime()


def _drifted(week: int) -> pd.DataFrame:
    """A week after a change: longer flights and one carrier, the label still learnable."""
    batch = make_batch(week, shift=3.0)
    return batch.assign(carrier="B6")


def test_small_batches_fill_the_window_up_to_the_rows_the_gate_needs(ws):
    spec = parse_spec({**SPEC, "entities": []})
    for week in range(10):
        ingest_batch(ws, spec, make_batch(week, rows=100).drop(columns="flight_id"))
    # window_batches 4 would give 400 rows and a test split of 60, under gate.min_rows (100).
    window = training_window(ws, spec)
    assert [v.seq for v in window] == [3, 4, 5, 6, 7, 8, 9, 10]
    assert sum(v.row_count for v in window) * spec.training.split[2] >= spec.gate.min_rows


@pytest.mark.slow
def test_a_drift_triggered_cycle_trains_and_gates_on_the_rows_since_the_drift(ws):
    spec = parse_spec(
        {
            **SPEC,
            "training": {"window_batches": 6, "params": {"num_boost_round": 40}},
            "triggers": {"new_data_rows": None, "drift_share": 0.3, "metric_margin": None},
        }
    )
    first = run_cycle(ws, spec, sources=[make_batch(w) for w in range(6)], now=_week_end(5))
    assert first.run.trigger == "bootstrap" and first.promoted
    assert first.steps["window"]["batches"] == [1, 2, 3, 4, 5, 6]
    v1 = find_alias_version(ws, "toy", PRODUCTION)
    assert v1 is not None

    drifted = [_drifted(6), _drifted(7)]
    serve_and_label(ws, spec, drifted[0], v1, event_time="ts")
    report = monitor(ws, spec, write_html=False).report
    assert report.stats["time"]["key"] == "event"
    assert report.stats["drift"]["summary"]["share_drifted"] >= 0.3

    cycle = run_cycle(ws, spec, sources=drifted, now=_week_end(7))
    assert "drift" in cycle.run.trigger.split(",")
    window = cycle.steps["window"]
    assert window["rule"] == "since_change"
    assert window["since"] == {"at": report.window_start.isoformat(), "clock": "event"}
    # Only the two drifted weeks (3,000 rows, more than the gate needs); not the usual six.
    assert (window["batches"], window["rows_since"]) == ([7, 8], 3000)
    challenger = get_version(ws, "toy", cycle.steps["train"]["version"])
    assert challenger.lineage["dataset_seqs"] == [7, 8]
    # The gate compared the models on rows after the drift, and enough of them.
    tested = training.test_rows(ws, spec, challenger)
    assert tested["ts"].min() >= report.window_start and len(tested) >= spec.gate.min_rows
    assert cycle.steps["gate"]["decision"]["n"] == len(tested)
