"""The HTML report of one monitoring window: drift per feature, distributions, live metrics."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from conveyor.core.entities import Alert, MonitorReport
from conveyor.reports.charts import bar_chart, histogram_pair
from conveyor.reports.html import Report

_MAX_DISTRIBUTIONS = 6


def write_monitor_report(
    path: Path,
    report: MonitorReport,
    *,
    reference: Mapping[str, Any],
    current: Mapping[str, Any],
    alerts: Sequence[Alert] = (),
) -> Path:
    """Render ``report`` with the profiles it compared; write the page atomically."""
    stats = report.stats
    live = stats.get("live") or {}
    drift = (stats.get("drift") or {}).get("features", {})
    page = Report(
        f"Monitoring: {report.project}",
        subtitle=f"window {report.window_start:%Y-%m-%d %H:%M:%S} – "
        f"{report.window_end:%Y-%m-%d %H:%M:%S} UTC, production v{report.model_version}",
    )
    page.add_metrics(
        {
            "predictions": stats.get("rows", 0),
            "labels": live.get("labels", 0),
            f"live {live.get('metric_name', 'metric')}": live.get("metric"),
            "bias": live.get("bias"),
            "drifted features": len(
                (stats.get("drift") or {}).get("summary", {}).get("drifted_features", [])
            ),
            "alerts": len(alerts),
        }
    )
    if alerts:
        page.add_heading("Alerts")
        page.add_table(
            [{"kind": a.kind, "severity": a.severity, "message": a.message} for a in alerts]
        )
    if drift:
        page.add_heading("Drift against the training reference")
        scored = {k: v for k, v in drift.items() if v.get("psi") is not None}
        page.add_chart(
            bar_chart(
                list(scored),
                [v["psi"] for v in scored.values()],
                title="PSI per feature",
                horizontal=True,
                reference=stats["drift"]["summary"].get("psi_threshold"),
            ),
            caption="The dashed line is the drift threshold.",
        )
        page.add_table(
            [
                {
                    "feature": k,
                    "kind": v.get("kind"),
                    "psi": v.get("psi"),
                    "jensen-shannon": v.get("js"),
                    "drifted": v.get("drifted"),
                }
                for k, v in drift.items()
            ]
        )
        worst = sorted(scored, key=lambda k: -scored[k]["psi"])[:_MAX_DISTRIBUTIONS]
        for name in worst:
            svg = _distribution(name, reference, current)
            if svg:
                page.add_chart(svg)
    if live.get("by_version"):
        page.add_heading("Live performance by model version")
        page.add_table([{"version": v, **m} for v, m in live["by_version"].items()])
    page.add_json("stats", stats)
    return page.write(path)


def _distribution(name: str, reference: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    ref = reference.get("columns", {}).get(name, {})
    cur = current.get("columns", {}).get(name, {})
    if "histogram" in ref and "histogram" in cur:
        edges = ref["histogram"]["edges"]
        edges = [-math.inf, *edges[1:-1], math.inf]  # stored JSON has no infinities
        return histogram_pair(
            edges,
            ref["histogram"]["counts"],
            cur["histogram"]["counts"],
            title=name,
            names=("training", "served"),
        )
    if "values" in ref and "values" in cur:
        labels = list(ref["values"])
        return histogram_pair(
            labels,
            [ref["values"][k] for k in labels],
            [cur["values"].get(k, 0) for k in labels],
            title=name,
            names=("training", "served"),
        )
    return ""
