"""Run the real `conveyor` command in a subprocess, in a temporary project directory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.integration.conftest import SPEC, make_batch  # noqa: F401 - shared data

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
