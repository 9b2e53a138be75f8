"""A model's evaluation on held-out rows: every metric, errors, calibration, curves and slices.

:func:`evaluate_test_set` is what the gate records with a model version and what the evaluation
report draws. Binary scores are positive-class probabilities labelled at ``threshold``;
multiclass scores an ``(n, k)`` probability matrix labelled by its most probable class;
regression scores are values. Everything returned is JSON-ready (``nan`` where undefined).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conveyor.core.errors import InvalidInputError
from conveyor.evaluation.metrics import _sk, check_predictions, check_task, evaluate

#: Curves are thinned to about this many points for storage and drawing.
CURVE_POINTS = 200


@dataclass(frozen=True, slots=True)
class TestEvaluation:
    """Everything measured of one model on one set of test rows.

    Attributes
    ----------
    task : str
    metrics : dict
        Binary: :func:`conveyor.evaluation.evaluate`'s plus ``precision``, ``recall``, ``f1``,
        ``pr_auc`` and ``ece``; multiclass: plus ``ece`` of the top label; regression: plus
        ``mape`` (over rows with a non-zero truth).
    confusion : list of list of int or None
        ``[[tn, fp], [fn, tp]]`` at the threshold (binary); for multiclass ``k x k`` counts,
        a row per true class code and a column per predicted one.
    errors : list of dict
        Per true label: rows, errors, error rate, mean score and the most confident mistakes
        (binary, multiclass: ``mean_score`` is the mean probability of the true class); for
        regression the residual summary.
    calibration : dict or None
        ``ece`` and the reliability curve's bins (binary); for multiclass the same of the top
        label (is the most probable class right as often as its probability says?), with a
        ``note`` saying so.
    curves : dict
        ``roc`` and ``pr`` as lists of (x, y) (binary), ``residuals`` histogram (regression).
    slices : list of dict
        Metrics per value of each slice column with at least ``min_slice_rows`` rows.
    """

    task: str
    metrics: dict[str, float]
    confusion: list[list[int]] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    calibration: dict[str, Any] | None = None
    curves: dict[str, Any] = field(default_factory=dict)
    slices: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values, ``nan`` as ``None``."""
        data: dict[str, Any] = _finite(
            {
                "task": self.task,
                "metrics": self.metrics,
                "confusion": self.confusion,
                "errors": self.errors,
                "calibration": self.calibration,
                "curves": self.curves,
                "slices": self.slices,
            }
        )
        return data


def evaluate_test_set(
    task: str,
    y_true: Any,
    y_pred: Any,
    *,
    groups: Mapping[str, Any] | None = None,
    min_slice_rows: int = 100,
    bins: int = 10,
    threshold: float = 0.5,
) -> TestEvaluation:
    """Evaluate predictions on held-out rows.

    Parameters
    ----------
    task : {"binary", "multiclass", "regression"}
    y_true : array-like of shape (n,)
    y_pred : array-like of shape (n,), or (n, k) for a multiclass task
    groups : mapping of str to array-like of shape (n,), optional
        Slice columns: the value of each column on each row.
    min_slice_rows : int, default 100
        Slices with fewer rows are listed as skipped, not scored.
    bins : int, default 10
        Bins of the reliability curve.
    threshold : float, default 0.5
        Binary score at or above which a row is labelled 1.

    Returns
    -------
    TestEvaluation

    Raises
    ------
    InvalidInputError
        As :func:`conveyor.evaluation.evaluate`, or if a slice column's length differs.

    Examples
    --------
    >>> ev = evaluate_test_set("binary", [0, 1, 1, 0], [0.2, 0.9, 0.4, 0.1])
    >>> ev.confusion, ev.metrics["recall"]
    ([[2, 0], [1, 1]], 0.5)
    """
    check_task(task)
    y, p = check_predictions(task, y_true, y_pred)
    slices = slice_metrics(task, y, p, groups or {}, min_rows=min_slice_rows)
    if task == "regression":
        residuals = y - p
        metrics = {**evaluate(task, y, p), "mape": _mape(y, p)}
        return TestEvaluation(
            task=task,
            metrics=metrics,
            errors=[_residual_summary(residuals)],
            curves={"residuals": _histogram(residuals)},
            slices=slices,
        )
    if task == "multiclass":
        return _multiclass_evaluation(y, p, slices, bins)
    labels = p >= threshold
    calibration = reliability(y, p, bins=bins)
    metrics = {**evaluate(task, y, p), **_label_metrics(y, p, labels)}
    metrics["ece"] = calibration["ece"]
    return TestEvaluation(
        task=task,
        metrics=metrics,
        confusion=confusion_matrix(y, labels),
        errors=label_errors(y, p, labels),
        calibration=calibration,
        curves=_curves(y, p),
        slices=slices,
    )


