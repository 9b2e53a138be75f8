"""The champion/challenger gate: is the new model not worse than production on the same rows?

The gate scores both models on one fresh test set and bootstraps the *paired* difference of
their metric: each resample draws the same rows for both models, so the noise the two share
(an easy or a hard sample) cancels and the interval is as tight as the data allows. The
difference is oriented so that ``delta > 0`` always means the challenger is better, whatever the
metric's direction; the challenger passes when the interval's lower end is above ``-margin``.

A resample of rows with replacement is the same as weighting every row by how often it was
drawn, so all resamples are computed at once as weighted metrics from a (resamples x rows)
matrix of counts, AUC included (by a weighted rank sum over the rows sorted once).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from conveyor.core.errors import InvalidInputError
from conveyor.evaluation.metrics import (
    EPS,
    check_predictions,
    check_task,
    comparable_metrics,
    evaluate,
    higher_is_better,
    is_better,
    primary_metric,
)

#: Resamples x rows held in memory at once by the bootstrap (about 32 MB of int64 counts).
_CHUNK_CELLS = 4_000_000

#: Scores at or above these are more often a leak of the label than a great model.
_TOO_GOOD = {"roc_auc": 0.999, "r2": 0.999}


@dataclass(frozen=True, slots=True)
class GatePolicy:
    """What a challenger must show to replace production.

    Parameters
    ----------
    metric : str or None
        The metric compared; ``None`` means the task's primary metric (``roc_auc``, ``rmse``).
    margin : float
        How much worse, in the metric's own units, the challenger may be: it passes when the
        lower end of the confidence interval of ``delta`` is above ``-margin``.
    min_rows : int
        Fewest test rows on which a decision is taken.
    floor : float or None
        Worst acceptable value of the metric on its own: a minimum for higher-is-better
        metrics, a maximum for lower-is-better ones (``rmse``). ``None`` means no floor.
    n_bootstrap : int
        Number of paired bootstrap resamples.
    confidence : float
        Coverage of the two-sided percentile interval, in (0, 1).
    seed : int
        Seed of the resampling, so a decision can be reproduced.
    """

    metric: str | None = None
    margin: float = 0.005
    min_rows: int = 200
    floor: float | None = None
    n_bootstrap: int = 500
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if self.metric is not None:
            higher_is_better(self.metric)
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise InvalidInputError(
                f"The 'margin' of GatePolicy must be a finite float >= 0. Got {self.margin!r} "
                "instead."
            )
        if self.min_rows < 1:
            raise InvalidInputError(
                f"The 'min_rows' of GatePolicy must be an int in [1, inf). Got {self.min_rows!r} "
                "instead."
            )
        if self.n_bootstrap < 10:
            raise InvalidInputError(
                "The 'n_bootstrap' of GatePolicy must be an int in [10, inf). "
                f"Got {self.n_bootstrap!r} instead."
            )
        if not 0 < self.confidence < 1:
            raise InvalidInputError(
                "The 'confidence' of GatePolicy must be a float in (0, 1). "
                f"Got {self.confidence!r} instead."
            )
        if self.floor is not None and not math.isfinite(self.floor):
            raise InvalidInputError(
                f"The 'floor' of GatePolicy must be a finite float or None. Got {self.floor!r} "
                "instead."
            )

    def metric_for(self, task: str) -> str:
        """The metric this policy compares for ``task``.

        Raises
        ------
        InvalidInputError
            If the policy's metric does not rank models of ``task``.
        """
        allowed = comparable_metrics(task)
        metric = self.metric or allowed[0]
        if metric not in allowed:
            raise InvalidInputError(
                f"The gate metric for a {task} task must be one of {list(allowed)}. "
                f"Got {metric!r} instead."
            )
        return metric


@dataclass(frozen=True, slots=True)
class GateDecision:
    """The gate's verdict and its evidence.

    ``delta`` is oriented so that a positive value means the challenger is better;
    ``production``, ``delta`` and the interval are ``None`` when there was no production model.
    """

    passed: bool
    metric: str
    challenger: float
    production: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The decision as JSON-ready values (``nan`` becomes ``None``)."""
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        for key, value in data.items():
            if isinstance(value, float) and not math.isfinite(value):
                data[key] = None
        return data


