"""`conveyor monitor | watch | run | agent | demo`."""

from __future__ import annotations

import signal
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from conveyor.cli.context import EXIT_BLOCKED, EXIT_ERROR, err, get

if TYPE_CHECKING:
    from conveyor.pipeline.agent import Agent, TickReport


def monitor_cmd(
    ctx: typer.Context,
    since: Annotated[
        datetime | None, typer.Option(help="Window start (UTC); default: the last report's end.")
    ] = None,
    until: Annotated[datetime | None, typer.Option(help="Window end (UTC); default: now.")] = None,
    per_day: Annotated[
        bool | None, typer.Option("--per-day/--one-window", help="One window per UTC day.")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Write the monitoring history as HTML here; no new job."),
    ] = None,
) -> None:
    """Drift, prediction drift, bias, realised and estimated performance; raises alerts.

    With ``--report`` it only reads: the workspace must exist.
    """
    from conveyor.monitoring.service import monitor, write_monitoring_report

    c = get(ctx, existing=report is not None)
    if report is not None:
        path = write_monitoring_report(c.ws, c.spec, report, since=since)
        c.emit({"report": str(path)}, f"report: {path}")
        return
    outcome = monitor(
        c.ws, c.spec, since=since, until=until, per_day=per_day, progress=c.progress()
    )
    stats = outcome.report.stats
    drift = (stats.get("drift") or {}).get("summary", {})
    live, est = stats.get("live") or {}, stats.get("estimated") or {}
    c.emit(
        {
            "report": outcome.report.id,
            "reports": [r.id for r in outcome.reports],
            "stats": stats,
            "alerts": [{"id": a.id, "kind": a.kind, "message": a.message} for a in outcome.alerts],
            "suppressed": outcome.suppressed,
        },
        f"{len(outcome.reports)} report(s); last window {stats.get('rows', 0):,} predictions; "
        f"drifted: {', '.join(drift.get('drifted_features', [])) or 'none'}; live "
        f"{live.get('metric_name', 'metric')}: {live.get('metric', 'n/a')} over "
        f"{live.get('labels', 0)} labels; estimated: {est.get('metric', 'n/a')}",
    )
    if not c.json:
        for alert in outcome.alerts:
            c.emit(None, f"[yellow]alert[/yellow] {alert.id} {escape(alert.message)}")
        if stats.get("html"):
            c.emit(None, f"report: {stats['html']}")


def watch(ctx: typer.Context) -> None:
    """Check the current release against the version it replaced; roll back if worse."""
    from conveyor.pipeline.watch import watch_release

    c = get(ctx)
    outcome = watch_release(c.ws, c.spec)
    c.emit(
        {
            "status": outcome.status,
            "version": outcome.version,
            "previous": outcome.previous,
            "moved_to": outcome.moved_to,
            "evidence": outcome.evidence,
        },
        f"release v{outcome.version}: {outcome.status}"
        + _judged_on(outcome.evidence)
        + (f", production moved to v{outcome.moved_to}" if outcome.rolled_back else ""),
    )


def _judged_on(evidence: dict[str, Any] | None) -> str:
    """The labels a verdict counted against those it needed, and its interval."""
    if not evidence or "need" not in evidence:
        return ""
    text = f" ({evidence['labels']} of {evidence['need']['labels']} labels needed"
    low, high = evidence.get("interval") or (None, None)
    if low is not None and high is not None:
        text += f"; difference interval [{low:+.3f}, {high:+.3f}]"
    return text + ")"