def _multiclass_evaluation(
    y: np.ndarray, p: np.ndarray, slices: list[dict[str, Any]], bins: int
) -> TestEvaluation:
    codes, guess = y.astype(np.int64), p.argmax(axis=1)
    k = p.shape[1]
    rows = np.arange(len(codes))
    correct = (guess == codes).astype(np.float64)
    calibration = reliability(correct, p[rows, guess], bins=bins)
    calibration["note"] = (
        "Top-label calibration: rows binned by the probability of their most probable class, "
        "against how often that class is right."
    )
    metrics = {**evaluate("multiclass", y, p), "ece": calibration["ece"]}
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (codes, guess), 1)
    errors = []
    for label in range(k):
        members = np.flatnonzero(codes == label)
        wrong = members[guess[members] != label]
        worst = wrong[np.argsort(-p[wrong, guess[wrong]], kind="stable")[:5]]
        errors.append(
            {
                "label": label,
                "rows": len(members),
                "errors": len(wrong),
                "error_rate": len(wrong) / len(members) if len(members) else math.nan,
                "mean_score": float(p[members, label].mean()) if len(members) else math.nan,
                "worst_rows": [int(r) for r in worst],
                "worst_scores": [float(p[r, guess[r]]) for r in worst],
            }
        )
    return TestEvaluation(
        task="multiclass",
        metrics=metrics,
        confusion=confusion.tolist(),
        errors=errors,
        calibration=calibration,
        slices=slices,
    )


def confusion_matrix(y: np.ndarray, labels: np.ndarray) -> list[list[int]]:
    """``[[tn, fp], [fn, tp]]`` of 0/1 truth ``y`` and predicted labels."""
    truth, guess = y == 1, np.asarray(labels, dtype=bool)
    return [
        [int((~truth & ~guess).sum()), int((~truth & guess).sum())],
        [int((truth & ~guess).sum()), int((truth & guess).sum())],
    ]


def label_errors(
    y: np.ndarray, p: np.ndarray, labels: np.ndarray, *, worst: int = 5
) -> list[dict[str, Any]]:
    """Per true label: how often and how confidently the model gets it wrong.

    ``worst_rows`` are the positions of the ``worst`` most confident mistakes.
    """
    out: list[dict[str, Any]] = []
    for label in (0, 1):
        rows = np.flatnonzero(y == label)
        wrong = rows[labels[rows] != bool(label)]
        confidence = np.abs(p[wrong] - label)
        worst_rows = wrong[np.argsort(-confidence, kind="stable")[:worst]]
        out.append(
            {
                "label": label,
                "rows": len(rows),
                "errors": len(wrong),
                "error_rate": len(wrong) / len(rows) if len(rows) else math.nan,
                "mean_score": float(p[rows].mean()) if len(rows) else math.nan,
                "worst_rows": [int(r) for r in worst_rows],
                "worst_scores": [float(p[r]) for r in worst_rows],
            }
        )
    return out


def reliability(y: np.ndarray, p: np.ndarray, *, bins: int = 10) -> dict[str, Any]:
    """The reliability curve over equal-width score bins and the expected calibration error.

    ECE is the row-weighted mean of ``|observed positive rate - mean score|`` over the bins.

    Examples
    --------
    >>> r = reliability(np.array([0.0, 1.0, 1.0, 0.0]), np.array([0.1, 0.9, 0.8, 0.3]), bins=2)
    >>> round(r["ece"], 3), [b["rows"] for b in r["bins"]]
    (0.175, [2, 2])
    """
    if bins < 2:
        raise InvalidInputError(f"The 'bins' of reliability() must be >= 2. Got {bins} instead.")
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    counts = np.bincount(index, minlength=bins)
    score_sum = np.bincount(index, weights=p, minlength=bins)
    positive_sum = np.bincount(index, weights=y, minlength=bins)
    filled = counts > 0
    mean_score = np.divide(score_sum, counts, out=np.full(bins, np.nan), where=filled)
    observed = np.divide(positive_sum, counts, out=np.full(bins, np.nan), where=filled)
    gaps = np.abs(observed - mean_score)
    ece = float((gaps[filled] * counts[filled]).sum() / len(p))
    return {
        "ece": ece,
        "bins": [
            {
                "low": i / bins,
                "high": (i + 1) / bins,
                "rows": int(counts[i]),
                "mean_score": float(mean_score[i]),
                "observed": float(observed[i]),
            }
            for i in range(bins)
        ],
    }


