"""Trigger policy: decide from recorded state whether a continuous-training cycle should run.

The policy itself is the pure function :func:`decide`: it reads a :class:`Signals` snapshot
(new data since the last training, the monitoring windows since then, the schedule, the recent
cycles) and the project's ``triggers`` section, and returns what fired and what was held back.
:func:`collect_signals` builds the snapshot from the stores; the benchmark feeds :func:`decide`
directly, so the policy it measures is the one the controller runs.

Triggers
--------
``manual``
    Asked for (``conveyor run --force``); never held back.
``bootstrap``
    Accepted data and no model in production yet: a first model, or, after the gate refused
    one, again with each new accepted batch; never held back.
``new_data``
    At least ``new_data_rows`` rows or ``new_data_batches`` accepted batches since the newest
    batch any registered version was trained on.
``drift``
    The share of drifted features is at least ``drift_share`` in each of the last
    ``consecutive_windows`` monitoring windows since the last training. The share counts the
    features the window judged (enough values, ``drift.min_rows``) and leaves out those the
    project declares seasonal (``drift.seasonal``); a window judging none does not count.
``decay``
    The live metric (realised when a window has ``min_labels`` labels, else the label-free
    estimate if ``use_estimate``) is under ``metric_floor`` or behind the production version's
    test score by more than ``metric_margin`` (relative, see :func:`decay_bar`; on by default),
    in each of the last ``consecutive_windows`` windows.
``schedule``
    ``schedule_cron`` (UTC) or every ``schedule_every_hours``; ticks missed while nothing ran
    are caught up by one cycle, not one per tick.

Drift and decay must have held for ``debounce_minutes`` (from the first window of the streak)
before they fire. Triggers other than manual and bootstrap are held back during
``cooldown_hours`` after a training cycle and once ``max_runs_per_day`` training cycles ran in
the last 24 hours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cronsim import CronSim

from conveyor.core.entities import BatchStatus, MonitorReport, PipelineRun
from conveyor.data.drift import drift_share
from conveyor.evaluation.metrics import higher_is_better, primary_metric
from conveyor.registry.service import PRODUCTION, find_alias_version
from conveyor.spec import ProjectSpec, TriggerSpec
from conveyor.workspace import Workspace

MAX_CATCH_UP_TICKS = 100_000


@dataclass(frozen=True, slots=True)
class Trigger:
    """A reason to run a cycle, with the evidence that fired it."""

    name: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Window:
    """The signals of one monitoring window."""

    end: datetime
    drift_share: float | None = None
    live: float | None = None
    labels: int = 0
    estimated: float | None = None
    report: str | None = None


@dataclass(frozen=True, slots=True)
class Signals:
    """Everything the trigger policy looks at, as of ``now``."""

    now: datetime
    has_model: bool
    new_rows: int = 0
    new_batches: tuple[int, ...] = ()
    metric: str = "roc_auc"
    training_score: float | None = None
    windows: tuple[Window, ...] = ()
    trained_at: tuple[datetime, ...] = ()
    schedule_after: datetime | None = None
    manual: bool = False
    serving: bool = True
    """Whether a version is in production: until one is, new data restarts the bootstrap."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What fired (and starts a cycle) and what fired but was held back, and why."""

    fired: tuple[Trigger, ...]
    held: tuple[Trigger, ...] = ()
    held_because: str | None = None

    @property
    def name(self) -> str:
        return ",".join(t.name for t in self.fired) or "none"


def decide(policy: TriggerSpec, s: Signals) -> Decision:
    """Apply the trigger ``policy`` to the signals ``s`` (pure: no I/O, no clock)."""
    always: list[Trigger] = [Trigger("manual")] if s.manual else []
    if (not s.has_model or not s.serving) and s.new_batches:
        always.append(Trigger("bootstrap", {"batches": len(s.new_batches), "rows": s.new_rows}))
    held = _new_data(policy, s) + _drift(policy, s) + _decay(policy, s) + _schedule(policy, s)
    if not held:
        return Decision(fired=tuple(always))
    reason = _hold_reason(policy, s)
    if reason is None:
        return Decision(fired=tuple(always + held))
    return Decision(fired=tuple(always), held=tuple(held), held_because=reason)


def _new_data(p: TriggerSpec, s: Signals) -> list[Trigger]:
    if not s.has_model or not s.new_batches:
        return []
    rows = p.new_data_rows is not None and s.new_rows >= p.new_data_rows
    batches = p.new_data_batches is not None and len(s.new_batches) >= p.new_data_batches
    if not (rows or batches):
        return []
    evidence = {"rows": s.new_rows, "batches": list(s.new_batches)}
    evidence |= {"threshold_rows": p.new_data_rows, "threshold_batches": p.new_data_batches}
    return [Trigger("new_data", evidence)]


