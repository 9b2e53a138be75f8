"""Batch validation: compare a batch with its schema and say, column by column, what is wrong.

Every check is a vectorised pass over one column, so a 100k-row batch validates in milliseconds.
Anomaly kinds are stable strings that reports, alerts and tests key on:

``missing_column``, ``extra_column``, ``duplicate_columns``, ``type_mismatch``, ``nan_values``,
``inf_values``, ``null_values``, ``unseen_categories``, ``out_of_range``, ``empty_batch``,
``too_few_rows``, ``null_rate_spike``, ``constant_label``, ``missing_labels``,
``label_classes``, and from
:mod:`conveyor.data.batch_checks` ``duplicate_rows``, ``duplicate_keys``, ``volume_jump``,
``label_leak``. ``ValidationPolicy.severities`` may force the severity of any kind, globally or
per column, except that a training batch without its label is always an error.

Ignored columns are stored with the batch but never checked. Unseen categories and values beyond
a column's range are reviewable schema changes: their anomaly's ``details["proposed"]`` holds the
change that would admit them (see :func:`conveyor.data.evolution.learn_schema`). Rows without a
label are counted (``missing_labels``), never an error: they are stored, and training leaves
them out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api import types as pdt

from conveyor.core.errors import InvalidInputError
from conveyor.core.labels import LabelCodec, LabelValue, Task, label_key
from conveyor.core.schema import (
    Anomaly,
    ColumnKind,
    ColumnRole,
    ColumnSchema,
    Schema,
    Severity,
    ValidationReport,
)
from conveyor.data.batch_checks import check_duplicates, check_label_leak, check_volume
from conveyor.data.leaks import EXACT_LEAK_SCORE
from conveyor.data.policy import ValidationPolicy
from conveyor.data.schemas import parse_datetimes, to_category_strings

Environment = Literal["training", "serving"]

__all__ = ["Environment", "LabelRules", "ValidationPolicy", "label_keys", "validate_batch"]

_EXAMPLES = 5
_PROPOSED_MAX = 50  # categories listed in a proposed schema change


@dataclass(frozen=True, slots=True)
class LabelRules:
    """What a training batch's label may hold beyond its schema column.

    Parameters
    ----------
    task : Task
        The project's task; a binary label may take at most two values across batches.
    classes : tuple of str
        Canonical keys (:func:`conveyor.core.labels.label_key`) of the label values the
        accepted batches held, in the order they were first seen.
    positive : LabelValue, optional
        The declared positive class of a binary label; it must be one of its two values.
    """

    task: Task
    classes: tuple[str, ...] = ()
    positive: LabelValue | None = None


def label_keys(values: pd.Series) -> list[str]:
    """Canonical keys of the distinct present values of a label column, in order of appearance.

    Examples
    --------
    >>> label_keys(pd.Series(["yes", None, "no", "yes"]))
    ['yes', 'no']
    >>> label_keys(pd.Series([1.0, 0.0, float("nan")]))
    ['1', '0']
    """
    return list(dict.fromkeys(label_key(v) for v in pd.unique(values.dropna())))


def validate_batch(
    frame: pd.DataFrame,
    schema: Schema,
    *,
    policy: ValidationPolicy = ValidationPolicy(),  # noqa: B008 - frozen, shared safely
    reference_profile: Mapping[str, Any] | None = None,
    environment: Environment = "training",
    recent_row_counts: Sequence[int] = (),
    labels: LabelRules | None = None,
) -> ValidationReport:
    """Validate a batch against a schema.

    Parameters
    ----------
    frame : pandas.DataFrame
        The batch.
    schema : Schema
        What the batch must look like.
    policy : ValidationPolicy
        Thresholds and severities.
    reference_profile : mapping, optional
        A profile from :func:`conveyor.data.profile_frame` of the reference data; enables the
        ``null_rate_spike`` check.
    environment : {"training", "serving"}
        In ``"serving"`` the label column is neither required nor checked, and neither are
        duplicates, volume and label leaks.
    recent_row_counts : sequence of int
        Row counts of the project's recent accepted batches, oldest first; enables the
        ``volume_jump`` check.
    labels : LabelRules, optional
        The task and known classes of the label; enables the ``label_classes`` check of a
        training batch (a binary label with a third value, or without its positive class).

    Returns
    -------
    ValidationReport
        One anomaly per problem and column; the report passes when none is an error.

    Raises
    ------
    InvalidInputError
        If ``frame`` is not a DataFrame or ``environment`` is unknown.

    Examples
    --------
    >>> from conveyor.data.schemas import infer_schema
    >>> schema = infer_schema(pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]}), label="y")
    >>> report = validate_batch(pd.DataFrame({"x": [1.5, float("nan")], "y": [1, 0]}), schema)
    >>> report.passed, report.errors[0].kind
    (False, 'nan_values')
    >>> print(report.errors[0].message)
    Column 'x' has 1 NaN values (50.0% of rows); the schema does not allow missing values.
    """
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError(
            f"validate_batch() takes a pandas DataFrame. Got {type(frame).__name__} instead."
        )
    if environment not in ("training", "serving"):
        raise InvalidInputError(
            "The 'environment' parameter of validate_batch() must be 'training' or 'serving'. "
            f"Got {environment!r} instead."
        )
    checked = [
        c
        for c in schema.columns
        if c.role is not ColumnRole.IGNORED
        and not (c.role is ColumnRole.LABEL and environment == "serving")
    ]
    anomalies = _check_rows(len(frame), policy)
    if environment == "training":
        anomalies += check_volume(len(frame), recent_row_counts, policy)
    anomalies += _check_columns(frame, schema, checked, policy, environment)
    if len(frame) == 0:
        return _finish(anomalies, policy)
    duplicated = set(frame.columns[frame.columns.duplicated()])
    ref_columns = (reference_profile or {}).get("columns", {})
    ref_rows = int((reference_profile or {}).get("row_count", 0) or 0)
    for col in checked:
        if col.name not in frame.columns or col.name in duplicated:
            continue
        col_policy = policy.for_column(col.name)
        values = frame[col.name]
        is_label = col.role is ColumnRole.LABEL
        if is_label:
            # A row without its label is counted below, never an error of the column.
            col_policy = replace(col_policy, allow_nan=True)
        anomalies += _CHECKS[col.kind](values, col, col_policy)
        if col.name in ref_columns and ref_rows > 0 and not is_label:
            anomalies += _check_null_spike(values, col, col_policy, ref_columns[col.name], ref_rows)
        if is_label and environment == "training":
            anomalies += _check_constant_label(values, col, col_policy)
            anomalies += _check_missing_labels(values, col)
            if labels is not None:
                anomalies += _check_label_classes(values, col, labels)
    if environment == "training":
        anomalies += check_duplicates(frame, schema, policy)
        anomalies += [
            _known_feature_leak(a) if a.column in ref_columns and ref_rows > 0 else a
            for a in check_label_leak(frame, schema, policy)
        ]
    return _finish(anomalies, policy)


def _known_feature_leak(anomaly: Anomaly) -> Anomaly:
    """A feature that accepted batches carried without leaking, flagged now short of a copy
    of the label, is a strong feature on a friendly batch (Seattle's precipitation against
    its weather in a rainy month) more often than a new leak: a warning, not a quarantine.
    A copy stays an error, and the gate flags a validation score too good to be true."""
    if anomaly.severity is not Severity.ERROR or float(anomaly.details.get("score", 1.0)) >= (
        EXACT_LEAK_SCORE
    ):
        return anomaly
    note = " Earlier accepted batches carried it without leaking: a warning, not a quarantine."
    return replace(anomaly, severity=Severity.WARNING, message=anomaly.message + note)


def _finish(anomalies: list[Anomaly], policy: ValidationPolicy) -> ValidationReport:
    """Apply the policy's forced severities; a training batch without its label stays an error."""
    if not policy.severities and not policy.columns:
        return ValidationReport.of(anomalies)
    final = []
    for a in anomalies:
        severity = a.severity
        if not a.details.get("label_absent"):
            severity = policy.severity_of(a.kind, a.column, a.severity)
        final.append(a if severity is a.severity else replace(a, severity=severity))
    return ValidationReport.of(final)


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0


