"""The gate's statistics on 100,000 test rows with 1,000 paired bootstrap resamples.

Measured (median of 3 runs, 1 with ``--quick``), each the wall time of one
:func:`conveyor.evaluation.compare_models` call (scoring both models, the paired bootstrap of
the metric difference, and McNemar's test for a binary task):

* ``gate_roc_auc_100k``: ROC-AUC, the default gate metric, against the goal of 5 s on 2 cores,
  and against the textbook loop (scikit-learn's ``roc_auc_score`` on each resample of both
  models; timed on 20 resamples, 5 with ``--quick``, and scaled to 1,000: its cost per
  resample is flat);
* ``gate_accuracy_100k``: accuracy (with McNemar), against the same goal;
* ``gate_rmse_100k``: RMSE of a regression, against the same goal.

* ``bootstrap_auc_1_thread_vs_loop``: the paired bootstrap of the ROC-AUC difference alone, on one
  thread, against the same scikit-learn loop (one thread too): the like-for-like ratio, since
  the gate's own bootstrap runs on ``min(2, cpu count)`` threads.

The rows are synthetic (a label with 30% positives and two models of different strength), so
the figures depend only on the row and resample counts.

* ``accept_better_1000`` and ``accept_worse_1000``: the gate's calibration, from
  :func:`conveyor.evaluation.calibration.operating_curve` at the default policy on 1,000 test
  rows (200 simulated test sets a point, 50 with ``--quick``): the share of challengers truly
  better by 0.02 AUC promoted (goal: at least 80%) and truly worse by 0.02 AUC (goal: at most
  5%).

Run: ``python -m benchmarks gate [--quick] [--json]``. The operating curve of ``docs/gate.md``
is printed by ``python -m benchmarks.gate_bench --curve [--n-sim N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from benchmarks import Result
from conveyor.evaluation import GatePolicy, compare_models
from conveyor.evaluation.calibration import curve_table, operating_curve
from conveyor.evaluation.paired import paired_bootstrap

ROWS = 100_000
RESAMPLES = 1_000
GOAL_S = 5.0
GOAL = "goal: 5 s on 2 cores"

#: The operating curve of docs/gate.md: true differences per metric and test sizes.
CURVE_DIFFERENCES: dict[str, tuple[float, ...]] = {
    "roc_auc": (-0.04, -0.02, -0.01, 0.0, 0.01, 0.02, 0.04),
    "rmse": (-0.10, -0.05, -0.025, 0.0, 0.025, 0.05, 0.10),
}
CURVE_SIZES = (200, 500, 1000, 5000)


def run(quick: bool) -> list[Result]:
    """Time the gate's decision on ``ROWS`` rows; see the module docstring."""
    repeats = 1 if quick else 3
    y, strong, weak = _binary_rows(ROWS, seed=0)
    truth, near, far = _regression_rows(ROWS, seed=1)
    compare_models(y[:2000], strong[:2000], weak[:2000], task="binary")  # imports, caches

    def gate(metric: str, task: str, arrays: tuple[np.ndarray, ...]) -> Callable[[], object]:
        policy = GatePolicy(metric=metric, n_bootstrap=RESAMPLES, seed=0)
        return lambda: compare_models(*arrays, task=task, policy=policy)

    auc = _median(gate("roc_auc", "binary", (y, strong, weak)), repeats, "roc_auc")
    accuracy = _median(gate("accuracy", "binary", (y, strong, weak)), repeats, "accuracy")
    rmse = _median(gate("rmse", "regression", (truth, near, far)), repeats, "rmse")
    loop = _sklearn_loop(y, strong, weak, resamples=5 if quick else 20)

    def one_thread() -> object:
        return paired_bootstrap(
            "roc_auc", y, strong, weak, n_resamples=RESAMPLES, seed=0, workers=1
        )

    single = _median(one_thread, repeats, "bootstrap on 1 thread")
    bench = "gate"
    return [
        Result(bench, "gate_roc_auc_100k", "s", auc, GOAL, GOAL_S, "lower", goal=GOAL_S),
        Result(
            bench,
            "gate_roc_auc_100k_vs_loop",
            "s",
            auc,
            "scikit-learn roc_auc_score per resample, 1 thread (gate on 2)",
            loop,
            "lower",
        ),
        Result(
            bench,
            "bootstrap_auc_1_thread_vs_loop",
            "s",
            single,
            "scikit-learn roc_auc_score per resample, 1 thread",
            loop,
            "lower",
        ),
        Result(bench, "gate_accuracy_100k", "s", accuracy, GOAL, GOAL_S, "lower", goal=GOAL_S),
        Result(bench, "gate_rmse_100k", "s", rmse, GOAL, GOAL_S, "lower", goal=GOAL_S),
        *_calibration(n_sim=50 if quick else 200),
    ]


def _calibration(n_sim: int) -> list[Result]:
    worse, better = operating_curve("roc_auc", [-0.02, 0.02], [1000], n_sim=n_sim)
    print(
        f"  operating curve: {n_sim} test sets a point, accept {better.accept_rate:.0%} of "
        f"better and {worse.accept_rate:.0%} of worse challengers",
        file=sys.stderr,
    )
    goal = "goal of the gate's calibration"
    return [
        Result("gate", "accept_better_1000", "share", better.accept_rate, goal, 0.8, "higher",
               goal=0.8),
        Result("gate", "accept_worse_1000", "share", worse.accept_rate, goal, 0.05, "lower",
               goal=0.05),
    ]  # fmt: skip


def curve_markdown(n_sim: int, seed: int = 0) -> str:
    """The operating curve of ``docs/gate.md`` as Markdown tables, one per metric."""
    tables = []
    for metric, differences in CURVE_DIFFERENCES.items():
        points = operating_curve(metric, differences, CURVE_SIZES, n_sim=n_sim, seed=seed)
        tables.append(curve_table(points))
    return "\n\n".join(tables)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.gate_bench --curve [--n-sim N] [--seed S]``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gate_bench")
    parser.add_argument("--curve", action="store_true", help="print the operating curve")
    parser.add_argument("--n-sim", type=int, default=200, help="simulated test sets a point")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.curve:
        print(curve_markdown(args.n_sim, args.seed))
        return 0
    for result in run(quick=False):
        print(result.to_dict())
    return 0


def _median(call: Callable[[], object], repeats: int, name: str) -> float:
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
        print(f"  {name}: run {i + 1}/{repeats} took {times[-1]:.2f} s", file=sys.stderr)
    return statistics.median(times)


def _sklearn_loop(y: np.ndarray, a: np.ndarray, b: np.ndarray, *, resamples: int) -> float:
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415 - the peer, only when measured

    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for _ in range(resamples):
        rows = rng.integers(0, len(y), len(y))
        roc_auc_score(y[rows], a[rows]) - roc_auc_score(y[rows], b[rows])
    elapsed = time.perf_counter() - started
    print(f"  scikit-learn loop: {resamples} resamples took {elapsed:.2f} s", file=sys.stderr)
    return elapsed * RESAMPLES / resamples


def _binary_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.float64)

    def model(strength: float) -> np.ndarray:
        logit = strength * (y - 0.3) + rng.normal(size=n)
        return np.asarray(1 / (1 + np.exp(-logit)))

    return y, model(1.6), model(1.5)


def _regression_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.normal(10.0, 3.0, n)
    return truth, truth + rng.normal(0, 1.0, n), truth + rng.normal(0, 1.1, n)


if __name__ == "__main__":
    sys.exit(main())
