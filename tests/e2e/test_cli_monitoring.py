"""`conveyor monitor` and `conveyor alerts` through the real command."""

from __future__ import annotations

import html
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml
from tests.integration.conftest import SPEC, make_batch

from conveyor.config import Settings
from conveyor.core.signature import encode_frame
from conveyor.data.service import ingest_batch
from conveyor.monitoring.service import monitor
from conveyor.pipeline.cycle import run_cycle
from conveyor.pipeline.gate import gate_version
from conveyor.pipeline.retention import enforce_retention
from conveyor.pipeline.watch import watch_release
from conveyor.registry.service import PRODUCTION, find_alias_version, promote
from conveyor.serving.feedback import FeedbackLog
from conveyor.serving.predlog import PredictionLogWriter, iso_now, prediction_entry
from conveyor.spec import parse_spec
from conveyor.training.service import load_version, train_model
from conveyor.workspace import Workspace


def prepare(project_dir: Path) -> None:
    """A promoted model and two days of drifted served traffic in the project's workspace."""
    ws = Workspace.open(Settings(home=project_dir / ".conveyor"))
    spec = parse_spec(SPEC)
    for w in range(2):
        ingest_batch(ws, spec, make_batch(w))
    promote(ws, "toy", train_model(ws, spec).version.version, reason="first")
    model = load_version(ws, "toy", 1)
    frame = make_batch(20, rows=800, shift=2.0)
    scores = model.predict_encoded(encode_frame(frame, model.signature))
    writer = PredictionLogWriter(ws.project_dir("toy", "predictions"))
    writer.write(
        [
            prediction_entry(
                request_id=f"r{i}",
                ts=f"2024-04-0{1 + i % 2}T12:00:{i % 60:02d}+00:00",
                model_version=1,
                inputs={k: row[k] for k in ("hour", "distance", "carrier")},
                score=float(p),
                label=int(p >= 0.5),
                latency_ms=3.0,
            )
            for i, (row, p) in enumerate(zip(frame.to_dict("records"), scores, strict=True))
        ]
    )
    writer.close()


@pytest.mark.slow  # trains a model, then seven commands
def test_monitor_per_day_then_alerts_list_ack_and_the_history_report(cli, project_dir):
    prepare(project_dir)
    spec = parse_spec(SPEC).model_dump(mode="json")
    spec["alerts"] = {"sinks": [{"kind": "file", "path": "alerts.jsonl"}]}
    (project_dir / "conveyor.yaml").write_text(yaml.safe_dump(spec))
    out = json.loads(
        cli("--json", "monitor", "--per-day", "--since", "2024-04-01", "--until", "2024-04-03")
        .stdout.strip()
        .splitlines()[-1]
    )
    assert len(out["reports"]) == 2 and out["stats"]["rows"] == 400
    assert "distance" in out["stats"]["drift"]["summary"]["drifted_features"]
    drift = [a for a in out["alerts"] if a["kind"] == "drift"]
    assert len(drift) == 1  # day 2's repeat is inside the cool-down
    listed = json.loads(cli("--json", "alerts", "list").stdout)
    assert [a["id"] for a in listed] == [drift[0]["id"]]
    assert listed[0]["report"].endswith(".html") and Path(listed[0]["report"]).exists()
    cli("alerts", "ack", drift[0]["id"], "--note", "known shift")
    assert json.loads(cli("--json", "alerts", "list", "--open").stdout) == []
    sent = (project_dir / ".conveyor" / "alerts.jsonl").read_text().splitlines()
    assert json.loads(sent[0])["id"] == drift[0]["id"]
    cli("monitor", "--report", "history.html")
    page = (project_dir / "history.html").read_text()
    assert "Drift over time" in page and drift[0]["id"] in page


def test_test_sink_reports_each_sink_and_a_refused_webhook_is_a_config_error(cli, project_dir):
    spec = parse_spec(SPEC).model_dump(mode="json")
    spec["alerts"] = {"sinks": [{"kind": "file", "path": "a.jsonl"}, {"kind": "log"}]}
    (project_dir / "conveyor.yaml").write_text(yaml.safe_dump(spec))
    result = json.loads(cli("--json", "alerts", "test-sink").stdout)
    assert [r["ok"] for r in result] == [True, True]
    spec["alerts"] = {"sinks": [{"kind": "webhook", "url": "http://127.0.0.1:9/hook"}]}
    (project_dir / "conveyor.yaml").write_text(yaml.safe_dump(spec))
    refused = cli("alerts", "test-sink", check=2)
    assert "non-public" in refused.stderr and "allow_private" in refused.stderr


def _serve(ws, spec, batch, version, *, shift_prefix: str) -> None:
    """Log what ``version`` answers for ``batch`` now, then the labels, as the server would."""
    model = load_version(ws, spec.model_name, version)
    scores = model.predict_encoded(encode_frame(batch, model.signature))
    writer = PredictionLogWriter(ws.project_dir(spec.project, "predictions"))
    ids = [f"{shift_prefix}-{r}" for r in batch["flight_id"]]
    writer.write(
        [
            prediction_entry(
                request_id=rid,
                ts=iso_now(),
                model_version=version,
                inputs={k: r[k] for k in ("hour", "distance", "carrier")},
                score=float(s),
                label=int(s > 0.5),
                latency_ms=1.0,
            )
            for rid, r, s in zip(ids, batch.to_dict("records"), scores, strict=True)
        ]
    )
    writer.close()
    FeedbackLog(ws.project_dir(spec.project, "feedback")).record(
        [{"request_id": i, "label": int(y)} for i, y in zip(ids, batch["late"], strict=True)]
    )


