"""`conveyor init`, `conveyor ingest`, `conveyor data ingest | card | retention`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from conveyor.cli.context import EXIT_BLOCKED, get
from conveyor.core.errors import AlreadyExistsError, InvalidInputError

if TYPE_CHECKING:
    from conveyor.data.sources import Source


class DriftAgainst(StrEnum):
    previous = "previous"
    reference = "reference"


data_app = typer.Typer(
    name="data",
    help="Dataset versions: ingest from files or SQL, data cards, retention.",
    no_args_is_help=True,
)


def init(
    ctx: typer.Context,
    source: Annotated[Path, typer.Option("--from", help="A data sample (CSV or Parquet).")],
    name: Annotated[
        str | None,
        typer.Option("--name", "--project", help="Project name (default: from file and label)."),
    ] = None,
    label: Annotated[
        str | None, typer.Option(help="Label column (default: the column named like one).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing spec.")] = False,
) -> None:
    """Draft conveyor.yaml from a data sample: label, task, time, ids, leaks, windows.

    Exits 2 naming the candidate columns when no single column is named like a label.
    """
    from conveyor.data.drafting import draft_spec
    from conveyor.data.service import read_source

    c = get(ctx)
    if c.spec_path.exists() and not force:
        raise AlreadyExistsError(f"'{c.spec_path}' exists; pass --force to overwrite it.")
    frame, _ = read_source(source)
    draft = draft_spec(frame, project=name, source_name=source.name, label=label)
    spec = draft.spec
    tmp = c.spec_path.with_suffix(".yaml.tmp")
    tmp.write_text(spec.to_yaml(), encoding="utf-8")
    tmp.replace(c.spec_path)
    if c.json:
        c.emit({**spec.model_dump(mode="json"), "notes": draft.notes})
        return
    for note in draft.notes:
        c.emit(None, f"  {escape(note)}")
    c.emit(
        None,
        f"wrote {c.spec_path}: project '{spec.project}', task {spec.task}, label "
        f"'{spec.label}', timestamp '{spec.timestamp}'",
    )


def ingest(
    ctx: typer.Context,
    sources: Annotated[
        list[str] | None,
        typer.Argument(help="CSV or Parquet files, directories or globs, in order."),
    ] = None,
    sql: Annotated[
        str | None, typer.Option("--sql", help="SQLAlchemy URL to read a batch from.")
    ] = None,
    query: Annotated[str | None, typer.Option("--query", help="The SQL query of --sql.")] = None,
    chunk_rows: Annotated[
        int | None,
        typer.Option(help="Rows read at a time; bounds memory on large batches (default 200,000)."),
    ] = None,
) -> None:
    """Validate batches and store them as dataset versions; exit 3 if one is quarantined."""
    from conveyor.data.service import ingest_batch
    from conveyor.data.sources import DEFAULT_CHUNK_ROWS, SqlQuery

    c = get(ctx)
    batches: list[Source] = list(sources or [])
    if (sql is None) != (query is None):
        raise InvalidInputError("--sql and --query go together: give both or neither.")
    if sql is not None and query is not None:
        batches.append(SqlQuery(sql, query))
    if not batches:
        raise InvalidInputError("Nothing to ingest: give files, globs, directories or --sql.")
    quarantined = False
    results = []
    for source in batches:
        r = ingest_batch(
            c.ws,
            c.spec,
            source,
            progress=c.progress(),
            chunk_rows=chunk_rows or DEFAULT_CHUNK_ROWS,
        )
        quarantined |= r.quarantined
        results.append(
            {
                "id": r.version.id,
                "seq": r.version.seq,
                "status": r.version.status,
                "rows": r.version.row_count,
                "created": r.created,
                "source": r.version.source,
                "report": r.report.to_dict(),
            }
        )
        if not c.json:
            colour = "red" if r.quarantined else "green"
            again = "" if r.created else "  (already ingested)"
            c.emit(
                None,
                f"batch {r.version.seq} [{colour}]{r.version.status}[/{colour}] "
                f"{r.version.row_count:,} rows  {r.version.id}{again}",
            )
            for a in r.report.anomalies:
                c.emit(None, f"  {a.severity}: {escape(a.message)}")
    if c.json:
        c.emit(results)
    if quarantined:
        raise typer.Exit(EXIT_BLOCKED)


def card(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Dataset version id or batch number.")],
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML card here.")] = None,
) -> None:
    """A dataset version's data card: source, lineage, schema, profile plots, validation."""
    from conveyor.data.cards import build_data_card, write_data_card_html

    c = get(ctx, existing=True)
    doc = build_data_card(c.ws, c.spec, version)
    if html is not None:
        write_data_card_html(doc, html)
    if c.json:
        c.emit(doc)
        return
    ds = doc["dataset"]
    c.emit(None, f"batch {ds['batch']} {ds['status']}  {ds['rows']:,} rows  {ds['id']}")
    c.emit(None, f"source: {escape(doc['source'])}")
    models = ", ".join(f"{m['model']} v{m['version']}" for m in doc["lineage"]["models"])
    c.emit(None, f"used by: {models or 'no model version'}")
    for a in doc["validation"]["anomalies"]:
        c.emit(None, f"  {a['severity']}: {escape(a['message'])}")
    if html is not None:
        c.emit(None, f"wrote {html}")


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def data_drift(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Batch to check, or the baseline with OTHER.")],
    other: Annotated[str | None, typer.Argument(help="Batch compared with VERSION.")] = None,
    against: Annotated[
        DriftAgainst | None,
        typer.Option(help="Without OTHER: the previous accepted batch or the reference."),
    ] = None,
) -> None:
    """Drift between two batches' stored profiles: PSI, KS, chi-square, JS, Wasserstein."""
    from conveyor.data.drift_history import dataset_drift

    c = get(ctx, existing=True)
    drift = dataset_drift(c.ws, c.spec, version, other, against=against.value if against else None)
    table = Table("feature", "kind", "psi", "ks", "ks p adj", "chi2 p adj", "js", "w/sd", "drift")
    for name, f in drift["features"].items():
        table.add_row(
            escape(name), f["kind"], _num(f["psi"]), _num(f["ks"]),
            _num(f.get("ks_pvalue_adjusted")), _num(f.get("chi2_pvalue_adjusted")),
            _num(f["js"]), _num(f["wasserstein_norm"]),
            "[red]yes[/red]" if f["drifted"] else f.get("reason") or "no",
        )  # fmt: skip
    base, cur = drift["baseline"], drift["current"]
    c.emit(drift, f"batch {cur['seq']} against batch {base['seq']}")
    if not c.json:
        c.emit(None, table)
        s = drift["summary"]
        drifted = ", ".join(s["drifted_features"]) or "none"
        rule = f"decided by {', '.join(s['decide_by'])}; p-values adjusted by {s['adjustment']}"
        c.emit(None, f"drifted: {drifted} ({rule})")


