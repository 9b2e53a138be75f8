"""`conveyor schema show | diff | accept`: review and evolve the project's versioned schema.

Validation learns new categories and wider ranges from every accepted batch; what it learned
beyond the newest version is the proposed change that `schema diff --proposed` shows and
`schema accept` (without `--batch`) stores.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from conveyor.cli.context import get
from conveyor.core.errors import InvalidInputError

if TYPE_CHECKING:
    from conveyor.core.schema import ColumnSchema, SchemaRecord
    from conveyor.data.evolution import SchemaDiff

schema_app = typer.Typer(
    name="schema",
    help="The project's schema: show a version, diff versions or a batch, accept a batch.",
    no_args_is_help=True,
)

Batch = Annotated[Path, typer.Option("--batch", help="A CSV or Parquet batch.")]


@schema_app.command("show")
def show_cmd(
    ctx: typer.Context,
    version: Annotated[int | None, typer.Option(help="Schema version (default newest).")] = None,
) -> None:
    """Columns of a schema version: kind, role, nullability, range and categories."""
    from conveyor.data.service import get_schema_record

    c = get(ctx, existing=True)
    record = get_schema_record(c.ws, c.spec, version)
    if c.json:
        c.emit(_record_dict(record))
        return
    table = Table("column", "kind", "role", "nullable", "range / categories")
    for col in record.schema.columns:
        table.add_row(col.name, col.kind, col.role, "yes" if col.nullable else "no", _domain(col))
    c.emit(None, f"schema v{record.version}  {_provenance(record)}")
    c.emit(None, table)


@schema_app.command("diff")
def diff_cmd(
    ctx: typer.Context,
    from_version: Annotated[int | None, typer.Option("--from", help="Base version.")] = None,
    to_version: Annotated[int | None, typer.Option("--to", help="Target version.")] = None,
    batch: Annotated[Path | None, typer.Option("--batch", help="Diff a batch instead.")] = None,
    proposed: Annotated[
        bool, typer.Option("--proposed", help="What the accepted batches propose to add.")
    ] = False,
) -> None:
    """Changes between two versions, how a batch departs from the schema, or the proposal."""
    from conveyor.data.service import (
        diff_batch_schema,
        diff_schema_versions,
        proposed_schema_change,
    )

    c = get(ctx, existing=True)
    chosen = [
        name
        for name, given in (("--to", to_version), ("--batch", batch), ("--proposed", proposed))
        if given not in (None, False)
    ]
    if len(chosen) > 1:
        raise InvalidInputError(
            f"`conveyor schema diff` compares with one of --to, --batch or --proposed. "
            f"Got {' and '.join(chosen)} instead."
        )
    if proposed:
        diff = proposed_schema_change(c.ws, c.spec)
        _emit_diff(c, diff, target="proposed")
        return
    if batch is not None:
        diff = diff_batch_schema(c.ws, c.spec, batch, from_version=from_version)
    else:
        diff = diff_schema_versions(c.ws, c.spec, from_version=from_version, to_version=to_version)
    _emit_diff(c, diff, target=str(batch) if batch is not None else f"v{diff.to_version}")


@schema_app.command("accept")
def accept_cmd(
    ctx: typer.Context,
    batch: Batch | None = None,
    reason: Annotated[str | None, typer.Option(help="Why; stored with the version.")] = None,
) -> None:
    """Store the proposed change (or the schema widened to admit a batch) as the next version."""
    from conveyor.data.service import accept_batch_schema, accept_proposed_schema

    c = get(ctx, existing=True)
    if batch is None:
        record, diff = accept_proposed_schema(c.ws, c.spec, reason=reason)
    else:
        record, diff = accept_batch_schema(c.ws, c.spec, batch, reason=reason)
    if c.json:
        c.emit({"schema": _record_dict(record), "diff": diff.to_dict(), "saved": not diff.is_empty})
        return
    if diff.is_empty:
        what = "no change is proposed" if batch is None else "the batch fits"
        c.emit(None, f"{what} for schema v{record.version}; nothing to accept")
        return
    _emit_diff(c, diff, target=f"v{record.version}")
    c.emit(None, f"[green]saved schema v{record.version}[/green]  {_provenance(record)}")


def register(app: typer.Typer) -> None:
    app.add_typer(schema_app, name="schema")


def _emit_diff(c: Any, diff: SchemaDiff, *, target: str) -> None:
    if c.json:
        c.emit(diff.to_dict())
        return
    head = f"schema v{diff.from_version} -> {escape(target)}"
    if diff.is_empty:
        c.emit(None, f"{head}: no changes")
        return
    table = Table("column", "change", "before", "after")
    for change in diff.changes:
        colour = "red" if change.change in ("kind", "removed") else "yellow"
        before, after = _cell(change.before), _cell(change.after)
        if change.change == "categories":
            before = f"-{change.details['removed']}" if change.details["removed"] else ""
            after = f"+{change.details['added']}"
        table.add_row(change.column, f"[{colour}]{change.change}[/{colour}]", before, after)
    c.emit(None, f"{head}: {len(diff.changes)} changes" + (" (breaking)" * diff.is_breaking))
    c.emit(None, table)


def _cell(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, float | int) for v in value):
        return "[" + ", ".join(f"{v:.6g}" for v in value) + "]"
    return "-" if value is None else escape(str(value))


def _domain(col: ColumnSchema) -> str:
    if col.categories is not None:
        shown = ", ".join(col.categories[:8])
        more = f" (+{len(col.categories) - 8})" if len(col.categories) > 8 else ""
        return escape(f"{{{shown}}}{more}")
    if col.min_value is not None and col.max_value is not None:
        return f"[{col.min_value:.6g}, {col.max_value:.6g}]"
    return ""


def _provenance(record: SchemaRecord) -> str:
    who = record.author or "unknown"
    why = f": {escape(record.reason)}" if record.reason else ""
    return f"[dim]{record.created_at:%Y-%m-%d %H:%M} by {escape(who)}{why}[/dim]"


def _record_dict(record: SchemaRecord) -> dict[str, Any]:
    return {
        **record.schema.to_dict(),
        "created_at": record.created_at.isoformat(),
        "author": record.author,
        "reason": record.reason,
    }
