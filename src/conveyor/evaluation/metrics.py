"""Metrics of a model's predictions against the truth, and which direction of each is better.

Binary predictions are probabilities of the positive class (truth coded 0/1 by the label's
:class:`~conveyor.core.labels.LabelCodec`); multiclass predictions are an ``(n, k)`` matrix of
class probabilities in the codec's class order (truth coded ``0..k-1``); regression predictions
are values.
Every metric is a plain ``float`` so it can be logged, stored and compared; a metric that cannot
be computed on the data (AUC with a single class, R² of a constant truth) is ``nan``, never an
exception, because a short monitoring window must still produce a report.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, cast

import numpy as np

from conveyor.core.errors import InvalidInputError
from conveyor.core.labels import Task

TASKS: tuple[str, ...] = tuple(task.value for task in Task)


def _sk() -> ModuleType:
    """scikit-learn's metrics, imported on first use: the import costs about a second of
    start-up that commands which never evaluate a model should not pay."""
    import sklearn.metrics  # noqa: PLC0415

    return cast(ModuleType, sklearn.metrics)


#: Probabilities are clipped to [EPS, 1 - EPS] before the log loss so one confident mistake
#: costs a large but finite amount.
EPS = 1e-15

_HIGHER_IS_BETTER: dict[str, bool] = {
    "roc_auc": True,
    "roc_auc_macro": True,
    "macro_f1": True,
    "accuracy": True,
    "log_loss": False,
    "brier": False,
    "mae": False,
    "rmse": False,
    "r2": True,
}

_COMPARABLE: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "accuracy", "log_loss", "brier"),
    "multiclass": ("roc_auc_macro", "log_loss", "accuracy", "macro_f1"),
    "regression": ("rmse", "mae", "r2"),
}


def check_task(task: str) -> str:
    """Return ``task`` if it is a task Conveyor knows.

    Raises
    ------
    InvalidInputError
        If ``task`` is not one of :data:`TASKS` (``binary``, ``multiclass``, ``regression``).
    """
    if task not in TASKS:
        raise InvalidInputError(f"The task must be one of {list(TASKS)}. Got {task!r} instead.")
    return task


def comparable_metrics(task: str) -> tuple[str, ...]:
    """The metrics of ``task`` that can rank two models, primary first.

    Examples
    --------
    >>> comparable_metrics("regression")
    ('rmse', 'mae', 'r2')
    """
    return _COMPARABLE[check_task(task)]


def primary_metric(task: str) -> str:
    """The metric that decides between models of ``task``: ``roc_auc``, ``roc_auc_macro`` or
    ``rmse``.

    Examples
    --------
    >>> primary_metric("binary")
    'roc_auc'
    """
    return comparable_metrics(task)[0]


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` means a better model.

    Raises
    ------
    InvalidInputError
        If ``metric`` is not a metric that ranks models (``n`` or ``mean_prediction`` do not).

    Examples
    --------
    >>> higher_is_better("roc_auc"), higher_is_better("rmse")
    (True, False)
    """
    try:
        return _HIGHER_IS_BETTER[metric]
    except KeyError:
        raise InvalidInputError(
            f"The metric must be one of {sorted(_HIGHER_IS_BETTER)}. Got {metric!r} instead."
        ) from None


def is_better(metric: str, value: float, reference: float) -> bool:
    """Whether ``value`` of ``metric`` is strictly better than ``reference``.

    A ``nan`` on either side is never better: an undefined score cannot win.

    Examples
    --------
    >>> is_better("rmse", 2.0, 3.0), is_better("roc_auc", float("nan"), 0.5)
    (True, False)
    """
    if math.isnan(value) or math.isnan(reference):
        return False
    return value > reference if higher_is_better(metric) else value < reference


def evaluate(task: str, y_true: Any, y_pred: Any) -> dict[str, float]:
    """Compute the metrics of ``task`` for predictions ``y_pred`` of ``y_true``.

    Parameters
    ----------
    task : {"binary", "multiclass", "regression"}
        ``binary`` expects labels in {0, 1} (or booleans) and positive-class probabilities;
        ``multiclass`` class codes ``0..k-1`` and an ``(n, k)`` probability matrix;
        ``regression`` expects numbers.
    y_true : array-like of shape (n,)
    y_pred : array-like of shape (n,), or (n, k) for a multiclass task
        The truth and the predictions, aligned row by row.

    Returns
    -------
    dict of str to float
        Binary: ``roc_auc`` (``nan`` with a single class), ``accuracy`` (threshold 0.5),
        ``log_loss`` (probabilities clipped to [1e-15, 1 - 1e-15]), ``brier``,
        ``positive_rate``, ``mean_prediction``, ``n``. Regression: ``mae``, ``rmse``, ``r2``
        (``nan`` when the truth is constant), ``mean_prediction``, ``n``. Multiclass:
        ``roc_auc_macro`` (one-vs-rest AUC averaged over the classes present with both
        outcomes; ``nan`` when none is), ``log_loss``, ``accuracy`` (most probable class),
        ``macro_f1`` (over the classes in the truth or the predictions), ``prior_log_loss``
        (the log loss of the truth's own class frequencies: what a constant model reaches at
        best), ``classes_present``, ``n_classes``, ``n``.

    Raises
    ------
    InvalidInputError
        If the task is unknown, the arrays are empty, of different lengths or contain missing
        values, a binary label is not 0/1, or a probability is outside [0, 1]; or, for a
        multiclass task, the predictions are not an (n, k) matrix with k >= 2 or a code is not
        in ``0..k-1``.

    Examples
    --------
    >>> m = evaluate("binary", [0, 1, 1, 0], [0.1, 0.8, 0.6, 0.3])
    >>> m["roc_auc"], m["accuracy"], m["n"]
    (1.0, 1.0, 4.0)
    """
    check_task(task)
    y, p = check_predictions(task, y_true, y_pred)
    if task == "binary":
        return _binary_metrics(y, p)
    if task == "multiclass":
        return _multiclass_metrics(y, p)
    return _regression_metrics(y, p)


