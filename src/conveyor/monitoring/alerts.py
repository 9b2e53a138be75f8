"""Alert rules over monitoring reports, de-duplication with a cool-down, acknowledgements.

Rules: the built-in ones of ``monitoring`` (drift over ``psi_threshold``, bias over
``bias_threshold``, live metric under ``metric_floor``) and every ``alerts.thresholds`` entry,
each over one metric of :func:`alert_metrics`. An alert is keyed by its kind and model version;
while one with the same key was raised less than ``alerts.cooldown_hours`` ago, the next is
suppressed (counted, not stored, not sent). Acknowledgements are appended to
``<project>/alerts/acks.jsonl`` in one ``os.write`` each.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from conveyor.alerting.links import link_of
from conveyor.alerting.service import build_sinks, notify, raise_alert
from conveyor.alerting.sinks import AlertSink, Delivery, deliver
from conveyor.core.clock import new_id, utcnow
from conveyor.core.entities import Alert, AlertId, AlertSeverity, MonitorReport
from conveyor.core.errors import InvalidInputError, NotFoundError
from conveyor.spec import ProjectSpec
from conveyor.workspace import Workspace


@dataclass(frozen=True, slots=True)
class AlertCandidate:
    """An alert a rule found, before de-duplication."""

    kind: str
    severity: AlertSeverity
    message: str
    evidence: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RaisedAlerts:
    """What :func:`raise_alerts` did: alerts stored and sent, and those held back."""

    raised: tuple[Alert, ...]
    suppressed: tuple[AlertCandidate, ...]
    deliveries: Mapping[str, tuple[Delivery, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AlertView:
    """A stored alert with its acknowledgement, if any, and its link
    (:func:`~conveyor.alerting.links.link_of`)."""

    alert: Alert
    acked_by: str | None = None
    acked_at: str | None = None

    @property
    def link(self) -> str:
        """The report path, URL or command that opens the alert's evidence."""
        return link_of(self.alert)


def _get(stats: Mapping[str, Any], *path: str) -> Any:
    value: Any = stats
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def alert_metrics(stats: Mapping[str, Any], *, min_labels: int = 1) -> dict[str, float | None]:
    """The metrics thresholds can name, read from one report's ``stats``.

    Label-based ones (``bias``, ``live_metric``) are ``None`` under ``min_labels`` labels.
    """
    labels = int(_get(stats, "live", "labels") or 0)
    enough = labels >= min_labels
    values = {
        "share_drifted": _get(stats, "drift", "summary", "share_drifted"),
        "max_psi": _get(stats, "drift", "summary", "max_psi"),
        "prediction_psi": _get(stats, "prediction_drift", "psi"),
        "bias": _get(stats, "live", "bias") if enough else None,
        "live_metric": _get(stats, "live", "metric") if enough else None,
        "estimated_metric": _get(stats, "estimated", "metric"),
        "missing_share": _get(stats, "quality", "max_missing_share"),
        "unseen_share": _get(stats, "quality", "max_unseen_share"),
        "rejected_share": _get(stats, "serving", "rejected_share"),
        "error_rate": _get(stats, "serving", "error_rate"),
        "latency_p95_ms": _get(stats, "latency", "p95_ms"),
    }
    return {
        k: float(v) if isinstance(v, int | float) and v == v else None for k, v in values.items()
    }


def find_candidates(spec: ProjectSpec, report: MonitorReport) -> list[AlertCandidate]:
    """Every rule of ``spec`` that ``report`` breaks."""
    m, stats = spec.monitoring, report.stats
    base = {
        "report": report.id,
        "model_version": report.model_version,
        "window_start": report.window_start.isoformat(),
        "window_end": report.window_end.isoformat(),
    }
    found: list[AlertCandidate] = []
    drifted = _get(stats, "drift", "summary", "drifted_features") or []
    if drifted:
        found.append(
            AlertCandidate(
                "drift",
                AlertSeverity.WARNING,
                f"{len(drifted)} feature(s) drifted (PSI > {m.psi_threshold}) on "
                f"v{report.model_version}: {', '.join(drifted)}.",
                {**base, "features": list(drifted)},
            )
        )
    live = _get(stats, "live") or {}
    if live.get("labels", 0) >= m.min_labels:
        if abs(live["bias"]) > m.bias_threshold:
            found.append(
                AlertCandidate(
                    "bias",
                    AlertSeverity.WARNING,
                    f"Prediction bias {live['bias']:+.3f} (mean prediction minus label "
                    f"mean) of v{report.model_version} exceeds ±{m.bias_threshold}.",
                    {**base, "bias": live["bias"], "labels": live["labels"]},
                )
            )
        metric = live.get("metric")
        if m.metric_floor is not None and metric is not None and metric < m.metric_floor:
            found.append(
                AlertCandidate(
                    "decay",
                    AlertSeverity.CRITICAL,
                    f"Live {live['metric_name']} {metric:.3f} of v{report.model_version} is "
                    f"under the floor {m.metric_floor} over {live['labels']} labels.",
                    {**base, "metric": metric, "floor": m.metric_floor},
                )
            )
    values = alert_metrics(stats, min_labels=m.min_labels)
    for rule in spec.alerts.thresholds:
        value = values[rule.metric]
        if value is None:
            continue
        low = rule.min is not None and value < rule.min
        high = rule.max is not None and value > rule.max
        if low or high:
            bound = f"under the minimum {rule.min}" if low else f"over the maximum {rule.max}"
            found.append(
                AlertCandidate(
                    f"threshold:{rule.metric}",
                    AlertSeverity(rule.severity),
                    f"{rule.metric} {value:.4g} of v{report.model_version} is {bound}.",
                    {
                        **base,
                        "metric": rule.metric,
                        "value": value,
                        "min": rule.min,
                        "max": rule.max,
                    },
                )  # fmt: skip
            )
    return found