def _num(value: float) -> str:
    return f"{value:.6g}"


def _examples(values: pd.Series) -> list[str]:
    top = values.value_counts(dropna=True).index[:_EXAMPLES]
    return [str(v) for v in top]


def _check_rows(rows: int, policy: ValidationPolicy) -> list[Anomaly]:
    details = {"rows": rows, "min_rows": policy.min_rows}
    if rows == 0 and policy.min_rows > 0:
        return [Anomaly("empty_batch", Severity.ERROR, "The batch has no rows.", None, details)]
    if rows < policy.min_rows:
        message = f"The batch has {rows} rows; the policy requires at least {policy.min_rows}."
        return [Anomaly("too_few_rows", Severity.ERROR, message, None, details)]
    return []


def _check_columns(
    frame: pd.DataFrame,
    schema: Schema,
    checked: list[ColumnSchema],
    policy: ValidationPolicy,
    environment: str,
) -> list[Anomaly]:
    anomalies = []
    present = set(frame.columns)
    for col in checked:
        if col.name in present or col.role is ColumnRole.IGNORED:
            continue
        is_label = col.role is ColumnRole.LABEL
        if is_label and not policy.label_required:
            continue
        message = f"Column {col.name!r} ({col.kind}) is in the schema but missing from the batch."
        details: dict[str, Any] = {
            "kind": str(col.kind),
            "role": str(col.role),
            "environment": environment,
        }
        # Training without the label cannot work whatever the policy says of other columns.
        severity = Severity.ERROR if is_label else policy.for_column(col.name).missing_columns
        if is_label:
            details["label_absent"] = True
        anomalies.append(Anomaly("missing_column", severity, message, col.name, details))
    known = set(schema.names)
    for name in dict.fromkeys(frame.columns):
        if name not in known:
            dtype = str(frame[name].dtypes) if frame.columns.is_unique else "mixed"
            message = f"Column {name!r} ({dtype}) is in the batch but not in the schema."
            severity = policy.for_column(str(name)).extra_columns
            anomalies.append(
                Anomaly("extra_column", severity, message, str(name), {"dtype": dtype})
            )
    dupes = sorted(str(c) for c in set(frame.columns[frame.columns.duplicated()]))
    if dupes:
        message = f"The batch has duplicate column names {dupes}; each column must appear once."
        anomalies.append(
            Anomaly("duplicate_columns", Severity.ERROR, message, None, {"columns": dupes})
        )
    return anomalies


