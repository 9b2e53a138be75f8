"""Benchmarks: every performance claim measured against a named peer or the physical limit.

Run ``python -m benchmarks NAME [--quick] [--json]``. Each result is one JSON object per line
with ``benchmark, metric, unit, conveyor, peer_name, peer, ratio, better``; ``ratio > 1``
always means Conveyor is ahead (``peer / conveyor`` for times, ``conveyor / peer`` for
throughputs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
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
        return data


class BenchmarkError(RuntimeError):
    """A benchmark could not run (a tool is missing, a server did not start)."""
