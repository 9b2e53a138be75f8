"""Judge whether a feature leaks the label: it predicts it nearly perfectly, far better than the
rest of the table does.

A fixed correlation threshold flags ordinary strong features (a diamond's carat and size
against its price). A leak is different in kind: one feature (or a sum of a few) gives the
label almost exactly, while everything else leaves a lot unexplained. So a feature is a
suspected leak only when

1. alone it is near-perfect: its single-feature AUC (class labels; macro one-vs-rest for
   several classes) reaches ``label_leak_auc``, or its absolute Spearman correlation with a
   numeric label reaches ``label_leak_rank``; and
2. it leaves at most ``label_leak_margin`` of the error the rest leave, the rest being the
   best other feature and a small gradient-boosting model on all the other features, scored
   the same way on held-out rows; or it is exact (score 0.999 or more: a copy of the label,
   or a monotone transform of it). Several features that agree (carat and size against
   price) vouch for each other and pass.

A numeric label that a linear fit on a few numeric features gives exactly (``total = a + b``)
is reported too: each feature without which the fit stops being exact is a leak.

:func:`conveyor.data.batch_checks.check_label_leak` (ingestion) and
:func:`conveyor.data.drafting.draft_spec` (``conveyor init``) share this judgement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr

from conveyor.core.schema import ColumnKind

__all__ = ["EXACT_LEAK_SCORE", "LabelLeak", "LeakThresholds", "find_label_leaks"]

LeakTask = Literal["binary", "multiclass", "regression"]

RANK_SAMPLE_ROWS = 20_000
"""Single-feature scores use at most this many rows: an AUC of 20k rows is within ~0.005 of
the whole batch's, far inside the distance from any sane threshold to 1.0."""
MODEL_SAMPLE_ROWS = 4_000
"""The model on the other features trains and scores on at most this many rows."""
_MIN_CATEGORY_ROWS = 10
_BINS = 20
_MAX_JUDGED = 5
"""At most this many near-perfect features (the best) are judged against the rest."""
EXACT_LEAK_SCORE = 0.999
"""A single-feature score from which the feature is the label in disguise, whatever the rest."""
_MAX_CLASSES = 50
_MAX_LINEAR_COLUMNS = 200
_EXACT_FIT = 1e-6
"""A linear fit whose unexplained share of the label's variance is below this is exact."""
_BROKEN_FIT = 1e-3
"""Without a member of an exact fit, the fit leaves more than this share unexplained."""


@dataclass(frozen=True, slots=True)
class LeakThresholds:
    """When a feature is judged a leak; the fields of ``ValidationPolicy`` of the same name."""

    label_leak_auc: float = 0.98
    label_leak_rank: float = 0.98
    label_leak_margin: float = 0.25
    label_leak_min_rows: int = 50


@dataclass(frozen=True, slots=True)
class LabelLeak:
    """A feature judged to leak the label, and why.

    ``measure`` is ``auc`` (a binary label; ``value`` is the raw AUC, below 0.5 when the
    feature ranks the label backwards), ``auc_macro`` (several classes), ``spearman`` (a
    numeric label; ``value`` signed) or ``linear_fit`` (``value`` the exact fit's R²).
    ``score`` is the feature's score in ``[0, 1]`` and ``rest`` what the rest achieve.
    """

    column: str
    measure: str
    value: float
    score: float
    rest: float
    rows: int
    reason: str


