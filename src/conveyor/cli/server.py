"""`conveyor server`: the platform REST API (tracking and registry) for remote clients."""

from __future__ import annotations

from typing import Annotated

import typer

from conveyor.cli.context import err, get


def server(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option(help="Bind address (default 127.0.0.1); non-loopback needs a token."),
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8710).")] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option("--allow-host", help="Another trusted Host header name; repeatable."),
    ] = None,
) -> None:
    """Serve runs and the model registry over HTTP (clients: CONVEYOR_TRACKING_URI)."""
    from conveyor.server.app import DEFAULT_HOST, DEFAULT_PORT, check_bind, run_server

    c = get(ctx)
    settings = c.settings()
    host, port = host or DEFAULT_HOST, port or DEFAULT_PORT
    check_bind(host, settings)
    auth = "token required for writes" if settings.token else "no token"
    err.print(f"conveyor server on http://{host}:{port} ({auth}); OpenAPI at /openapi.json")
    run_server(settings, host=host, port=port, allowed_hosts=allow_host or ())


def register(app: typer.Typer) -> None:
    app.command("server")(server)
