"""`conveyor monitor` and `conveyor alerts` through the real command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tests.integration.conftest import SPEC, make_batch

from conveyor.config import Settings
from conveyor.core.signature import encode_frame
from conveyor.data.service import ingest_batch
from conveyor.registry.service import promote
from conveyor.serving.predlog import PredictionLogWriter, prediction_entry
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
