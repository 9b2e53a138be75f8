"""The gate's operating curve: how often it promotes a challenger of a known true difference.

Each simulation draws one test set of paired predictions from production and a challenger
whose true quality differs by a known amount, runs the gate's own decision
(:func:`conveyor.evaluation.compare_models`) on it, and records whether the challenger passed;
the share that passed is the accept rate at that true difference and test size.

* **roc_auc** (binary): a label with ``positive_rate`` positives; each model scores a row
  ``a * label + noise`` (a binormal model, so its AUC is ``Phi(a / sqrt(2))``), turned into a
  probability by the logistic function. Production's AUC is ``base_auc``, the challenger's
  ``base_auc + d``; the two models' noises have correlation ``correlation``, as two models of
  the same rows share most of their mistakes.
* **rmse**, **mae** (regression): production's errors are standard normal, the challenger's
  ``(1 - d)`` times a normal with correlation ``correlation`` to them, so its RMSE (and MAE) is
  ``1 - d`` times production's: ``d = 0.05`` is a challenger 5% better, ``-0.05`` 5% worse.

A positive ``d`` always means the challenger is truly better. The curve depends on the
correlation (the closer the two models, the tighter the paired interval); the defaults (0.8,
an AUC of 0.75 with 30% positives) are those of ``docs/gate.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Any

import numpy as np

from conveyor.core.errors import InvalidInputError
from conveyor.evaluation.gate import GatePolicy, compare_models

#: The metrics a simulation can be run for, and the task of each.
SIMULATED: dict[str, str] = {"roc_auc": "binary", "rmse": "regression", "mae": "regression"}

#: The true differences simulated when none are given: the issue's goals for each metric.
DEFAULT_DIFFERENCES: dict[str, tuple[float, ...]] = {
    "roc_auc": (-0.02, 0.0, 0.02),
    "rmse": (-0.05, 0.0, 0.05),
    "mae": (-0.05, 0.0, 0.05),
}


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """The gate's accept rate for one true difference on test sets of one size.

    ``true_difference`` is oriented like ``GateDecision.delta`` (positive: the challenger is
    truly better): AUC points for ``roc_auc``, a share of production's error for ``rmse`` and
    ``mae``. ``accept_rate`` is the share of ``n_sim`` simulated test sets of ``test_rows``
    rows on which the gate passed the challenger.
    """

    metric: str
    true_difference: float
    test_rows: int
    accept_rate: float
    n_sim: int

    @property
    def standard_error(self) -> float:
        """The binomial standard error of ``accept_rate``."""
        p = self.accept_rate
        return math.sqrt(p * (1 - p) / self.n_sim)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "true_difference": self.true_difference,
            "test_rows": self.test_rows,
            "accept_rate": self.accept_rate,
            "n_sim": self.n_sim,
        }


def operating_curve(
    metric: str = "roc_auc",
    true_differences: Sequence[float] | None = None,
    test_sizes: Sequence[int] = (1000,),
    n_sim: int = 200,
    seed: int = 0,
    *,
    policy: GatePolicy | None = None,
    correlation: float = 0.8,
    base_auc: float = 0.75,
    positive_rate: float = 0.3,
) -> list[OperatingPoint]:
    """Simulate the gate on challengers of known true difference; return each accept rate.

    Parameters
    ----------
    metric : {"roc_auc", "rmse", "mae"}
        The gate metric simulated (see the module docstring for each model of the data).
    true_differences : sequence of float, optional
        The challenger's true advantage: AUC points for ``roc_auc``, a share of production's
        error for ``rmse`` and ``mae``. Defaults to :data:`DEFAULT_DIFFERENCES`.
    test_sizes : sequence of int
        Test-set sizes in rows. Below the policy's ``min_rows`` the gate refuses every
        challenger measured against production.
    n_sim : int
        Simulated test sets per (difference, size). At the defaults the run takes about 15 s.
    seed : int
        Seed of the data and of the gate's resampling; the same seed gives the same curve.
    policy : GatePolicy, optional
        The gate policy simulated; defaults to ``GatePolicy()`` (the project defaults), with
        ``metric`` set to ``metric``.
    correlation : float
        Correlation of the two models' noises (binary) or errors (regression), in [0, 1).
    base_auc : float
        Production's true AUC (``roc_auc`` only).
    positive_rate : float
        Share of positive labels (``roc_auc`` only).

    Returns
    -------
    list of OperatingPoint
        One per (size, difference), sizes in the outer order.

    Raises
    ------
    InvalidInputError
        If the metric cannot be simulated or a setting is out of range.

    Examples
    --------
    >>> points = operating_curve("rmse", [0.2], test_sizes=[300], n_sim=5)
    >>> [(p.true_difference, p.test_rows, p.accept_rate) for p in points]
    [(0.2, 300, 1.0)]
    """
    differences = _check(
        metric, true_differences, test_sizes, n_sim, correlation, base_auc, positive_rate
    )
    policy = replace(policy or GatePolicy(), metric=metric)
    task = SIMULATED[metric]
    streams = iter(np.random.SeedSequence(seed).spawn(len(test_sizes) * len(differences)))
    points = []
    for rows in test_sizes:
        for difference in differences:
            rng = np.random.default_rng(next(streams))
            passed = 0
            for i in range(n_sim):
                if task == "binary":
                    y, challenger, production = _binary_rows(
                        rng, rows, difference, correlation, base_auc, positive_rate
                    )
                else:
                    y, challenger, production = _regression_rows(rng, rows, difference, correlation)
                decision = compare_models(
                    y, challenger, production, task=task, policy=replace(policy, seed=i)
                )
                passed += decision.passed
            points.append(OperatingPoint(metric, difference, rows, passed / n_sim, n_sim))
    return points


def curve_table(points: Sequence[OperatingPoint]) -> str:
    """The accept rates as a Markdown table: a row per true difference, a column per size.

    Examples
    --------
    >>> print(curve_table([OperatingPoint("rmse", 0.05, 1000, 0.9, 10)]))
    | true difference (rmse) | 1000 rows |
    |---:|---:|
    | +0.05 | 90% |
    """
    if not points:
        return ""
    metric = points[0].metric
    sizes = sorted({p.test_rows for p in points})
    differences = sorted({p.true_difference for p in points})
    rate = {(p.true_difference, p.test_rows): p.accept_rate for p in points}
    lines = [
        f"| true difference ({metric}) | " + " | ".join(f"{s} rows" for s in sizes) + " |",
        "|---:|" + "---:|" * len(sizes),
    ]
    for d in differences:
        cells = [f"{rate[(d, s)]:.0%}" if (d, s) in rate else "" for s in sizes]
        lines.append(f"| {d:+g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _binary_rows(
    rng: np.random.Generator,
    n: int,
    difference: float,
    correlation: float,
    base_auc: float,
    positive_rate: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = (rng.random(n) < positive_rate).astype(np.float64)
    challenger_noise, production_noise = _correlated_normals(rng, n, correlation)
    z = NormalDist().inv_cdf
    separation = math.sqrt(2.0)
    production = separation * z(base_auc) * y + production_noise
    challenger = separation * z(base_auc + difference) * y + challenger_noise
    return y, _logistic(challenger), _logistic(production)


def _regression_rows(
    rng: np.random.Generator, n: int, difference: float, correlation: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = rng.normal(0.0, 3.0, n)
    challenger_error, production_error = _correlated_normals(rng, n, correlation)
    return y, y - (1.0 - difference) * challenger_error, y - production_error


def _correlated_normals(
    rng: np.random.Generator, n: int, correlation: float
) -> tuple[np.ndarray, np.ndarray]:
    shared, own = rng.standard_normal((2, n))
    return correlation * shared + math.sqrt(1.0 - correlation**2) * own, shared


def _logistic(score: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-score)))


def _check(
    metric: str,
    true_differences: Sequence[float] | None,
    test_sizes: Sequence[int],
    n_sim: int,
    correlation: float,
    base_auc: float,
    positive_rate: float,
) -> tuple[float, ...]:
    if metric not in SIMULATED:
        raise InvalidInputError(
            f"The 'metric' of operating_curve() must be one of {sorted(SIMULATED)}. "
            f"Got {metric!r} instead."
        )
    differences = tuple(
        DEFAULT_DIFFERENCES[metric] if true_differences is None else true_differences
    )
    if not differences or not test_sizes:
        raise InvalidInputError(
            "operating_curve() needs at least one true difference and one test size. "
            f"Got {list(differences)} and {list(test_sizes)} instead."
        )
    if n_sim < 1 or any(size < 2 for size in test_sizes):
        raise InvalidInputError(
            "The 'n_sim' of operating_curve() must be an int in [1, inf) and every test size "
            f"an int in [2, inf). Got {n_sim!r} and {list(test_sizes)} instead."
        )
    if not 0.0 <= correlation < 1.0:
        raise InvalidInputError(
            "The 'correlation' of operating_curve() must be a float in [0, 1). "
            f"Got {correlation!r} instead."
        )
    if metric == "roc_auc":
        if not 0.0 < positive_rate < 1.0:
            raise InvalidInputError(
                "The 'positive_rate' of operating_curve() must be a float in (0, 1). "
                f"Got {positive_rate!r} instead."
            )
        bad = [d for d in differences if not 0.5 <= base_auc + d < 1.0]
        if bad or not 0.5 <= base_auc < 1.0:
            raise InvalidInputError(
                "base_auc and base_auc + each true difference of operating_curve() must be in "
                f"[0.5, 1). Got base_auc {base_auc!r} and differences {bad} instead."
            )
    elif any(d >= 1.0 for d in differences):
        raise InvalidInputError(
            f"A true difference of {metric} is a share of production's error, below 1. "
            f"Got {[d for d in differences if d >= 1.0]} instead."
        )
    return differences
