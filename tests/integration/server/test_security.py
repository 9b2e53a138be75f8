"""The server refuses to listen beyond loopback without a token; errors map to statuses once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.config import Settings
from conveyor.core import errors
from conveyor.server.app import create_app, is_loopback
from conveyor.server.errors import status_of

from .conftest import server_env


def test_command_refuses_a_public_host_without_a_token(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", "server", "--host", "0.0.0.0", "--port", "1"],
        env=server_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "CONVEYOR_TOKEN" in result.stderr and "0.0.0.0" in result.stderr


def test_create_app_refuses_a_public_host_without_a_token(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="192.0.2.7"):
        create_app(Settings(home=tmp_path), host="192.0.2.7")
    app = create_app(Settings(home=tmp_path, token="t"), host="192.0.2.7")
    assert "/api/v1/models/{model}/aliases/{alias}" in app.openapi()["paths"]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.1.1", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.NotFoundError("x"), 404),
        (errors.AlreadyExistsError("x"), 409),
        (errors.ConflictError("x"), 409),
        (errors.SchemaError("x"), 422),
        (errors.ConfigError("x"), 422),
        (errors.GateRejectedError("x"), 423),
        (errors.StoreError("x"), 503),
        (errors.ConveyorError("x"), 500),
    ],
)
def test_errors_map_to_statuses(error: errors.ConveyorError, status: int) -> None:
    assert status_of(error) == status
