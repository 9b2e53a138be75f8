"""Monitoring: drift of served inputs, prediction bias and live performance from feedback."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd

from conveyor.core.clock import new_id, utcnow
from conveyor.core.entities import Alert, AlertId, AlertSeverity, MonitorReport
from conveyor.core.schema import Schema
from conveyor.data.drift import compute_drift
from conveyor.data.profiles import profile_frame
from conveyor.data.service import project_schema
from conveyor.evaluation.metrics import evaluate, primary_metric
from conveyor.monitoring.report import write_monitor_report
from conveyor.registry.service import PRODUCTION, find_alias_version, get_version
from conveyor.serving.feedback import join_feedback
from conveyor.serving.predlog import INPUT_PREFIX, compact_predictions, read_predictions
from conveyor.spec import ProjectSpec
from conveyor.workspace import Workspace


@dataclass(frozen=True, slots=True)
class MonitorOutcome:
    """A monitoring window's report and the alerts it raised."""

    report: MonitorReport
    alerts: tuple[Alert, ...]


def served_inputs(predictions: pd.DataFrame) -> pd.DataFrame:
    """The logged model inputs of ``predictions`` as a frame with the feature names."""
    cols = [c for c in predictions.columns if c.startswith(INPUT_PREFIX)]
    return predictions[cols].rename(columns=lambda c: c[len(INPUT_PREFIX) :])


def reference_of(ws: Workspace, model: str, version: int) -> dict[str, Any]:
    """The training reference profile stored with a model version."""
    digest = get_version(ws, model, version).lineage.get("reference_profile")
    return orjson.loads(ws.stores.artifacts.get_bytes(digest)) if digest else {}


def monitor(
    ws: Workspace,
    spec: ProjectSpec,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    write_html: bool = True,
) -> MonitorOutcome:
    """Compute one monitoring window (default: since the previous report) and raise alerts.

    Feature drift compares served inputs with the reference profile of the production version
    (PSI and Jensen-Shannon per feature); bias is the mean prediction minus the label mean of the
    rows whose labels arrived; live performance is the project's metrics on those rows. The
    window's HTML report is written under the project's ``reports`` directory and every alert
    links to it.
    """
    model = spec.model_name
    previous = ws.stores.monitor.list_monitor_reports(spec.project)
    start = since or (previous[-1].window_end if previous else None)
    end = until or utcnow()
    pred_dir = ws.project_dir(spec.project, "predictions")
    compact_predictions(pred_dir)
    preds = read_predictions(pred_dir, since=start, until=end)
    production = find_alias_version(ws, model, PRODUCTION)
    stats: dict[str, Any] = {"rows": len(preds), "production": production}
    reference: dict[str, Any] = {}
    current: dict[str, Any] = {}
    if len(preds) and production is not None:
        schema = project_schema(ws, spec)
        features = Schema(columns=tuple(schema.features))
        reference = reference_of(ws, model, production)
        current = profile_frame(served_inputs(preds), features, reference=reference)
        stats["drift"] = compute_drift(
            reference, current, features=features.names, psi_threshold=spec.monitoring.psi_threshold
        )
        stats["prediction_mean"] = float(preds["score"].mean())
        stats["versions"] = {
            str(k): int(v) for k, v in preds["model_version"].value_counts().items()
        }
    joined = join_feedback(
        pred_dir, ws.project_dir(spec.project, "feedback"), since=start, until=end
    )
    labelled = joined[joined["label"].notna()] if len(joined) else joined
    if len(labelled):
        stats["live"] = _live(spec, labelled)
    stats["feedback_unknown_ids"] = len(joined.attrs.get("unknown_ids", []))
    report_id = new_id("mr_")
    html = ws.project_dir(spec.project, "reports") / f"monitor-{report_id}.html"
    if write_html:
        stats["html"] = str(html)
    report = MonitorReport(
        id=report_id,
        project=spec.project,
        model_version=production,
        window_start=start or (preds["ts"].min() if len(preds) else end),
        window_end=end,
        created_at=utcnow(),
        stats=stats,
    )
    ws.stores.monitor.add_monitor_report(report)
    alerts = tuple(_raise_alerts(ws, spec, report))
    if write_html:
        write_monitor_report(html, report, reference=reference, current=current, alerts=alerts)
    return MonitorOutcome(report=report, alerts=alerts)


def _live(spec: ProjectSpec, rows: pd.DataFrame) -> dict[str, Any]:
    y = pd.to_numeric(rows["label"], errors="coerce").to_numpy(dtype=np.float64)
    score = rows["score"].to_numpy(dtype=np.float64)
    metrics = evaluate(spec.task, y, score)
    by_version = {
        str(v): evaluate(spec.task, y[mask], score[mask])
        for v in rows["model_version"].unique()
        if (mask := (rows["model_version"] == v).to_numpy()).sum() >= 2
    }
    name = primary_metric(spec.task)
    return {
        "metric_name": name,
        "metric": metrics.get(name),
        "labels": len(rows),
        "metrics": metrics,
        "by_version": by_version,
        "bias": float(score.mean() - y.mean()),
    }


def _raise_alerts(ws: Workspace, spec: ProjectSpec, report: MonitorReport) -> list[Alert]:
    m, stats, found = spec.monitoring, report.stats, []
    drifted = (stats.get("drift") or {}).get("summary", {}).get("drifted_features") or []
    if drifted:
        found.append(
            (
                "drift",
                AlertSeverity.WARNING,
                f"{len(drifted)} feature(s) drifted (PSI > {m.psi_threshold}): "
                f"{', '.join(drifted)}.",
            )
        )
    live = stats.get("live") or {}
    if live.get("labels", 0) >= m.min_labels:
        if abs(live["bias"]) > m.bias_threshold:
            found.append(
                (
                    "bias",
                    AlertSeverity.WARNING,
                    f"Prediction bias {live['bias']:+.3f} (mean prediction minus label "
                    f"mean) exceeds ±{m.bias_threshold}.",
                )
            )
        metric = live.get("metric")
        if m.metric_floor is not None and metric is not None and metric < m.metric_floor:
            found.append(
                (
                    "decay",
                    AlertSeverity.CRITICAL,
                    f"Live {live['metric_name']} {metric:.3f} is under the floor "
                    f"{m.metric_floor} over {live['labels']} labels.",
                )
            )
    alerts = []
    for kind, severity, message in found:
        alert = Alert(
            id=AlertId(new_id("al_")),
            project=spec.project,
            kind=kind,
            severity=severity,
            message=message,
            created_at=utcnow(),
            evidence={"report": report.id},
            report=report.stats.get("html") or report.id,
        )
        ws.stores.monitor.add_alert(alert)
        alerts.append(alert)
    return alerts
