"""Paired comparisons of two models on the same rows: the bootstrap of a metric difference and
McNemar's test of their accuracies.

A resample of rows with replacement is the same as weighting every row by how often it was
drawn, so a block of resamples is computed at once as weighted metrics from a (resamples x rows)
matrix of counts. The AUC is a weighted Mann-Whitney statistic: the negatives are sorted once,
every positive knows once where it falls among them, and a resample then costs one cumulative
sum over the negatives' weights and one gather per positive. Blocks are independent, each with
its own random stream spawned from the seed, so they run on a small thread pool (numpy releases
the GIL in the heavy loops) and the result does not depend on how many threads ran them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from conveyor.core.errors import InvalidInputError
from conveyor.evaluation.metrics import EPS

#: Resamples x rows held in memory per block (about 16 MB of float64 weights).
CHUNK_CELLS = 2_000_000

#: Below this many discordant pairs McNemar's p-value is the exact binomial one.
EXACT_DISCORDANT = 25


def bootstrap_draws(n: int, n_resamples: int, seed: int) -> Iterator[tuple[int, np.ndarray]]:
    """The row indices of each resample, block by block, as ``(first resample, draws)``.

    ``draws`` has shape (resamples in the block, n); block ``k`` is drawn from the ``k``-th
    stream spawned from ``seed``, so any block can be redrawn on its own.

    Examples
    --------
    >>> [(start, d.shape) for start, d in bootstrap_draws(5, 3, seed=0)][0]
    (0, (3, 5))
    """
    for block in _blocks(n, n_resamples, seed):
        yield block.start, block.draw(n)


@dataclass(frozen=True, slots=True)
class _Block:
    start: int
    count: int
    stream: np.random.SeedSequence

    def draw(self, n: int) -> np.ndarray:
        return np.random.default_rng(self.stream).integers(0, n, size=(self.count, n))


def _blocks(n: int, n_resamples: int, seed: int) -> list[_Block]:
    rows = _block_rows(n)
    starts = list(range(0, n_resamples, rows))
    streams = np.random.SeedSequence(seed).spawn(len(starts))
    return [
        _Block(start, min(rows, n_resamples - start), stream)
        for start, stream in zip(starts, streams, strict=True)
    ]


def paired_bootstrap(
    metric: str,
    y: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    *,
    n_resamples: int,
    seed: int,
    workers: int | None = None,
) -> np.ndarray:
    """``metric(a) - metric(b)`` on ``n_resamples`` resamples of the rows shared by both models.

    Parameters
    ----------
    metric : str
        One of ``roc_auc``, ``accuracy``, ``log_loss``, ``brier``, ``mae``, ``rmse``, ``r2``,
        or for a multiclass task ``roc_auc_macro``, ``macro_f1``, ``log_loss``, ``accuracy``.
    y, a, b : ndarray of shape (n,)
        Checked float64 truth and the two models' predictions; a multiclass model's
        predictions are (n, k) probability matrices and the truth its class codes.
    n_resamples, seed : int
        How many resamples, and the seed of :func:`bootstrap_draws`.
    workers : int, optional
        Threads computing blocks; by default ``min(2, cpu count)``.

    Returns
    -------
    ndarray of shape (n_resamples,)
        One difference per resample (``nan`` where the metric is undefined on it).

    Raises
    ------
    InvalidInputError
        If ``metric`` has no weighted form.
    """
    if metric not in WEIGHTED:
        raise InvalidInputError(
            f"The bootstrap metric must be one of {sorted(WEIGHTED)}. Got {metric!r} instead."
        )
    score = WEIGHTED[metric]
    n = len(y)
    prepared_a, prepared_b = score.prepare(y, a), score.prepare(y, b)
    out = np.empty(n_resamples, dtype=np.float64)

    def compute(block: _Block) -> None:
        # Drawn inside the worker, so only the blocks in flight are ever in memory.
        draws = block.draw(n)
        weights = np.empty(draws.shape, dtype=np.float64)
        for row, drawn in enumerate(draws):
            weights[row] = np.bincount(drawn, minlength=n)
        stop = block.start + block.count
        out[block.start : stop] = score.compute(weights, prepared_a) - score.compute(
            weights, prepared_b
        )

    blocks = _blocks(n, n_resamples, seed)
    threads = workers if workers is not None else min(2, os.cpu_count() or 1)
    if threads <= 1:
        for block in blocks:
            compute(block)
    else:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bootstrap") as pool:
            list(pool.map(compute, blocks))
    return out


@dataclass(frozen=True, slots=True)
class McNemarResult:
    """McNemar's test of two classifiers' accuracies on the same rows.

    ``only_a`` counts rows model A gets right and B wrong, ``only_b`` the reverse. With fewer
    than :data:`EXACT_DISCORDANT` discordant rows the two-sided p-value is the exact binomial
    one (``statistic`` is then ``min(only_a, only_b)``), otherwise the chi-square with
    continuity correction, as in ``statsmodels.stats.contingency_tables.mcnemar``.
    """

    only_a: int
    only_b: int
    statistic: float
    p_value: float
    exact: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "only_a": self.only_a,
            "only_b": self.only_b,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "exact": self.exact,
        }


def mcnemar_test(correct_a: Any, correct_b: Any, *, exact: bool | None = None) -> McNemarResult:
    """McNemar's test from each row's correctness under models A and B.

    Parameters
    ----------
    correct_a, correct_b : array-like of bool, shape (n,)
        Whether each model classified each row right.
    exact : bool, optional
        Force the exact binomial (``True``) or the chi-square (``False``) form; by default
        exact below :data:`EXACT_DISCORDANT` discordant rows.

    Returns
    -------
    McNemarResult

    Raises
    ------
    InvalidInputError
        If the arrays differ in length.

    Examples
    --------
    >>> r = mcnemar_test([1, 1, 1, 0, 1], [0, 0, 1, 0, 1])
    >>> r.only_a, r.only_b, r.exact, round(r.p_value, 3)
    (2, 0, True, 0.5)
    """
    a = np.asarray(correct_a, dtype=bool).reshape(-1)
    b = np.asarray(correct_b, dtype=bool).reshape(-1)
    if len(a) != len(b):
        raise InvalidInputError(
            f"correct_a and correct_b must have the same length. Got {len(a)} and {len(b)} instead."
        )
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    discordant = only_a + only_b
    use_exact = discordant < EXACT_DISCORDANT if exact is None else exact
    if use_exact:
        low = min(only_a, only_b)
        p_value = min(1.0, 2.0 * _binomial_cdf_half(low, discordant))
        return McNemarResult(only_a, only_b, float(low), p_value, True)
    if discordant == 0:
        return McNemarResult(only_a, only_b, 0.0, 1.0, False)
    statistic = (abs(only_a - only_b) - 1.0) ** 2 / discordant
    # The chi-square survival with one degree of freedom is erfc(sqrt(x / 2)).
    p_value = math.erfc(math.sqrt(statistic / 2.0))
    return McNemarResult(only_a, only_b, statistic, p_value, False)


def _binomial_cdf_half(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), summed in exact integers before one division."""
    return sum(math.comb(n, i) for i in range(k + 1)) / (1 << n)