def _type_mismatch(col: ColumnSchema, values: pd.Series, bad: pd.Series, expected: str) -> Anomaly:
    count = int(bad.sum())
    share = _share(count, len(values))
    examples = _examples(values[bad])
    message = (
        f"Column {col.name!r} has {count} values ({share:.1%} of rows) that are not "
        f"{expected}, e.g. {examples[0]!r}; the schema says {col.kind}."
    )
    details = {"count": count, "share": share, "dtype": str(values.dtype), "examples": examples}
    return Anomaly("type_mismatch", Severity.ERROR, message, col.name, details)


def _missing(col: ColumnSchema, count: int, rows: int, policy: ValidationPolicy) -> list[Anomaly]:
    if count == 0 or col.nullable or policy.allow_nan:
        return []
    share = _share(count, rows)
    what, kind = (
        ("NaN", "nan_values") if col.kind is ColumnKind.NUMERIC else ("missing", "null_values")
    )
    message = (
        f"Column {col.name!r} has {count} {what} values ({share:.1%} of rows); "
        "the schema does not allow missing values."
    )
    return [Anomaly(kind, Severity.ERROR, message, col.name, {"count": count, "share": share})]


def _check_numeric(values: pd.Series, col: ColumnSchema, policy: ValidationPolicy) -> list[Anomaly]:
    dtype = values.dtype
    if pdt.is_datetime64_any_dtype(dtype) or pdt.is_timedelta64_dtype(dtype):
        return [_type_mismatch(col, values, values.notna(), "numbers")]
    anomalies = []
    if pdt.is_numeric_dtype(dtype) or pdt.is_bool_dtype(dtype):
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.zeros(len(values), dtype=bool)
    else:
        coerced = pd.to_numeric(values, errors="coerce")
        numbers = coerced.to_numpy(dtype=np.float64, na_value=np.nan)
        bad_series = coerced.isna() & values.notna()
        bad = bad_series.to_numpy()
        if bad.any():
            anomalies.append(_type_mismatch(col, values, bad_series, "numbers"))
    nan_count = int((np.isnan(numbers) & ~bad).sum())
    anomalies += _missing(col, nan_count, len(values), policy)
    inf_mask = np.isinf(numbers)
    inf_count = int(inf_mask.sum())
    if inf_count:
        share = _share(inf_count, len(values))
        message = (
            f"Column {col.name!r} has {inf_count} infinite values ({share:.1%} of rows); "
            "numeric columns must hold finite numbers."
        )
        details = {
            "count": inf_count,
            "share": share,
            "positive": int((numbers[inf_mask] > 0).sum()),
        }
        anomalies.append(Anomaly("inf_values", Severity.ERROR, message, col.name, details))
    anomalies += _check_range(numbers[np.isfinite(numbers)], len(values), col, policy)
    return anomalies


