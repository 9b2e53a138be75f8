"""Behavioural tests of a model, and its prediction latency.

A test perturbs test rows and compares the model's predictions before and after:

* **invariance**: shuffling columns declared irrelevant across rows moves no prediction by more
  than ``epsilon``;
* **directional expectation**: raising a declared monotone feature by ``delta`` moves
  predictions the declared way on all but ``max_violations`` of the rows;
* **robustness**: Gaussian noise of ``scale`` times each numeric feature's standard deviation
  moves predictions by at most ``max_mean_change`` on average (probability units for a binary
  task; for a regression, a share of the label's standard deviation on the test rows, so the
  limit scales with the label's spread whatever its units). Without a stated limit the task's
  default applies (:data:`NOISE_MEAN_CHANGE`).

A multiclass model scores an ``(n, k)`` matrix of class probabilities; a row's change is then
the largest absolute change of any of its class probabilities, and a label flip a change of the
most probable class. A directional expectation needs one score per row and refuses it.

The model is seen only as ``predict(frame) -> scores``, so any model, loaded any way, is tested
the same.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from conveyor.core.errors import InvalidInputError
from conveyor.spec import EvaluationSpec

Predict = Callable[[pd.DataFrame], np.ndarray]

#: A challenger may move under noise this many times as much as production does.
NOISE_REFERENCE_FACTOR = 2.0

#: The default robustness limit per task: probability units for a classifier; for a
#: regression a share of the label's standard deviation. A regressor's predictions spread less
#: than its label (their variance is the label's minus the error's), so 0.15 passes the
#: ordinary tree ensembles measured (0.02 to 0.14 of their predictions' spread under 1% noise)
#: and still fails a model that jumps on tiny input changes.
NOISE_MEAN_CHANGE: dict[str, float] = {"binary": 0.02, "multiclass": 0.02, "regression": 0.15}


@dataclass(frozen=True, slots=True)
class BehaviourResult:
    """One behavioural test: what it checked, whether it held, and the measured figures."""

    name: str
    kind: str
    passed: bool
    detail: str
    figures: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "passed": self.passed,
            "detail": self.detail,
            "figures": {k: (v if math.isfinite(v) else None) for k, v in self.figures.items()},
        }


def invariance_test(
    predict: Predict, frame: pd.DataFrame, columns: Sequence[str], *, epsilon: float, seed: int = 0
) -> BehaviourResult:
    """Shuffle ``columns`` across rows; pass when no prediction moves by more than ``epsilon``.

    Raises
    ------
    InvalidInputError
        If a column is not in ``frame``.

    Examples
    --------
    >>> f = pd.DataFrame({"x": [1.0, 2.0, 3.0], "noise": [5.0, 6.0, 7.0]})
    >>> invariance_test(lambda d: d["x"].to_numpy() / 10, f, ["noise"], epsilon=0.0).passed
    True
    """
    _require(frame, columns, "invariance")
    rng = np.random.default_rng(seed)
    shuffled = frame.copy()
    for column in columns:
        shuffled[column] = frame[column].to_numpy()[rng.permutation(len(frame))]
    change = _change(_scores(predict, shuffled), _scores(predict, frame))
    worst = float(change.max())
    name = f"invariance to {', '.join(columns)}"
    passed = worst <= epsilon
    verb = "moves" if passed else "moves some prediction by more than epsilon:"
    return BehaviourResult(
        name=name,
        kind="invariance",
        passed=passed,
        detail=f"Shuffling {', '.join(columns)} {verb} at most {worst:.4g} (epsilon {epsilon:g}).",
        figures={"max_change": worst, "mean_change": float(change.mean()), "epsilon": epsilon},
    )


def directional_test(
    predict: Predict,
    frame: pd.DataFrame,
    feature: str,
    *,
    direction: str,
    delta: float,
    max_violations: float,
) -> BehaviourResult:
    """Raise ``feature`` by ``delta``; pass when at most ``max_violations`` of rows move the
    other way than ``direction`` (``"increasing"`` or ``"decreasing"``).

    Raises
    ------
    InvalidInputError
        If ``feature`` is missing or not numeric, or ``direction`` is unknown.
    """
    _require(frame, [feature], "directional")
    if direction not in ("increasing", "decreasing"):
        raise InvalidInputError(
            "The 'direction' of a directional test must be 'increasing' or 'decreasing'. "
            f"Got {direction!r} instead."
        )
    if not pd.api.types.is_numeric_dtype(frame[feature]):
        raise InvalidInputError(
            f"The directional test's feature {feature!r} must be numeric. "
            f"Got dtype {frame[feature].dtype} instead."
        )
    raised = frame.copy()
    raised[feature] = frame[feature] + delta
    sign = 1.0 if direction == "increasing" else -1.0
    after, before = _scores(predict, raised), _scores(predict, frame)
    if before.ndim != 1:
        raise InvalidInputError(
            f"The directional test of {feature!r} needs one score per row (a binary or "
            f"regression model). Got scores of shape {before.shape} (class probabilities) instead."
        )
    moved = sign * (after - before)
    wrong = float((moved < -1e-12).mean())
    passed = wrong <= max_violations
    return BehaviourResult(
        name=f"{feature} {direction}",
        kind="directional",
        passed=passed,
        detail=(
            f"Raising {feature} by {delta:g} moved {wrong:.1%} of predictions against the "
            f"expected {direction} direction (allowed {max_violations:.1%})."
        ),
        figures={
            "wrong_share": wrong,
            "mean_change": float(sign * moved.mean()),
            "max_violations": max_violations,
        },
    )


def noise_test(
    predict: Predict,
    frame: pd.DataFrame,
    columns: Sequence[str],
    *,
    scale: float,
    max_mean_change: float | None = None,
    task: str,
    labels: np.ndarray | None = None,
    reference: Predict | None = None,
    seed: int = 0,
) -> BehaviourResult:
    """Add noise of ``scale`` x std to numeric ``columns``; pass when predictions barely move.

    With a ``reference`` (production), the limit is at least :data:`NOISE_REFERENCE_FACTOR`
    times the reference's own move on the same noise: a concept with sharp thresholds makes
    every good model of it move, so a challenger is held to what production does, not to a
    figure no model of the data meets.

    Parameters
    ----------
    predict : callable
        ``predict(frame) -> scores``.
    frame : DataFrame
        The rows probed.
    columns : sequence of str
        Numeric columns that get the noise.
    scale : float
        The noise's standard deviation as a share of each column's.
    max_mean_change : float, optional
        Largest mean absolute move of the predictions: probability units for a classifier, a
        share of the label's standard deviation for a regression; ``None`` is the task's
        default in :data:`NOISE_MEAN_CHANGE`.
    task : str
        The model's task.
    labels : ndarray of shape (n,), optional
        The truth of ``frame``'s rows; a regression's unit is their standard deviation (the
        predictions' when the labels are not given or constant).
    reference : callable, optional
        Production's ``predict``, measured on the same noise.
    seed : int
        Seed of the noise.

    Returns
    -------
    BehaviourResult
        ``figures`` holds the ``mean_change`` and ``max_change`` in the limit's unit, the
        ``allowed`` limit and the ``unit`` itself (1 for a classifier).

    Examples
    --------
    >>> f = pd.DataFrame({"x": np.linspace(0.0, 100.0, 200)})
    >>> r = noise_test(lambda d: 3 * d["x"].to_numpy(), f, ["x"], scale=0.01,
    ...                task="regression", labels=3 * f["x"].to_numpy())
    >>> r.passed, r.figures["allowed"]
    (True, 0.15)
    """
    _require(frame, columns, "noise")
    limit = NOISE_MEAN_CHANGE.get(task, NOISE_MEAN_CHANGE["binary"])
    if max_mean_change is not None:
        limit = max_mean_change
    rng = np.random.default_rng(seed)
    noisy = frame.copy()
    for column in columns:
        values = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
        std = float(np.nanstd(values)) if np.isfinite(values).any() else 0.0
        noisy[column] = values + rng.normal(0.0, scale * std, len(values))
    before, after = _scores(predict, frame), _scores(predict, noisy)
    change = _change(after, before)
    unit = 1.0
    if task == "regression":
        spread = np.asarray(labels, dtype=np.float64) if labels is not None else before
        unit = float(np.nanstd(spread)) or float(before.std()) or 1.0
    mean_change = float(change.mean()) / unit
    reference_change = None
    if reference is not None:
        moved = _change(_scores(reference, noisy), _scores(reference, frame))
        reference_change = float(moved.mean()) / unit
        limit = max(limit, NOISE_REFERENCE_FACTOR * reference_change)
    passed = mean_change <= limit
    flips = 0.0
    if before.ndim == 2:
        flips = float((before.argmax(axis=1) != after.argmax(axis=1)).mean())
    elif task == "binary":
        flips = float(((before >= 0.5) != (after >= 0.5)).mean())
    units = " label std" if task == "regression" else ""
    return BehaviourResult(
        name=f"noise {scale:g} x std",
        kind="robustness",
        passed=passed,
        detail=(
            f"Noise of {scale:g} x std on {len(columns)} numeric features moved predictions by "
            f"{mean_change:.4g}{units} on average (allowed {limit:g})."
        ),
        figures={
            "mean_change": mean_change,
            "max_change": float(change.max()) / unit,
            "allowed": limit,
            "label_flips": flips,
            "unit": unit,
            **({} if reference_change is None else {"reference_change": reference_change}),
        },
    )


def run_behaviour_tests(
    predict: Predict,
    frame: pd.DataFrame,
    spec: EvaluationSpec,
    *,
    task: str,
    numeric: Sequence[str],
    labels: np.ndarray | None = None,
    reference: Predict | None = None,
    seed: int = 0,
) -> list[BehaviourResult]:
    """Every behavioural test ``spec`` declares, on at most ``spec.behaviour_rows`` rows.

    ``labels`` (the truth of ``frame``'s rows) scale a regression's robustness limit;
    ``reference`` (production's predict) sets the robustness limit's floor.
    """
    rows = frame.iloc[: spec.behaviour_rows].reset_index(drop=True)
    truth = None if labels is None else np.asarray(labels)[: spec.behaviour_rows]
    results = [
        invariance_test(predict, rows, test.columns, epsilon=test.epsilon, seed=seed)
        for test in spec.invariance
    ]
    results += [
        directional_test(
            predict,
            rows,
            test.feature,
            direction=test.direction,
            delta=test.delta,
            max_violations=test.max_violations,
        )
        for test in spec.directional
    ]
    if spec.noise is not None and numeric:
        results.append(
            noise_test(
                predict,
                rows,
                numeric,
                scale=spec.noise.scale,
                max_mean_change=spec.noise.max_mean_change,
                task=task,
                labels=truth,
                reference=reference,
                seed=seed,
            )
        )
    return results


def measure_latency(
    predict: Predict, frame: pd.DataFrame, *, single_rows: int = 200, batch_repeats: int = 5
) -> dict[str, float]:
    """Time ``predict`` on single rows and on the whole frame as one batch.

    Returns
    -------
    dict
        ``single_p50_ms``, ``single_p99_ms`` (one call per row, up to ``single_rows`` calls),
        ``batch_rows``, ``batch_p50_ms``, ``batch_p99_ms`` and ``batch_rows_per_s``.
    """
    if len(frame) == 0:
        raise InvalidInputError("measure_latency() needs at least one row. Got none instead.")
    predict(frame.iloc[:1])  # first-call costs (lazy imports, caches) are not latency
    single = []
    for i in range(min(single_rows, len(frame))):
        row = frame.iloc[i : i + 1]
        started = time.perf_counter()
        predict(row)
        single.append(time.perf_counter() - started)
    batch = []
    for _ in range(batch_repeats):
        started = time.perf_counter()
        predict(frame)
        batch.append(time.perf_counter() - started)
    single_ms, batch_ms = np.asarray(single) * 1000, np.asarray(batch) * 1000
    p50 = float(np.percentile(batch_ms, 50))
    return {
        "single_p50_ms": float(np.percentile(single_ms, 50)),
        "single_p99_ms": float(np.percentile(single_ms, 99)),
        "batch_rows": float(len(frame)),
        "batch_p50_ms": p50,
        "batch_p99_ms": float(np.percentile(batch_ms, 99)),
        "batch_rows_per_s": len(frame) / max(p50 / 1000, 1e-9),
    }


def _scores(predict: Predict, frame: pd.DataFrame) -> np.ndarray:
    """One score per row, or an (n, k) matrix of class probabilities."""
    scores = np.asarray(predict(frame), dtype=np.float64)
    return scores if scores.ndim == 2 and scores.shape[1] > 1 else scores.reshape(-1)


def _change(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Per row, the absolute change of its score (the largest over its class probabilities)."""
    moved = np.abs(after - before)
    return np.asarray(moved.max(axis=1) if moved.ndim == 2 else moved, dtype=np.float64)


def _require(frame: pd.DataFrame, columns: Sequence[str], kind: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInputError(
            f"The {kind} test names columns that are not in the test rows: {missing}. "
            f"Allowed: {sorted(map(str, frame.columns))}."
        )
