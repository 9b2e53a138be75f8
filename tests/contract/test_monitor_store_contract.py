"""MonitorStore contract: reports by window and alerts by kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conveyor.core.entities import Alert, AlertId, AlertSeverity, MonitorReport
from conveyor.core.errors import AlreadyExistsError
from conveyor.store.sql.monitor_store import SqlMonitorStore

T0 = datetime(2024, 6, 1, tzinfo=UTC)


def _report(n: int, project: str = "churn") -> MonitorReport:
    return MonitorReport(
        id=f"{project}-r{n}",
        project=project,
        model_version=n,
        window_start=T0 + timedelta(days=n),
        window_end=T0 + timedelta(days=n + 1),
        created_at=T0 + timedelta(days=n + 1, hours=1),
        stats={"psi": {"x": 0.1 * n}, "rows": n},
    )


def _alert(n: int, kind: str, project: str = "churn") -> Alert:
    return Alert(
        id=AlertId(f"{project}-a{n}"),
        project=project,
        kind=kind,
        severity=AlertSeverity.WARNING,
        message=f"alert {n}",
        created_at=T0 + timedelta(hours=n),
        evidence={"psi": 0.3},
        report=f"{project}-r{n}",
    )


def test_reports_round_trip_in_window_order(monitor: SqlMonitorStore) -> None:
    for n in (3, 1, 2):
        monitor.add_monitor_report(_report(n))
    monitor.add_monitor_report(_report(1, "fraud"))
    reports = monitor.list_monitor_reports("churn")
    assert [r.id for r in reports] == ["churn-r1", "churn-r2", "churn-r3"]
    assert reports[0] == _report(1)
    assert reports[0].window_start.utcoffset() == timedelta(0)


def test_since_keeps_windows_ending_at_or_after_it(monitor: SqlMonitorStore) -> None:
    for n in (1, 2, 3):
        monitor.add_monitor_report(_report(n))
    since = T0 + timedelta(days=3)
    assert [r.id for r in monitor.list_monitor_reports("churn", since=since)] == [
        "churn-r2",
        "churn-r3",
    ]
    late = T0 + timedelta(days=30)
    assert monitor.list_monitor_reports("churn", since=late) == []


def test_duplicate_ids_are_rejected(monitor: SqlMonitorStore) -> None:
    monitor.add_monitor_report(_report(1))
    monitor.add_alert(_alert(1, "drift"))
    with pytest.raises(AlreadyExistsError, match="'churn-r1'"):
        monitor.add_monitor_report(_report(1))
    with pytest.raises(AlreadyExistsError, match="'churn-a1'"):
        monitor.add_alert(_alert(1, "decay"))
    assert len(monitor.list_alerts("churn")) == 1


def test_alerts_filter_by_kind_oldest_first(monitor: SqlMonitorStore) -> None:
    monitor.add_alert(_alert(2, "drift"))
    monitor.add_alert(_alert(1, "decay"))
    monitor.add_alert(_alert(3, "drift"))
    monitor.add_alert(_alert(4, "drift", "fraud"))
    assert [a.id for a in monitor.list_alerts("churn")] == ["churn-a1", "churn-a2", "churn-a3"]
    assert [a.id for a in monitor.list_alerts("churn", kind="drift")] == ["churn-a2", "churn-a3"]
    stored = monitor.list_alerts("churn", kind="decay")[0]
    assert stored == _alert(1, "decay")
    assert stored.severity is AlertSeverity.WARNING