def raise_alerts(
    ws: Workspace,
    spec: ProjectSpec,
    report: MonitorReport,
    *,
    sinks: Sequence[AlertSink] | None = None,
    now: datetime | None = None,
) -> RaisedAlerts:
    """Store and send the alerts ``report`` raises, minus those within their cool-down.

    Each alert's ``report`` is its link (:func:`~conveyor.alerting.links.alert_link`): the
    window's HTML report when one was written, else the command that writes the history page
    from the window on.
    """
    now = now or utcnow()
    cooldown = timedelta(hours=spec.alerts.cooldown_hours)
    recent = {
        (a.kind, a.evidence.get("model_version"))
        for a in ws.stores.monitor.list_alerts(spec.project)
        if cooldown and a.created_at >= now - cooldown
    }
    sinks = build_sinks(ws, spec) if sinks is None else sinks
    raised, suppressed = [], []
    deliveries: dict[str, tuple[Delivery, ...]] = {}
    for c in find_candidates(spec, report):
        key = (c.kind, c.evidence.get("model_version"))
        if key in recent:
            suppressed.append(c)
            continue
        recent.add(key)
        done = raise_alert(
            ws,
            spec,
            kind=c.kind,
            message=c.message,
            evidence=c.evidence,
            severity=c.severity,
            page=report.stats.get("html"),
            sinks=sinks,
            now=now,
        )
        raised.append(done.alert)
        deliveries[done.alert.id] = tuple(done.deliveries)
    return RaisedAlerts(tuple(raised), tuple(suppressed), deliveries)


def _acks_path(ws: Workspace, project: str) -> Any:
    return ws.project_dir(project, "alerts") / "acks.jsonl"


def read_acks(ws: Workspace, project: str) -> dict[str, dict[str, Any]]:
    """Acknowledgements by alert id (the first one of an alert counts)."""
    path = _acks_path(ws, project)
    acks: dict[str, dict[str, Any]] = {}
    if path.exists():
        data = path.read_bytes()
        for line in data[: data.rfind(b"\n") + 1].splitlines():
            if line:
                row = orjson.loads(line)
                acks.setdefault(row["alert"], row)
    return acks


def list_alert_views(
    ws: Workspace, project: str, *, kind: str | None = None, include_acked: bool = True
) -> list[AlertView]:
    """Stored alerts of ``project``, oldest first, with their acknowledgements."""
    acks = read_acks(ws, project)
    views = [
        AlertView(a, acks.get(a.id, {}).get("by"), acks.get(a.id, {}).get("at"))
        for a in ws.stores.monitor.list_alerts(project, kind=kind)
    ]
    return [v for v in views if include_acked or v.acked_by is None]


def ack_alert(ws: Workspace, project: str, alert_id: str, *, by: str, note: str = "") -> AlertView:
    """Acknowledge an alert; acknowledging twice keeps the first.

    Raises
    ------
    NotFoundError
        If ``project`` has no alert ``alert_id``.
    InvalidInputError
        If ``by`` is empty.
    """
    if not by.strip():
        raise InvalidInputError("An acknowledgement needs who gives it ('by'). Got ''.")
    alerts = {str(a.id): a for a in ws.stores.monitor.list_alerts(project)}
    if alert_id not in alerts:
        raise NotFoundError(f"Project {project!r} has no alert {alert_id!r}.")
    existing = read_acks(ws, project).get(alert_id)
    if existing is None:
        existing = {"alert": alert_id, "by": by, "at": utcnow().isoformat(), "note": note}
        fd = os.open(_acks_path(ws, project), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, orjson.dumps(existing, option=orjson.OPT_APPEND_NEWLINE))
        finally:
            os.close(fd)
    return AlertView(alerts[alert_id], existing["by"], existing["at"])


def send_test_alert(ws: Workspace, spec: ProjectSpec) -> list[Delivery]:
    """Send a test alert (not stored) to every configured sink and report each delivery.

    Raises
    ------
    ConfigError
        If a configured sink cannot be built (a refused webhook URL).
    """
    alert = Alert(
        id=AlertId(new_id("al_test_")),
        project=spec.project,
        kind="test",
        severity=AlertSeverity.INFO,
        message=f"Test alert of project {spec.project!r}.",
        created_at=utcnow(),
    )
    return deliver(build_sinks(ws, spec, strict=True), alert)


__all__ = [
    "AlertCandidate",
    "AlertView",
    "RaisedAlerts",
    "ack_alert",
    "alert_metrics",
    "build_sinks",
    "find_candidates",
    "list_alert_views",
    "notify",
    "raise_alerts",
    "read_acks",
    "send_test_alert",
]
