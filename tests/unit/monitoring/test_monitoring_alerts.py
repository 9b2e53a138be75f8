"""Alert rules, cool-down de-duplication and acknowledgements, on a real SQLite workspace."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from conveyor.config import Settings
from conveyor.core.clock import new_id, utcnow
from conveyor.core.entities import MonitorReport
from conveyor.core.errors import NotFoundError
from conveyor.monitoring.alerts import (
    ack_alert,
    alert_metrics,
    find_candidates,
    list_alert_views,
    notify,
    raise_alerts,
    send_test_alert,
)
from conveyor.spec import parse_spec
from conveyor.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.open(Settings(home=tmp_path / "ws"))


def make_spec(**alerts):
    return parse_spec(
        {
            "project": "toy",
            "task": "binary",
            "label": "y",
            "monitoring": {"min_labels": 50, "metric_floor": 0.7},
            "alerts": {"sinks": [{"kind": "file", "path": "alerts.jsonl"}], **alerts},
        }
    )


def make_report(version=2, **stats) -> MonitorReport:
    now = utcnow()
    return MonitorReport(
        id=new_id("mr_"),
        project="toy",
        model_version=version,
        window_start=now - timedelta(days=1),
        window_end=now,
        created_at=now,
        stats={"rows": 1000, "production": version, "html": "/r/monitor.html", **stats},
    )


BAD = {
    "drift": {"summary": {"drifted_features": ["distance"], "share_drifted": 0.5, "max_psi": 0.9}},
    "live": {"metric_name": "roc_auc", "metric": 0.61, "labels": 400, "bias": 0.2},
    "latency": {"p95_ms": 120.0},
    "estimated": {"metric_name": "roc_auc", "metric": 0.64},
}


def test_builtin_rules_and_thresholds_name_the_metric_and_version():
    spec = make_spec(
        thresholds=[
            {"metric": "latency_p95_ms", "max": 50},
            {"metric": "estimated_metric", "min": 0.7, "severity": "critical"},
            {"metric": "error_rate", "max": 0.01},  # not measured: never fires
        ]
    )
    found = {c.kind: c for c in find_candidates(spec, make_report(**BAD))}
    assert set(found) == {
        "drift",
        "bias",
        "decay",
        "threshold:latency_p95_ms",
        "threshold:estimated_metric",
    }
    assert "120 of v2 is over the maximum 50" in found["threshold:latency_p95_ms"].message
    assert found["threshold:estimated_metric"].severity == "critical"
    assert found["decay"].evidence["model_version"] == 2


def test_label_based_metrics_wait_for_enough_labels():
    few = {**BAD, "live": {**BAD["live"], "labels": 10}}
    values = alert_metrics(few, min_labels=50)
    assert values["live_metric"] is None and values["bias"] is None
    assert values["estimated_metric"] == 0.64
    assert {c.kind for c in find_candidates(make_spec(), make_report(**few))} == {"drift"}


def test_repeated_alerts_are_suppressed_during_the_cooldown_then_raised_again(ws):
    spec = make_spec(cooldown_hours=6)
    now = utcnow()
    first = raise_alerts(ws, spec, make_report(**BAD), now=now)
    assert {a.kind for a in first.raised} == {"drift", "bias", "decay"}
    again = raise_alerts(ws, spec, make_report(**BAD), now=now + timedelta(hours=1))
    assert again.raised == () and len(again.suppressed) == 3
    other_version = raise_alerts(ws, spec, make_report(3, **BAD), now=now + timedelta(hours=1))
    assert len(other_version.raised) == 3  # the key is (kind, version)
    later = raise_alerts(ws, spec, make_report(**BAD), now=now + timedelta(hours=7))
    assert len(later.raised) == 3
    assert len(ws.stores.monitor.list_alerts("toy")) == 9
    lines = (ws.home / "alerts.jsonl").read_bytes().splitlines()
    assert len(lines) == 9
    assert all(orjson.loads(x)["report"] == "/r/monitor.html" for x in lines)


def test_without_a_page_alerts_link_to_the_command_that_writes_the_history_of_their_window(ws):
    report = make_report(**BAD)
    del report.stats["html"]
    raised = raise_alerts(ws, make_spec(cooldown_hours=0), report)
    since = f"{report.window_start:%Y-%m-%dT%H:%M:%S}"
    assert raised.raised
    for a in raised.raised:  # a report id alone opens nothing
        assert a.report == f"conveyor monitor --report monitoring.html --since {since}"
        assert a.evidence["report"] == report.id
        assert a.evidence["window_start"] == report.window_start.isoformat()


def test_ack_keeps_the_first_acknowledgement_and_filters_open_alerts(ws):
    spec = make_spec()
    raised = raise_alerts(ws, spec, make_report(**BAD)).raised
    view = ack_alert(ws, "toy", raised[0].id, by="ana", note="looking")
    assert view.acked_by == "ana"
    assert ack_alert(ws, "toy", raised[0].id, by="bo").acked_by == "ana"
    open_ids = {v.alert.id for v in list_alert_views(ws, "toy", include_acked=False)}
    assert open_ids == {a.id for a in raised[1:]}
    with pytest.raises(NotFoundError, match="no alert 'al_missing'"):
        ack_alert(ws, "toy", "al_missing", by="ana")


def test_a_test_alert_reaches_every_sink_and_is_not_stored(ws):
    deliveries = send_test_alert(ws, make_spec())
    assert [d.ok for d in deliveries] == [True]
    assert orjson.loads((ws.home / "alerts.jsonl").read_bytes())["kind"] == "test"
    assert ws.stores.monitor.list_alerts("toy") == []


def test_alerts_raised_elsewhere_reach_the_same_sinks(ws):
    alert = raise_alerts(ws, make_spec(cooldown_hours=0), make_report(**BAD)).raised[0]
    (ws.home / "alerts.jsonl").unlink()
    assert [d.ok for d in notify(ws, make_spec(), alert)] == [True]
    assert orjson.loads((ws.home / "alerts.jsonl").read_bytes())["id"] == alert.id
