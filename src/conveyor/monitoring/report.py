"""HTML monitoring reports: one job's window in detail, and the project's history over time.

:func:`write_monitor_report` draws one window: drift per feature against the training reference,
the most drifted distributions, every version's figures, data quality, and (when the job had
several windows) drift and performance over its windows. :func:`write_overview_report` draws the
whole history: drift over time per feature as a heatmap, realised and estimated performance over
time per model version with promotions and rollbacks marked, the alerts, and the
promotion/rollback timeline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from conveyor.alerting.links import link_of
from conveyor.core.entities import Alert, AuditEvent, MonitorReport
from conveyor.reports.charts import (
    VersionSeries,
    bar_chart,
    heatmap,
    histogram_pair,
    timeline,
    version_chart,
)
from conveyor.reports.html import Report

_MAX_DISTRIBUTIONS = 6
_MAX_HEATMAP_FEATURES = 30
_MAX_WINDOWS = 90


def write_monitor_report(
    path: Path,
    report: MonitorReport,
    *,
    reference: Mapping[str, Any],
    current: Mapping[str, Any],
    alerts: Sequence[Alert] = (),
    window_reports: Sequence[MonitorReport] = (),
    reports: Sequence[MonitorReport] = (),
) -> Path:
    """Render ``report`` with the profiles it compared; write the page atomically.

    ``window_reports`` are every version's reports of the same window; ``reports`` all reports
    of the job (drawn over time when they span several windows).
    """
    stats = report.stats
    live = stats.get("live") or {}
    estimated = stats.get("estimated") or {}
    drift = (stats.get("drift") or {}).get("features", {})
    page = Report(
        f"Monitoring: {report.project}",
        subtitle=f"window {report.window_start:%Y-%m-%d %H:%M:%S} – "
        f"{report.window_end:%Y-%m-%d %H:%M:%S} UTC{_time_note(stats)}, "
        f"v{report.model_version} (production v{stats.get('production')})",
    )
    page.add_metrics(
        {
            "predictions": stats.get("rows", 0),
            "labels": live.get("labels", 0),
            f"live {live.get('metric_name', 'metric')}": live.get("metric"),
            f"estimated {estimated.get('metric_name', 'metric')}": estimated.get("metric")
            if estimated.get("metric") is not None
            else estimated.get("reason"),
            "estimate 95% range": _range(estimated),
            "bias": live.get("bias"),
            "prediction PSI": (stats.get("prediction_drift") or {}).get("psi"),
            "drifted features": len(
                (stats.get("drift") or {}).get("summary", {}).get("drifted_features", [])
            ),
            "p95 latency ms": (stats.get("latency") or {}).get("p95_ms"),
            "alerts": len(alerts),
        }
    )
    if alerts:
        page.add_heading("Alerts")
        page.add_table(_alert_rows(alerts))
    if len(window_reports) > 1:
        page.add_heading("Model versions in this window")
        page.add_table([_version_row(r) for r in window_reports])
    if drift:
        _add_drift(page, stats, drift, reference, current)
    quality = (stats.get("quality") or {}).get("features", {})
    if quality:
        page.add_heading("Data quality of served inputs")
        page.add_table(
            [
                {
                    "feature": name,
                    "missing share": q.get("missing_share"),
                    "unseen categories": q.get("unseen"),
                    "unseen examples": ", ".join(map(str, (q.get("unseen_values") or {}))),
                }
                for name, q in quality.items()
            ]
        )
    if stats.get("serving"):
        page.add_heading("Serving")
        s = stats["serving"]
        page.add_metrics(
            {
                "requests": s.get("requests"),
                "rejected share": s.get("rejected_share"),
                "error rate": s.get("error_rate"),
                "rejected rows": s.get("rejected_rows"),
            }
        )
    if live.get("metrics"):
        page.add_heading("Live metrics")
        page.add_table([{"metric": k, "value": v} for k, v in live["metrics"].items()])
    windows = {r.window_start for r in reports}
    if len(windows) > 1:
        page.add_heading("Over the job's windows")
        _add_history(page, reports, [])
    page.add_json("stats", stats)
    return page.write(path)


def write_overview_report(
    path: Path,
    *,
    project: str,
    reports: Sequence[MonitorReport],
    alerts: Sequence[Alert],
    history: Sequence[AuditEvent],
    acked: Mapping[str, str] | None = None,
) -> Path:
    """Render the project's monitoring history and write the page atomically."""
    production = [
        r for r in latest_per_window(reports) if r.model_version == r.stats.get("production")
    ]
    page = Report(
        f"Monitoring history: {project}",
        subtitle=f"{len(reports)} reports over {len({r.window_start for r in reports})} windows"
        + (
            f", {reports[0].window_start:%Y-%m-%d} – {reports[-1].window_end:%Y-%m-%d}"
            if reports
            else ""
        ),
    )
    last = production[-1].stats if production else {}
    page.add_metrics(
        {
            "windows": len({r.window_start for r in reports}),
            "versions seen": len({r.model_version for r in reports if r.model_version}),
            "alerts": len(alerts),
            "unacknowledged": sum(1 for a in alerts if a.id not in (acked or {})),
            "promotions": sum(1 for e in history if e.action == "promote"),
            "rollbacks": sum(1 for e in history if e.action == "rollback"),
            "last live metric": (last.get("live") or {}).get("metric"),
            "last estimated metric": (last.get("estimated") or {}).get("metric"),
        }
    )
    _add_history(page, reports, history)
    events = [
        {"at": e.at, "kind": _event_kind(e.action), "label": f"v{e.to_version}"}
        for e in history
        if e.to_version is not None
    ] + [{"at": a.created_at, "kind": "alert", "label": a.kind} for a in alerts[-40:]]
    if events:
        page.add_heading("Promotions, rollbacks and alerts")
        page.add_chart(timeline(events, title="Timeline"))
        page.add_table(
            [
                {
                    "at": e.at,
                    "action": e.action,
                    "from": e.from_version,
                    "to": e.to_version,
                    "actor": e.actor,
                    "reason": e.reason,
                }
                for e in history
            ]
        )
    if alerts:
        page.add_heading("Alerts")
        page.add_table(_alert_rows(alerts[-100:], acked))
    return page.write(path)


