"""`conveyor runs search | compare`: find tracked runs with a filter and compare them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from conveyor.cli.context import Context, get

if TYPE_CHECKING:
    from conveyor.core.entities import Run
    from conveyor.tracking.compare import Comparison

runs_app = typer.Typer(help="Search and compare tracked runs.", no_args_is_help=True)


@runs_app.command("search")
def search(
    ctx: typer.Context,
    filter_string: Annotated[
        str,
        typer.Argument(metavar="FILTER", help="e.g. \"metrics.auc > 0.8 and params.lr = '0.1'\""),
    ] = "",
    order_by: Annotated[
        list[str] | None,
        typer.Option("--order-by", help="Sort key, e.g. 'metrics.auc DESC'; repeatable."),
    ] = None,
    limit: Annotated[int, typer.Option(help="Runs per page.")] = 50,
    page_token: Annotated[str | None, typer.Option(help="next_page_token of a page.")] = None,
    project: Annotated[
        str | None,
        typer.Option(help="Only this project (default: the spec's, else every project)."),
    ] = None,
) -> None:
    """Find runs whose metrics, params, tags and attributes match FILTER."""
    from conveyor.tracking.search import search_runs

    c = get(ctx, existing=True)
    page = search_runs(
        c.ws,
        filter_string,
        project=project or _spec_project(c),
        order_by=order_by or (),
        limit=limit,
        page_token=page_token,
    )
    data = {"runs": [_run_dict(r) for r in page.runs], "next_page_token": page.next_page_token}
    c.emit(data, _runs_table(page.runs))
    if page.next_page_token and not c.json:
        c.emit(None, f"more: --page-token {page.next_page_token}")


@runs_app.command("compare")
def compare(
    ctx: typer.Context,
    run_ids: Annotated[list[str], typer.Argument(metavar="RUN_ID...", help="Two or more runs.")],
    html: Annotated[
        Path | None, typer.Option(help="Also write an HTML page with a chart per metric.")
    ] = None,
) -> None:
    """Show runs side by side: params (differences marked), latest metrics."""
    from conveyor.tracking.compare import compare_runs, write_comparison_html

    c = get(ctx, existing=True)
    comparison = compare_runs(c.ws, run_ids)
    data: dict[str, Any] = comparison.to_dict()
    if html is not None:
        data["html"] = str(write_comparison_html(comparison, html))
    c.emit(data, _comparison_table(comparison))
    if html is not None and not c.json:
        c.emit(None, f"report: {data['html']}")


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")


def _spec_project(c: Context) -> str | None:
    return c.spec.project if c.spec_path.exists() else None


def _run_dict(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "project": run.project,
        "experiment": run.experiment,
        "name": run.name,
        "status": str(run.status),
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "params": dict(run.params),
        "metrics": {k: (v if math.isfinite(v) else None) for k, v in run.metrics.items()},
        "tags": dict(run.tags),
    }


def _runs_table(runs: tuple[Run, ...]) -> Table:
    table = Table("name", "experiment", "status", "started", "metrics")
    table.add_column("id", no_wrap=True)
    for run in runs:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(run.metrics.items()))
        table.add_row(
            escape(run.name),
            escape(run.experiment),
            str(run.status),
            run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            escape(metrics),
            run.id,
        )
    return table


def _comparison_table(comparison: Comparison) -> Table:
    from conveyor.tracking.compare import run_labels

    labels = run_labels(comparison.runs)
    table = Table("", *(escape(label) for label in labels), title="Run comparison")
    for row in comparison.params:
        mark = "[bold yellow]*[/bold yellow] " if row.differs else "  "
        cells = (escape(v) if v is not None else "[dim]-[/dim]" for v in row.values)
        table.add_row(f"{mark}params.{escape(row.key)}", *cells)
    if comparison.params and comparison.metrics:
        table.add_section()
    for metric in comparison.metrics:
        mark = "[bold yellow]*[/bold yellow] " if metric.differs else "  "
        cells = (f"{v:.6g}" if v is not None else "[dim]-[/dim]" for v in metric.values)
        table.add_row(f"{mark}metrics.{escape(metric.key)}", *cells)
    table.caption = "* differs between runs"
    return table
