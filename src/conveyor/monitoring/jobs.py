"""The statistics of one monitoring window of one model version.

:func:`window_stats` takes the window's logged predictions (inputs already typed), the rows of
it whose labels arrived, and what the version was trained on, and returns the JSON-able
``stats`` of a :class:`~conveyor.core.entities.MonitorReport`::

    rows, model_version, prediction_mean,
    drift             compute_drift() of served inputs against the training reference profile
    prediction_drift  the score distribution against the version's test-set scores; for a
                      multiclass model the distribution of the predicted class (PSI,
                      chi-square...), with ``per_class`` drift of each class's probability
    live              realised metrics and bias on the labelled rows (as labels arrive), the
                      labels encoded with the version's classes
    estimated         label-free expected metrics (binary and multiclass: CBPE-style, see
                      cbpe.py), with the 95% range (``low``, ``high``) of the primary metric;
                      a regression has none (``{"metric": None, "reason": ...}``)
    quality           missing values and unseen categories per feature
    latency           p50, p95, p99 and mean latency in ms
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from conveyor.core.errors import InvalidInputError
from conveyor.core.labels import LabelCodec, Task
from conveyor.core.schema import ColumnKind, ColumnRole, ColumnSchema, Schema
from conveyor.data.drift import compute_drift
from conveyor.data.profiles import OTHER, profile_frame
from conveyor.evaluation.metrics import primary_metric
from conveyor.monitoring.cbpe import Calibration, estimate_performance
from conveyor.serving.feedback import (
    default_labels,
    evaluate_labelled,
    labelled_arrays,
    predictions_of,
)
from conveyor.serving.outputs import label_text
from conveyor.spec import DriftSpec

SCORE = "score"
SCORE_SCHEMA = Schema(columns=(ColumnSchema(SCORE, ColumnKind.NUMERIC, ColumnRole.FEATURE),))
PREDICTED_CLASS = "predicted_class"
"""The column of a multiclass prediction profile holding the predicted class."""

_DUCK_TYPES = {ColumnKind.NUMERIC: "DOUBLE", ColumnKind.BOOLEAN: "BOOLEAN"}


def typed_inputs(predictions: pd.DataFrame, features: Sequence[ColumnSchema]) -> pd.DataFrame:
    """The ``inputs`` JSON column of a raw prediction log read as one typed column per feature.

    Numeric features become float64, booleans booleans and everything else text; a field that
    is missing or of the wrong type is a missing value. DuckDB parses each record once.
    """
    if not len(predictions) or not features:
        return pd.DataFrame(index=predictions.index, columns=[c.name for c in features])
    struct = (
        "{"
        + ", ".join(
            '"' + c.name.replace('"', '\\"') + '": "' + _DUCK_TYPES.get(c.kind, "VARCHAR") + '"'
            for c in features
        )
        + "}"
    )
    con = duckdb.connect()
    try:
        con.register("raw", pa.table({"inputs": pa.array(predictions["inputs"], pa.string())}))
        parsed = con.sql(
            "SELECT unnest(json_transform(inputs, $struct::VARCHAR)) FROM raw",
            params={"struct": struct},
        ).to_arrow_table()
    finally:
        con.close()
    frame = parsed.to_pandas()
    frame.index = predictions.index
    return frame


def event_times(predictions: pd.DataFrame, column: str) -> pd.Series:
    """The event time of each logged prediction: its input ``column`` read as a UTC time.

    The prediction log keeps each request's inputs as one JSON record; ``column`` (the project's
    timestamp column) is read from it as an ISO-8601 date or time, a time without offset being
    UTC. A record without the field, or with a value that is not such a time, gets ``NaT``.

    Examples
    --------
    >>> frame = pd.DataFrame({"inputs": ['{"t": "2013-01-05T10:00:00"}', '{"t": "soon"}', "{}"]})
    >>> [str(t) for t in event_times(frame, "t")]
    ['2013-01-05 10:00:00+00:00', 'NaT', 'NaT']
    """
    if not len(predictions):
        return pd.Series(pd.NaT, index=predictions.index, dtype="datetime64[us, UTC]")
    path = '$."' + column.replace('"', '\\"') + '"'
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("raw", pa.table({"inputs": pa.array(predictions["inputs"], pa.string())}))
        parsed = con.sql(
            "SELECT TRY_CAST(json_extract_string(inputs, $path) AS TIMESTAMPTZ) AS t FROM raw",
            params={"path": path},
        ).to_arrow_table()
    finally:
        con.close()
    times = pd.to_datetime(parsed["t"].to_pandas(), utc=True)
    times.index = predictions.index
    return times


def score_profile(
    scores: np.ndarray, *, reference: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A profile of one numeric column ``score`` (bins from ``reference`` when given)."""
    return profile_frame(pd.DataFrame({SCORE: scores}), SCORE_SCHEMA, reference=reference)


def _proba_column(name: str) -> str:
    return f"proba_{name}"


