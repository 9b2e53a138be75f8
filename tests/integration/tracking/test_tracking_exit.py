"""What a process logged survives its exit: normal exit without end_run, or an uncaught error."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conveyor.config import Settings
from conveyor.core.entities import RunStatus
from conveyor.workspace import Workspace

SCRIPT = textwrap.dedent(
    """
    import sys
    import conveyor as cv

    run = cv.start_run("child-process", project="exit")
    print(run.id, flush=True)
    cv.log_param("seed", 3)
    cv.set_tag("kind", "script")
    for step in range(2345):  # two size flushes, 345 points left in the buffer
        cv.log_metric("loss", 1.0 / (step + 1), step=step)
    if sys.argv[1] == "raise":
        raise RuntimeError("uncaught")
    """
)


def _run_script(home: Path, mode: str) -> tuple[subprocess.CompletedProcess[str], str]:
    env = dict(os.environ, CONVEYOR_HOME=str(home))
    env.pop("CONVEYOR_DB_URL", None)
    env.pop("CONVEYOR_ARTIFACTS", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], env=env, capture_output=True, text=True, timeout=120
    )
    return done, done.stdout.split()[0]


@pytest.mark.parametrize(
    ("mode", "code", "status"), [("exit", 0, RunStatus.FINISHED), ("raise", 1, RunStatus.FAILED)]
)
def test_a_process_that_exits_without_end_run_loses_nothing(
    tmp_path: Path, mode: str, code: int, status: RunStatus
) -> None:
    home = tmp_path / "ws"
    done, run_id = _run_script(home, mode)
    assert done.returncode == code, done.stderr
    ws = Workspace.open(Settings(home=home))
    run = ws.stores.runs.get_run(run_id)  # type: ignore[arg-type]
    assert run.status is status
    assert run.params == {"seed": "3"} and run.tags == {"kind": "script"}
    history = ws.stores.runs.get_metric_history(run.id, "loss")
    assert len(history) == 2345 and history[-1].value == 1.0 / 2345