def slice_metrics(
    task: str,
    y: np.ndarray,
    p: np.ndarray,
    groups: Mapping[str, Any],
    *,
    min_rows: int,
) -> list[dict[str, Any]]:
    """Metrics per value of each slice column; slices under ``min_rows`` rows are skipped.

    Each row is ``{"column", "value", "rows", "scored", **metrics}``; a skipped slice has
    ``scored=False`` and no metrics.
    """
    out: list[dict[str, Any]] = []
    for column, values in groups.items():
        for value, rows in slice_rows(column, values, len(y)):
            entry: dict[str, Any] = {"column": column, "value": value, "rows": len(rows)}
            entry["scored"] = len(rows) >= min_rows
            if entry["scored"]:
                entry.update(evaluate(task, y[rows], p[rows]))
                entry.pop("n", None)
            out.append(entry)
    return out


def slice_rows(column: str, values: Any, n: int) -> list[tuple[str, np.ndarray]]:
    """``(value, row positions)`` per distinct value of a slice column, most rows first.

    Raises
    ------
    InvalidInputError
        If ``values`` does not have ``n`` entries.
    """
    array = np.asarray(values, dtype=object).reshape(-1)
    if len(array) != n:
        raise InvalidInputError(
            f"The slice column {column!r} must have one value per test row ({n}). "
            f"Got {len(array)} instead."
        )
    keys = np.array(["(missing)" if _missing(v) else str(v) for v in array], dtype=object)
    uniques, inverse = np.unique(keys, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=len(uniques)))[:-1]
    parts = [(str(u), rows) for u, rows in zip(uniques, np.split(order, bounds), strict=True)]
    return sorted(parts, key=lambda part: (-len(part[1]), part[0]))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _label_metrics(y: np.ndarray, p: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    truth = y == 1
    tp = float((truth & labels).sum())
    predicted, actual = float(labels.sum()), float(truth.sum())
    precision = tp / predicted if predicted else math.nan
    recall = tp / actual if actual else math.nan
    f1 = (
        2 * precision * recall / (precision + recall)
        if predicted and actual and precision + recall > 0
        else math.nan
    )
    both = bool(y.min() != y.max())
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "pr_auc": float(_sk().average_precision_score(y, p)) if both else math.nan,
    }


def _mape(y: np.ndarray, p: np.ndarray) -> float:
    nonzero = y != 0
    if not nonzero.any():
        return math.nan
    return float(np.mean(np.abs((y[nonzero] - p[nonzero]) / y[nonzero])))


def _residual_summary(residuals: np.ndarray) -> dict[str, Any]:
    q = np.quantile(residuals, [0.01, 0.05, 0.5, 0.95, 0.99])
    return {
        "label": "residual",
        "rows": len(residuals),
        "mean": float(residuals.mean()),
        "std": float(residuals.std()),
        "quantiles": {
            k: float(v) for k, v in zip(("p1", "p5", "p50", "p95", "p99"), q, strict=True)
        },
        "worst_rows": [int(r) for r in np.argsort(-np.abs(residuals), kind="stable")[:5]],
    }


def _histogram(values: np.ndarray, bins: int = 30) -> dict[str, list[float]]:
    counts, edges = np.histogram(values, bins=bins)
    return {"edges": edges.tolist(), "counts": counts.astype(float).tolist()}


def _curves(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    if y.min() == y.max():
        return {}
    fpr, tpr, _ = _sk().roc_curve(y, p)
    precision, recall, _ = _sk().precision_recall_curve(y, p)
    return {
        "roc": _thin(fpr, tpr),
        "pr": _thin(recall[::-1], precision[::-1]),
    }


def _thin(x: np.ndarray, y: np.ndarray) -> list[list[float]]:
    keep = np.unique(np.linspace(0, len(x) - 1, min(len(x), CURVE_POINTS)).round().astype(int))
    return [[float(x[i]), float(y[i])] for i in keep]


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