def _block_rows(n: int) -> int:
    return max(1, CHUNK_CELLS // max(n, 1))


@dataclass(frozen=True, slots=True)
class WeightedMetric:
    """A metric evaluated for many row weightings at once.

    ``prepare(y, pred)`` does the per-row work once; ``compute(weights, prepared)`` returns one
    value per row of the (resamples x rows) ``weights``.
    """

    prepare: Callable[[np.ndarray, np.ndarray], Any]
    compute: Callable[[np.ndarray, Any], np.ndarray]


def _mean_of(per_row: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> WeightedMetric:
    return WeightedMetric(
        prepare=per_row,
        compute=lambda w, values: (w @ values) / w.sum(axis=1),
    )


@dataclass(frozen=True, slots=True)
class _AucRows:
    negatives: np.ndarray  # negative rows, by ascending score
    positives: np.ndarray  # positive rows
    below: np.ndarray  # per positive: negatives scored strictly lower
    not_above: np.ndarray | None  # per positive: negatives scored lower or equal; None if no ties


def _prepare_auc(y: np.ndarray, pred: np.ndarray) -> _AucRows:
    negatives = np.flatnonzero(y == 0)
    negatives = negatives[np.argsort(pred[negatives], kind="stable")]
    positives = np.flatnonzero(y == 1)
    ranked, scores = pred[negatives], pred[positives]
    below = np.searchsorted(ranked, scores, side="left")
    not_above = np.searchsorted(ranked, scores, side="right")
    return _AucRows(
        negatives, positives, below, None if np.array_equal(below, not_above) else not_above
    )


def _auc(w: np.ndarray, rows: _AucRows) -> np.ndarray:
    # Weighted Mann-Whitney: each positive counts the weight of the negatives scored below it,
    # plus half of those tied with it.
    cumulative = np.zeros((len(w), len(rows.negatives) + 1))
    # np.take is about twice as fast as fancy indexing for these column gathers.
    np.cumsum(np.take(w, rows.negatives, axis=1), axis=1, out=cumulative[:, 1:])
    beaten = np.take(cumulative, rows.below, axis=1)
    if rows.not_above is not None:
        beaten += np.take(cumulative, rows.not_above, axis=1)
        beaten *= 0.5
    positive_w = np.take(w, rows.positives, axis=1)
    pairs = np.einsum("ij,ij->i", positive_w, beaten)
    total = positive_w.sum(axis=1) * cumulative[:, -1]
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
    if p.ndim == 2:
        return np.asarray(-np.log(np.clip(_truth_probability(y, p), EPS, 1.0)), dtype=np.float64)
    p = np.clip(p, EPS, 1 - EPS)
    losses: np.ndarray = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    return losses


def _correct_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    hits = p.argmax(axis=1) == y if p.ndim == 2 else (p >= 0.5) == (y == 1)
    return np.asarray(hits, dtype=np.float64)


# Multiclass: the prediction is an (n, k) probability matrix, the truth class codes 0..k-1.


def _truth_probability(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    rows = np.arange(len(y))
    return np.asarray(p[rows, y.astype(np.int64)] / p.sum(axis=1).clip(EPS), dtype=np.float64)


def _prepare_macro_auc(y: np.ndarray, p: np.ndarray) -> list[_AucRows]:
    return [
        _prepare_auc((y == c).astype(np.float64), p[:, c])
        for c in range(p.shape[1])
        if 0 < int((y == c).sum()) < len(y)
    ]


def _macro_auc(w: np.ndarray, per_class: list[_AucRows]) -> np.ndarray:
    # One-vs-rest AUC per class, averaged over the classes defined in each resample.
    if not per_class:
        return np.full(len(w), np.nan)
    aucs = np.vstack([_auc(w, rows) for rows in per_class])
    defined = np.isfinite(aucs)
    counts = defined.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.where(defined, aucs, 0.0).sum(axis=0) / counts, np.nan)


def _prepare_macro_f1(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k = p.shape[1]
    truth = np.eye(k)[y.astype(np.int64)]
    guess = np.eye(k)[p.argmax(axis=1)]
    return truth, guess


def _macro_f1(w: np.ndarray, prepared: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    # Per class, weighted true positives and the weighted counts of truth and guesses; the F1
    # of the classes in the truth or the guesses of a resample, averaged.
    truth, guess = prepared
    hits = w @ (truth * guess)
    total = w @ truth + w @ guess
    seen = total > 0
    f1 = np.divide(2 * hits, total, out=np.zeros_like(total), where=seen)
    counts = seen.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, f1.sum(axis=1) / counts, np.nan)


WEIGHTED: dict[str, WeightedMetric] = {
    "roc_auc": WeightedMetric(prepare=_prepare_auc, compute=_auc),
    "roc_auc_macro": WeightedMetric(prepare=_prepare_macro_auc, compute=_macro_auc),
    "macro_f1": WeightedMetric(prepare=_prepare_macro_f1, compute=_macro_f1),
    "accuracy": _mean_of(_correct_rows),
    "log_loss": _mean_of(_log_loss_rows),
    "brier": _mean_of(lambda y, p: (p - y) ** 2),
    "mae": _mean_of(lambda y, p: np.abs(y - p)),
    "rmse": WeightedMetric(
        prepare=lambda y, p: (y - p) ** 2,
        compute=lambda w, sq: np.sqrt((w @ sq) / w.sum(axis=1)),
    ),
    "r2": WeightedMetric(prepare=_prepare_r2, compute=_r2),
}