def find_label_leaks(
    frame: pd.DataFrame,
    label: str,
    features: Mapping[str, ColumnKind],
    *,
    task: LeakTask | None = None,
    thresholds: LeakThresholds | None = None,
) -> list[LabelLeak]:
    """The features of ``frame`` that leak ``label``, in ``features`` order.

    Parameters
    ----------
    frame : DataFrame
        A labelled sample; rows with a missing label are skipped, at most
        :data:`RANK_SAMPLE_ROWS` are scored.
    label : str
        The label column.
    features : mapping of str to ColumnKind
        The feature columns to judge and their kinds (numeric, categorical or boolean;
        others are skipped).
    task : {"binary", "multiclass", "regression"}, optional
        The label's task; default: binary for two values, regression for numbers, else
        multiclass (up to 50 classes).
    thresholds : LeakThresholds, optional
        The judgement's thresholds.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=400)
    >>> frame = pd.DataFrame({"x": y + rng.normal(size=400), "copy": y * 3, "y": y})
    >>> kinds = {"x": ColumnKind.NUMERIC, "copy": ColumnKind.NUMERIC}
    >>> [leak.column for leak in find_label_leaks(frame, "y", kinds)]
    ['copy']
    """
    limits = thresholds or LeakThresholds()
    if label not in frame.columns or not frame.columns.is_unique:
        return []
    rows = np.flatnonzero(frame[label].notna().to_numpy())
    if rows.size < limits.label_leak_min_rows:
        return []
    if rows.size > RANK_SAMPLE_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(rows, RANK_SAMPLE_ROWS, replace=False))
    sample = frame.iloc[rows]
    target = _target(sample[label], task)
    if target is None:
        return []
    y, kind = target
    columns = [
        c for c, k in features.items() if c in sample.columns and c != label and k in _SCORED_KINDS
    ]
    singles = {c: _single_score(sample[c], features[c], y, kind) for c in columns}
    near = limits.label_leak_rank if kind == "regression" else limits.label_leak_auc
    perfect = [c for c in columns if singles[c][1] >= near]
    leaks: dict[str, LabelLeak] = {}
    for c in sorted(perfect, key=lambda c: -singles[c][1])[:_MAX_JUDGED]:
        others = [o for o in columns if o != c]
        best_other = max((singles[o][1] for o in others), default=_useless(kind))
        model = _model_score(sample, others, features, y, kind)
        rest = max(best_other, model)
        raw, score = singles[c]
        if score >= EXACT_LEAK_SCORE or 1.0 - score <= limits.label_leak_margin * (1.0 - rest):
            reason = _single_reason(c, kind, score, best_other, model)
            leaks[c] = LabelLeak(c, _MEASURES[kind], raw, score, rest, rows.size, reason)
    if kind == "regression":
        for leak in _linear_identity(sample, columns, features, y):
            leaks.setdefault(leak.column, leak)
    return [leaks[c] for c in columns if c in leaks]


_SCORED_KINDS = (ColumnKind.NUMERIC, ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN)
_MEASURES: dict[LeakTask, str] = {
    "binary": "auc",
    "multiclass": "auc_macro",
    "regression": "spearman",
}


def _useless(kind: LeakTask) -> float:
    return 0.0 if kind == "regression" else 0.5


def _target(values: pd.Series, task: LeakTask | None) -> tuple[np.ndarray, LeakTask] | None:
    """The label as floats (class codes for a class label) and its task; None if unscorable."""
    distinct = pd.unique(values)
    if len(distinct) < 2:
        return None
    numbers = pd.to_numeric(values, errors="coerce")
    numeric = bool(numbers.notna().all()) and not pd.api.types.is_bool_dtype(values.dtype)
    if task is None:
        task = "binary" if len(distinct) == 2 else "regression" if numeric else "multiclass"
    if task == "regression":
        return (numbers.to_numpy(dtype=np.float64), task) if numeric else None
    if task == "binary" and len(distinct) != 2:
        return None
    if len(distinct) > _MAX_CLASSES:
        return None
    order = sorted(distinct, key=str)
    codes = pd.Categorical(values, categories=order).codes
    return codes.astype(np.float64), task


