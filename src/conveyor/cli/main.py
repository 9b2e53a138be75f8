"""The ``conveyor`` command: parse options, call one service, render; exit codes mapped here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from conveyor.cli import alerts as alerts_cli
from conveyor.cli import (
    data,
    models,
    ops,
    quarantine,
    registry,
    runs,
    schema,
    scoring,
    server,
    serving,
)
from conveyor.cli.context import Context, err, exit_code
from conveyor.core.errors import ConveyorError

app = typer.Typer(
    name="conveyor",
    help="Keep a good tabular model in production: ingest, train, gate, serve, monitor, retrain.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Option("--spec", "-f", help="Project spec.")] = Path(
        "conveyor.yaml"
    ),
    home: Annotated[
        Path | None,
        typer.Option("--home", help="Workspace directory (default .conveyor, or CONVEYOR_HOME)."),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    ctx.obj = Context(spec_path=spec, home=home, json=json)


for module in (data, models, serving, ops, runs, registry, server, schema, quarantine):
    module.register(app)
scoring.register(app)
alerts_cli.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: exit 0 ok, 1 error, 2 usage or invalid spec, 3 blocked by validation or gate.

    Click handles usage errors, ``--help`` and explicit exits itself (standalone mode); Conveyor's
    own errors are turned into one readable line here, once.
    """
    try:
        app(args=argv, prog_name="conveyor")
    except ConveyorError as exc:
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", soft_wrap=True)
        sys.exit(exit_code(exc))


if __name__ == "__main__":
    main()
