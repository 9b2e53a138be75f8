"""Over REST: a client killed with SIGKILL leaves a run the server ends ``failed``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import TOKEN, Server, running_server

STALE_AFTER_S = "2"
CLIENT = textwrap.dedent(
    """
    import time
    import conveyor as cv

    run = cv.start_run("doomed", project="heartbeat")
    cv.log_metric("loss", 0.5)
    print(run.id, flush=True)
    time.sleep(600)
    """
)


@pytest.fixture(scope="module")
def sweeping_server(
    tmp_path_factory: pytest.TempPathFactory, server_db_url: str | None
) -> Iterator[Server]:
    """A server that ends runs not heard from for two seconds."""
    extra = {"CONVEYOR_TOKEN": TOKEN, "CONVEYOR_RUN_STALE_AFTER_S": STALE_AFTER_S}
    if server_db_url:
        extra["CONVEYOR_DB_URL"] = server_db_url
    with running_server(tmp_path_factory.mktemp("sweeping"), **extra) as srv:
        yield srv


def _run(server: Server, run_id: str) -> dict[str, object]:
    response = httpx.get(f"{server.api}/runs/{run_id}")
    assert response.status_code == 200, response.text
    doc: dict[str, object] = response.json()
    return doc


def test_a_killed_http_client_leaves_a_failed_run(sweeping_server: Server, tmp_path: Path) -> None:
    env = dict(
        os.environ,
        CONVEYOR_HOME=str(tmp_path / "client"),
        CONVEYOR_TRACKING_URI=sweeping_server.url,
        CONVEYOR_TOKEN=TOKEN,
        CONVEYOR_ARTIFACTS=str(sweeping_server.artifacts),
        CONVEYOR_RUN_HEARTBEAT_S="0.2",
    )
    env.pop("CONVEYOR_DB_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-c", CLIENT], env=env, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    run_id = process.stdout.readline().strip()
    try:
        alive_since = time.monotonic()
        beats = set()
        while time.monotonic() - alive_since < 3.0 or len(beats) < 3:
            doc = _run(sweeping_server, run_id)
            assert doc["status"] == "running", doc
            beats.add(doc["heartbeat_at"])
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    deadline = time.monotonic() + 60
    while (doc := _run(sweeping_server, run_id))["status"] == "running":
        assert time.monotonic() < deadline, doc
        time.sleep(0.1)
    assert doc["status"] == "failed" and doc["ended_at"] is not None
    assert "client lost" in doc["tags"]["conveyor.end_reason"]  # type: ignore[index]
    assert doc["metrics"] == {"loss": 0.5}


def test_a_heartbeat_for_an_ended_run_is_409(sweeping_server: Server) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = {"project": "heartbeat", "experiment": "e", "name": "r"}
    run = httpx.post(f"{sweeping_server.api}/runs", json=body, headers=auth).json()
    url = f"{sweeping_server.api}/runs/{run['id']}"
    assert httpx.post(f"{url}/heartbeat", json={}, headers=auth).status_code == 204
    assert httpx.post(f"{url}/heartbeat", json={}).status_code == 401
    httpx.post(f"{url}/end", json={"status": "finished"}, headers=auth)
    response = httpx.post(f"{url}/heartbeat", json={}, headers=auth)
    assert response.status_code == 409 and response.json()["error"] == "ConflictError"
