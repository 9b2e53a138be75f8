"""Label-free performance estimates from predicted probabilities (confidence-based, CBPE-style).

For a calibrated binary classifier, a prediction ``p`` says its row is positive with probability
``p``. Treating each label as an independent Bernoulli(``p``) draw gives the expected value of a
metric without a single label:

- accuracy at threshold ``t``: the mean of ``p`` over rows predicted positive and of ``1 - p``
  over the others;
- ROC-AUC: the expected number of correctly ordered (positive, negative) pairs divided by the
  expected number of such pairs, computed in ``O(n log n)`` after sorting by score;
- Brier score ``mean(p (1 - p))`` and log loss ``mean(H(p))``, the entropy of each prediction.

A multiclass model's probability vector says its row is of class ``c`` with probability
``p[c]``; one-vs-rest, each class is a binary problem with those probabilities, so the expected
macro ROC-AUC is the mean of the classes' expected ROC-AUCs, the expected accuracy of the most
probable class is the mean of ``max(p)``, and the expected log loss the mean entropy of ``p``
(:func:`estimate_multiclass`; no calibration is fitted: the probabilities are taken as they are).

When the model is not calibrated on the served population, :func:`fit_calibration` maps scores
to probabilities with an isotonic fit on rows whose labels arrived (as NannyML calibrates on its
reference period), and :func:`estimate_performance` applies it first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from conveyor.core.errors import InvalidInputError

_EPS = 1e-15


@dataclass(frozen=True, slots=True)
class Calibration:
    """A monotone map from scores to probabilities: ``np.interp(score, x, y)``."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    rows: int

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of ``scores``."""
        mapped: np.ndarray = np.clip(np.interp(scores, self.x, self.y), 0.0, 1.0)
        return mapped


def _probabilities(scores: Any, what: str) -> np.ndarray:
    p = np.asarray(scores, dtype=np.float64)
    if p.ndim != 1:
        raise InvalidInputError(f"The {what!r} must be a 1-D array. Got shape {p.shape} instead.")
    if p.size and (not np.isfinite(p).all() or p.min() < 0.0 or p.max() > 1.0):
        raise InvalidInputError(
            f"The {what!r} must be probabilities in [0, 1]. Got values from {np.nanmin(p)} "
            f"to {np.nanmax(p)} instead."
        )
    return p


def fit_calibration(scores: Any, labels: Any) -> Calibration:
    """Fit an isotonic map from ``scores`` to the observed positive rate.

    Raises
    ------
    InvalidInputError
        If the arrays differ in length, are empty, or labels are not 0/1.

    Examples
    --------
    >>> cal = fit_calibration([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    >>> cal.apply(np.array([0.15, 0.85])).tolist()
    [0.0, 1.0]
    """
    from sklearn.isotonic import IsotonicRegression  # heavy import, needed only here

    s = _probabilities(scores, "scores")
    y = np.asarray(labels, dtype=np.float64)
    if s.size == 0 or y.shape != s.shape or not np.isin(y, (0.0, 1.0)).all():
        raise InvalidInputError(
            "fit_calibration() takes as many 0/1 labels as scores, at least one. "
            f"Got {s.size} scores and labels {np.unique(y)[:5].tolist()} instead."
        )
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
    return Calibration(
        x=tuple(float(v) for v in iso.X_thresholds_),
        y=tuple(float(v) for v in iso.y_thresholds_),
        rows=int(s.size),
    )


def expected_accuracy(p: np.ndarray, threshold: float = 0.5) -> float:
    """Expected accuracy of thresholding calibrated probabilities ``p`` at ``threshold``.

    Examples
    --------
    >>> expected_accuracy(np.array([0.9, 0.2, 0.5]))
    0.7333333333333334
    """
    return float(np.where(p >= threshold, p, 1.0 - p).mean())


def expected_roc_auc(p: np.ndarray) -> float:
    """Expected ROC-AUC of calibrated probabilities ``p`` used as scores (ties count half).

    Returns ``nan`` when fewer than two rows or every ``p`` is 0 or 1 on one side.

    Examples
    --------
    >>> round(expected_roc_auc(np.array([0.0, 0.0, 1.0, 1.0])), 6)
    1.0
    >>> round(expected_roc_auc(np.full(10, 0.3)), 6)
    0.5
    """
    if p.size < 2:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    ps = p[order]
    neg = 1.0 - ps
    # Negative mass strictly below each score, and within each run of equal scores.
    uniq, start, counts = np.unique(ps, return_index=True, return_counts=True)
    neg_cum = np.concatenate(([0.0], np.cumsum(neg)))
    below_group = neg_cum[start]
    within_group = neg_cum[start + counts] - below_group
    group_of = np.repeat(np.arange(uniq.size), counts)
    below = below_group[group_of]
    ties = within_group[group_of] - neg  # the same row is not its own pair
    numerator = float(np.sum(ps * (below + 0.5 * ties)))
    denominator = float(ps.sum() * neg.sum() - np.sum(ps * neg))
    if denominator <= _EPS:
        return float("nan")
    return min(max(numerator / denominator, 0.0), 1.0)  # rounding can step past the bounds


def estimate_intervals(p: np.ndarray, threshold: float = 0.5) -> dict[str, tuple[float, float]]:
    """95% ranges of the accuracy and ROC-AUC that labels drawn as Bernoulli(``p``) would give.

    The estimate says what the labels are expected to score; the range says how far a window's
    realised metric may fall from it by the luck of the draw alone (not counting a wrong
    calibration). Accuracy: each row is right with probability ``max(p, 1 - p)`` (at
    ``threshold``), independently. ROC-AUC: the Hanley-McNeil standard error with the expected
    numbers of positives and negatives. Ranges are clipped to [0, 1]; a metric without an
    estimate has no range.

    Examples
    --------
    >>> low, high = estimate_intervals(np.full(400, 0.9))["accuracy"]
    >>> round(low, 3), round(high, 3)
    (0.871, 0.929)
    """
    out: dict[str, tuple[float, float]] = {}
    if p.size == 0:
        return out
    z = 1.959963984540054
    right = np.where(p >= threshold, p, 1.0 - p)
    accuracy = float(right.mean())
    half = z * float(np.sqrt(np.sum(right * (1.0 - right)))) / p.size
    out["accuracy"] = (max(accuracy - half, 0.0), min(accuracy + half, 1.0))
    auc = expected_roc_auc(p)
    positives, negatives = float(p.sum()), float((1.0 - p).sum())
    if auc == auc and positives > 1.0 and negatives > 1.0:
        q1, q2 = auc / (2.0 - auc), 2.0 * auc * auc / (1.0 + auc)
        variance = (
            auc * (1.0 - auc)
            + (positives - 1.0) * (q1 - auc * auc)
            + (negatives - 1.0) * (q2 - auc * auc)
        ) / (positives * negatives)
        half = z * float(np.sqrt(max(variance, 0.0)))
        out["roc_auc"] = (max(auc - half, 0.0), min(auc + half, 1.0))
    return out


def estimate_performance(
    task: str,
    scores: Any,
    *,
    calibration: Calibration | None = None,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Expected metrics of a window of predictions whose labels have not arrived.

    Parameters
    ----------
    task : str
        ``"binary"`` and ``"multiclass"`` (see :func:`estimate_multiclass`) have a label-free
        estimate; a regression returns ``{}``.
    scores : array-like of shape (n,) or (n, k)
        Predicted positive-class probabilities, or a multiclass model's class probabilities.
    calibration : Calibration, optional
        Applied to ``scores`` first (see :func:`fit_calibration`).
    threshold : float
        Decision threshold of the accuracy estimate.

    Returns
    -------
    dict
        ``roc_auc``, ``accuracy``, ``brier``, ``log_loss``, ``positive_rate`` (the expected
        share of positive labels), ``intervals`` (95% ranges of accuracy and ROC-AUC, see
        :func:`estimate_intervals`), ``n`` and ``calibrated`` (whether a calibration was
        applied).

    Raises
    ------
    InvalidInputError
        If a score is not a probability.

    Examples
    --------
    >>> est = estimate_performance("binary", [0.05, 0.1, 0.9, 0.95])
    >>> round(est["accuracy"], 3), round(est["roc_auc"], 3)
    (0.925, 0.97)
    """
    if task == "multiclass":
        return estimate_multiclass(scores)
    if task != "binary":
        return {}
    p = _probabilities(scores, "scores")
    if calibration is not None:
        p = calibration.apply(p)
    if p.size == 0:
        return {"n": 0, "calibrated": calibration is not None}
    clipped = np.clip(p, _EPS, 1.0 - _EPS)
    entropy = -(clipped * np.log(clipped) + (1.0 - clipped) * np.log(1.0 - clipped))
    return {
        "roc_auc": expected_roc_auc(p),
        "accuracy": expected_accuracy(p, threshold),
        "brier": float(np.mean(p * (1.0 - p))),
        "log_loss": float(entropy.mean()),
        "positive_rate": float(p.mean()),
        "intervals": {k: list(v) for k, v in estimate_intervals(p, threshold).items()},
        "n": int(p.size),
        "calibrated": calibration is not None,
    }


def estimate_multiclass(probabilities: Any) -> dict[str, Any]:
    """Expected metrics of a multiclass window from its ``(n, k)`` class probabilities.

    Returns
    -------
    dict
        ``roc_auc_macro`` (mean over classes of the one-vs-rest expected ROC-AUC, classes
        without one left out), ``accuracy`` (of the most probable class), ``log_loss``,
        ``class_shares`` (the expected share of each class, in class order), ``intervals``
        (95% range of accuracy, each row right with probability ``max(p)``, and of
        ``roc_auc_macro`` as the mean of the classes' ranges), ``n`` and ``calibrated``
        (always ``False``).

    Raises
    ------
    InvalidInputError
        If the probabilities are not a 2-D array of values in [0, 1].

    Examples
    --------
    >>> est = estimate_multiclass([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    >>> round(est["accuracy"], 3), est["n"]
    (0.833, 3)
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2:
        raise InvalidInputError(
            f"Multiclass probabilities must be a 2-D array (rows, classes). Got shape {p.shape}."
        )
    _probabilities(p.ravel(), "probabilities")
    if len(p) == 0:
        return {"n": 0, "calibrated": False}
    aucs, lows, highs = [], [], []
    for c in range(p.shape[1]):
        auc = expected_roc_auc(p[:, c])
        if auc != auc:
            continue
        aucs.append(auc)
        low, high = estimate_intervals(p[:, c]).get("roc_auc", (auc, auc))
        lows.append(low)
        highs.append(high)
    top = p.max(axis=1)  # each row is right with probability max(p), independently
    accuracy = float(top.mean())
    half = 1.959963984540054 * float(np.sqrt(np.sum(top * (1.0 - top)))) / len(p)
    clipped = np.clip(p, _EPS, 1.0)
    intervals = {"accuracy": [max(accuracy - half, 0.0), min(accuracy + half, 1.0)]}
    if aucs:
        intervals["roc_auc_macro"] = [float(np.mean(lows)), float(np.mean(highs))]
    return {
        "roc_auc_macro": float(np.mean(aucs)) if aucs else float("nan"),
        "accuracy": accuracy,
        "log_loss": float(-(p * np.log(clipped)).sum(axis=1).mean()),
        "class_shares": p.mean(axis=0).tolist(),
        "intervals": intervals,
        "n": int(len(p)),
        "calibrated": False,
    }
