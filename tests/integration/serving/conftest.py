"""A real uvicorn server of the serving app, in a subprocess on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

SERVE_APP = Path(__file__).with_name("serve_app.py")
SRC = Path(__file__).resolve().parents[3] / "src"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    log_dir: Path
    version_file: Path
    process: subprocess.Popen[bytes]

    def set_version(self, version: int | None, role: str = "") -> None:
        target = self.version_file.with_suffix(f".{role}") if role else self.version_file
        tmp = target.with_suffix(".tmp")
        tmp.write_text("" if version is None else str(version))
        os.replace(tmp, target)

    def stop(self) -> None:
        stop_server(self)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


def start_server(tmp_path: Path, options: dict[str, Any] | None = None) -> Server:
    """Start ``serve_app.py`` (see its docstring for ``options``) and wait until it is ready."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    port = free_port()
    version_file = tmp_path / "version"
    version_file.write_text("1")
    log_dir = tmp_path / "predictions"
    paths = [p for p in (os.environ.get("PYTHONPATH"), str(SRC)) if p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    args = [sys.executable, str(SERVE_APP), str(port), str(log_dir), str(version_file)]
    process = subprocess.Popen([*args, json.dumps(options or {})], env=env)
    srv = Server(f"http://127.0.0.1:{port}", log_dir, version_file, process)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{srv.url}/v1/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            srv.kill()
            raise RuntimeError("the serving app did not become ready")
        time.sleep(0.1)
    return srv


def stop_server(srv: Server) -> None:
    if srv.process.poll() is None:
        srv.process.send_signal(signal.SIGTERM)
        try:
            srv.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            srv.kill()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path)
    try:
        yield srv
    finally:
        stop_server(srv)


def _starter(base: Path) -> Iterator[Callable[..., Server]]:
    """Start servers with options under ``base``; stop every one when closed."""
    started: list[Server] = []

    def run(options: dict[str, Any] | None = None) -> Server:
        srv = start_server(base / f"server-{len(started)}", options)
        started.append(srv)
        return srv

    try:
        yield run
    finally:
        for srv in started:
            stop_server(srv)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start a server with options (see ``serve_app.py``); stopped at the end of the test."""
    yield from _starter(tmp_path)


@pytest.fixture(scope="module")
def start_shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """Like ``start``, for servers shared by the tests of a module."""
    yield from _starter(tmp_path_factory.mktemp("shared"))
