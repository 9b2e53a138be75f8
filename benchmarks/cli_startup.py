"""How fast the command line starts, against the goal of 0.5 s and ``python -c pass``.

Each figure is the median over fresh processes (15 rounds, 5 with ``--quick``), interleaved
with the physical floor, an interpreter that starts and does nothing (``python -c pass``, same
interpreter, same ``sys.path``):

* ``help_wall_s``: the wall time of ``python -m conveyor.cli.main --help`` (imports, building
  every command, rendering the help), against the goal of 0.5 s (``goal``, ``meets``);
* ``help_cpu_s``: its user + system CPU time, which other work on the machine disturbs less
  than the wall time, against the same goal;
* ``import_wall_s``: ``python -c "import conveyor"`` (the public names load on first use).

The ``conveyor`` line of each result is Conveyor's figure, ``peer`` the floor's.

Run: ``python -m benchmarks cli_startup [--quick] [--json]``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from benchmarks import BenchmarkError, Result

GOAL_S = 0.5
FLOOR = "python -c pass"
HELP = [sys.executable, "-m", "conveyor.cli.main", "--help"]
IMPORT = [sys.executable, "-c", "import conveyor"]
PASS = [sys.executable, "-c", "pass"]


@dataclass(frozen=True, slots=True)
class GoalResult(Result):
    """A :class:`Result` that also states the goal it is held to and whether it meets it."""

    goal: float = GOAL_S

    def to_dict(self) -> dict[str, Any]:
        data = Result.to_dict(self)
        data["meets"] = self.conveyor < self.goal
        return data


def run(quick: bool) -> list[Result]:
    """Start the command line and the bare interpreter in turns; see the module docstring."""
    rounds = 5 if quick else 15
    for command in (HELP, IMPORT, PASS):  # compile and cache the bytecode first
        _time(command)
    samples: dict[str, list[tuple[float, float]]] = {"help": [], "import": [], "pass": []}
    for i in range(rounds):
        samples["pass"].append(_time(PASS))
        samples["help"].append(_time(HELP))
        samples["import"].append(_time(IMPORT))
        print(
            f"  round {i + 1}/{rounds}: --help {samples['help'][-1][0]:.3f} s, "
            f"pass {samples['pass'][-1][0]:.3f} s",
            file=sys.stderr,
        )
    wall = {k: statistics.median(w for w, _ in v) for k, v in samples.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in samples.items()}
    bench = "cli_startup"
    return [
        GoalResult(bench, "help_wall_s", "s", wall["help"], FLOOR, wall["pass"], "lower"),
        GoalResult(bench, "help_cpu_s", "s", cpu["help"], FLOOR, cpu["pass"], "lower"),
        Result(bench, "import_wall_s", "s", wall["import"], FLOOR, wall["pass"], "lower"),
    ]


def _time(command: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run of ``command``, which must exit 0."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise BenchmarkError(f"{' '.join(command)} exited {proc.returncode}: {stderr[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime
