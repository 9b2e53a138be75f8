"""A real uvicorn server of the serving app, in a subprocess on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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

    def set_version(self, version: int | None) -> None:
        tmp = self.version_file.with_suffix(".tmp")
        tmp.write_text("" if version is None else str(version))
        os.replace(tmp, self.version_file)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    version_file = tmp_path / "version"
    version_file.write_text("1")
    log_dir = tmp_path / "predictions"
    paths = [p for p in (os.environ.get("PYTHONPATH"), str(SRC)) if p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    process = subprocess.Popen(
        [sys.executable, str(SERVE_APP), str(port), str(log_dir), str(version_file)], env=env
    )
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
    try:
        yield srv
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                srv.kill()
