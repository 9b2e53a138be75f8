"""The platform REST API: tracking and the model registry over HTTP, OpenAPI at /openapi.json.

Routes live under ``/api/v1`` (``runs``, ``models/{model}``, ``artifacts``); each parses its
body, calls one store method or service and renders the result. Point clients at it with
``CONVEYOR_TRACKING_URI=http://127.0.0.1:8710``: ``cv.start_run()``, ``cv.log_metric()`` and
the registry services then go over HTTP (:mod:`conveyor.store.http`), one request per flush.

Security: the server binds 127.0.0.1 by default and answers only requests whose ``Host`` is
``localhost``, ``127.0.0.1``, ``[::1]``, the bind host or one given in ``allowed_hosts``
(others get 400, which stops DNS-rebinding pages in a browser). When ``CONVEYOR_TOKEN`` is set,
every write route needs ``Authorization: Bearer <token>`` (401 otherwise); reads stay open to
whoever reaches the port. It refuses to bind a non-loopback address without a token.

Model artifacts: the server keeps its own artifact store (``CONVEYOR_ARTIFACTS``). Clients that
register models or log artifacts must share that store (the same directory or ``s3://`` URL):
only references (digests) travel through the tracking routes. ``POST /api/v1/artifacts`` and
``GET /api/v1/artifacts/{digest}`` move blobs for clients that cannot share it.
"""

from __future__ import annotations

from collections.abc import Sequence

import uvicorn
from fastapi import FastAPI
from starlette.middleware.trustedhost import TrustedHostMiddleware

from conveyor import __version__
from conveyor.config import Settings
from conveyor.core.hosts import check_bind as check_bind_host
from conveyor.core.hosts import is_loopback, trusted_hosts
from conveyor.server.errors import install_error_handlers
from conveyor.server.routers import artifacts, models, runs
from conveyor.workspace import Workspace

__all__ = ["API_PREFIX", "check_bind", "create_app", "is_loopback", "run_server"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8710
API_PREFIX = "/api/v1"


def check_bind(host: str, settings: Settings) -> None:
    """Refuse to serve a non-loopback ``host`` without a token.

    Raises
    ------
    ConfigError
        If ``host`` is not a loopback address and ``settings.token`` is not set.
    """
    check_bind_host(host, has_token=settings.token is not None)


def create_app(
    settings: Settings, *, host: str = DEFAULT_HOST, allowed_hosts: Sequence[str] = ()
) -> FastAPI:
    """Build the REST app over the workspace of ``settings``.

    Parameters
    ----------
    settings : Settings
        The server's workspace (``tracking_uri`` is ignored: the server is the tracking store)
        and its ``token``.
    host : str, default "127.0.0.1"
        The address it will bind; a trusted ``Host`` header value.
    allowed_hosts : sequence of str, optional
        More trusted ``Host`` names, e.g. the DNS name clients use behind a proxy.

    Raises
    ------
    ConfigError
        If ``host`` is not loopback and no token is set (see :func:`check_bind`).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> app = create_app(Settings(home=Path(tempfile.mkdtemp())))
    >>> "/api/v1/runs/search" in app.openapi()["paths"]
    True
    """
    check_bind(host, settings)
    own = settings.model_copy(update={"tracking_uri": None})
    app = FastAPI(
        title="Conveyor platform API",
        version=__version__,
        summary="Tracking and model registry of a Conveyor workspace.",
        openapi_url="/openapi.json",
    )
    app.state.workspace = Workspace.open(own)
    app.state.token = settings.token.get_secret_value() if settings.token else None
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=trusted_hosts(host, allowed_hosts))
    install_error_handlers(app)
    for module in (runs, models, artifacts):
        app.include_router(module.router, prefix=API_PREFIX)

    @app.get(API_PREFIX + "/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app


def run_server(
    settings: Settings,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    allowed_hosts: Sequence[str] = (),
    log_level: str = "info",
) -> None:
    """Serve the REST API with uvicorn until interrupted (uvicorn sets TCP_NODELAY)."""
    app = create_app(settings, host=host, allowed_hosts=allowed_hosts)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