def compare_models(
    y_true: Any,
    challenger_pred: Any,
    production_pred: Any | None,
    *,
    task: str,
    policy: GatePolicy | None = None,
) -> GateDecision:
    """Decide whether the challenger may replace production, from predictions on the same rows.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        The truth of the test rows.
    challenger_pred, production_pred : array-like of shape (n,)
        Both models' predictions for those rows; ``production_pred=None`` when nothing is in
        production yet, in which case only the floor and the row count are checked.
    task : {"binary", "regression"}
    policy : GatePolicy, optional
        Defaults to ``GatePolicy()``.

    Returns
    -------
    GateDecision
        ``passed`` with the reasons as readable sentences.

    Raises
    ------
    InvalidInputError
        If the task, the metric or the arrays are invalid (see
        :func:`conveyor.evaluation.evaluate`).

    Examples
    --------
    >>> import numpy as np
    >>> y = np.tile([0, 1], 200)
    >>> p = np.where(y == 1, 0.7, 0.3)
    >>> compare_models(y, p, p, task="binary").passed
    True
    """
    policy = policy or GatePolicy()
    check_task(task)
    metric = policy.metric_for(task)
    y, challenger = check_predictions(task, y_true, challenger_pred)
    n = len(y)
    challenger_value = evaluate(task, y, challenger)[metric]
    failures = _threshold_failures(metric, challenger_value, n, policy)

    if production_pred is None:
        if failures:
            note = "There is no production model yet to compare with."
        else:
            floor = f" (floor {policy.floor:.3f})" if policy.floor is not None else ""
            note = (
                f"There is no production model yet: the challenger's {metric} "
                f"{challenger_value:.3f} on {n} rows is accepted on its own{floor}."
            )
        return GateDecision(
            passed=not failures,
            metric=metric,
            challenger=challenger_value,
            production=None,
            delta=None,
            ci_low=None,
            ci_high=None,
            n=n,
            reasons=(*failures, note),
        )

    _, production = check_predictions(task, y, production_pred)
    production_value = evaluate(task, y, production)[metric]
    sign = 1.0 if higher_is_better(metric) else -1.0
    delta = sign * (challenger_value - production_value)
    deltas = sign * _paired_bootstrap(metric, y, challenger, production, policy)
    deltas = deltas[np.isfinite(deltas)]
    tail = (1 - policy.confidence) / 2 * 100
    if len(deltas) == 0:
        ci_low = ci_high = math.nan
    else:
        ci_low, ci_high = (float(v) for v in np.percentile(deltas, [tail, 100 - tail]))
    comparison = _comparison_sentence(
        metric, challenger_value, production_value, delta, ci_low, ci_high, policy
    )
    not_worse = math.isfinite(ci_low) and ci_low > -policy.margin
    return GateDecision(
        passed=not failures and not_worse,
        metric=metric,
        challenger=challenger_value,
        production=production_value,
        delta=delta,
        ci_low=ci_low,
        ci_high=ci_high,
        n=n,
        reasons=(*failures, comparison),
    )


def sanity_check(valid_metrics: Mapping[str, Mapping[str, float]], task: str) -> list[str]:
    """Reasons to refuse a freshly trained candidate before it meets production.

    Parameters
    ----------
    valid_metrics : mapping
        ``{"candidate": metrics, "baseline": metrics}`` on the validation set, as in
        ``TrainResult.valid_metrics`` of :mod:`conveyor.training`; ``baseline`` may be absent,
        and an empty mapping (a model registered without validation metrics) is not checked.
    task : {"binary", "regression"}

    Returns
    -------
    list of str
        Empty when the candidate looks sound; otherwise one sentence per problem: a score too
        perfect to be true (usually a leaked label), an undefined score, or no gain over the
        baseline.

    Raises
    ------
    InvalidInputError
        If ``valid_metrics`` is not empty and has no ``candidate`` entry.

    Examples
    --------
    >>> sanity_check({"candidate": {"roc_auc": 0.75}, "baseline": {"roc_auc": 0.5}}, "binary")
    []
    """
    check_task(task)
    if not valid_metrics:
        return []
    if "candidate" not in valid_metrics:
        raise InvalidInputError(
            "valid_metrics must have a 'candidate' entry. "
            f"Got keys {sorted(valid_metrics)} instead."
        )
    candidate = valid_metrics["candidate"]
    baseline = valid_metrics.get("baseline")
    metric = primary_metric(task)
    value = _stored(candidate, metric)
    reasons: list[str] = []
    if math.isnan(value):
        reasons.append(f"The candidate's validation {metric} is undefined (nan).")
    for name, limit in _TOO_GOOD.items():
        score = _stored(candidate, name)
        if score >= limit:
            reasons.append(
                f"The candidate's validation {name} is {score:.4f}, suspiciously perfect "
                f"(>= {limit}): check the features for a leak of the label."
            )
    if baseline is not None and not math.isnan(value):
        reference = _stored(baseline, metric)
        if not is_better(metric, value, reference):
            reasons.append(
                f"The candidate's validation {metric} {value:.4f} is not better than the "
                f"baseline's {reference:.4f}."
            )
    return reasons


def _stored(metrics: Mapping[str, Any], name: str) -> float:
    # Metrics read back from JSON hold null where a value was nan.
    value = metrics.get(name)
    return math.nan if value is None else float(value)


def _threshold_failures(metric: str, value: float, n: int, policy: GatePolicy) -> list[str]:
    reasons: list[str] = []
    if n < policy.min_rows:
        reasons.append(
            f"The test set has {n} rows; the gate needs at least {policy.min_rows} to decide."
        )
    if math.isnan(value):
        reasons.append(
            f"The challenger's {metric} cannot be computed on this test set "
            "(a single class or a constant truth)."
        )
    elif policy.floor is not None and not _meets_floor(metric, value, policy.floor):
        word = "below the floor" if higher_is_better(metric) else "above the ceiling"
        reasons.append(f"The challenger's {metric} {value:.3f} is {word} {policy.floor:.3f}.")
    return reasons