def _time_note(stats: Mapping[str, Any]) -> str:
    """How the window's times were read: by event time (which column) or by arrival."""
    time = stats.get("time") or {}
    if time.get("key") == "event":
        late = time.get("arrival_rows") or 0
        return f" by event time ('{time.get('column')}'" + (
            f"; {late:,} rows without it at arrival)" if late else ")"
        )
    return " by arrival time" if time.get("key") == "arrival" else ""


def _event_kind(action: str) -> str:
    return {"promote": "promotion", "rollback": "rollback"}.get(action, action)


def _alert_rows(alerts: Sequence[Alert], acked: Mapping[str, str] | None = None) -> list[Any]:
    rows = []
    for a in alerts:
        row: dict[str, Any] = {
            "at": a.created_at,
            "id": a.id,
            "kind": a.kind,
            "severity": str(a.severity),
            "message": a.message,
            "link": link_of(a),
        }
        if acked is not None:
            row["acknowledged by"] = acked.get(a.id, "")
        rows.append(row)
    return rows


def _range(estimated: Mapping[str, Any]) -> str | None:
    """The estimate's 95% range as text, ``None`` without one."""
    low, high = estimated.get("low"), estimated.get("high")
    return f"{low:.3f} – {high:.3f}" if low is not None and high is not None else None


def _version_row(r: MonitorReport) -> dict[str, Any]:
    s = r.stats
    return {
        "version": r.model_version,
        "production": r.model_version == s.get("production"),
        "predictions": s.get("rows", 0),
        "labels": (s.get("live") or {}).get("labels", 0),
        "live": (s.get("live") or {}).get("metric"),
        "estimated": (s.get("estimated") or {}).get("metric"),
        "estimate 95% range": _range(s.get("estimated") or {}),
        "bias": (s.get("live") or {}).get("bias"),
        "prediction PSI": (s.get("prediction_drift") or {}).get("psi"),
    }