def _streak(p: TriggerSpec, s: Signals, hit: list[bool]) -> list[Window] | None:
    """The last ``consecutive_windows`` windows if all hit and the debounce has passed."""
    k = p.consecutive_windows
    if len(hit) < k or not all(hit[-k:]):
        return None
    start = len(hit) - k
    while start > 0 and hit[start - 1]:
        start -= 1
    if s.windows[start].end + timedelta(minutes=p.debounce_minutes) > s.now:
        return None
    return list(s.windows[-k:])


def _drift(p: TriggerSpec, s: Signals) -> list[Trigger]:
    if p.drift_share is None or not s.has_model:
        return []
    threshold = p.drift_share
    hit = [w.drift_share is not None and w.drift_share >= threshold for w in s.windows]
    streak = _streak(p, s, hit)
    if streak is None:
        return []
    evidence = {
        "share_drifted": [w.drift_share for w in streak],
        "threshold": threshold,
        "windows": len(streak),
        "reports": [w.report for w in streak if w.report],
    }
    return [Trigger("drift", evidence)]


def window_metric(p: TriggerSpec, w: Window) -> tuple[float | None, str]:
    """The metric the policy reads for ``w`` and where it comes from."""
    if w.live is not None and w.labels >= p.min_labels:
        return w.live, "realised"
    if p.use_estimate and w.estimated is not None:
        return w.estimated, "estimated"
    return None, "none"


def decay_bar(metric: str, test_score: float, margin: float) -> float:
    """The live value of ``metric`` beyond which the model has decayed from ``test_score``.

    The margin is relative, so one default suits every label: an error metric (``rmse``,
    ``mae``, ``log_loss``, ``brier``) may grow by the share ``margin`` of the test score, a
    score bounded by 1 (``roc_auc``, ``accuracy``, ``r2``) may lose ``margin`` points.

    Examples
    --------
    >>> decay_bar("rmse", 150.0, 0.1), decay_bar("roc_auc", 0.7, 0.1)
    (165.0, 0.6)
    """
    if higher_is_better(metric):
        return round(test_score - margin, 12)
    return round(test_score * (1.0 + margin), 12)


def _decay(p: TriggerSpec, s: Signals) -> list[Trigger]:
    if not s.has_model or (p.metric_floor is None and p.metric_margin is None):
        return []
    up = higher_is_better(s.metric)
    bar: float | None = None
    if p.metric_floor is not None:
        bar = p.metric_floor
    if p.metric_margin is not None and s.training_score is not None:
        by_margin = decay_bar(s.metric, s.training_score, p.metric_margin)
        bar = by_margin if bar is None else (max(bar, by_margin) if up else min(bar, by_margin))
    if bar is None:
        return []
    values = [window_metric(p, w) for w in s.windows]
    hit = [v is not None and (v < bar if up else v > bar) for v, _ in values]
    streak = _streak(p, s, hit)
    if streak is None:
        return []
    last, source = values[-1]
    evidence = {
        "live_metric": last,
        "source": source,
        "metric": s.metric,
        "bar": bar,
        "floor": p.metric_floor,
        "training_score": s.training_score,
        "margin": p.metric_margin,
        "margin_kind": "points" if up else "relative",
        "windows": len(streak),
        "reports": [w.report for w in streak if w.report],
    }
    return [Trigger("decay", evidence)]


def schedule_ticks(p: TriggerSpec, after: datetime, now: datetime) -> tuple[datetime | None, int]:
    """The newest schedule tick in ``(after, now]`` and how many ticks fell in that span."""
    if p.schedule_cron is not None:
        latest, count = None, 0
        for tick in CronSim(p.schedule_cron, after):
            if tick > now or count >= MAX_CATCH_UP_TICKS:
                break
            latest, count = tick, count + 1
        return latest, count
    if p.schedule_every_hours is not None:
        every = timedelta(hours=p.schedule_every_hours)
        count = int((now - after) / every)
        return (after + count * every, count) if count > 0 else (None, 0)
    return None, 0