def data_profile(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Dataset version id or batch number.")],
) -> None:
    """A batch's stored profile: counts, nulls, moments, quantiles, distinct ratio, top values."""
    from conveyor.data.drift_history import dataset_profile
    from conveyor.data.profiles import OTHER, without_sketches

    c = get(ctx, existing=True)
    found = dataset_profile(c.ws, c.spec, version)
    profile = without_sketches(found.profile)
    table = Table("column", "kind", "count", "nulls", "mean", "std", "p50", "distinct", "top")
    for name, col in profile["columns"].items():
        top = [k for k in col.get("values", {}) if k != OTHER][:3]
        table.add_row(
            escape(name), col["kind"], f"{col['count']:,}", f"{col['null_count']:,}",
            _num(col.get("mean")), _num(col.get("std")),
            _num((col.get("quantiles") or {}).get("p50")),
            str(col.get("distinct", "-")), escape(", ".join(top)),
        )  # fmt: skip
    c.emit(profile, f"batch {found.seq} {found.status}  {profile['row_count']:,} rows  {found.id}")
    if not c.json:
        c.emit(None, table)


def retention(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")
    ] = False,
) -> None:
    """Delete batches, quarantined data and prediction logs past conveyor.yaml's retention."""
    from conveyor.pipeline.retention import enforce_retention

    c = get(ctx, existing=dry_run)
    report = enforce_retention(c.ws, c.spec, dry_run=dry_run, progress=c.progress())
    if c.json:
        c.emit(report.to_dict())
        return
    verb = "would delete" if dry_run else "deleted"
    for item in report.items:
        state = f"[red]failed: {escape(item.error)}[/red]" if item.error else verb
        c.emit(None, f"{state} {item.kind} {item.name} {item.size_bytes:,} B  {item.reason}")
    for dataset_id, why in report.protected.items():
        c.emit(None, f"[dim]kept {dataset_id}: {escape(why)}[/dim]")
    c.emit(None, f"{verb} {len(report.deleted)} item(s), {report.bytes_freed:,} bytes")


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(ingest)
    app.command()(retention)
    data_app.command("ingest")(ingest)
    data_app.command("card")(card)
    data_app.command("drift")(data_drift)
    data_app.command("profile")(data_profile)
    data_app.command("retention")(retention)
    app.add_typer(data_app, name="data")