def run(
    ctx: typer.Context,
    sources: Annotated[list[Path] | None, typer.Argument(help="Batches to ingest first.")] = None,
    manual: Annotated[
        bool, typer.Option("--force", help="Train even if no trigger fires.")
    ] = False,
) -> None:
    """One continuous-training cycle (for cron): ingest, evaluate triggers, train, gate, promote.

    A cycle stopped or crashed after its triggers fired is resumed; cached steps are not redone.
    Exits 3 when the cycle ended blocked (the gate refused the challenger, or production moved
    meanwhile) or when no model is served yet and this cycle served none; 1 when it failed.
    """
    from conveyor.pipeline.cycle import cycle_verdict, run_cycle

    c = get(ctx)
    stop = _StopOnSignal()
    with stop:
        outcome = run_cycle(
            c.ws,
            c.spec,
            sources=sources or [],
            manual=manual,
            progress=c.progress(),
            should_stop=stop.requested,
        )
    verdict = cycle_verdict(c.ws, c.spec, outcome)
    c.emit(
        {
            "id": outcome.run.id,
            "trigger": outcome.run.trigger,
            "status": outcome.run.status,
            "evidence": outcome.run.evidence,
            "steps": outcome.steps,
            "blocked_because": verdict.reason if verdict and verdict.blocked else None,
        },
        f"cycle {outcome.run.id}: {outcome.run.status} (trigger: {outcome.run.trigger})",
    )
    if verdict is not None:
        err.print(f"[yellow]{escape(verdict.reason)}[/yellow]")
        raise typer.Exit(EXIT_BLOCKED if verdict.blocked else EXIT_ERROR)


class _StopOnSignal:
    """SIGTERM/SIGINT ask for a clean stop between steps; a second one interrupts at once."""

    def __init__(self, on_stop: Agent | None = None) -> None:
        self.count = 0
        self.agent = on_stop
        self._previous: dict[int, object] = {}

    def requested(self) -> bool:
        return self.count > 0

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.agent is not None:
            self.agent.request_stop()
        elif self.count > 1:
            raise KeyboardInterrupt(f"signal {signum}: abandoning the current step")

    def __enter__(self) -> _StopOnSignal:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def agent(
    ctx: typer.Context,
    landing: Annotated[
        Path | None, typer.Option(help="Folder where batches land (csv or parquet files).")
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between ticks.", min=0.01)] = 60.0,
    monitor_every: Annotated[
        float, typer.Option(help="Seconds between monitoring windows; 0 turns monitoring off.")
    ] = 3600.0,
    no_watch: Annotated[
        bool, typer.Option("--no-watch", help="Skip the post-release watch.")
    ] = False,
    max_ticks: Annotated[
        int | None, typer.Option(help="Stop after this many ticks (default: run until stopped).")
    ] = None,
    lease_s: Annotated[
        float | None,
        typer.Option(
            "--lease-s",
            help="Seconds the project's lease lives unrenewed: after a crash, another agent "
            "takes over once it expires (default 120, at least 1).",
        ),
    ] = None,
) -> None:
    """The long-running controller: monitoring, watch, landed batches, triggers and cycles.

    SIGTERM or SIGINT finishes the current step, records the cycle as stopped (the next run
    resumes it), releases the lease and exits 0; a second signal abandons the step at once.
    """
    from conveyor.pipeline.agent import Agent, AgentConfig
    from conveyor.pipeline.cycle import LEASE_TTL_S

    c = get(ctx)
    config = AgentConfig(
        landing=landing,
        interval_s=interval,
        monitor_every_s=monitor_every or None,
        watch=not no_watch,
        lease_ttl_s=LEASE_TTL_S if lease_s is None else lease_s,
    )
    controller = Agent(c.ws, c.spec, config, progress=c.progress())

    def emit(report: TickReport) -> None:
        if c.json:
            c.emit(report.to_dict())

    with _StopOnSignal(controller):
        ticks = controller.run(max_ticks=max_ticks, on_tick=emit)
    if not c.json:
        c.emit(None, f"agent stopped after {ticks} tick(s)")


def demo(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Where to write report.html and summary.json.")] = Path(
        "conveyor-demo"
    ),
    weeks: Annotated[int, typer.Option(help="Weeks of 2013 to replay.", min=6, max=52)] = 52,
) -> None:
    """Replay 2013's New York flights week by week through the whole line."""
    from conveyor.demo.runner import run_demo  # the demo extra is optional

    c = get(ctx)
    run_demo(out, weeks=weeks, console_json=c.json)


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor_cmd)
    app.command()(watch)
    app.command()(run)
    app.command()(agent)
    app.command()(demo)
