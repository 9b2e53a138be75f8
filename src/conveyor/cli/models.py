"""`conveyor train | hpo run | hpo show | gate | promote | rollback | history`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from conveyor.cli.context import EXIT_BLOCKED, get

hpo_app = typer.Typer(
    name="hpo",
    help="Hyperparameter search with Optuna: studies kept in the workspace, resumable.",
    no_args_is_help=True,
)


def train(ctx: typer.Context) -> None:
    """Train the baselines and the candidates on the newest accepted batches; register the
    winner."""
    from conveyor.training.service import train_model

    c = get(ctx, existing=True)
    outcome = train_model(c.ws, c.spec, reason="manual", progress=c.progress())
    v = outcome.version
    c.emit(
        {"model": v.model, "version": v.version, "metrics": outcome.metrics},
        f"registered {v.model} v{v.version} ({outcome.metrics['winner']})",
    )


@hpo_app.command("run")
def hpo_run(
    ctx: typer.Context,
    trials: Annotated[int | None, typer.Option(help="Trials the study should hold.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Wall-clock budget in seconds.")] = None,
    jobs: Annotated[int | None, typer.Option(help="Trials run in parallel processes.")] = None,
    study: Annotated[str | None, typer.Option(help="Study name (resumed if it exists).")] = None,
) -> None:
    """Search the model's parameters on the training window; resume a study of that name."""
    from conveyor.training.service import tune_model

    c = get(ctx, existing=True)
    result = tune_model(
        c.ws,
        c.spec,
        trials=trials,
        timeout_s=timeout,
        jobs=jobs,
        study=study,
        progress=c.progress(),
    )
    c.emit(
        result.to_dict(),
        f"study {escape(result.name)}: best {result.metric} {result.best_value:.4f} after "
        f"{len(result.trials)} trials ({result.trials_per_minute:.1f} trials/min this run)",
    )


@hpo_app.command("show")
def hpo_show(ctx: typer.Context) -> None:
    """The workspace's studies: trials and best value."""
    from conveyor.training.hpo import list_studies

    c = get(ctx, existing=True)
    studies = list_studies(c.ws)
    table = Table("study", "model", "trials", "metric", "best")
    for s in studies:
        best = "-" if s["best_value"] is None else f"{s['best_value']:.4f}"
        table.add_row(
            escape(s["study"]), s["model"] or "-", str(s["trials"]), s["metric"] or "-", best
        )
    c.emit(studies, table)


def gate(
    ctx: typer.Context,
    version: Annotated[int, typer.Argument(help="The challenger version.")],
    promote_: Annotated[
        bool, typer.Option("--promote/--no-promote", help="Promote if it passes.")
    ] = True,
) -> None:
    """Compare a challenger with production on the same newest test rows; exit 3 if rejected."""
    from conveyor.pipeline.gate import gate_version

    c = get(ctx, existing=True)
    outcome = gate_version(c.ws, c.spec, version, promote_if_passed=promote_)
    verdict = "promoted" if outcome.promoted else ("passed" if outcome.passed else "rejected")
    reasons = " ".join([*outcome.decision.reasons, *outcome.problems, outcome.conflict or ""])
    c.emit(outcome.to_dict(), f"v{version} {verdict}: {escape(reasons)}")
    if not outcome.passed:
        raise typer.Exit(EXIT_BLOCKED)


def promote_cmd(
    ctx: typer.Context,
    version: Annotated[int, typer.Argument(help="The version to make production.")],
    reason: Annotated[str, typer.Option(help="Why; recorded in the audit log.")],
) -> None:
    """Make a version production by hand (recorded with who, when and why), after loading it
    as the server does and replaying its sample requests; exit 3 if that check fails."""
    from conveyor.pipeline.gate import promote_version

    c = get(ctx, existing=True)
    pointer = promote_version(c.ws, c.spec, version, reason=reason)
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
    from conveyor.registry.service import rollback

    c = get(ctx, existing=True)
    pointer = rollback(c.ws, c.spec.model_name, reason=reason, block=block)
    c.emit(
        {"alias": pointer.alias, "version": pointer.version}, f"production -> v{pointer.version}"
    )


def history(ctx: typer.Context) -> None:
    """The production alias's history: every move with who, when and why."""
    from conveyor.registry.service import production_history

    c = get(ctx, existing=True)
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
    app.add_typer(hpo_app, name="hpo")
    app.command()(gate)
    app.command("promote")(promote_cmd)
    app.command("rollback")(rollback_cmd)
    app.command()(history)
