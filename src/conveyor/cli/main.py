"""The ``conveyor`` command: parse options, call one service, render; exit codes mapped here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.markup import escape

from conveyor.cli import data, models, ops, registry, runs, serving
from conveyor.cli.context import EXIT_ERROR, EXIT_USAGE, Context, err, exit_code
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


for module in (data, models, serving, ops, runs, registry):
    module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and map errors to exit codes (0, 1 error, 2 usage, 3 blocked)."""
    try:
        code = app(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE if isinstance(exc, click.UsageError) else EXIT_ERROR)
    except ConveyorError as exc:
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", soft_wrap=True)
        sys.exit(exit_code(exc))
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
