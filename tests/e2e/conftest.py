"""Run the real `conveyor` command in a subprocess, in a temporary project directory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tests.integration.conftest import SPEC, make_batch  # noqa: F401 - shared data

from conveyor.demo.server import free_port
from conveyor.spec import parse_spec

CLI = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    (tmp_path / "conveyor.yaml").write_text(parse_spec(SPEC).to_yaml())
    return tmp_path


@pytest.fixture
def cli(project_dir: Path) -> CLI:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}

    def run(*args: str, check: int | None = 0) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "conveyor.cli.main", *args],
            cwd=project_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check is not None:
            assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
        return proc

    return run


def release_two_and_truncate_the_second(cli: CLI, project_dir: Path, **extra: str) -> Path:
    """Promote v1 and v2 of the toy project, then cut v2's artifact short on disk.

    ``extra`` columns are added to every batch. Returns the workspace home.
    """
    from conveyor.config import Settings
    from conveyor.registry.service import get_version
    from conveyor.workspace import Workspace

    for w in range(3):
        make_batch(w).assign(**extra).to_csv(project_dir / f"w{w}.csv", index=False)
    cli("ingest", "w0.csv", "w1.csv")
    cli("train")
    cli("promote", "1", "--reason", "first release")
    cli("ingest", "w2.csv")
    cli("train")
    cli("promote", "2", "--reason", "second release")
    home = project_dir / ".conveyor"
    ws = Workspace.open(Settings(home=home))
    digest = get_version(ws, "toy", 2).artifact.split(":")[-1]
    (blob,) = [p for p in home.rglob(digest[2:]) if p.parent.name == digest[:2]]
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:100])  # truncated on disk
    return home


def start_serve(
    project_dir: Path, *, ready_s: float = 120.0
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``conveyor serve`` on a free loopback port in ``project_dir``; return the process
    and its base URL once ``/v1/ready`` answers 200 (the test fails with the server's output
    when it never does)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli.main", "serve", "--port", str(port)],
        cwd=project_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v1/ready", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    out = proc.stdout.read().decode()[-2000:] if proc.stdout else ""
    pytest.fail(f"server not ready: {out}")
