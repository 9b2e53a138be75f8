"""raise_alert stores an alert with its link and sends it to every sink, never failing callers."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from conveyor.alerting.service import raise_alert
from conveyor.config import Settings
from conveyor.core.clock import new_id, utcnow
from conveyor.core.entities import AlertSeverity, MonitorReport
from conveyor.monitoring.alerts import raise_alerts
from conveyor.spec import ProjectSpec, parse_spec
from conveyor.workspace import Workspace

WAIT_FOR_FILE = (
    "import pathlib, sys, time\n"
    "gate = pathlib.Path(sys.argv[1])\n"
    "while not gate.exists(): time.sleep(0.01)\n"
    "pathlib.Path(sys.argv[2]).write_bytes(sys.stdin.buffer.read())\n"
)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.open(Settings(home=tmp_path / "ws"))


def make_spec(*sinks: dict) -> ProjectSpec:
    return parse_spec(
        {
            "project": "toy",
            "task": "binary",
            "label": "y",
            "alerts": {"sinks": [*sinks, {"kind": "file", "path": "alerts.jsonl"}]},
        }
    )


def sent(ws: Workspace) -> list[dict]:
    return [orjson.loads(line) for line in (ws.home / "alerts.jsonl").read_bytes().splitlines()]


def test_an_alert_is_stored_with_its_link_and_sent(ws):
    done = raise_alert(
        ws,
        make_spec(),
        kind="promotion_conflict",
        message="Production moved while the gate validated v3.",
        evidence={"challenger": 3},
        severity=AlertSeverity.WARNING,
    )
    (stored,) = ws.stores.monitor.list_alerts("toy")
    assert stored == done.alert and stored.report == "conveyor history"
    assert stored.severity is AlertSeverity.WARNING and stored.evidence == {"challenger": 3}
    assert [d.ok for d in done.deliveries] == [True]
    (payload,) = sent(ws)
    assert payload["id"] == stored.id and payload["report"] == "conveyor history"


def test_a_broken_sink_is_reported_and_the_others_still_receive(ws):
    spec = make_spec(
        {"kind": "webhook", "url": "http://127.0.0.1:9/hook"},  # refused: a loopback address
        {"kind": "command", "argv": [sys.executable, "-c", "import sys; sys.exit(3)"]},
    )
    done = raise_alert(
        ws, spec, kind="retention", message="m", evidence={}, severity=AlertSeverity.INFO
    )
    webhook, command, file = done.deliveries
    assert not webhook.ok and "127.0.0.1" in webhook.detail and "allow_private" in webhook.detail
    assert not command.ok and "exited with 3" in command.detail
    assert file.ok and sent(ws)[0]["id"] == done.alert.id
    assert ws.stores.monitor.list_alerts("toy") == [done.alert]


def test_a_background_delivery_returns_before_a_slow_sink_ends(ws, tmp_path):
    gate, out = tmp_path / "go", tmp_path / "command.json"
    spec = make_spec(
        {"kind": "command", "argv": [sys.executable, "-c", WAIT_FOR_FILE, str(gate), str(out)]}
    )
    done = raise_alert(
        ws,
        spec,
        kind="serving_fallback",
        message="Serving v1 instead of v2.",
        evidence={"wanted": 2, "serving": 1},
        severity=AlertSeverity.CRITICAL,
        background=True,
    )
    assert ws.stores.monitor.list_alerts("toy") == [done.alert]  # stored before returning
    assert not done.delivered.done()  # the command waits for the gate file
    gate.touch()
    assert [d.ok for d in done.deliveries] == [True, True]
    assert orjson.loads(out.read_bytes())["kind"] == "serving_fallback"
    assert sent(ws)[0]["evidence"] == {"wanted": 2, "serving": 1}


def test_a_monitoring_job_raises_its_alerts_past_a_refused_webhook(ws):
    spec = make_spec({"kind": "webhook", "url": "http://127.0.0.1:9/hook"})
    now = utcnow()
    report = MonitorReport(
        id=new_id("mr_"),
        project="toy",
        model_version=2,
        window_start=now - timedelta(days=1),
        window_end=now,
        created_at=now,
        stats={"drift": {"summary": {"drifted_features": ["distance"]}}},
    )
    (alert,) = raise_alerts(ws, spec, report).raised  # building the sinks used to raise
    (payload,) = sent(ws)
    assert payload["id"] == alert.id and payload["kind"] == "drift"