def _meets_floor(metric: str, value: float, floor: float) -> bool:
    return value >= floor if higher_is_better(metric) else value <= floor


def _comparison_sentence(
    metric: str,
    challenger: float,
    production: float,
    delta: float,
    ci_low: float,
    ci_high: float,
    policy: GatePolicy,
) -> str:
    pct = f"{policy.confidence * 100:g}%"
    orientation = ""
    if not higher_is_better(metric):
        orientation = f" (positive means the challenger's {metric} is lower)"
    head = (
        f"{metric} {challenger:.3f} vs production {production:.3f}: "
        f"difference {delta:+.3f}{orientation}"
    )
    if not math.isfinite(ci_low):
        return (
            f"{head}; the {pct} interval could not be computed, so the challenger cannot be "
            "shown not to be worse."
        )
    interval = f"{pct} CI [{ci_low:.3f}, {ci_high:.3f}]"
    if ci_low > -policy.margin:
        return (
            f"{head}, {interval} lies above the allowed margin {-policy.margin:.3f}: "
            "the challenger is not worse."
        )
    return f"{head}, {interval} is below the allowed margin {-policy.margin:.3f}."


def _paired_bootstrap(
    metric: str, y: np.ndarray, a: np.ndarray, b: np.ndarray, policy: GatePolicy
) -> np.ndarray:
    """``metric(a) - metric(b)`` over ``policy.n_bootstrap`` shared resamples of the rows."""
    n = len(y)
    score = _WEIGHTED[metric]
    prepared_a, prepared_b = score.prepare(y, a), score.prepare(y, b)
    rng = np.random.default_rng(policy.seed)
    chunk = max(1, _CHUNK_CELLS // n)
    out = np.empty(policy.n_bootstrap, dtype=np.float64)
    for start in range(0, policy.n_bootstrap, chunk):
        rows = min(chunk, policy.n_bootstrap - start)
        draws = rng.integers(0, n, size=(rows, n))
        offsets = (np.arange(rows) * n)[:, None]
        weights = np.bincount((draws + offsets).ravel(), minlength=rows * n).reshape(rows, n)
        weights = weights.astype(np.float64)
        out[start : start + rows] = score.compute(weights, prepared_a) - score.compute(
            weights, prepared_b
        )
    return out


@dataclass(frozen=True, slots=True)
class _WeightedMetric:
    """A metric evaluated for many row weightings at once.

    ``prepare(y, pred)`` does the per-row work once; ``compute(weights, prepared)`` returns one
    value per row of the (resamples x rows) ``weights``.
    """

    prepare: Callable[[np.ndarray, np.ndarray], Any]
    compute: Callable[[np.ndarray, Any], np.ndarray]


def _mean_of(per_row: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> _WeightedMetric:
    return _WeightedMetric(
        prepare=per_row,
        compute=lambda w, values: (w @ values) / w.sum(axis=1),
    )


def _prepare_auc(y: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(pred, kind="stable")
    ranked = pred[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    return order, starts, y[order]


def _auc(w: np.ndarray, prepared: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    # Weighted Mann-Whitney: each positive counts the negatives scored below it, plus half of
    # those tied with it, all weighted by how often each row was drawn.
    order, starts, y_sorted = prepared
    ws = w[:, order]
    pos = np.add.reduceat(ws * y_sorted, starts, axis=1)
    neg = np.add.reduceat(ws * (1.0 - y_sorted), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    pairs = (pos * (below + 0.5 * neg)).sum(axis=1)
    total = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, pairs / np.where(total > 0, total, 1.0), np.nan)


def _prepare_r2(y: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (y - pred) ** 2, y, y**2


def _r2(w: np.ndarray, prepared: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    residual, y, y2 = prepared
    total_w = w.sum(axis=1)
    ss_res = w @ residual
    ss_tot = w @ y2 - (w @ y) ** 2 / total_w
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ss_tot > 1e-12 * np.maximum(w @ y2, 1.0), 1 - ss_res / ss_tot, np.nan)


def _log_loss_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    losses: np.ndarray = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    return losses


_WEIGHTED: dict[str, _WeightedMetric] = {
    "roc_auc": _WeightedMetric(prepare=_prepare_auc, compute=_auc),
    "accuracy": _mean_of(lambda y, p: ((p >= 0.5) == (y == 1)).astype(np.float64)),
    "log_loss": _mean_of(_log_loss_rows),
    "brier": _mean_of(lambda y, p: (p - y) ** 2),
    "mae": _mean_of(lambda y, p: np.abs(y - p)),
    "rmse": _WeightedMetric(
        prepare=lambda y, p: (y - p) ** 2,
        compute=lambda w, sq: np.sqrt((w @ sq) / w.sum(axis=1)),
    ),
    "r2": _WeightedMetric(prepare=_prepare_r2, compute=_r2),
}
