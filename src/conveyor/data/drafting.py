"""Draft a ``conveyor.yaml`` from a data sample: task, label, time column and features."""

from __future__ import annotations

import re

import pandas as pd

from conveyor.core.errors import InvalidInputError
from conveyor.core.schema import ColumnKind
from conveyor.data.schemas import infer_schema
from conveyor.spec import ProjectSpec, parse_spec

_LABEL_NAMES = ("label", "target", "y", "class", "outcome")
_TIME_HINTS = ("time", "date", "timestamp", "ts", "created", "event")


def guess_label(frame: pd.DataFrame) -> str:
    """A column named like a label, else the last column."""
    lowered = {c.lower(): c for c in frame.columns}
    for name in _LABEL_NAMES:
        if name in lowered:
            return str(lowered[name])
    return str(frame.columns[-1])


def guess_timestamp(frame: pd.DataFrame) -> str | None:
    """The first column that is, or parses entirely as, a date-time."""
    for col in frame.columns:
        values = frame[col]
        if pd.api.types.is_datetime64_any_dtype(values):
            return str(col)
        named = any(h in str(col).lower() for h in _TIME_HINTS)
        if named and (pd.api.types.is_string_dtype(values) or values.dtype == object):
            parsed = pd.to_datetime(values, errors="coerce", utc=True)
            if parsed.notna().mean() > 0.99:
                return str(col)
    return None


def draft_spec(
    frame: pd.DataFrame, *, project: str, label: str | None = None, timestamp: str | None = None
) -> ProjectSpec:
    """Draft a project spec from ``frame``; the user reviews it before ingesting.

    Raises
    ------
    InvalidInputError
        If the frame is empty or the named label is not a column.
    """
    if frame.empty:
        raise InvalidInputError("The data sample has no rows; a spec cannot be drafted from it.")
    label = label or guess_label(frame)
    if label not in frame.columns:
        raise InvalidInputError(
            f"Label '{label}' is not a column of the sample; columns: {list(frame.columns)}."
        )
    timestamp = timestamp or guess_timestamp(frame)
    values = frame[label].dropna()
    binary = values.nunique() == 2 and set(pd.unique(values)) <= {0, 1}
    task = "binary" if binary else "regression"
    if timestamp:
        frame = frame.assign(**{timestamp: pd.to_datetime(frame[timestamp], utc=True)})
    schema = infer_schema(frame, label=label, timestamp=timestamp)
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", project).strip("-") or "project"
    return parse_spec(
        {
            "project": name,
            "task": task,
            "label": label,
            "timestamp": timestamp,
            "categorical": [c.name for c in schema.features if c.kind is ColumnKind.CATEGORICAL],
            "ignore": [c.name for c in schema.features if c.kind is ColumnKind.TEXT],
        }
    )