def allowed_range(low: float, high: float, slack: float) -> tuple[float, float]:
    """The values a schema range ``[low, high]`` admits, widened by ``slack`` times its width.

    A zero-width range (a stored ``[0, 0]``) is widened by ``slack`` times the value's
    magnitude (at least 1) instead of by nothing, and a range with no negative bound is never
    widened below 0 (a negative wind speed stays out of range).

    Examples
    --------
    >>> allowed_range(0.0, 40.0, 0.5)
    (0.0, 60.0)
    >>> allowed_range(0.0, 0.0, 0.5)
    (0.0, 0.5)
    >>> allowed_range(-10.0, 10.0, 0.5)
    (-20.0, 20.0)
    """
    width = high - low if high > low else max(abs(high), abs(low), 1.0)
    allowed_low = low - slack * width
    if low >= 0:
        allowed_low = max(allowed_low, 0.0)
    return allowed_low, high + slack * width


def _check_range(
    finite: np.ndarray, rows: int, col: ColumnSchema, policy: ValidationPolicy
) -> list[Anomaly]:
    if col.min_value is None or col.max_value is None or finite.size == 0:
        return []
    low, high = float(col.min_value), float(col.max_value)
    allowed_low, allowed_high = allowed_range(low, high, policy.range_slack)
    below = int((finite < allowed_low).sum())
    above = int((finite > allowed_high).sum())
    if not below and not above:
        return []
    count = below + above
    share = _share(count, rows)
    seen_low, seen_high = float(finite.min()), float(finite.max())
    message = (
        f"Column {col.name!r} has {count} values ({share:.1%} of rows) outside the expected "
        f"range [{_num(allowed_low)}, {_num(allowed_high)}] (schema range "
        f"[{_num(low)}, {_num(high)}] widened by {policy.range_slack:g}x its width, never "
        "below 0 when it has no negative bound); "
        f"the batch spans [{_num(seen_low)}, {_num(seen_high)}]."
    )
    details = {
        "count": count,
        "share": share,
        "below": below,
        "above": above,
        "allowed_min": allowed_low,
        "allowed_max": allowed_high,
        "observed_min": seen_low,
        "observed_max": seen_high,
        "proposed": {
            "column": col.name,
            "change": "range",
            "before": [low, high],
            "after": [min(low, seen_low), max(high, seen_high)],
        },
    }
    return [Anomaly("out_of_range", policy.out_of_range, message, col.name, details)]


