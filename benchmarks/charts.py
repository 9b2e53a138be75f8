"""CPU time to draw one report chart, against matplotlib drawing the same data bare.

Conveyor's charts (:mod:`conveyor.reports`) are matplotlib figures written as self-contained
SVG with a house style, event markers, a legend and text kept as text. The floor is the least
matplotlib itself needs for the same data: a bare figure with the same series, saved as SVG with
default settings. Both sides are timed in CPU seconds (``time.process_time``), interleaved, the
median of the same number of calls each, so other work on the machine does not count.

The issue that moved this check out of the tests set 0.5 s of CPU per chart as its bound.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np

from benchmarks import Result

GOAL_CPU_S = 0.5
START = datetime(2024, 3, 1, tzinfo=UTC)


def _data(series: int, points: int) -> dict[str, tuple[list[datetime], np.ndarray]]:
    days = [START + timedelta(days=i) for i in range(points)]
    rng = np.random.default_rng(0)
    return {f"v{i + 1}": (days, 0.8 + rng.normal(0, 0.01, points)) for i in range(series)}


def _conveyor(data: dict[str, tuple[list[datetime], np.ndarray]]) -> Callable[[], object]:
    from conveyor.reports import line_chart

    def draw() -> object:
        return line_chart(data, title="Live AUC", y_label="AUC")

    return draw


def _bare(data: dict[str, tuple[list[datetime], np.ndarray]]) -> Callable[[], object]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    def draw() -> object:
        fig = Figure(figsize=(8, 3))
        ax = fig.add_subplot()
        for name, (x, y) in data.items():
            ax.plot(x, y, label=name)
        ax.legend()
        out = io.StringIO()
        fig.savefig(out, format="svg")
        return out.getvalue()

    return draw


def _cpu(draw: Callable[[], object]) -> float:
    start = time.process_time()
    draw()
    return time.process_time() - start


def run(quick: bool) -> list[Result]:
    calls = 5 if quick else 21
    results = []
    for series in (2, 30):
        data = _data(series, 60)
        ours, bare = _conveyor(data), _bare(data)
        ours(), bare()  # warm imports and font caches
        ours_s, bare_s = [], []
        for _ in range(calls):
            ours_s.append(_cpu(ours))
            bare_s.append(_cpu(bare))
        results.append(
            Result(
                benchmark="charts",
                metric=f"line_chart_{series}_series_cpu",
                unit="s",
                conveyor=statistics.median(ours_s),
                peer_name="bare matplotlib SVG (floor)",
                peer=statistics.median(bare_s),
                better="lower",
                goal=GOAL_CPU_S,
            )
        )
    return results
