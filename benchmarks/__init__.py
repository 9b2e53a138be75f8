"""Benchmarks: every performance claim measured against a named peer or the physical limit.

Run ``python -m benchmarks NAME [--quick] [--json]``. Each result is one JSON object per line
with ``benchmark, metric, unit, conveyor, peer_name, peer, ratio, better``; ``ratio > 1``
always means Conveyor is ahead (``peer / conveyor`` for times, ``conveyor / peer`` for
throughputs). A metric an issue sets a goal for also carries ``goal`` and ``meets``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Result:
    """One measured metric of Conveyor and of its peer."""

    benchmark: str
    metric: str
    unit: str
    conveyor: float
    peer_name: str
    peer: float
    better: Literal["higher", "lower"]
    #: The figure an issue sets for this metric, in ``unit``; ``meets`` says whether it is met.
    goal: float | None = None

    @property
    def meets(self) -> bool | None:
        """Whether ``conveyor`` reaches ``goal`` in the better direction (None without a goal)."""
        if self.goal is None:
            return None
        return self.conveyor >= self.goal if self.better == "higher" else self.conveyor <= self.goal

    @property
    def ratio(self) -> float:
        """Above 1 when Conveyor is ahead, whichever direction is better."""
        if self.better == "higher":
            return self.conveyor / self.peer if self.peer else float("inf")
        return self.peer / self.conveyor if self.conveyor else float("inf")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        better = data.pop("better")
        data["ratio"] = round(self.ratio, 4)
        data["better"] = better
        if self.goal is None:
            del data["goal"]
        else:
            data["meets"] = self.meets
        return data


class BenchmarkError(RuntimeError):
    """A benchmark could not run (a tool is missing, a server did not start)."""


def peer_python(name: str, probe: str, requirements: list[str]) -> Path:
    """The Python of the peer's own virtual environment (``$CONVEYOR_BENCH_VENVS/<name>``,
    ``/tmp/peer-venvs`` by default), made and filled with ``requirements`` when ``probe`` (a
    Python snippet) fails in it. Peers never become dependencies of Conveyor."""
    venv = Path(os.environ.get("CONVEYOR_BENCH_VENVS", "/tmp/peer-venvs")) / name
    python = venv / "bin" / "python"
    check = [str(python), "-c", probe]
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return python
    print(f"installing {' '.join(requirements)} into {venv} ...", file=sys.stderr)
    steps = [[sys.executable, "-m", "venv", str(venv)]] if not python.exists() else []
    steps.append([str(python), "-m", "pip", "install", "-q", *requirements])
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BenchmarkError(f"{' '.join(step)} failed: {done.stderr[-2000:]}")
    return python