def _check_categorical(
    values: pd.Series, col: ColumnSchema, policy: ValidationPolicy
) -> list[Anomaly]:
    nulls = int(values.isna().sum())
    anomalies = _missing(col, nulls, len(values), policy)
    if col.categories is None:
        return anomalies
    counts = values.value_counts(dropna=True, sort=False)
    counts = counts[counts > 0]
    labels = to_category_strings(counts.index)
    unseen_mask = ~labels.isin(col.categories).to_numpy()
    unseen = pd.Series(counts.to_numpy()[unseen_mask], index=labels.to_numpy()[unseen_mask])
    unseen = unseen.groupby(level=0).sum().sort_values(ascending=False)
    total = int(unseen.sum())
    non_null = len(values) - nulls
    share = _share(total, non_null)
    if total == 0 or share <= policy.unseen_category_share_warn:
        return anomalies
    # A few new values (a new month, a new carrier) are a change to review, whatever their
    # share; many new values in a large share of rows are a broken batch.
    few = len(unseen) <= policy.new_categories_max
    is_error = share > policy.unseen_category_share_error and not few
    severity = Severity.ERROR if is_error else Severity.WARNING
    examples = [str(v) for v in unseen.index[:_EXAMPLES]]
    head = (
        f"Column {col.name!r} has {total} values ({share:.1%} of non-missing values) in "
        f"{len(unseen)} categories not in the schema, e.g. {examples[0]!r}"
    )
    if is_error:
        message = (
            f"{head}; more than {policy.new_categories_max} new categories over the error "
            f"threshold {policy.unseen_category_share_error:.1%}."
        )
    else:
        message = (
            f"{head}; proposed as a schema change (at most {policy.new_categories_max} new "
            f"categories, or at most {policy.unseen_category_share_error:.1%} of values)."
        )
    details = {
        "count": total,
        "share": share,
        "distinct": len(unseen),
        "examples": examples,
        "known_categories": len(col.categories),
        "proposed": {
            "column": col.name,
            "change": "categories",
            "added": sorted(str(v) for v in unseen.index[:_PROPOSED_MAX]),
        },
    }
    anomalies.append(Anomaly("unseen_categories", severity, message, col.name, details))
    return anomalies


def _is_bool_like(value: Any) -> bool:
    if isinstance(value, bool | np.bool_):
        return True
    return isinstance(value, int | float | np.integer | np.floating) and value in (0, 1)


def _check_boolean(values: pd.Series, col: ColumnSchema, policy: ValidationPolicy) -> list[Anomaly]:
    dtype = values.dtype
    if pdt.is_bool_dtype(dtype):
        bad = None
    elif pdt.is_numeric_dtype(dtype):
        bad = values.notna() & ~values.isin([0, 1])
    else:
        wrong = [v for v in pd.unique(values.dropna()) if not _is_bool_like(v)]
        bad = values.isin(wrong) if wrong else None
    anomalies = []
    if bad is not None and bad.any():
        anomalies.append(_type_mismatch(col, values, bad, "true/false"))
    return anomalies + _missing(col, int(values.isna().sum()), len(values), policy)


def _check_datetime(
    values: pd.Series, col: ColumnSchema, policy: ValidationPolicy
) -> list[Anomaly]:
    dtype = values.dtype
    if pdt.is_datetime64_any_dtype(dtype):
        bad = None
    elif pdt.is_numeric_dtype(dtype) or pdt.is_bool_dtype(dtype):
        bad = values.notna()
    else:
        bad = parse_datetimes(values).isna() & values.notna()
    anomalies = []
    if bad is not None and bad.any():
        anomalies.append(_type_mismatch(col, values, bad, "dates"))
    return anomalies + _missing(col, int(values.isna().sum()), len(values), policy)


