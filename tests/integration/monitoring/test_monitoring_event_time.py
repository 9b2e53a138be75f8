"""Monitoring keyed by event time: a replay of 2013 run today is monitored as 2013."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from conveyor.config import Settings
from conveyor.core.signature import encode_frame
from conveyor.data.service import ingest_batch
from conveyor.monitoring.service import monitor, production_reports, write_monitoring_report
from conveyor.registry.service import promote
from conveyor.serving.feedback import FeedbackLog
from conveyor.serving.predlog import PredictionLogWriter, iso_now, prediction_entry
from conveyor.spec import parse_spec
from conveyor.training.service import load_version, train_model
from conveyor.workspace import Workspace

from ..conftest import SPEC, make_batch

FEATURES = ("hour", "distance", "carrier")
JAN = [datetime(2013, 1, d, tzinfo=UTC) for d in (7, 8, 9, 10)]


def replay(ws, frame: pd.DataFrame, day: datetime, prefix: str, *, event_time: bool = True):
    """Score ``frame`` with v1 and log it now (arrival), its timestamp input on ``day``."""
    model = load_version(ws, "toy", 1)
    scores = model.predict_encoded(encode_frame(frame, model.signature))
    writer = PredictionLogWriter(ws.project_dir("toy", "predictions"))
    ids = [f"{prefix}-{i}" for i in range(len(frame))]
    entries = []
    for i, (rid, rec, p) in enumerate(
        zip(ids, frame[list(FEATURES)].to_dict("records"), scores, strict=True)
    ):
        if event_time:  # as a client sends it: naive ISO text, read as UTC
            rec["ts"] = (day + pd.Timedelta(seconds=20 * i)).strftime("%Y-%m-%dT%H:%M:%S")
        entries.append(
            prediction_entry(
                request_id=rid,
                ts=iso_now(),
                model_version=1,
                inputs=rec,
                score=float(p),
                label=int(p >= 0.5),
                latency_ms=2.0,
            )
        )
    writer.write(entries)
    writer.close()
    FeedbackLog(ws.project_dir("toy", "feedback")).record(
        [{"request_id": r, "label": int(y)} for r, y in zip(ids, frame["late"], strict=True)]
    )
    return ids


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    """v1 in production, and a replay of three January 2013 days logged today."""
    ws = Workspace.open(Settings(home=tmp_path_factory.mktemp("evt") / "ws"))
    spec = parse_spec({**SPEC, "monitoring": {"min_labels": 50, "min_estimate_rows": 50}})
    for w in range(2):
        ingest_batch(ws, spec, make_batch(w))
    promote(ws, "toy", train_model(ws, spec).version.version, reason="first")
    for n, day in enumerate(JAN[:3]):
        replay(ws, make_batch(30 + n, rows=300), day, f"jan{day.day}")
    return ws, spec


def test_a_replay_of_2013_is_monitored_in_its_own_days(line):
    ws, spec = line
    outcome = monitor(ws, spec, per_day=True, write_html=False)
    windows = [(r.window_start, r.window_end) for r in outcome.reports]
    assert [s.date() for s, _ in windows] == [d.date() for d in JAN[:3]]
    assert all(r.stats["rows"] == 300 for r in outcome.reports)
    for r in outcome.reports:
        assert r.stats["time"] == {"key": "event", "column": "ts", "arrival_rows": 0}
        # live metrics from the feedback and the label-free estimate, per 2013 day
        assert r.stats["live"]["labels"] == 300 and r.stats["live"]["metric"] > 0.55
        assert r.stats["estimated"]["metric"] > 0.5
    # the job ends after its newest event, not at today's wall clock
    assert outcome.report.window_end < datetime(2013, 1, 10, tzinfo=UTC)


def test_since_and_until_select_event_days_and_a_replay_continues_where_it_stopped(line):
    ws, spec = line
    one = monitor(ws, spec, since=JAN[1], until=JAN[2], write_html=False)
    assert one.report.stats["rows"] == 300
    assert (one.report.window_start, one.report.window_end) == (JAN[1], JAN[2])
    # The next replayed day, monitored with the defaults, starts where the last window ended.
    replay(ws, make_batch(40, rows=300), JAN[3], "jan10")
    by_day = monitor(ws, spec, per_day=True, write_html=False)
    assert [r.window_start.date() for r in by_day.reports] == [JAN[3].date()]
    assert by_day.report.stats["rows"] == 300
    assert {r.window_start.year for r in production_reports(ws, spec.project)} == {2013}
    nothing_today = monitor(
        ws, spec, since=datetime.now(UTC) - pd.Timedelta(hours=1), write_html=False
    )
    assert nothing_today.report.stats["rows"] == 0  # everything arrived now, but is of 2013


def test_a_request_without_its_timestamp_counts_at_arrival(line):
    ws, spec = line
    before = datetime.now(UTC)
    replay(ws, make_batch(50, rows=60), JAN[0], "untimed", event_time=False)
    outcome = monitor(ws, spec, since=before, write_html=False)
    assert outcome.report.stats["rows"] == 60
    assert outcome.report.stats["time"]["arrival_rows"] == 60
    assert outcome.report.window_start.year == before.year


def test_the_history_report_draws_2013_on_its_time_axis(line, tmp_path):
    ws, spec = line
    path = write_monitoring_report(ws, spec, tmp_path / "history.html")
    html = Path(path).read_text()
    assert "2013-01-07" in html and "Performance over time" in html
    job = monitor(ws, spec, since=JAN[0], until=JAN[1])
    page = Path(job.report.stats["html"]).read_text()
    assert "2013-01-07 00:00:00 – 2013-01-08 00:00:00 UTC by event time" in page
    low, high = job.report.stats["estimated"]["low"], job.report.stats["estimated"]["high"]
    assert low < job.report.stats["estimated"]["metric"] < high
    assert f"{low:.3f} – {high:.3f}" in page  # the estimate with its range
