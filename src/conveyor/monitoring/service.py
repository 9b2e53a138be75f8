"""Monitoring jobs: drift, prediction drift, bias, realised and estimated performance, quality.

A job covers ``[since, until)`` as one window or one window per UTC day (``monitoring.window:
day``). Windows are keyed by event time when the project has a timestamp column: each logged
prediction counts at the time its request's ``timestamp`` input says (arrival time when the
input is missing or not a time), so a replay or backfill of 2013 lands in 2013, not in the
minutes it ran in. Projects without a timestamp column key by arrival time. By default a job
starts where the previous report ended and ends after the newest prediction (event time) or now
(arrival time); per-day windows of an event-time job are the days that hold predictions.

For every window it stores one :class:`~conveyor.core.entities.MonitorReport` per model version
that served in it, plus one for the production version even when it served nothing; the
production version's report of a window is stored last, so the newest report is always
production's. Each report is checked against the alert rules
(:mod:`conveyor.monitoring.alerts`), and the job's HTML report is written under the project's
``reports`` directory; every alert links to it (see :mod:`conveyor.alerting.links`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
import pandas as pd

from conveyor.core.clock import as_utc, new_id, utcnow
from conveyor.core.entities import Alert, MonitorReport
from conveyor.core.errors import InvalidInputError
from conveyor.core.labels import Task
from conveyor.core.schema import Schema
from conveyor.core.signature import Signature, encode_frame
from conveyor.data.service import project_schema
from conveyor.monitoring.alerts import build_sinks, raise_alerts, read_acks
from conveyor.monitoring.cbpe import Calibration, fit_calibration
from conveyor.monitoring.jobs import (
    busy_day_windows,
    day_windows,
    event_times,
    prediction_profile,
    typed_inputs,
    window_stats,
)
from conveyor.monitoring.report import (
    latest_per_window,
    write_monitor_report,
    write_overview_report,
)
from conveyor.monitoring.scrape import read_counters, window_counters
from conveyor.registry.service import (
    PRODUCTION,
    find_alias_version,
    get_version,
    production_history,
)
from conveyor.serving.feedback import join_feedback, read_feedback_table, task_truth
from conveyor.serving.predlog import INPUT_PREFIX, compact_predictions, read_predictions
from conveyor.serving.scoring import version_labels
from conveyor.spec import ProjectSpec
from conveyor.training.service import load_version, test_rows
from conveyor.workspace import Workspace

Progress = Callable[[str], None]
TimeKey = Literal["event", "arrival"]
"""What monitoring windows are keyed by: event time or arrival time."""


@dataclass(frozen=True, slots=True)
class MonitorOutcome:
    """What a monitoring job stored and raised.

    ``report`` is the production version's report of the last window; ``reports`` holds every
    report of the job in the order stored.
    """

    report: MonitorReport
    alerts: tuple[Alert, ...]
    reports: tuple[MonitorReport, ...] = ()
    suppressed: int = 0
    deliveries: dict[str, Any] = field(default_factory=dict)


def served_inputs(predictions: pd.DataFrame) -> pd.DataFrame:
    """The logged model inputs of ``predictions`` as a frame with the feature names."""
    cols = [c for c in predictions.columns if c.startswith(INPUT_PREFIX)]
    return predictions[cols].rename(columns=lambda c: c[len(INPUT_PREFIX) :])


def reference_of(ws: Workspace, model: str, version: int) -> dict[str, Any]:
    """The training reference profile stored with a model version."""
    digest = get_version(ws, model, version).lineage.get("reference_profile")
    return orjson.loads(ws.stores.artifacts.get_bytes(digest)) if digest else {}


def score_reference_of(ws: Workspace, spec: ProjectSpec, version: int) -> dict[str, Any] | None:
    """The profile of a version's predictions on its held-out test rows (computed once,
    cached): of its scores, or of a multiclass model's predicted class and class
    probabilities (see :func:`~conveyor.monitoring.jobs.prediction_profile`).

    ``None`` when the version's test rows cannot be rebuilt.
    """
    mv = get_version(ws, spec.model_name, version)
    codec = Signature.from_dict(mv.signature).labels
    kind = "classes" if codec.task is Task.MULTICLASS else "scores"
    cache = ws.project_dir(spec.project, "monitoring") / f"{kind}-{mv.artifact[-24:]}.json"
    if cache.exists():
        cached: dict[str, Any] = orjson.loads(cache.read_bytes())
        return cached
    try:
        rows = test_rows(ws, spec, mv)
    except Exception:  # noqa: BLE001 - a version without lineage simply has no score reference
        return None
    model = load_version(ws, spec.model_name, version)
    raw = np.asarray(model.predict_encoded(encode_frame(rows, model.signature)), np.float64)
    profile = prediction_profile(codec, raw)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
    tmp.write_bytes(orjson.dumps(profile))
    os.replace(tmp, cache)
    return profile


def monitor(
    ws: Workspace,
    spec: ProjectSpec,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    per_day: bool | None = None,
    write_html: bool = True,
    progress: Progress | None = None,
) -> MonitorOutcome:
    """Run a monitoring job over ``[since, until)``; store its reports and raise alerts.

    Parameters
    ----------
    ws, spec : Workspace, ProjectSpec
        Where the logs live and the project's monitoring and alert settings.
    since, until : datetime, optional
        The job's range, in event time when the project has a timestamp column (else arrival
        time); by default from the end of the previous report to just after the newest
        prediction (event time) or to now (arrival time).
    per_day : bool, optional
        One window per UTC day (with event time, per day that holds predictions); by default
        as ``monitoring.window`` says.
    write_html : bool
        Write the job's HTML report (alerts link to it; otherwise to the report id).
    progress : callable, optional
        Called with a line of text as the job advances.

    Returns
    -------
    MonitorOutcome
    """
    say = progress or (lambda _msg: None)
    previous = ws.stores.monitor.list_monitor_reports(spec.project)
    start = as_utc(since) if since else (previous[-1].window_end if previous else None)
    end = as_utc(until) if until else None
    if start is not None and end is not None and start > end:
        raise InvalidInputError(
            f"A monitoring window must not start after it ends. Got {start.isoformat()} to "
            f"{end.isoformat()} instead."
        )
    job = _read_job(ws, spec, start, end, say)
    end = job.end
    per_day = spec.monitoring.window == "day" if per_day is None else per_day
    if not per_day:
        windows = []
    elif job.time_key == "event":
        windows = busy_day_windows(job.predictions["ts"], job.start, end)
    else:
        windows = day_windows(job.start, end)
    windows = windows or [(job.start, end)]
    html = ws.project_dir(spec.project, "reports") / f"monitor-{new_id('job_')}.html"
    serving = _serving_window(spec, previous)
    sinks = build_sinks(ws, spec)
    reports: list[MonitorReport] = []
    alerts: list[Alert] = []
    suppressed = 0
    deliveries: dict[str, Any] = {}
    profiles: dict[str, dict[str, Any]] = {}
    for w_start, w_end in windows:
        preds = job.predictions
        in_window = (preds["ts"] >= pd.Timestamp(w_start)) & (preds["ts"] < pd.Timestamp(w_end))
        for version in job.versions or [None]:
            stats, profiles_of = _window_report(spec, job, in_window, version)
            stats["window"] = "day" if per_day else "range"
            stats["time"] = _time_stats(spec, job, in_window, version)
            if version == job.production and serving and (w_start, w_end) == windows[-1]:
                stats["serving"] = serving
            if write_html:
                stats["html"] = str(html)
            report = MonitorReport(
                id=new_id("mr_"),
                project=spec.project,
                model_version=version,
                window_start=w_start,
                window_end=w_end,
                created_at=utcnow(),
                stats=stats,
            )
            ws.stores.monitor.add_monitor_report(report)
            reports.append(report)
            profiles[report.id] = profiles_of
            raised = raise_alerts(ws, spec, report, sinks=sinks)
            alerts.extend(raised.raised)
            suppressed += len(raised.suppressed)
            deliveries.update(raised.deliveries)
        say(f"window {w_start:%Y-%m-%d %H:%M} – {w_end:%Y-%m-%d %H:%M}: {in_window.sum():,} rows")
    last = reports[-1]
    if write_html:
        write_monitor_report(
            html,
            last,
            reference=job.context.get(last.model_version or 0, {}).get("reference", {}),
            current=profiles[last.id],
            alerts=alerts,
            window_reports=[r for r in reports if r.window_start == last.window_start],
            reports=reports,
        )
        say(f"wrote {html}")
    return MonitorOutcome(last, tuple(alerts), tuple(reports), suppressed, deliveries)


@dataclass(frozen=True, slots=True)
class _Job:
    """What a job read: predictions with their truth, typed inputs and per-version context.

    ``predictions["ts"]`` is the time windows are keyed by (see :func:`keyed_predictions`) and
    ``predictions["arrival"]`` the time each was logged.
    """

    start: datetime
    end: datetime
    time_key: TimeKey
    predictions: pd.DataFrame
    inputs: pd.DataFrame
    features: Schema
    production: int | None
    versions: list[int | None]
    context: dict[int, dict[str, Any]]


def keyed_predictions(
    pred_dir: Path, spec: ProjectSpec, start: datetime | None, end: datetime | None
) -> tuple[pd.DataFrame, TimeKey]:
    """The logged predictions of ``[start, end)`` with ``ts`` the time monitoring keys them by.

    With a project timestamp column, ``ts`` is each prediction's event time (its logged
    ``timestamp`` input; its arrival time when that is missing or not a time) and the whole log
    is read, since arrival says nothing about event time; otherwise ``ts`` is the arrival time
    and only the log days of the range are read. ``arrival`` keeps the time each was logged.

    Returns
    -------
    (pandas.DataFrame, {"event", "arrival"})
        The raw-input predictions (see :func:`~conveyor.serving.predlog.read_predictions`)
        ordered by ``ts``, and what ``ts`` is.
    """
    if spec.timestamp is None:
        preds = read_predictions(pred_dir, since=start, until=end, raw_inputs=True)
        preds["arrival"] = preds["ts"]
        return preds, "arrival"
    preds = read_predictions(pred_dir, raw_inputs=True)
    preds["arrival"] = preds["ts"]
    events = event_times(preds, spec.timestamp)
    preds["ts"] = events.where(events.notna(), preds["arrival"])
    keep = pd.Series(True, index=preds.index)
    if start is not None:
        keep &= preds["ts"] >= pd.Timestamp(start)
    if end is not None:
        keep &= preds["ts"] < pd.Timestamp(end)
    preds = preds[keep].sort_values(["ts", "request_id"], kind="stable")
    preds["event_time"] = events[keep].notna()
    return preds.reset_index(drop=True), "event"


def _read_job(
    ws: Workspace, spec: ProjectSpec, start: datetime | None, end: datetime | None, say: Progress
) -> _Job:
    pred_dir = ws.project_dir(spec.project, "predictions")
    compact_predictions(pred_dir)
    preds, time_key = keyed_predictions(pred_dir, spec, start, end)
    say(f"read {len(preds):,} predictions (windows by {time_key} time)")
    if end is None:
        # An event-time job ends after its newest event, so the next one starts there: a replay
        # monitored in steps continues where it stopped instead of jumping to today.
        newest = preds["ts"].max() if time_key == "event" and len(preds) else None
        end = (
            (newest + pd.Timedelta(microseconds=1)).to_pydatetime()
            if newest is not None
            else utcnow()
        )
        end = max(end, start) if start is not None else end
    if start is None:
        start = as_utc(preds["ts"].min().to_pydatetime()) if len(preds) else end
    arrival = (
        (
            as_utc(preds["arrival"].min().to_pydatetime()),
            as_utc((preds["arrival"].max() + pd.Timedelta(microseconds=1)).to_pydatetime()),
        )
        if len(preds)
        else (start, end)
    )
    labels = _labels(pred_dir, ws.project_dir(spec.project, "feedback"), *arrival)
    preds["truth"] = preds["request_id"].map(labels) if len(labels) else np.nan
    say(f"joined {int(preds['truth'].notna().sum()):,} labels")
    production = find_alias_version(ws, spec.model_name, PRODUCTION)
    served = sorted(int(v) for v in preds["model_version"].dropna().unique())
    # Production's report of a window is stored last, so the newest report is production's.
    versions: list[int | None] = [v for v in served if v != production]
    if production is not None:
        versions.append(production)
    schema = project_schema(ws, spec) if len(preds) else None
    features = Schema(columns=tuple(schema.features)) if schema is not None else Schema(())
    inputs = typed_inputs(preds, features.columns) if len(preds) else pd.DataFrame()
    preds = preds.drop(columns=["inputs"])  # parsed; no need to copy the text on every filter
    say(f"parsed the inputs of {len(preds):,} predictions")
    context = {
        v: _version_context(ws, spec, v, preds) for v in versions if v is not None and len(preds)
    }
    return _Job(
        as_utc(start), as_utc(end), time_key, preds, inputs, features, production, versions, context
    )


def _window_report(
    spec: ProjectSpec, job: _Job, in_window: pd.Series, version: int | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    preds = job.predictions
    rows = preds[in_window & (preds["model_version"] == version)]
    labelled = rows.loc[rows["truth"].notna(), ["score", "proba", "truth"]]
    ctx = job.context.get(version, {}) if version is not None else {}
    stats, current = window_stats(
        task=spec.task,
        version=version,
        predictions=rows,
        inputs=job.inputs.loc[rows.index] if len(rows) else job.inputs.iloc[:0],
        labelled=labelled.rename(columns={"truth": "label"}),
        features=job.features,
        reference=ctx.get("reference", {}),
        score_reference=ctx.get("score_reference"),
        calibration=ctx.get("calibration"),
        psi_threshold=spec.monitoring.psi_threshold,
        drift_spec=spec.drift,
        min_estimate_rows=spec.monitoring.min_estimate_rows,
        labels=ctx.get("labels"),
    )
    stats["production"] = job.production
    return stats, current


def _time_stats(
    spec: ProjectSpec, job: _Job, in_window: pd.Series, version: int | None
) -> dict[str, Any]:
    """What a window's times are: event or arrival, and how many rows had no event time."""
    stats: dict[str, Any] = {"key": job.time_key, "column": spec.timestamp}
    if job.time_key == "event":
        rows = job.predictions[in_window & (job.predictions["model_version"] == version)]
        stats["arrival_rows"] = int((~rows["event_time"]).sum()) if len(rows) else 0
    return stats


