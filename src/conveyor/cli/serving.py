"""`conveyor serve | predict | feedback`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli.context import err, get
from conveyor.core.hosts import check_bind


def serve_cmd(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from conveyor.yaml).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    project: Annotated[
        list[Path] | None,
        typer.Option(
            "--project",
            help="Spec of a project to serve; repeat to serve several side by side (the first "
            "is the default of /v1/predict). Default: the --spec project.",
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Listen on a non-loopback --host without CONVEYOR_TOKEN (anyone who reaches "
            "the port may then record feedback); a warning is printed.",
        ),
    ] = False,
) -> None:
    """Serve the production alias over HTTP; hot-swaps when the alias moves.

    A non-loopback --host needs CONVEYOR_TOKEN (writes then need it) or --insecure.
    """
    from conveyor.serving.service import serve
    from conveyor.spec import load_spec

    c = get(ctx)
    paths = list(project) if project else [c.spec_path]
    specs = [load_spec(p) for p in paths]
    s = specs[0].serving
    bind = host or s.host
    if check_bind(bind, has_token=c.ws.settings.token is not None, insecure=insecure,
                  server="conveyor serve"):  # fmt: skip
        err.print(
            f"warning: conveyor serve listens on {bind} without a token (--insecure): anyone "
            "who reaches the port may record feedback and write offline lookups."
        )
    names = ", ".join(f"'{spec.project}'" for spec in specs)
    c.emit(None, f"serving {names} on http://{host or s.host}:{port or s.port}")
    serve(
        c.ws,
        paths,
        host=host or s.host,
        port=port or s.port,
        workers=workers or s.workers,
        insecure=insecure,
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
