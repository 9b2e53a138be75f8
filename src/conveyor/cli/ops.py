"""`conveyor monitor | watch | run | demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from conveyor.cli.context import get
from conveyor.monitoring.service import monitor
from conveyor.pipeline.cycle import run_cycle
from conveyor.pipeline.watch import watch_release


def monitor_cmd(ctx: typer.Context) -> None:
    """Drift, bias and live performance since the last report; raises alerts."""
    c = get(ctx)
    outcome = monitor(c.ws, c.spec)
    stats = outcome.report.stats
    drift = (stats.get("drift") or {}).get("summary", {})
    live = stats.get("live") or {}
    c.emit(
        {
            "report": outcome.report.id,
            "stats": stats,
            "alerts": [a.message for a in outcome.alerts],
        },
        f"{stats.get('rows', 0):,} predictions; drifted: "
        f"{', '.join(drift.get('drifted_features', [])) or 'none'}; live "
        f"{live.get('metric_name', 'metric')}: {live.get('metric', 'n/a')} over "
        f"{live.get('labels', 0)} labels",
    )
    for alert in outcome.alerts:
        c.emit(None, f"[yellow]alert[/yellow] {escape(alert.message)}")
    if stats.get("html"):
        c.emit(None, f"report: {stats['html']}")


def watch(ctx: typer.Context) -> None:
    """Check the current release against the version it replaced; roll back if worse."""
    c = get(ctx)
    outcome = watch_release(c.ws, c.spec)
    c.emit(
        {
            "status": outcome.status,
            "version": outcome.version,
            "previous": outcome.previous,
            "evidence": outcome.evidence,
        },
        f"release v{outcome.version}: {outcome.status}",
    )


def run(
    ctx: typer.Context,
    sources: Annotated[list[Path] | None, typer.Argument(help="Batches to ingest first.")] = None,
    manual: Annotated[
        bool, typer.Option("--force", help="Train even if no trigger fires.")
    ] = False,
) -> None:
    """One continuous-training cycle: ingest, evaluate triggers, train, gate, promote."""
    c = get(ctx)
    outcome = run_cycle(c.ws, c.spec, sources=sources or [], manual=manual, progress=c.progress())
    c.emit(
        {
            "id": outcome.run.id,
            "trigger": outcome.run.trigger,
            "status": outcome.run.status,
            "steps": outcome.steps,
        },
        f"cycle {outcome.run.id}: {outcome.run.status} (trigger: {outcome.run.trigger})",
    )


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
    app.command()(demo)