@pytest.fixture
def wide_terminal(monkeypatch):
    """Commands print tables one row per line (set before ``cli`` reads the environment)."""
    monkeypatch.setenv("COLUMNS", "1000")


@pytest.mark.slow  # trains three models, runs the gate, the watch, retention and the CLI
def test_every_alert_kind_links_to_something_its_command_or_path_opens(
    wide_terminal, cli, project_dir
):
    raw = {
        **SPEC,
        "monitoring": {"min_labels": 50, "metric_floor": 0.99, "bias_threshold": 0.01},
        "alerts": {
            "cooldown_hours": 0,
            "thresholds": [{"metric": "max_psi", "max": 0.01}],
            "sinks": [{"kind": "file", "path": "alerts.jsonl"}],
        },
        "retention": {"keep_batches": 1},
    }
    spec = parse_spec(raw)
    (project_dir / "conveyor.yaml").write_text(spec.to_yaml())
    ws = Workspace.open(Settings(home=project_dir / ".conveyor"))
    run_cycle(ws, spec, sources=[make_batch(0), make_batch(1)])
    good = find_alias_version(ws, "toy", PRODUCTION)
    rng = np.random.default_rng(1)

    def shuffled(frame):
        return frame.assign(late=rng.permutation(frame["late"].to_numpy()))

    bad = train_model(ws, spec, label_noise=shuffled).version.version
    assert not gate_version(ws, spec, bad).promoted  # gate_rejected
    promote(ws, "toy", bad, reason="forced for the test")
    _serve(ws, spec, make_batch(7, shift=2.0), bad, shift_prefix="w7")
    assert watch_release(ws, spec).rolled_back  # rollback
    assert find_alias_version(ws, "toy", PRODUCTION) == good
    _serve(ws, spec, make_batch(8, shift=2.0), good, shift_prefix="w8")
    monitor(ws, spec, write_html=False)  # drift, bias, decay, threshold:max_psi; no page
    for w in (2, 3, 4):  # batches no model was trained on: retention may delete them
        ingest_batch(ws, spec, make_batch(w))
    assert enforce_retention(ws, spec).deleted  # retention
    alerts = ws.stores.monitor.list_alerts("toy")
    kinds = {a.kind for a in alerts}
    assert {"gate_rejected", "rollback", "drift", "threshold:max_psi", "retention"} <= kinds
    assert {"bias", "decay"} & kinds
    assert all(a.report for a in alerts), [(a.kind, a.report) for a in alerts]
    table = cli("alerts", "list", "--limit", "500").stdout
    listed = json.loads(cli("--json", "alerts", "list", "--limit", "500").stdout)
    assert {a["kind"] for a in listed} == kinds
    sink_file = project_dir / ".conveyor" / "alerts.jsonl"
    sent = [json.loads(x) for x in sink_file.read_text().splitlines()]
    links = {a["id"]: a["report"] for a in listed}
    assert len(sent) >= 5 and all(s["report"] == links[s["id"]] for s in sent)  # sinks: the same
    opened = set()
    for row in listed:
        link = row["report"]
        assert any(row["id"] in line and link in line for line in table.splitlines()), table
        if link in opened:
            continue
        opened.add(link)
        words = shlex.split(link)
        assert words[0] == "conveyor", link  # no page was written: each link is a command
        done = cli(*words[1:])
        if "--out" in words or "--report" in words:
            target = words[words.index("--out" if "--out" in words else "--report") + 1]
            assert (project_dir / target).stat().st_size > 1000, link
        else:
            assert done.stdout.strip(), link
    assert len(opened) >= 4
    cli("monitor", "--report", "history.html")
    page = (project_dir / "history.html").read_text()
    assert all(html.escape(link) in page for link in opened)  # the report lists them too


@pytest.mark.slow  # trains a model, then two commands
def test_monitor_keys_a_replay_of_2013_by_its_timestamp_input(cli, project_dir):
    ws = Workspace.open(Settings(home=project_dir / ".conveyor"))
    spec = parse_spec(SPEC)
    for w in range(2):
        ingest_batch(ws, spec, make_batch(w))
    promote(ws, "toy", train_model(ws, spec).version.version, reason="first")
    frame = make_batch(20, rows=600)
    model = load_version(ws, "toy", 1)
    scores = model.predict_encoded(encode_frame(frame, model.signature))
    writer = PredictionLogWriter(ws.project_dir("toy", "predictions"))
    writer.write(
        [
            prediction_entry(
                request_id=f"r{i}",
                ts=iso_now(),  # replayed today
                model_version=1,
                inputs={
                    **{k: row[k] for k in ("hour", "distance", "carrier")},
                    "ts": f"2013-01-0{7 + i % 3}T12:00:00",  # the project's timestamp column
                },
                score=float(p),
                label=int(p >= 0.5),
                latency_ms=3.0,
            )
            for i, (row, p) in enumerate(zip(frame.to_dict("records"), scores, strict=True))
        ]
    )
    writer.close()
    out = json.loads(
        cli("--json", "monitor", "--per-day", "--since", "2013-01-07", "--until", "2013-01-09")
        .stdout.strip()
        .splitlines()[-1]
    )
    assert len(out["reports"]) == 2 and out["stats"]["rows"] == 200
    assert out["stats"]["time"] == {"key": "event", "column": "ts", "arrival_rows": 0}
    cli("monitor", "--report", "history.html")
    assert "2013-01-07 – 2013-01-09" in (project_dir / "history.html").read_text()
