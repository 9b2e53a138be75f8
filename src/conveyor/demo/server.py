"""Run `conveyor serve` as a child process and talk to it over HTTP, as a client would."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from conveyor.core.errors import ConveyorError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A `conveyor serve` child on 127.0.0.1; stopped on exit of the ``with`` block."""

    def __init__(self, *, spec: Path, home: Path, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._cmd = [
            sys.executable,
            "-m",
            "conveyor.cli.main",
            "--spec",
            str(spec),
            "--home",
            str(home),
            "serve",
            "--port",
            str(self.port),
        ]
        self._env, self._log = env, log
        self._proc: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=self.url, timeout=30.0)

    def __enter__(self) -> ServerProcess:
        logfile = self._log.open("ab")
        self._proc = subprocess.Popen(self._cmd, env=self._env, stdout=logfile, stderr=logfile)
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise ConveyorError(
                    f"The server exited with code {self._proc.returncode}; see {self._log}."
                )
            try:
                if self.client.get("/v1/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise ConveyorError(f"The server was not ready after {timeout_s:.0f} s; see {self._log}.")

    def version(self) -> int | None:
        version = self.client.get("/v1/model").json().get("version")
        return int(version) if version is not None else None

    def wait_version(self, version: int, timeout_s: float = 30.0) -> float:
        """Wait until the server answers with ``version``; return the seconds it took."""
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            if self.version() == version:
                return time.monotonic() - start
            time.sleep(0.1)
        raise ConveyorError(f"The server did not swap to v{version} within {timeout_s:.0f} s.")

    def predict(self, records: Sequence[dict[str, Any]], chunk: int = 1000) -> list[dict[str, Any]]:
        """Score records in requests of ``chunk`` rows; every response must be 200."""
        out: list[dict[str, Any]] = []
        for i in range(0, len(records), chunk):
            resp = self.client.post("/v1/predict", json={"records": list(records[i : i + chunk])})
            if resp.status_code != 200:
                raise ConveyorError(f"/v1/predict answered {resp.status_code}: {resp.text[:300]}")
            out.extend(resp.json()["predictions"])
        return out