def _labels(pred_dir: Path, fb_dir: Path, start: datetime, end: datetime) -> pd.Series:
    """Ground truth by request id for the predictions logged (arrived) in ``[start, end)``.

    When every feedback item names its request id, the label recorded last for an id wins
    (the rule of :func:`~conveyor.serving.feedback.join_feedback`), read straight from the
    feedback log; entity-and-time feedback goes through ``join_feedback`` itself.
    """
    table = read_feedback_table(fb_dir)
    if not table.num_rows:
        return pd.Series(dtype=np.float64)
    if table["request_id"].null_count:
        joined = join_feedback(pred_dir, fb_dir, since=start, until=end)
        return joined.set_index("request_id")["label"] if len(joined) else pd.Series(dtype=float)
    frame = table.select(["request_id", "label", "seq"]).to_pandas()
    frame = frame.sort_values("seq").drop_duplicates("request_id", keep="last")
    values = [orjson.loads(v) for v in frame["label"]]
    numeric = all(isinstance(v, int | float) for v in values)
    parsed = [float(v) for v in values] if numeric else [str(v) for v in values]
    return pd.Series(parsed, index=frame["request_id"].to_numpy())


def _version_context(
    ws: Workspace, spec: ProjectSpec, version: int, preds: pd.DataFrame
) -> dict[str, Any]:
    """What a version's windows are compared with: its reference profiles, its classes and a
    calibration (binary, fitted on label codes)."""
    reference = reference_of(ws, spec.model_name, version)
    score_reference = score_reference_of(ws, spec, version) if reference else None
    labels = version_labels(ws, spec)(version)
    calibration: Calibration | None = None
    mine = preds[(preds["model_version"] == version) & preds["truth"].notna()]
    if labels.task is Task.BINARY and len(mine) >= spec.monitoring.min_labels:
        truth, valid = task_truth(labels, mine["truth"])
        if valid.all() and len(set(truth.tolist())) == 2:
            calibration = fit_calibration(mine["score"].to_numpy(np.float64), truth)
    return {
        "reference": reference,
        "score_reference": score_reference,
        "calibration": calibration,
        "labels": labels,
    }


