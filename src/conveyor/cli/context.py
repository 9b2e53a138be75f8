"""What every command shares: the workspace, the spec, output and exit codes.

This module is imported by ``conveyor --help``: it imports nothing heavy at module level (the
workspace, the spec and their stores load on first use), so the command line starts quickly.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from conveyor.core.errors import BlockedError, ConfigError, ConveyorError, NotFoundError

if TYPE_CHECKING:
    from conveyor.config import Settings
    from conveyor.spec import ProjectSpec
    from conveyor.workspace import Workspace

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_BLOCKED = 0, 1, 2, 3
DEFAULT_SPEC = Path("conveyor.yaml")

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


@dataclass(slots=True)
class Context:
    """Options common to all commands, resolved lazily so `--help` never touches the workspace.

    ``existing_only`` is set by commands that only read, or that act on what an earlier
    command stored (a version, a batch, an alert): their workspace must exist already
    (:meth:`Workspace.open_existing`), so they never leave an empty one behind.
    """

    spec_path: Path = DEFAULT_SPEC
    home: Path | None = None
    json: bool = False
    existing_only: bool = False
    _ws: Workspace | None = field(default=None, repr=False)
    _spec: ProjectSpec | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        """The workspace settings: ``--home`` over ``CONVEYOR_HOME`` over the default."""
        from conveyor.config import Settings

        return Settings(home=self.home) if self.home else Settings()

    @property
    def ws(self) -> Workspace:
        if self._ws is None:
            from conveyor.workspace import Workspace

            settings = self.settings()
            if not self.existing_only:
                self._ws = Workspace.open(settings)
                return self._ws
            try:
                self._ws = Workspace.open_existing(settings)
            except NotFoundError:
                if self.spec_path.exists():
                    _ = self.spec  # a broken spec is a usage error (exit 2): report it first
                raise
        return self._ws

    @property
    def spec(self) -> ProjectSpec:
        if self._spec is None:
            from conveyor.spec import load_spec

            self._spec = load_spec(self.spec_path)
        return self._spec

    def use_spec(self, path: Path) -> None:
        """Read the project spec from ``path`` (``--spec``)."""
        self.spec_path, self._spec = path, None

    def use_home(self, home: Path) -> None:
        """Open the workspace at ``home`` (``--home``)."""
        self.home, self._ws = home, None

    def progress(self) -> Callable[[str], None]:
        if self.json:
            return lambda _msg: None
        return lambda msg: err.print(f"[dim]·[/dim] {msg}")

    def emit(self, data: Any, text: Any = None) -> None:
        """Print ``data`` as JSON with ``--json``, else ``text`` (or a readable rendering)."""
        if self.json:
            import orjson

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


def get(ctx: typer.Context, *, existing: bool = False) -> Context:
    """The command's :class:`Context`.

    ``existing=True`` for a command that only reads, or that acts on what an earlier command
    stored: where no workspace exists it fails (exit 1, naming the directory looked at) instead
    of creating an empty one.
    """
    obj = ctx.ensure_object(Context)
    obj.existing_only = existing
    return obj
