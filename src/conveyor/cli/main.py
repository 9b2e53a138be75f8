"""The ``conveyor`` command: parse options, call one service, render; exit codes mapped here.

The global options (``--spec``, ``--home``, ``--json``) are declared once, on the root, and
accepted by every command and group as well, before or after its name: ``conveyor --json
history`` and ``conveyor history --json`` mean the same. Given twice, the one nearer the end
of the line wins, like any repeated option.

Command modules import their services inside the commands, so ``conveyor --help`` loads no
data, modelling or web library.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

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

GLOBAL_PANEL = "Global options (also accepted after the command)"


def _set_spec(ctx: typer.Context, value: Path | None) -> None:
    if value is not None:
        ctx.ensure_object(Context).use_spec(value)


def _set_home(ctx: typer.Context, value: Path | None) -> None:
    if value is not None:
        ctx.ensure_object(Context).use_home(value)


def _set_json(ctx: typer.Context, value: bool) -> None:
    if value:
        ctx.ensure_object(Context).json = True


def _print_version(value: bool) -> None:
    if value:
        import conveyor

        typer.echo(f"conveyor {conveyor.__version__}")
        raise typer.Exit()


_GLOBAL_NAMES = frozenset({"spec", "home", "json"})


class _GlobalOptionsGroup(TyperGroup):
    """The root group: hands its global options on to every command and group below it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        shared = [p for p in self.params if p.name in _GLOBAL_NAMES]
        _add_params(self, shared)


def _add_params(group: TyperGroup, shared: list[Any]) -> None:
    for command in group.commands.values():
        have = {p.name for p in command.params}
        command.params.extend(p for p in shared if p.name not in have)
        if isinstance(command, TyperGroup):
            _add_params(command, shared)


app = typer.Typer(
    name="conveyor",
    cls=_GlobalOptionsGroup,
    help="Keep a good tabular model in production: ingest, train, gate, serve, monitor, retrain.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    ctx: typer.Context,
    spec: Annotated[
        Path | None,
        typer.Option(
            "--spec",
            "-f",
            help="Project spec (default conveyor.yaml).",
            callback=_set_spec,
            expose_value=False,
            rich_help_panel=GLOBAL_PANEL,
        ),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Workspace directory (default .conveyor, or CONVEYOR_HOME).",
            callback=_set_home,
            expose_value=False,
            rich_help_panel=GLOBAL_PANEL,
        ),
    ] = None,
    json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Machine-readable output.",
            callback=_set_json,
            expose_value=False,
            rich_help_panel=GLOBAL_PANEL,
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print Conveyor's version and exit.",
            callback=_print_version,
            is_eager=True,
            expose_value=False,
        ),
    ] = False,
) -> None:
    ctx.ensure_object(Context)


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
