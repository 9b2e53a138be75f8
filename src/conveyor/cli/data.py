"""`conveyor init` and `conveyor ingest`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from conveyor.cli.context import EXIT_BLOCKED, get
from conveyor.core.errors import AlreadyExistsError
from conveyor.data.drafting import draft_spec
from conveyor.data.service import ingest_batch, read_source


def init(
    ctx: typer.Context,
    source: Annotated[Path, typer.Option("--from", help="A data sample (CSV or Parquet).")],
    project: Annotated[str | None, typer.Option(help="Project name (default: file stem).")] = None,
    label: Annotated[str | None, typer.Option(help="Label column (default: guessed).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing spec.")] = False,
) -> None:
    """Draft conveyor.yaml from a data sample: task, label, time column, schema."""
    c = get(ctx)
    if c.spec_path.exists() and not force:
        raise AlreadyExistsError(f"'{c.spec_path}' exists; pass --force to overwrite it.")
    frame, _ = read_source(source)
    spec = draft_spec(frame, project=project or source.name.split(".")[0], label=label)
    tmp = c.spec_path.with_suffix(".yaml.tmp")
    tmp.write_text(spec.to_yaml(), encoding="utf-8")
    tmp.replace(c.spec_path)
    c.emit(
        spec.model_dump(mode="json"),
        f"wrote {c.spec_path}: task {spec.task}, label '{spec.label}', "
        f"timestamp '{spec.timestamp}'",
    )


def ingest(
    ctx: typer.Context,
    sources: Annotated[list[Path], typer.Argument(help="CSV or Parquet batches, in order.")],
) -> None:
    """Validate batches and store them as dataset versions; exit 3 if one is quarantined."""
    c = get(ctx)
    quarantined = False
    results = []
    for source in sources:
        r = ingest_batch(c.ws, c.spec, source, progress=c.progress())
        quarantined |= r.quarantined
        results.append(
            {
                "id": r.version.id,
                "seq": r.version.seq,
                "status": r.version.status,
                "rows": r.version.row_count,
                "created": r.created,
                "report": r.report.to_dict(),
            }
        )
        if not c.json:
            colour = "red" if r.quarantined else "green"
            c.emit(
                None,
                f"batch {r.version.seq} [{colour}]{r.version.status}[/{colour}] "
                f"{r.version.row_count:,} rows  {r.version.id}",
            )
            for a in r.report.anomalies:
                c.emit(None, f"  {a.severity}: {escape(a.message)}")
    if c.json:
        c.emit(results)
    if quarantined:
        raise typer.Exit(EXIT_BLOCKED)


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(ingest)
