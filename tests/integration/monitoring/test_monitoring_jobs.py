"""Monitoring jobs over a real prediction log and feedback, per model version and per day."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conveyor.config import Settings
from conveyor.core.errors import InvalidInputError
from conveyor.core.signature import encode_frame
from conveyor.data.service import ingest_batch
from conveyor.monitoring.service import monitor, production_reports, write_monitoring_report
from conveyor.registry.service import promote
from conveyor.serving.feedback import FeedbackLog
from conveyor.serving.metrics import ServingMetrics
from conveyor.serving.predlog import PredictionLogWriter, prediction_entry
from conveyor.spec import parse_spec
from conveyor.training.service import load_version, train_model
from conveyor.workspace import Workspace

from ..conftest import SPEC, make_batch

DAY1 = datetime(2024, 3, 1, tzinfo=UTC)
DAY2 = datetime(2024, 3, 2, tzinfo=UTC)
DAY3 = datetime(2024, 3, 3, tzinfo=UTC)
FEATURES = ("hour", "distance", "carrier")


def log_scored(ws, version: int, frame: pd.DataFrame, day: datetime, prefix: str) -> list[str]:
    """Score ``frame`` with the real model and log it as served on ``day``."""
    model = load_version(ws, "toy", version)
    scores = model.predict_encoded(encode_frame(frame, model.signature))
    writer = PredictionLogWriter(ws.project_dir("toy", "predictions"))
    ids = [f"{prefix}-{i}" for i in range(len(frame))]
    seconds = np.linspace(60, 86_000, len(frame))
    records = frame[list(FEATURES)].astype(object).where(frame[list(FEATURES)].notna(), None)
    writer.write(
        [
            prediction_entry(
                request_id=rid,
                ts=(day + pd.Timedelta(seconds=float(s))).isoformat(),
                model_version=version,
                inputs=rec,
                score=float(p),
                label=int(p >= 0.5),
                latency_ms=2.0 + (i % 50),
            )
            for i, (rid, s, rec, p) in enumerate(
                zip(ids, seconds, records.to_dict("records"), scores, strict=True)
            )
        ]
    )
    writer.close()
    return ids


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    """Two versions (v1 in production), a labelled day and a drifted unlabelled day."""
    ws = Workspace.open(Settings(home=tmp_path_factory.mktemp("mon") / "ws"))
    spec = parse_spec({**SPEC, "monitoring": {"min_labels": 200}})
    for w in range(3):
        ingest_batch(ws, spec, make_batch(w))
    v1 = train_model(ws, spec).version.version
    v2 = train_model(ws, spec).version.version
    promote(ws, "toy", v1, reason="first")
    day1 = make_batch(10, rows=3000)
    ids = log_scored(ws, v1, day1, DAY1, "d1")
    FeedbackLog(ws.project_dir("toy", "feedback")).record(
        [{"request_id": i, "label": int(y)} for i, y in zip(ids, day1["late"], strict=True)]
    )
    day2 = make_batch(11, rows=3000, shift=2.0)
    day2.loc[day2.index[::5], "hour"] = np.nan
    day2.loc[day2.index[1::10], "carrier"] = "ZZ"
    log_scored(ws, v1, day2, DAY2, "d2")
    log_scored(ws, v2, make_batch(12, rows=400), DAY2, "c2")
    return ws, spec, v1, v2, day2


@pytest.fixture(scope="module")
def outcome(line):
    ws, spec, *_ = line
    return monitor(ws, spec, since=DAY1, until=DAY3, per_day=True)


def by_key(outcome):
    return {(r.window_start.day, r.model_version): r.stats for r in outcome.reports}


def test_a_report_per_day_and_version_with_production_stored_last(line, outcome):
    ws, spec, v1, v2, _ = line
    keys = [(r.window_start.day, r.model_version) for r in outcome.reports]
    assert keys == [(1, v2), (1, v1), (2, v2), (2, v1)]
    assert outcome.report.model_version == v1 and outcome.report.window_start == DAY2
    ids = [r.id for r in outcome.reports]
    assert [r.id for r in ws.stores.monitor.list_monitor_reports("toy") if r.id in ids] == ids
    production = production_reports(ws, "toy")
    assert [(r.window_start.day, r.model_version) for r in production] == [(1, v1), (2, v1)]
    stats = by_key(outcome)
    assert stats[(1, v1)]["rows"] == 3000 and stats[(1, v2)]["rows"] == 0
    assert stats[(2, v2)]["rows"] == 400 and stats[(2, v1)]["rows"] == 3000


def test_realised_performance_and_a_label_free_estimate_that_tracks_it(outcome, line):
    v1 = line[2]
    day1 = by_key(outcome)[(1, v1)]
    live, est = day1["live"], day1["estimated"]
    assert live["labels"] == 3000 and live["metric_name"] == "roc_auc"
    assert est["metric"] == pytest.approx(live["metric"], abs=0.04)
    assert est["metrics"]["accuracy"] == pytest.approx(live["metrics"]["accuracy"], abs=0.04)
    assert abs(live["bias"]) < 0.05
    day2 = by_key(outcome)[(2, v1)]
    assert "live" not in day2  # no labels yet: only the estimate speaks
    assert day2["estimated"]["unlabelled"] == 3000 and day2["estimated"]["metric"] > 0.5


def test_feature_and_prediction_drift_on_the_shifted_day(outcome, line):
    v1 = line[2]
    stats = by_key(outcome)
    day1, day2 = stats[(1, v1)], stats[(2, v1)]
    assert "distance" in day2["drift"]["summary"]["drifted_features"]
    assert "distance" not in day1["drift"]["summary"]["drifted_features"]
    assert day2["prediction_drift"]["psi"] > 0.2 > day1["prediction_drift"]["psi"]
    assert day2["prediction_drift"]["current_mean"] > day2["prediction_drift"]["reference_mean"]


def test_data_quality_counts_missing_values_and_unseen_categories(outcome, line):
    v1 = line[2]
    q = by_key(outcome)[(2, v1)]["quality"]
    assert q["features"]["hour"]["missing_share"] == pytest.approx(0.2, abs=0.01)
    assert q["features"]["carrier"]["unseen"] == 300
    assert q["features"]["carrier"]["unseen_values"] == {"ZZ": 300}
    assert q["max_unseen_share"] == pytest.approx(0.1, abs=0.01)
    clean = by_key(outcome)[(1, v1)]["quality"]
    assert clean["max_missing_share"] == 0.0 and clean["max_unseen_share"] == 0.0
    latency = by_key(outcome)[(2, v1)]["latency"]
    assert 2.0 <= latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= 51.0


def test_alerts_link_to_the_job_page_and_repeat_only_after_the_cooldown(outcome, line):
    ws, spec, v1, *_ = line
    drift = [a for a in outcome.alerts if a.kind == "drift"]
    assert drift and drift[0].evidence["model_version"] == v1
    page = Path(drift[0].report)
    html = page.read_text()
    assert "Model versions in this window" in html and "Over the job&#39;s windows" in html
    assert "Data quality of served inputs" in html and html.count("<svg") >= 4
    again = monitor(ws, spec, since=DAY2, until=DAY3, write_html=False)
    assert "drift" not in {a.kind for a in again.alerts} and again.suppressed >= 1


def test_the_history_report_draws_drift_performance_and_the_release_timeline(outcome, line):
    ws, spec, *_ = line
    path = write_monitoring_report(ws, spec, ws.home / "history.html")
    html = path.read_text()
    for heading in ("Drift over time", "Performance over time", "Promotions, rollbacks and alerts"):
        assert heading in html
    assert html.count("<svg") >= 3 and ">v1<" in html and "95% range" in html


def test_serving_counters_give_the_windows_rejected_share(line, tmp_path):
    ws, _, *_ = line
    metrics = ServingMetrics()
    for status in [200] * 45 + [422] * 5:
        metrics.observe("v1_predict", status, "toy")
    for status in [200] * 30 + [500] * 10:
        metrics.observe("v1_predict", status, "other")  # another model on the same server
    metrics.for_model("toy", "toy").rejected_rows = 7
    page = metrics.render({}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        # No drift alert here (threshold out of reach), so the cool-down of other tests holds.
        spec = parse_spec({**SPEC, "monitoring": {"metrics_url": url, "psi_threshold": 1e6}})
        outcome = monitor(ws, spec, since=DAY2, until=DAY3, write_html=False)
    finally:
        server.shutdown()
        server.server_close()
    serving = outcome.report.stats["serving"]
    assert serving["requests"] == 50 and serving["rejected_share"] == pytest.approx(0.1)
    assert serving["error_rate"] == 0.0 and serving["rejected_rows"] == 7


def test_a_window_that_ends_before_it_starts_is_refused(line):
    ws, spec, *_ = line
    with pytest.raises(InvalidInputError, match="must not start after it ends"):
        monitor(ws, spec, since=DAY3, until=DAY1)


def test_a_job_over_an_empty_log_stores_an_empty_report(ws, spec):
    outcome = monitor(ws, spec)
    assert outcome.report.stats["rows"] == 0 and outcome.report.model_version is None
    assert outcome.alerts == ()
    assert Path(outcome.report.stats["html"]).exists()
    again = monitor(ws, spec)  # starts where the previous one ended
    assert again.report.window_start == outcome.report.window_end
