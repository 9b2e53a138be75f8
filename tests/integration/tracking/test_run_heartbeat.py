"""A run whose process is killed with SIGKILL ends ``failed`` instead of ``running`` forever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conveyor.config import Settings
from conveyor.core.entities import Run, RunId, RunStatus
from conveyor.store.sql.run_store import END_REASON_TAG
from conveyor.tracking.service import record_run
from conveyor.workspace import Workspace

SCRIPTS = {
    "fluent": """
        import time
        import conveyor as cv

        run = cv.start_run("doomed", project="heartbeat")
        cv.log_metric("loss", 0.5)
        print(run.id, flush=True)
        time.sleep(600)
    """,
    "service": """
        import time
        from conveyor.tracking.service import record_run
        from conveyor.workspace import Workspace

        with record_run(Workspace.open(), "heartbeat", name="doomed") as run:
            run.log_metrics({"loss": 0.5})
            print(run.id, flush=True)
            time.sleep(600)
    """,
}
STALE_AFTER_S = 2.0


def _start(home: Path, mode: str) -> tuple[subprocess.Popen[str], RunId]:
    env = dict(os.environ, CONVEYOR_HOME=str(home), CONVEYOR_RUN_HEARTBEAT_S="0.2")
    for name in ("CONVEYOR_DB_URL", "CONVEYOR_ARTIFACTS", "CONVEYOR_TRACKING_URI"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SCRIPTS[mode])],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, RunId(process.stdout.readline().strip())


def _wait_for_status(ws: Workspace, run_id: RunId, status: RunStatus) -> Run:
    deadline = time.monotonic() + 60
    while True:
        run = ws.stores.runs.get_run(run_id)
        if run.status is status:
            return run
        assert time.monotonic() < deadline, f"run {run_id} never became {status}: {run}"
        time.sleep(0.1)


@pytest.mark.parametrize("mode", ["fluent", "service"])
def test_a_killed_client_leaves_a_failed_run(tmp_path: Path, mode: str) -> None:
    home = tmp_path / "ws"
    process, run_id = _start(home, mode)
    try:
        ws = Workspace.open(Settings(home=home, run_stale_after_s=STALE_AFTER_S))
        first = ws.stores.runs.get_run(run_id)
        # Alive: heartbeats keep coming for longer than the timeout and the run stays running.
        alive_since = time.monotonic()
        beats = {first.heartbeat_at}
        while time.monotonic() - alive_since < STALE_AFTER_S * 1.5 or len(beats) < 3:
            run = ws.stores.runs.get_run(run_id)
            assert run.status is RunStatus.RUNNING, run
            beats.add(run.heartbeat_at)
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    ended = _wait_for_status(ws, run_id, RunStatus.FAILED)
    assert ended.ended_at is not None and ended.heartbeat_at is not None
    assert ended.ended_at > ended.heartbeat_at
    assert "client lost" in ended.tags[END_REASON_TAG]
    assert ended.metrics == {"loss": 0.5}  # what was written before the kill is kept


def test_a_finished_run_stops_its_heartbeats(tmp_path: Path) -> None:
    ws = Workspace.open(Settings(home=tmp_path / "ws", run_heartbeat_s=0.05))
    with record_run(ws, "heartbeat", name="short") as run:
        time.sleep(0.3)
    ended = ws.stores.runs.get_run(run.id)
    assert ended.status is RunStatus.FINISHED
    assert ended.heartbeat_at is not None and ended.heartbeat_at > ended.started_at
    time.sleep(0.3)  # a late heartbeat would log a conflict, never change the run
    assert ws.stores.runs.get_run(run.id) == ended
