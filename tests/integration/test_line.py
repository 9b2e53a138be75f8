"""The loop end to end through the service functions, on real SQLite and real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conveyor.core.entities import BatchStatus, VersionStatus
from conveyor.core.errors import InvalidInputError, NotFoundError
from conveyor.data.service import ingest_batch, training_window
from conveyor.monitoring.service import monitor
from conveyor.pipeline.cycle import run_cycle
from conveyor.pipeline.gate import gate_version
from conveyor.registry.service import (
    PRODUCTION,
    find_alias_version,
    production_history,
    promote,
    rollback,
)
from conveyor.serving.feedback import FeedbackLog
from conveyor.serving.predlog import PredictionLogWriter, iso_now, prediction_entry
from conveyor.serving.scoring import score_batch
from conveyor.training.service import train_model

from .conftest import make_batch


def test_first_batch_fixes_the_schema_and_a_renamed_column_is_quarantined(ws, spec):
    first = ingest_batch(ws, spec, make_batch(0))
    assert first.version.status is BatchStatus.ACCEPTED and first.created
    bad = ingest_batch(ws, spec, make_batch(1).rename(columns={"distance": "dist"}))
    assert bad.quarantined
    kinds = {a.kind for a in bad.report.errors}
    assert {"missing_column", "extra_column"} <= kinds
    assert [v.seq for v in training_window(ws, spec)] == [first.version.seq]


def test_injected_nans_quarantine_and_reingest_is_idempotent(ws, spec):
    ingest_batch(ws, spec, make_batch(0))
    batch = make_batch(1)
    batch.loc[::5, "hour"] = np.nan
    assert ingest_batch(ws, spec, batch).quarantined
    again = ingest_batch(ws, spec, make_batch(2))
    same = ingest_batch(ws, spec, make_batch(2))
    assert not same.created and same.version.id == again.version.id
    assert len(ws.stores.datasets.list_dataset_versions("toy")) == 3


def test_train_registers_a_safe_model_with_lineage(ws, spec):
    for w in range(3):
        ingest_batch(ws, spec, make_batch(w))
    outcome = train_model(ws, spec)
    v = outcome.version
    assert v.version == 1 and outcome.beats_baseline
    assert v.metrics["test"]["roc_auc"] > v.metrics["baseline_test"]["roc_auc"] + 0.1
    assert len(v.lineage["datasets"]) == 3 and v.lineage["run_id"] == v.run_id
    assert {"lightgbm", "numpy"} <= set(v.lineage["packages"])
    assert ws.stores.artifacts.get_bytes(v.artifact).startswith(b"{")
    run = ws.stores.runs.get_run(v.run_id)
    assert run.status == "finished" and "test_roc_auc" in run.metrics


def test_gate_promotes_a_sound_challenger_and_rejects_a_shuffled_one(ws, spec):
    for w in range(3):
        ingest_batch(ws, spec, make_batch(w))
    first = train_model(ws, spec).version.version
    assert gate_version(ws, spec, first).promoted
    rng = np.random.default_rng(0)

    def shuffle(frame):
        return frame.assign(late=rng.permutation(frame["late"].to_numpy()))

    bad = train_model(ws, spec, label_noise=shuffle).version.version
    outcome = gate_version(ws, spec, bad)
    assert not outcome.passed and not outcome.promoted
    assert find_alias_version(ws, "toy", PRODUCTION) == first
    alerts = ws.stores.monitor.list_alerts("toy", kind="gate_rejected")
    assert alerts and f"v{bad}" in alerts[-1].message


def test_rollback_returns_to_the_previous_version_and_is_audited(ws, spec):
    for w in range(3):
        ingest_batch(ws, spec, make_batch(w))
    v1 = train_model(ws, spec).version.version
    v2 = train_model(ws, spec).version.version
    promote(ws, "toy", v1, reason="first")
    promote(ws, "toy", v2, reason="second")
    pointer = rollback(ws, "toy", reason="bad release", block=True)
    assert pointer.version == v1
    assert ws.stores.models.get_model_version("toy", v2).status is VersionStatus.BLOCKED
    with pytest.raises(InvalidInputError):
        promote(ws, "toy", v2, reason="again")
    actions = [(e.action, e.from_version, e.to_version) for e in production_history(ws, "toy")]
    assert actions == [("promote", None, v1), ("promote", v1, v2), ("rollback", v2, v1)]


def test_rollback_without_history_and_unknown_version_are_clear_errors(ws, spec):
    with pytest.raises(NotFoundError, match="no production version"):
        rollback(ws, "toy", reason="x")
    with pytest.raises(NotFoundError, match="no version 7"):
        promote(ws, "toy", 7, reason="x")


def test_cycle_records_its_trigger_and_skips_without_one(ws, spec):
    first = run_cycle(ws, spec, sources=[make_batch(0), make_batch(1)])
    assert first.run.trigger == "bootstrap" and first.promoted
    idle = run_cycle(ws, spec)
    assert idle.run.status == "skipped" and idle.run.trigger == "none"
    fresh = run_cycle(ws, spec, sources=[make_batch(2)])
    assert "new_data" in fresh.run.trigger
    assert fresh.run.evidence["new_data"]["rows"] >= 1000
    forced = run_cycle(ws, spec, manual=True)
    assert forced.run.trigger.startswith("manual")


def test_batch_predict_scores_every_row_atomically(ws, spec, tmp_path):
    run_cycle(ws, spec, sources=[make_batch(0), make_batch(1)])
    src = tmp_path / "in.parquet"
    make_batch(5).drop(columns=["late"]).to_parquet(src)
    out = tmp_path / "out.parquet"
    result = score_batch(ws, spec, src, out)
    scored = pd.read_parquet(out)
    assert result["rows"] == len(scored) == 1500 and scored["score"].between(0, 1).all()
    assert (scored["model_version"] == 1).all()
    assert not list(tmp_path.glob("*.tmp*"))


def test_monitor_sees_drift_in_served_inputs(ws, spec):
    run_cycle(ws, spec, sources=[make_batch(0), make_batch(1)])
    writer = PredictionLogWriter(ws.project_dir("toy", "predictions"))
    shifted = make_batch(9, shift=3.0)
    entries = [
        prediction_entry(
            request_id=r["flight_id"],
            ts=iso_now(),
            model_version=1,
            inputs={k: r[k] for k in ("hour", "distance", "carrier")},
            score=0.9,
            label=1,
            latency_ms=1.0,
        )
        for r in shifted.to_dict(orient="records")
    ]
    writer.write(entries)
    writer.close()
    FeedbackLog(ws.project_dir("toy", "feedback")).record(
        [
            {"request_id": r["flight_id"], "label": int(r["late"])}
            for r in shifted.to_dict(orient="records")
        ]
    )
    outcome = monitor(ws, spec)
    stats = outcome.report.stats
    assert "distance" in stats["drift"]["summary"]["drifted_features"]
    assert stats["live"]["labels"] == 1500
    assert stats["live"]["bias"] > 0.3
    assert {a.kind for a in outcome.alerts} >= {"drift", "bias"}
    html = outcome.alerts[0].report
    assert html and html.endswith(".html")
    page = Path(html).read_text()
    assert "distance" in page and page.count("<svg") >= 2