def _encode(values: pd.Series, kind: ColumnKind, y: np.ndarray, classes: int) -> np.ndarray:
    """Each row's label rate (a column per class when ``classes`` > 2) in its group.

    Groups are categories (missing values one of them: a field filled only after the
    outcome leaks too) or, for a numeric feature with a class label of several classes,
    quantile bins. Groups of fewer than 10 rows score the overall rate, so an id-like
    column is not mistaken for a leak.
    """
    if kind is ColumnKind.NUMERIC:
        numbers = _numbers(values)
        ranks = rankdata(np.where(np.isfinite(numbers), numbers, np.inf), method="min")
        codes = np.minimum((ranks - 1) * _BINS // max(len(ranks), 1), _BINS).astype(np.int64)
    else:
        codes, _ = pd.factorize(values, use_na_sentinel=False)
    counts = np.bincount(codes)
    targets = [y] if classes <= 2 else [(y == k).astype(np.float64) for k in range(classes)]
    out = np.empty((len(codes), len(targets)))
    for i, t in enumerate(targets):
        rates = np.bincount(codes, weights=t) / np.maximum(counts, 1)
        rates[counts < _MIN_CATEGORY_ROWS] = float(t.mean())
        out[:, i] = rates[codes]
    return out


def _numbers(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan))
    return np.asarray(pd.to_numeric(values, errors="coerce"), dtype=np.float64)


def _single_score(
    values: pd.Series, kind: ColumnKind, y: np.ndarray, task: LeakTask
) -> tuple[float, float]:
    """The feature's raw measure and its score in [0, 1] (0.5 or 0 when it says nothing)."""
    if task == "multiclass":
        classes = int(y.max()) + 1
        encoded = _encode(values, kind, y, classes)
        aucs = [_auc(encoded[:, k], y == k) for k in range(classes)]
        found = [a for a in aucs if np.isfinite(a)]
        value = float(np.mean(found)) if found else 0.5
        return value, value
    score = _numbers(values) if kind is ColumnKind.NUMERIC else _encode(values, kind, y, 2)[:, 0]
    keep = np.isfinite(score)
    score, y = score[keep], y[keep]
    if score.size < 2 or np.ptp(score) == 0:
        return _useless(task), _useless(task)
    if task == "binary":
        auc = _auc(score, y == 1)
        if not np.isfinite(auc):
            return 0.5, 0.5
        return auc, max(auc, 1.0 - auc)
    rho = float(np.corrcoef(rankdata(score), rankdata(y))[0, 1])
    if not np.isfinite(rho):
        return 0.0, 0.0
    return rho, abs(rho)


def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    positives = float(positive.sum())
    negatives = positive.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(score)
    return float(
        (ranks[positive].sum() - positives * (positives + 1) / 2) / (positives * negatives)
    )


def _model_score(
    sample: pd.DataFrame,
    columns: list[str],
    kinds: Mapping[str, ColumnKind],
    y: np.ndarray,
    task: LeakTask,
) -> float:
    """A small model's held-out score on ``columns``: what the rest of the table achieves."""
    if not columns:
        return _useless(task)
    n = min(len(sample), MODEL_SAMPLE_ROWS)
    rng = np.random.default_rng(1)
    picked = rng.permutation(len(sample))[:n]
    x = np.column_stack(
        [
            _numbers(sample[c]) if kinds[c] is ColumnKind.NUMERIC
            else pd.factorize(sample[c])[0].astype(np.float64)
            for c in columns
        ]
    )[picked]  # fmt: skip
    target = y[picked]
    cut = int(n * 0.7)
    if cut < 20 or n - cut < 10:
        return _useless(task)
    # Imported here: scikit-learn takes seconds to import and only a near-perfect feature
    # needs the model. One thread: on a busy machine OpenMP threads slow the fit tenfold.
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    params = {"max_iter": 60, "learning_rate": 0.1, "max_leaf_nodes": 15, "random_state": 0}
    if task == "regression":
        regressor = HistGradientBoostingRegressor(early_stopping=False, **params)
        with threadpool_limits(limits=1):
            predicted = regressor.fit(x[:cut], target[:cut]).predict(x[cut:])
        rho = spearmanr(predicted, target[cut:]).statistic
        return float(abs(rho)) if np.isfinite(rho) else 0.0
    if len(np.unique(target[:cut])) < 2:
        return _useless(task)
    classifier = HistGradientBoostingClassifier(early_stopping=False, **params)
    with threadpool_limits(limits=1):
        proba = classifier.fit(x[:cut], target[:cut]).predict_proba(x[cut:])
    truth = target[cut:]
    aucs = [
        _auc(proba[:, i], truth == k) for i, k in enumerate(classifier.classes_.astype(np.int64))
    ]
    found = [max(a, 1 - a) if task == "binary" else a for a in aucs if np.isfinite(a)]
    if task == "binary":
        return found[-1] if found else 0.5
    return float(np.mean(found)) if found else 0.5