def class_profile(
    codec: LabelCodec, probabilities: np.ndarray, *, reference: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A profile of a multiclass model's predictions: the predicted class (categorical) and
    each class's probability (``proba_<class>``), bins from ``reference`` when given."""
    names = [label_text(c) for c in codec.classes]
    columns = [ColumnSchema(PREDICTED_CLASS, ColumnKind.CATEGORICAL, ColumnRole.FEATURE,
                            categories=tuple(names))]  # fmt: skip
    columns += [
        ColumnSchema(_proba_column(n), ColumnKind.NUMERIC, ColumnRole.FEATURE) for n in names
    ]
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1, len(names))
    frame = pd.DataFrame(
        {PREDICTED_CLASS: [names[i] for i in np.argmax(p, axis=1)] if len(p) else []}
    )
    for j, n in enumerate(names):
        frame[_proba_column(n)] = p[:, j]
    return profile_frame(frame, Schema(columns=tuple(columns)), reference=reference)


def prediction_profile(
    codec: LabelCodec, raw: np.ndarray, *, reference: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The profile prediction drift compares: of the scores, or of a multiclass model's
    probabilities (:func:`class_profile`)."""
    if codec.task is Task.MULTICLASS:
        return class_profile(codec, raw, reference=reference)
    return score_profile(raw, reference=reference)


def _prediction_drift(
    codec: LabelCodec,
    reference: Mapping[str, Any],
    raw: np.ndarray,
    psi_threshold: float,
) -> dict[str, Any]:
    """Drift of the window's predictions against the version's test-set predictions."""
    current = prediction_profile(codec, raw, reference=reference)
    columns = list(reference.get("columns", {}))
    drift = compute_drift(reference, current, features=columns, psi_threshold=psi_threshold)
    if codec.task is not Task.MULTICLASS or PREDICTED_CLASS not in drift["features"]:
        found: dict[str, Any] = drift["features"][SCORE]
        found["reference_mean"] = reference["columns"][SCORE].get("mean")
        return found
    found = dict(drift["features"][PREDICTED_CLASS])
    found["per_class"] = {
        label_text(c): drift["features"].get(_proba_column(label_text(c))) for c in codec.classes
    }
    found["reference_values"] = reference["columns"][PREDICTED_CLASS].get("values")
    found["current_values"] = current["columns"][PREDICTED_CLASS].get("values")
    return found


def window_stats(
    *,
    task: str,
    version: int | None,
    predictions: pd.DataFrame,
    inputs: pd.DataFrame,
    labelled: pd.DataFrame,
    features: Schema,
    reference: Mapping[str, Any],
    score_reference: Mapping[str, Any] | None,
    calibration: Calibration | None,
    psi_threshold: float,
    min_estimate_rows: int,
    drift_spec: DriftSpec | None = None,
    labels: LabelCodec | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The statistics of one window of one version (see the module docstring), and the
    profile of its served inputs.

    ``labels`` is the version's codec (``signature.labels``; by default the task's: binary
    0/1 or regression); ``predictions`` and ``labelled`` carry a multiclass model's
    probabilities in ``proba``."""
    stats: dict[str, Any] = {"rows": len(predictions), "model_version": version}
    current: dict[str, Any] = {}
    if not len(predictions):
        return stats, current
    codec = labels or default_labels(task)
    if codec is None:
        raise InvalidInputError(f"Monitoring a {task} model needs its classes (its codec).")
    scores = predictions["score"].to_numpy(dtype=np.float64)
    raw, scored = predictions_of(codec, predictions)
    stats["prediction_mean"] = float(np.nanmean(scores))
    if reference:
        current = profile_frame(inputs, features, reference=reference)
        stats["drift"] = compute_drift(
            reference,
            current,
            features=features.names,
            psi_threshold=psi_threshold,
            spec=drift_spec,
        )
        stats["quality"] = _quality(inputs, features, reference, current)
    if score_reference:
        drift = _prediction_drift(codec, score_reference, raw[scored], psi_threshold)
        drift["current_mean"] = stats["prediction_mean"]
        stats["prediction_drift"] = drift
    if len(labelled) >= 2:
        stats["live"] = live_metrics(codec, labelled)
    unlabelled = len(predictions) - len(labelled)
    if codec.task is Task.REGRESSION:
        stats["estimated"] = {
            "metric_name": primary_metric(codec.task.value),
            "metric": None,
            "reason": "not estimated: a regression has no label-free estimate",
        }
    elif len(predictions) >= min_estimate_rows:
        estimate = estimate_performance(
            codec.task.value,
            raw[scored],
            calibration=calibration if codec.task is Task.BINARY else None,
        )
        name = primary_metric(codec.task.value)
        low, high = estimate.get("intervals", {}).get(name, (None, None))
        stats["estimated"] = {
            "metric_name": name,
            "metric": estimate.get(name),
            "low": low,
            "high": high,
            "metrics": estimate,
            "unlabelled": unlabelled,
        }
    latency = predictions["latency_ms"].to_numpy(dtype=np.float64)
    latency = latency[np.isfinite(latency)]
    if latency.size:
        p50, p95, p99 = np.percentile(latency, [50, 95, 99])
        stats["latency"] = {
            "p50_ms": float(p50),
            "p95_ms": float(p95),
            "p99_ms": float(p99),
            "mean_ms": float(latency.mean()),
        }
    return stats, current


def live_metrics(task: str | LabelCodec, rows: pd.DataFrame) -> dict[str, Any]:
    """Realised metrics and bias of labelled rows (``label``, ``score`` and, multiclass,
    ``proba``), the labels encoded with ``task``'s codec (see
    :func:`~conveyor.serving.feedback.task_truth`; a label that is no class is left out).

    Bias is the mean prediction minus the mean label code (binary: predicted minus observed
    positive rate); for multiclass it is the largest (signed) gap between a class's mean
    probability and its observed share, each class's gap in ``bias_by_class``.
    """
    codec = task if isinstance(task, LabelCodec) else default_labels(task)
    if codec is None:
        raise InvalidInputError(f"Realised metrics of a {task} model need its classes.")
    y, predicted, keep = labelled_arrays(codec, rows)
    y, predicted = y[keep], predicted[keep]
    name = primary_metric(codec.task.value)
    if y.size < 2:
        return {"metric_name": name, "metric": None, "labels": int(y.size), "bias": 0.0}
    metrics = evaluate_labelled(codec, y, predicted)
    value = metrics.get(name)
    found: dict[str, Any] = {
        "metric_name": name,
        "metric": None if value is None or value != value else value,
        "labels": int(y.size),
        "metrics": metrics,
    }
    if codec.task is Task.MULTICLASS:
        observed = np.bincount(y.astype(np.int64), minlength=codec.n_classes) / y.size
        gaps = predicted.mean(axis=0) - observed
        found["bias_by_class"] = dict(zip([label_text(c) for c in codec.classes], gaps.tolist(),
                                          strict=True))  # fmt: skip
        found["bias"] = float(gaps[int(np.argmax(np.abs(gaps)))])
    else:
        found["bias"] = float(predicted.mean() - y.mean())
    return found


def _quality(
    inputs: pd.DataFrame,
    features: Schema,
    reference: Mapping[str, Any],
    current: Mapping[str, Any],
) -> dict[str, Any]:
    rows = max(len(inputs), 1)
    per_feature: dict[str, dict[str, Any]] = {}
    ref_columns = reference.get("columns", {})
    for col in features.columns:
        cur = current.get("columns", {}).get(col.name)
        if cur is None:
            continue
        entry: dict[str, Any] = {"missing_share": cur.get("null_count", 0) / rows}
        ref = ref_columns.get(col.name, {})
        if col.kind is ColumnKind.CATEGORICAL:
            known = set(col.categories or ()) or {k for k in ref.get("values", {}) if k != OTHER}
            present = inputs[col.name].dropna().astype(str)
            unseen = present[~present.isin(known)] if known else present.iloc[:0]
            entry["unseen"] = int(len(unseen))
            entry["unseen_share"] = len(unseen) / rows
            entry["unseen_values"] = unseen.value_counts().head(5).to_dict()
        per_feature[col.name] = entry
    missing = [e["missing_share"] for e in per_feature.values()]
    unseen = [e["unseen_share"] for e in per_feature.values() if "unseen_share" in e]
    return {
        "features": per_feature,
        "max_missing_share": max(missing, default=0.0),
        "max_unseen_share": max(unseen, default=0.0),
    }


def day_windows(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Split ``[start, end)`` at UTC midnights.

    Examples
    --------
    >>> from datetime import UTC
    >>> w = day_windows(datetime(2024, 1, 1, 12, tzinfo=UTC), datetime(2024, 1, 3, 1, tzinfo=UTC))
    >>> [(a.day, a.hour, b.day, b.hour) for a, b in w]
    [(1, 12, 2, 0), (2, 0, 3, 0), (3, 0, 3, 1)]
    """
    windows = []
    cursor = start
    while cursor < end:
        midnight = pd.Timestamp(cursor).floor("D") + pd.Timedelta(days=1)
        stop = min(midnight.to_pydatetime(), end)
        windows.append((cursor, stop))
        cursor = stop
    return windows


def busy_day_windows(
    times: pd.Series, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The UTC days of ``[start, end)`` that hold at least one of ``times``, as windows.

    Each day is clipped to ``[start, end)``. Days without a time are left out, so a replay of
    2013 monitored today, or one stray event time years away, never yields thousands of empty
    windows.

    Examples
    --------
    >>> from datetime import UTC
    >>> ts = pd.Series(pd.to_datetime(["2013-01-01 05:00", "2013-01-03 07:00"], utc=True))
    >>> start, end = datetime(2013, 1, 1, tzinfo=UTC), datetime(2013, 1, 3, 9, tzinfo=UTC)
    >>> w = busy_day_windows(ts, start, end)
    >>> [(a.day, b.day, b.hour) for a, b in w]
    [(1, 2, 0), (3, 3, 9)]
    """
    inside = times[(times >= pd.Timestamp(start)) & (times < pd.Timestamp(end))]
    days = sorted(set(inside.dt.floor("D")))
    return [
        (max(day.to_pydatetime(), start), min((day + pd.Timedelta(days=1)).to_pydatetime(), end))
        for day in days
    ]