def _check_text(values: pd.Series, col: ColumnSchema, policy: ValidationPolicy) -> list[Anomaly]:
    return _missing(col, int(values.isna().sum()), len(values), policy)


_CHECKS = {
    ColumnKind.NUMERIC: _check_numeric,
    ColumnKind.CATEGORICAL: _check_categorical,
    ColumnKind.BOOLEAN: _check_boolean,
    ColumnKind.DATETIME: _check_datetime,
    ColumnKind.TEXT: _check_text,
}


def _check_null_spike(
    values: pd.Series,
    col: ColumnSchema,
    policy: ValidationPolicy,
    reference: Mapping[str, Any],
    reference_rows: int,
) -> list[Anomaly]:
    before = float(reference.get("null_count", 0) or 0) / reference_rows
    nulls = int(values.isna().sum())
    now = nulls / len(values)
    if now - before <= policy.null_rate_spike:
        return []
    message = (
        f"Column {col.name!r} is missing in {now:.1%} of rows against {before:.1%} in the "
        f"reference, a rise of more than {policy.null_rate_spike:.1%}."
    )
    details = {"count": nulls, "share": now, "reference_share": before}
    return [Anomaly("null_rate_spike", Severity.WARNING, message, col.name, details)]


def _check_constant_label(
    values: pd.Series, col: ColumnSchema, policy: ValidationPolicy
) -> list[Anomaly]:
    present = values.dropna()
    if len(present) == 0:
        message = f"The label column {col.name!r} has no values; a model cannot learn from it."
        details: dict[str, Any] = {"distinct": 0, "count": 0, "label_absent": True}
        return [Anomaly("constant_label", Severity.ERROR, message, col.name, details)]
    if len(present) < 2 or present.nunique() > 1:
        return []
    value = present.iloc[0]
    value = value.item() if isinstance(value, np.generic) else value
    message = (
        f"The label column {col.name!r} takes the single value {value!r} in all "
        f"{len(present)} labelled rows; a model cannot learn from it."
    )
    details = {"distinct": 1, "count": len(present), "value": str(value)}
    return [Anomaly("constant_label", policy.constant_label, message, col.name, details)]


def _check_missing_labels(values: pd.Series, col: ColumnSchema) -> list[Anomaly]:
    missing = int(values.isna().sum())
    if missing == 0 or missing == len(values):
        return []  # none, or all: ``constant_label`` reports a label with no value
    share = _share(missing, len(values))
    message = (
        f"The label column {col.name!r} is missing in {missing} rows ({share:.1%}); they are "
        "stored with the batch and left out of training and evaluation."
    )
    details = {"count": missing, "share": share, "labelled": len(values) - missing}
    return [Anomaly("missing_labels", Severity.WARNING, message, col.name, details)]


def _check_label_classes(values: pd.Series, col: ColumnSchema, labels: LabelRules) -> list[Anomaly]:
    if labels.task is not Task.BINARY or pdt.is_bool_dtype(values.dtype):
        return []
    classes = list(dict.fromkeys([*labels.classes, *label_keys(values)]))
    details: dict[str, Any] = {"task": str(labels.task), "classes": classes}
    if len(classes) > 2:
        extra = classes[2:]
        message = (
            f"The label column {col.name!r} of a binary task takes the value {extra[0]!r} "
            f"besides {classes[0]!r} and {classes[1]!r} (in the accepted batches and this one); "
            "a binary label takes two values. Fix the batch, or declare 'task: multiclass'."
        )
        return [Anomaly("label_classes", Severity.ERROR, message, col.name, details)]
    if len(classes) == 2 and labels.positive is not None:
        try:
            LabelCodec.fit(Task.BINARY, classes, positive=labels.positive)
        except InvalidInputError as exc:
            message = (
                f"The declared positive_class {labels.positive!r} is not a value of the "
                f"label column {col.name!r}, which takes {classes}: {exc}"
            )
            return [Anomaly("label_classes", Severity.ERROR, message, col.name, details)]
    return []