def _add_drift(
    page: Report,
    stats: Mapping[str, Any],
    drift: Mapping[str, Any],
    reference: Mapping[str, Any],
    current: Mapping[str, Any],
) -> None:
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
    extra = sorted({k for v in drift.values() for k in v if k.endswith(("pvalue", "p_value"))})
    page.add_table(
        [
            {
                "feature": k,
                "kind": v.get("kind"),
                "psi": v.get("psi"),
                "jensen-shannon": v.get("js"),
                **{e: v.get(e) for e in extra},
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


def latest_per_window(reports: Sequence[MonitorReport]) -> list[MonitorReport]:
    """The newest report of each (window, version), ordered by window start."""
    latest: dict[tuple[Any, Any, Any], MonitorReport] = {}
    for r in reports:
        latest[(r.window_start, r.window_end, r.model_version)] = r
    return sorted(latest.values(), key=lambda r: r.window_start)


def _add_history(
    page: Report, reports: Sequence[MonitorReport], history: Sequence[AuditEvent]
) -> None:
    reports = latest_per_window(reports)
    production = [r for r in reports if r.model_version == r.stats.get("production")]
    production = production[-_MAX_WINDOWS:]
    psi: dict[str, dict[Any, float]] = {}
    for r in production:
        for name, d in ((r.stats.get("drift") or {}).get("features") or {}).items():
            if d.get("psi") is not None:
                psi.setdefault(name, {})[r.window_start] = float(d["psi"])
    if psi:
        cols = [r.window_start for r in production]
        names = sorted(psi, key=lambda n: -max(psi[n].values()))[:_MAX_HEATMAP_FEATURES]
        grid = np.array([[psi[n].get(c, math.nan) for c in cols] for n in names])
        threshold = next(
            (
                r.stats["drift"]["summary"].get("psi_threshold")
                for r in production
                if r.stats.get("drift")
            ),
            None,
        )
        page.add_heading("Drift over time")
        page.add_chart(
            heatmap(
                names,
                cols,
                grid,
                title="PSI per feature and window",
                value_label="PSI",
                vmax=max(float(np.nanmax(grid)), 2 * (threshold or 0.1)),
            ),
            caption=f"Production version's windows by their start; drift threshold "
            f"{threshold}. Grey: no data.",
        )
    versions, name = _version_series(reports[-_MAX_WINDOWS * 4 :])
    if versions:
        page.add_heading("Performance over time")
        page.add_chart(
            version_chart(
                versions,
                title=f"{name or 'metric'} per model version: realised (labels) and estimated",
                y_label=name,
                markers=_production_moves(production, history),
            ),
            caption="Each window at its start (event time when the project has a timestamp "
            "column). Estimated: label-free expectation from the predicted probabilities; the "
            "band is the range labels drawn from them would land in 95% of the time. Dotted "
            "lines: production moved to that version.",
        )


def _version_series(reports: Sequence[MonitorReport]) -> tuple[list[VersionSeries], str]:
    """Each version's realised and estimated metric per window, and the metric's name."""
    points: dict[int, list[tuple[Any, Any, Any, Any, Any]]] = {}
    name = ""
    for r in reports:
        live, est = r.stats.get("live") or {}, r.stats.get("estimated") or {}
        name = live.get("metric_name") or est.get("metric_name") or name
        if r.model_version is None or (live.get("metric") is None and est.get("metric") is None):
            continue
        points.setdefault(r.model_version, []).append(
            (r.window_start, live.get("metric"), est.get("metric"), est.get("low"), est.get("high"))
        )
    series = [
        VersionSeries(f"v{v}", *(list(column) for column in zip(*rows, strict=True)))
        for v, rows in sorted(points.items())
    ]
    return series, name


def _production_moves(
    production: Sequence[MonitorReport], history: Sequence[AuditEvent]
) -> list[tuple[Any, str, str]]:
    """Where production changed version between windows, placed at the window it changed in.

    Windows are in event time and releases in wall-clock time, so the moves are read from the
    windows themselves; the production history only says whether a move was a rollback.
    """
    rollbacks = {(e.from_version, e.to_version) for e in history if e.action == "rollback"}
    moves = []
    for before, after in zip(production, production[1:], strict=False):
        old, new = before.stats.get("production"), after.stats.get("production")
        if new is not None and new != old:
            kind = "rollback" if (old, new) in rollbacks else "promotion"
            moves.append((after.window_start, f"v{new}", kind))
    return moves


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
