"""A real `conveyor server` in a subprocess on 127.0.0.1, and client workspaces that use it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from conveyor.config import Settings
from conveyor.store.http import close_clients
from conveyor.tracking import fluent
from conveyor.workspace import Workspace

TOKEN = "test-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    home: Path
    process: subprocess.Popen[bytes]

    @property
    def api(self) -> str:
        return f"{self.url}/api/v1"

    @property
    def artifacts(self) -> Path:
        return self.home / "artifacts"


def server_env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("CONVEYOR_TRACKING_URI", "CONVEYOR_TOKEN")
    }
    return {**env, "CONVEYOR_HOME": str(home), **extra}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def server_db_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The server's metadata database: its own SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield None
        return
    base = request.getfixturevalue("pg_database_url")
    schema = f"srv_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(
        make_url(base).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@contextmanager
def running_server(home: Path, **extra: str) -> Iterator[Server]:
    """Start `conveyor server` with the real command line and ``extra`` environment; stop it."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli.main", "server", "--port", str(port)],
        env=server_env(home, **extra),
    )
    srv = Server(f"http://127.0.0.1:{port}", home, process)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{srv.api}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("conveyor server did not become ready")
        time.sleep(0.1)
    try:
        yield srv
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, server_db_url: str | None) -> Iterator[Server]:
    """`conveyor server` with a token, started with the real command line, on each database."""
    extra = {"CONVEYOR_TOKEN": TOKEN}
    if server_db_url:
        extra["CONVEYOR_DB_URL"] = server_db_url
    with running_server(tmp_path_factory.mktemp("server"), **extra) as srv:
        yield srv


@pytest.fixture
def remote_ws(server: Server, tmp_path: Path) -> Iterator[Workspace]:
    """A client workspace whose runs and models live on the server (shared artifact store)."""
    settings = Settings(
        home=tmp_path / "client",
        tracking_uri=server.url,
        token=TOKEN,
        artifacts=str(server.artifacts),
    )
    ws = Workspace.open(settings)
    fluent.set_workspace(ws)
    try:
        yield ws
    finally:
        fluent.set_workspace(None)
        close_clients()


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}
