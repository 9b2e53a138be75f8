"""`conveyor train | gate | promote | rollback | history`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from conveyor.cli.context import EXIT_BLOCKED, get
from conveyor.pipeline.gate import gate_version
from conveyor.registry.service import production_history, promote, rollback
from conveyor.training.service import train_model


def train(ctx: typer.Context) -> None:
    """Train a baseline and a LightGBM candidate on the newest accepted batches; register it."""
    c = get(ctx)
    outcome = train_model(c.ws, c.spec, reason="manual", progress=c.progress())
    v = outcome.version
    c.emit(
        {"model": v.model, "version": v.version, "metrics": outcome.metrics},
        f"registered {v.model} v{v.version}",
    )


def gate(
    ctx: typer.Context,
    version: Annotated[int, typer.Argument(help="The challenger version.")],
    promote_: Annotated[
        bool, typer.Option("--promote/--no-promote", help="Promote if it passes.")
    ] = True,
) -> None:
    """Compare a challenger with production on the same newest test rows; exit 3 if rejected."""
    c = get(ctx)
    outcome = gate_version(c.ws, c.spec, version, promote_if_passed=promote_)
    verdict = "promoted" if outcome.promoted else ("passed" if outcome.passed else "rejected")
    reasons = " ".join([*outcome.decision.reasons, *outcome.problems])
    c.emit(outcome.to_dict(), f"v{version} {verdict}: {escape(reasons)}")
    if not outcome.passed:
        raise typer.Exit(EXIT_BLOCKED)


def promote_cmd(
    ctx: typer.Context,
    version: Annotated[int, typer.Argument(help="The version to make production.")],
    reason: Annotated[str, typer.Option(help="Why; recorded in the audit log.")],
) -> None:
    """Make a version production by hand (recorded with who, when and why)."""
    c = get(ctx)
    required = c.spec.registry.require_approval
    pointer = promote(c.ws, c.spec.model_name, version, reason=reason, require_approval=required)
    c.emit(
        {"alias": pointer.alias, "version": pointer.version, "revision": pointer.revision},
        f"production -> v{pointer.version}",
    )


def rollback_cmd(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option(help="Why; recorded in the audit log.")] = "manual",
    block: Annotated[bool, typer.Option(help="Never promote the abandoned version again.")] = False,
) -> None:
    """Return production to the previous version in one command."""
    c = get(ctx)
    pointer = rollback(c.ws, c.spec.model_name, reason=reason, block=block)
    c.emit(
        {"alias": pointer.alias, "version": pointer.version}, f"production -> v{pointer.version}"
    )


def history(ctx: typer.Context) -> None:
    """The production alias's history: every move with who, when and why."""
    c = get(ctx)
    events = production_history(c.ws, c.spec.model_name)
    if c.json:
        c.emit(
            [
                {
                    "at": e.at,
                    "action": e.action,
                    "from": e.from_version,
                    "to": e.to_version,
                    "actor": e.actor,
                    "reason": e.reason,
                }
                for e in events
            ]
        )
        return
    table = Table("at", "action", "from", "to", "actor", "reason")
    for e in events:
        table.add_row(
            e.at.strftime("%Y-%m-%d %H:%M:%S"),
            e.action,
            str(e.from_version or "-"),
            str(e.to_version),
            e.actor,
            escape(e.reason),
        )
    c.emit(None, table)


def register(app: typer.Typer) -> None:
    app.command()(train)
    app.command()(gate)
    app.command("promote")(promote_cmd)
    app.command("rollback")(rollback_cmd)
    app.command()(history)