def _linear_identity(
    sample: pd.DataFrame, columns: list[str], kinds: Mapping[str, ColumnKind], y: np.ndarray
) -> list[LabelLeak]:
    """Numeric features that together give a numeric label exactly by a linear fit."""
    numeric = [c for c in columns if kinds[c] is ColumnKind.NUMERIC][:_MAX_LINEAR_COLUMNS]
    if not numeric:
        return []
    x = np.column_stack([_numbers(sample[c]) for c in numeric])
    keep = np.isfinite(x).all(axis=1)
    x, target = x[keep][:MODEL_SAMPLE_ROWS], y[keep][:MODEL_SAMPLE_ROWS]
    if len(target) < 5 * (len(numeric) + 1) or np.ptp(target) == 0:
        return []
    varying = x.std(axis=0) > 0
    numeric = [c for c, v in zip(numeric, varying, strict=True) if v]
    x = x[:, varying]
    if not numeric:
        return []
    full, without_each = _unexplained(x, target)
    if full > _EXACT_FIT:
        return []
    members = []
    for i, c in enumerate(numeric):
        # The one-fit estimate is cheap but unreliable when features are collinear among
        # themselves (a row number and the day and hour it counts): refit to confirm.
        if without_each[i] > _BROKEN_FIT:
            without = _unexplained(np.delete(x, i, axis=1), target)[0]
            if without > _BROKEN_FIT:
                members.append((c, without))
    if len(members) < 2:
        return []  # one feature alone: the single-feature judgement speaks for it
    names = [c for c, _ in members]
    leaks = []
    for c, without in members:
        partners = ", ".join(repr(p) for p in names if p != c)
        reason = (
            f"{c!r} with {partners} gives the label exactly by a linear fit (R² "
            f"{1 - full:.4f}); without {c!r} the fit explains {1 - without:.3f}; the label "
            "may be their sum, recorded with or after the outcome."
        )
        leaks.append(
            LabelLeak(c, "linear_fit", 1 - full, 1 - full, 1 - without, len(target), reason)
        )
    return leaks


def _unexplained(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The share of ``y``'s variance a least-squares fit on ``x`` (with intercept) leaves,
    and the share it leaves without each column (from the one fit: dropping column ``i``
    adds ``coef_i**2 / inv(X'X)_ii`` to the residual sum of squares)."""
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    design = (x - x.mean(axis=0)) / scale
    centred = y - y.mean()
    total = float(centred @ centred)
    inverse = np.linalg.pinv(design.T @ design)
    coef = inverse @ (design.T @ centred)
    residual = centred - design @ coef
    rss = float(residual @ residual)
    diagonal = np.maximum(np.diag(inverse), 1e-300)
    return rss / total, np.minimum((rss + coef**2 / diagonal) / total, 1.0)


def _single_reason(column: str, task: LeakTask, score: float, best: float, model: float) -> str:
    how = {"binary": "AUC", "multiclass": "macro AUC", "regression": "|Spearman|"}[task]
    return (
        f"{column!r} alone predicts the label almost perfectly ({how} {score:.3f}); the best "
        f"other feature reaches {best:.3f} and a model on all other features {model:.3f}; it "
        "may leak the label, e.g. be recorded after the outcome."
    )