def _serving_window(spec: ProjectSpec, previous: list[MonitorReport]) -> dict[str, Any] | None:
    url = spec.monitoring.metrics_url
    if url is None:
        return None
    snapshot = read_counters(url, model=spec.model_name)
    last = next((r.stats["serving"] for r in reversed(previous) if r.stats.get("serving")), None)
    return window_counters(snapshot, (last or {}).get("snapshot"))


def production_reports(
    ws: Workspace, project: str, *, since: datetime | None = None
) -> list[MonitorReport]:
    """The reports of the version that was in production in each window, oldest first
    (the newest one per window when a window was monitored again)."""
    return [
        r
        for r in latest_per_window(ws.stores.monitor.list_monitor_reports(project, since=since))
        if r.model_version is not None and r.model_version == r.stats.get("production")
    ]


def write_monitoring_report(
    ws: Workspace, spec: ProjectSpec, path: Path | None = None, *, since: datetime | None = None
) -> Path:
    """Write the project's monitoring history (drift over time, performance per version,
    alerts, promotions and rollbacks) as one HTML page; default ``reports/monitoring.html``."""
    path = path or ws.project_dir(spec.project, "reports") / "monitoring.html"
    reports = ws.stores.monitor.list_monitor_reports(spec.project, since=since)
    alerts = ws.stores.monitor.list_alerts(spec.project)
    if since is not None:
        alerts = [a for a in alerts if a.created_at >= as_utc(since)]
    acks = {k: v.get("by", "") for k, v in read_acks(ws, spec.project).items()}
    history = production_history(ws, spec.model_name)
    return write_overview_report(
        path, project=spec.project, reports=reports, alerts=alerts, history=history, acked=acks
    )