def _schedule(p: TriggerSpec, s: Signals) -> list[Trigger]:
    if s.schedule_after is None:
        return []
    tick, count = schedule_ticks(p, s.schedule_after, s.now)
    if tick is None:
        return []
    evidence = {
        "tick": tick.isoformat(),
        "missed": count - 1,
        "cron": p.schedule_cron,
        "every_hours": p.schedule_every_hours,
    }
    return [Trigger("schedule", evidence)]


def _hold_reason(p: TriggerSpec, s: Signals) -> str | None:
    if p.cooldown_hours > 0 and s.trained_at:
        until = s.trained_at[-1] + timedelta(hours=p.cooldown_hours)
        if until > s.now:
            return f"cooling down until {until.isoformat()}"
    if p.max_runs_per_day is not None:
        recent = [t for t in s.trained_at if t > s.now - timedelta(days=1)]
        if len(recent) >= p.max_runs_per_day:
            return f"{len(recent)} training cycles in the last 24 hours (max {p.max_runs_per_day})"
    return None


# -- signals from the stores ------------------------------------------------------------------


def last_trained_seq(ws: Workspace, spec: ProjectSpec) -> int:
    """The newest batch any registered version of the project was trained on (0 if none)."""
    versions = ws.stores.models.list_model_versions(spec.model_name)
    seqs = [max(v.lineage.get("dataset_seqs") or [0]) for v in versions]
    return max(seqs, default=0)


def _window(report: MonitorReport, seasonal: Sequence[str] = ()) -> Window:
    """A report's signals; its drift share counts judged features outside ``seasonal``."""
    stats = report.stats
    share = drift_share(stats["drift"], seasonal) if stats.get("drift") else None
    live = stats.get("live") or {}
    estimated = (stats.get("estimated") or {}).get("metric")
    return Window(
        end=report.window_end,
        drift_share=None if share is None else float(share),
        live=None if live.get("metric") is None else float(live["metric"]),
        labels=int(live.get("labels") or 0),
        estimated=None if estimated is None else float(estimated),
        report=report.id,
    )


def trained(run: PipelineRun) -> bool:
    """Whether the cycle ``run`` trained a model (or started to)."""
    return "train" in run.steps or bool(run.evidence.get("trained"))


def _schedule_tick(run: PipelineRun) -> datetime | None:
    """The schedule tick a cycle consumed (fired or held back), if any."""
    for evidence in (run.evidence, run.evidence.get("held") or {}):
        tick = (evidence.get("schedule") or {}).get("tick")
        if tick:
            return datetime.fromisoformat(tick)
    return None


def collect_signals(
    ws: Workspace, spec: ProjectSpec, *, now: datetime, manual: bool = False
) -> Signals:
    """Read the trigger signals of ``spec``'s project from the stores as of ``now``."""
    since = last_trained_seq(ws, spec)
    new = ws.stores.datasets.list_dataset_versions(
        spec.project, status=BatchStatus.ACCEPTED, after_seq=since
    )
    runs = ws.stores.pipeline.list_pipeline_runs(spec.project)
    trained_at = tuple(r.started_at for r in runs if trained(r))
    production = find_alias_version(ws, spec.model_name, PRODUCTION)
    reports = [
        r
        for r in ws.stores.monitor.list_monitor_reports(spec.project)
        if r.model_version is None or r.model_version == production
    ]
    if trained_at:
        reports = [r for r in reports if r.window_end > trained_at[-1]]
    metric = spec.gate.metric or primary_metric(spec.task)
    training_score = None
    if production is not None:
        test = ws.stores.models.get_model_version(spec.model_name, production).metrics.get("test")
        value = (test or {}).get(metric)
        training_score = None if value is None else float(value)
    ticks = [tick for r in runs if (tick := _schedule_tick(r)) is not None]
    schedule_after = max(ticks) if ticks else (runs[0].started_at if runs else None)
    return Signals(
        now=now,
        has_model=since > 0,
        new_rows=sum(v.row_count for v in new),
        new_batches=tuple(v.seq for v in new),
        metric=metric,
        training_score=training_score,
        windows=tuple(_window(r, spec.drift.seasonal) for r in reports),
        trained_at=trained_at,
        schedule_after=schedule_after,
        manual=manual,
        serving=production is not None,
    )


def evaluate_triggers(
    ws: Workspace, spec: ProjectSpec, *, manual: bool = False, now: datetime
) -> list[Trigger]:
    """Every trigger that fires now and is not held back by cool-down or the daily maximum."""
    return list(decide(spec.triggers, collect_signals(ws, spec, now=now, manual=manual)).fired)


def describe(triggers: Sequence[Trigger]) -> str:
    return ",".join(t.name for t in triggers) or "none"