def check_predictions(task: str, y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return ``y_true`` and ``y_pred`` as float64 vectors after checking they fit ``task``.

    A multiclass ``y_pred`` is returned as an ``(n, k)`` matrix.

    Raises
    ------
    InvalidInputError
        As :func:`evaluate`.
    """
    y = _as_vector(y_true, "y_true")
    if task == "multiclass":
        return y, _check_multiclass(y, y_pred)
    p = _as_vector(y_pred, "y_pred")
    if len(y) != len(p):
        raise InvalidInputError(
            f"y_true and y_pred must have the same length. Got {len(y)} and {len(p)} instead."
        )
    if len(y) == 0:
        raise InvalidInputError("y_true must hold at least one row. Got an empty array instead.")
    if task == "binary":
        bad = ~np.isin(y, (0.0, 1.0))
        if bad.any():
            raise InvalidInputError(
                f"Binary labels in y_true must be 0 or 1. Got {y[bad][0].item()!r} instead."
            )
        if (p < 0).any() or (p > 1).any():
            raise InvalidInputError(
                "Binary predictions in y_pred must be probabilities in [0, 1]. "
                f"Got values in [{p.min():.6g}, {p.max():.6g}] instead."
            )
    return y, p


def _as_vector(values: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must hold numbers. Got {exc} instead.") from exc
    if not np.isfinite(arr).all():
        raise InvalidInputError(
            f"{name} must hold finite values. Got {int((~np.isfinite(arr)).sum())} "
            "missing or infinite values instead."
        )
    return arr


def _binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    both_classes = bool(y.min() != y.max())
    return {
        "roc_auc": float(_sk().roc_auc_score(y, p)) if both_classes else math.nan,
        "accuracy": float(_sk().accuracy_score(y, p >= 0.5)),
        "log_loss": float(_sk().log_loss(y, np.clip(p, EPS, 1 - EPS), labels=[0.0, 1.0])),
        "brier": float(_sk().brier_score_loss(y, p, labels=[0.0, 1.0])),
        "positive_rate": float(y.mean()),
        "mean_prediction": float(p.mean()),
        "n": float(len(y)),
    }


def _regression_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    constant = bool(y.min() == y.max())
    return {
        "mae": float(_sk().mean_absolute_error(y, p)),
        "rmse": float(_sk().root_mean_squared_error(y, p)),
        "r2": math.nan if constant else float(_sk().r2_score(y, p)),
        "mean_prediction": float(p.mean()),
        "n": float(len(y)),
    }


def _check_multiclass(y: np.ndarray, y_pred: Any) -> np.ndarray:
    try:
        p = np.asarray(y_pred, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"y_pred must hold numbers. Got {exc} instead.") from exc
    if p.ndim != 2 or p.shape[1] < 2:
        raise InvalidInputError(
            "Multiclass predictions in y_pred must be an (n, k) matrix of class probabilities "
            f"with k >= 2. Got shape {p.shape} instead."
        )
    if len(y) != len(p):
        raise InvalidInputError(
            f"y_true and y_pred must have the same length. Got {len(y)} and {len(p)} instead."
        )
    if len(y) == 0:
        raise InvalidInputError("y_true must hold at least one row. Got an empty array instead.")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise InvalidInputError(
            "Multiclass predictions in y_pred must be finite probabilities in [0, 1]. "
            f"Got values in [{np.nanmin(p):.6g}, {np.nanmax(p):.6g}] instead."
        )
    bad = (y != np.round(y)) | (y < 0) | (y >= p.shape[1])
    if bad.any():
        raise InvalidInputError(
            f"Multiclass labels in y_true must be class codes in 0..{p.shape[1] - 1}. "
            f"Got {y[bad][0].item()!r} instead."
        )
    return p


def macro_auc(y: np.ndarray, p: np.ndarray) -> float:
    """One-vs-rest ROC-AUC of each class present with both outcomes, averaged; ``nan`` if none.

    Examples
    --------
    >>> macro_auc(np.array([0, 1, 2]), np.eye(3))
    1.0
    """
    scores = [
        float(_sk().roc_auc_score(y == c, p[:, c]))
        for c in range(p.shape[1])
        if 0 < int((y == c).sum()) < len(y)
    ]
    return float(np.mean(scores)) if scores else math.nan


def _multiclass_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    codes = y.astype(np.int64)
    k = p.shape[1]
    counts = np.bincount(codes, minlength=k)
    freq = counts[counts > 0] / len(codes)
    truth_p = np.clip(p[np.arange(len(codes)), codes] / p.sum(axis=1).clip(EPS), EPS, 1.0)
    guess = p.argmax(axis=1)
    return {
        "roc_auc_macro": macro_auc(codes, p),
        "log_loss": float(-np.mean(np.log(truth_p))),
        "accuracy": float(np.mean(guess == codes)),
        "macro_f1": float(_sk().f1_score(codes, guess, average="macro", zero_division=0)),
        "prior_log_loss": float(-(freq * np.log(freq)).sum()),
        "classes_present": float((counts > 0).sum()),
        "n_classes": float(k),
        "n": float(len(codes)),
    }
