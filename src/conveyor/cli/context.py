"""What every command shares: the workspace, the spec, output and exit codes."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console

from conveyor.config import Settings
from conveyor.core.errors import BlockedError, ConfigError, ConveyorError
from conveyor.spec import ProjectSpec, load_spec
from conveyor.workspace import Workspace

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_BLOCKED = 0, 1, 2, 3

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


@dataclass(slots=True)
class Context:
    """Options common to all commands, resolved lazily so `--help` never touches the workspace."""

    spec_path: Path
    home: Path | None
    json: bool
    _ws: Workspace | None = field(default=None, repr=False)
    _spec: ProjectSpec | None = field(default=None, repr=False)

    @property
    def ws(self) -> Workspace:
        if self._ws is None:
            settings = Settings(home=self.home) if self.home else Settings()
            self._ws = Workspace.open(settings)
        return self._ws

    @property
    def spec(self) -> ProjectSpec:
        if self._spec is None:
            self._spec = load_spec(self.spec_path)
        return self._spec

    def progress(self) -> Callable[[str], None]:
        if self.json:
            return lambda _msg: None
        return lambda msg: err.print(f"[dim]·[/dim] {msg}")

    def emit(self, data: Any, text: Any = None) -> None:
        """Print ``data`` as JSON with ``--json``, else ``text`` (or a readable rendering)."""
        if self.json:
            sys.stdout.write(
                orjson.dumps(data, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode() + "\n"
            )
        else:
            out.print(text if text is not None else data)


def exit_code(exc: ConveyorError) -> int:
    """Exit codes mean something: 3 blocked by validation or gate, 2 usage/config, 1 error."""
    if isinstance(exc, BlockedError):
        return EXIT_BLOCKED
    if isinstance(exc, ConfigError):
        return EXIT_USAGE
    return EXIT_ERROR


def get(ctx: typer.Context) -> Context:
    obj = ctx.obj
    assert isinstance(obj, Context)
    return obj
