"""`conveyor quarantine list | show | release | revalidate`: batches that failed validation, and
the way out (after fixing `conveyor.yaml`, `revalidate --all` accepts those that pass now)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from conveyor.cli.context import Context, get
from conveyor.core.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from conveyor.core.entities import DatasetVersion

quarantine_app = typer.Typer(
    name="quarantine",
    help="Quarantined batches: list, inspect, release after a schema change or by override.",
    no_args_is_help=True,
)

BatchId = Annotated[str, typer.Argument(help="The dataset version id (see `quarantine list`).")]


@quarantine_app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """Every quarantined batch with its errors."""
    from conveyor.core.entities import BatchStatus

    c = get(ctx, existing=True)
    batches = c.ws.stores.datasets.list_dataset_versions(
        c.spec.project, status=BatchStatus.QUARANTINED
    )
    rows = [_summary(v) for v in batches]
    if c.json:
        c.emit(rows)
        return
    table = Table("batch", "rows", "created", "errors")
    table.add_column("id", no_wrap=True, min_width=max((len(r["id"]) for r in rows), default=2))
    for r in rows:
        table.add_row(str(r["seq"]), f"{r['rows']:,}", r["created_at"][:16], r["errors"], r["id"])
    c.emit(None, table if rows else "no quarantined batches")


@quarantine_app.command("show")
def show_cmd(ctx: typer.Context, batch_id: BatchId) -> None:
    """One batch's validation report and status history."""
    from conveyor.core.schema import ValidationReport

    c = get(ctx, existing=True)
    version = _get(c, batch_id)
    report = ValidationReport.from_dict(version.report)
    history = list(version.report.get("status_changes", []))
    if c.json:
        c.emit({**_summary(version), "report": report.to_dict(), "status_changes": history})
        return
    c.emit(None, f"batch {version.seq} {version.status}  {version.row_count:,} rows  {version.id}")
    c.emit(None, f"[dim]source: {escape(version.source)}[/dim]")
    for a in report.anomalies:
        c.emit(None, f"  {a.severity}: {escape(a.message)}")
    for change in history:
        c.emit(None, f"  {change['at'][:16]} {change['from']} -> {change['to']}: {change['note']}")


@quarantine_app.command("release")
def release_cmd(
    ctx: typer.Context,
    batch_id: BatchId,
    reason: Annotated[
        str | None,
        typer.Option(help="Accept as is by a recorded override; without it, re-validate."),
    ] = None,
) -> None:
    """Accept a batch if it passes the current schema now, or by an explicit override."""
    from conveyor.data.service import release_batch

    c = get(ctx, existing=True)
    outcome = release_batch(c.ws, c.spec, batch_id, reason=reason)
    how = "by override" if outcome.overridden else "after re-validation"
    c.emit(
        {**_summary(outcome.version), "overridden": outcome.overridden},
        f"[green]released[/green] batch {outcome.version.seq} {how}: "
        f"{escape(outcome.report.summary())}",
    )


@quarantine_app.command("revalidate")
def revalidate_cmd(
    ctx: typer.Context,
    batch_ids: Annotated[
        list[str] | None, typer.Argument(help="Dataset version ids (see `quarantine list`).")
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every quarantined batch of the project.")
    ] = False,
) -> None:
    """Validate quarantined batches again against the current spec and schema; accept those
    that pass. Exit 3 if one still fails."""
    from conveyor.cli.context import EXIT_BLOCKED
    from conveyor.data.service import revalidate_batches

    c = get(ctx, existing=True)
    if all_ == bool(batch_ids):
        raise InvalidInputError(
            "`conveyor quarantine revalidate` takes batch ids or --all, one of the two. "
            f"Got {'both' if all_ else 'neither'}."
        )
    outcomes = revalidate_batches(c.ws, c.spec, None if all_ else batch_ids)
    rows = [
        {**_summary(o.version), "schema_version": o.schema_version, "report": o.report.to_dict()}
        for o in outcomes
    ]
    if c.json:
        c.emit(rows)
    else:
        for o in outcomes:
            colour = "green" if o.accepted else "red"
            c.emit(
                None,
                f"batch {o.version.seq} [{colour}]{o.version.status}[/{colour}] against schema "
                f"v{o.schema_version}: {escape(o.report.summary())}",
            )
        if not outcomes:
            c.emit(None, "no quarantined batches")
    if any(not o.accepted for o in outcomes):
        raise typer.Exit(EXIT_BLOCKED)


def register(app: typer.Typer) -> None:
    app.add_typer(quarantine_app, name="quarantine")


def _get(c: Context, batch_id: str) -> DatasetVersion:
    from conveyor.core.entities import DatasetVersionId

    version = c.ws.stores.datasets.get_dataset_version(DatasetVersionId(batch_id))
    if version.project != c.spec.project:
        raise NotFoundError(f"Dataset version {batch_id!r} is not a batch of '{c.spec.project}'.")
    return version


def _summary(v: DatasetVersion) -> dict[str, Any]:
    from conveyor.core.schema import ValidationReport

    report = ValidationReport.from_dict(v.report)
    return {
        "id": v.id,
        "seq": v.seq,
        "status": str(v.status),
        "rows": v.row_count,
        "created_at": v.created_at.isoformat(),
        "source": v.source,
        "errors": "; ".join(sorted({a.kind for a in report.errors})),
    }
