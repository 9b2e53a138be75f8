"""Draft a ``conveyor.yaml`` from a data sample that a user can keep without hand edits.

:func:`draft_spec` decides, and says why in its notes:

- the label: ``label`` when given, else the one column named like a label; when none or
  several are, it stops (:class:`~conveyor.core.errors.ConfigError`, exit 2) listing the
  candidates instead of guessing;
- the task: binary for two values (the positive class inferred and printed), multiclass for
  a few classes, regression for numbers;
- id, key and row-counter columns: entities or ignored, never features;
- the time: a date-time column, text dates, epoch numbers, integer or fractional years, or a
  set of year / month / day / hour columns (:mod:`conveyor.data.column_roles`);
- features that leak the label: ignored, by the judgement of ingestion's leak check
  (:func:`conveyor.data.leaks.find_label_leaks`);
- the training window in rows, from the sample's size and the gate's needs;
- a project name from the file and the label.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from conveyor.core.errors import ConfigError, InvalidInputError
from conveyor.core.labels import POSITIVE_NAMES, LabelCodec, Task, label_key
from conveyor.core.schema import ColumnKind, ColumnRole, Schema
from conveyor.data.column_roles import TimeGuess, find_id_columns, find_time, is_calendar_name
from conveyor.data.leaks import LeakTask, find_label_leaks
from conveyor.data.schemas import infer_schema
from conveyor.data.timestamps import TimeColumn, apply_time_column
from conveyor.data.windows import rows_for_test
from conveyor.spec import GateSpec, ProjectSpec, TrainingSpec, parse_spec

__all__ = ["LABEL_NAMES", "Draft", "draft_spec", "label_candidates", "project_name"]

LABEL_NAMES = (
    "label",
    "target",
    "y",
    "class",
    "outcome",
    "response",
    "churn",
    "churned",
    "default",
    "defaulted",
    "survived",
    "fraud",
    "is_fraud",
    "converted",
    "purchased",
    "clicked",
)
"""Column names (lowered, separators as ``_``) taken as the label without ``--label``."""

MAX_CLASSES = 20
"""A label of text or integers with at most this many values is multiclass."""
MIN_CLASS_ROWS = 5
"""...provided every class has at least this many rows in the sample."""
MAX_INTEGER_CLASSES = 10
"""An integer label with more values than this is a regression (a count, a score)."""
MAX_WINDOW_ROWS = 50_000
"""The drafted training window holds the sample's rows up to this many."""
_GENERIC_STEM = re.compile(
    r"^(data|dataset|datasets|sample|samples|train|training|test|batch|batches|week|weeks|"
    r"day|days|month|months|part|file|export|input|raw|df|table|new|final|clean|cleaned|"
    r"full|all|latest|v?\d+)$"
)


@dataclass(frozen=True, slots=True)
class Draft:
    """A drafted spec and the notes that explain its choices, one line each."""

    spec: ProjectSpec
    notes: list[str] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)
    """Columns kept out of the features, with the reason."""


def draft_spec(
    frame: pd.DataFrame,
    *,
    project: str | None = None,
    source_name: str | None = None,
    label: str | None = None,
    timestamp: str | None = None,
) -> Draft:
    """Draft a project spec from a sample; see the module docstring for the decisions.

    Parameters
    ----------
    frame : DataFrame
        The sample, as read from its file (text dates are fine).
    project : str, optional
        The project name; default: :func:`project_name` of ``source_name`` and the label.
    source_name : str, optional
        The sample's file name, for the default project name.
    label, timestamp : str, optional
        The label and time columns; default: recognised (see the module docstring).

    Raises
    ------
    InvalidInputError
        If the sample is empty, a named column is not in it, or its label cannot be
        learnt (a text label with too many values).
    ConfigError
        If no ``label`` is given and no single column is named like one; the message lists
        the candidate columns.

    Examples
    --------
    >>> frame = pd.DataFrame({"id": range(60), "x": [i % 7 for i in range(60)],
    ...                       "churn": ["yes", "no", "no"] * 20})
    >>> draft = draft_spec(frame, source_name="customers.csv")
    >>> draft.spec.project, draft.spec.task, draft.spec.positive_class, draft.spec.entities
    ('customers-churn', 'binary', 'yes', ['id'])
    """
    if frame.empty:
        raise InvalidInputError("The data sample has no rows; a spec cannot be drafted from it.")
    for what, name in (("label", label), ("timestamp", timestamp)):
        if name is not None and name not in frame.columns:
            raise InvalidInputError(
                f"The {what} {name!r} is not a column of the sample; columns: "
                f"{list(frame.columns)}."
            )
    notes: list[str] = []
    excluded: dict[str, str] = {}
    time = _time(frame, timestamp, exclude=[label] if label else [])
    time_sources = set(time.sources) if time else set()
    ids = find_id_columns(frame, exclude=time_sources | ({label} if label else set()))
    id_names = {c.name for c in ids}
    label = label or _choose_label(frame, exclude=id_names | time_sources)
    ids = [c for c in ids if c.name != label]
    if time is not None and label in time.sources:
        time = None
    frame, time = _read_time(frame, time, given=timestamp is not None, notes=notes)
    for c in ids:
        excluded[c.name] = c.reason
        notes.append(f"{'entity' if c.role == 'entity' else 'ignored'}: {c.name!r}, {c.reason}")
    task, positive = _task(frame[label], label, notes)
    entities = [c.name for c in ids if c.role == "entity"]
    ignore = [c.name for c in ids if c.role == "ignore"]
    schema = infer_schema(
        frame,
        label=label,
        timestamp=time.column.name if time else None,
        entities=entities,
        ignore=ignore,
    )
    for column, reason, note in _unusable_features(frame, schema, label, task):
        ignore.append(column)
        excluded[column] = reason
        notes.append(note)
    window_rows, window_note = _window_rows(len(frame), frame, time)
    notes.append(window_note)
    name = project or project_name(source_name, label)
    data: dict[str, Any] = {
        "project": name,
        "task": task,
        "label": label,
        "positive_class": positive,
        "timestamp": time.column.name if time else None,
        "timestamp_format": time.column.format if time else "auto",
        "timestamp_parts": dict(time.column.parts) if time else {},
        "entities": entities,
        "categorical": [
            c.name
            for c in schema.features
            if c.kind is ColumnKind.CATEGORICAL and c.name not in ignore
        ],
        "ignore": ignore,
        "training": {"window_rows": window_rows},
    }
    seasonal = _calendar_features(schema, ignore, time.column.parts.values() if time else ())
    if seasonal:
        data["drift"] = {"seasonal": seasonal}
        notes.append(
            f"seasonal (reported, not counted by the drift trigger): {seasonal}; calendar "
            "fields change with the date by nature"
        )
    return Draft(parse_spec(data, source="drafted conveyor.yaml"), notes, excluded)


def label_candidates(frame: pd.DataFrame, *, exclude: Sequence[str] = ()) -> list[str]:
    """Columns that could be the label, likeliest first, each described in a few words.

    The last column comes first (where tables often keep the label), then text columns of
    two to 20 values, numeric columns of many values, and integer columns of a few; ids and
    the time are left out.
    """
    described = []
    last = frame.columns[-1] if len(frame.columns) else None
    for name in frame.columns:
        if name in exclude:
            continue
        values = frame[name].dropna()
        distinct = values.nunique()
        if distinct < 2:
            continue
        numeric = pd.api.types.is_numeric_dtype(values.dtype)
        if distinct <= MAX_CLASSES:
            shown = ", ".join(str(v) for v in sorted(values.unique(), key=str)[:3])
            more = ", ..." if distinct > 3 else ""
            text = f"{name!r} ({distinct} values: {shown}{more})"
            rank = 3 if numeric else 1
        elif numeric:
            text, rank = f"{name!r} (numeric)", 2
        else:
            continue
        described.append((0 if name == last else rank, text))
    return [text for _, text in sorted(described, key=lambda d: d[0])]


def project_name(source_name: str | None, label: str) -> str:
    """A project name from the sample's file name and the label.

    Words of the file stem that say nothing (``data``, ``sample``, ``week``, numbers) are
    dropped; the label is added when the stem does not name it.

    Examples
    --------
    >>> project_name("week-01.csv", "late"), project_name("Bikeshare.csv", "bikers")
    ('late', 'bikeshare-bikers')
    >>> project_name("wage_data.parquet", "wage")
    'wage'
    """
    stem = (source_name or "").replace("\\", "/").rsplit("/", 1)[-1].split(".")[0]
    words = [w for w in re.split(r"[^A-Za-z0-9]+", stem.lower()) if w]
    kept = [w for w in words if not _GENERIC_STEM.match(w)]
    clean_label = "-".join(w for w in re.split(r"[^A-Za-z0-9]+", label.lower()) if w)
    if clean_label and clean_label not in kept:
        kept.append(clean_label)
    name = "-".join(kept)[:64].strip("-._")
    return name or "project"


def _time(frame: pd.DataFrame, timestamp: str | None, *, exclude: list[str]) -> TimeGuess | None:
    if timestamp is None:
        return find_time(frame, exclude=exclude)
    guess = find_time(frame[[timestamp]])
    if guess is not None:
        return guess
    return TimeGuess(TimeColumn(timestamp), "named by the caller", (timestamp,))


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def _choose_label(frame: pd.DataFrame, *, exclude: set[str]) -> str:
    named = [c for c in frame.columns if c not in exclude and _normalise(c) in LABEL_NAMES]
    if len(named) == 1:
        return str(named[0])
    candidates = label_candidates(frame, exclude=sorted(exclude))
    shown = "; ".join(candidates[:12]) or "none"
    if named:
        why = f"Several columns are named like a label: {named}."
    else:
        why = f"No column is named like a label ({', '.join(LABEL_NAMES[:8])}, ...)."
    raise ConfigError(
        f"{why} Which column should the model predict? Pass --label NAME. Candidates: {shown}."
    )


def _read_time(
    frame: pd.DataFrame, time: TimeGuess | None, *, given: bool, notes: list[str]
) -> tuple[pd.DataFrame, TimeGuess | None]:
    """``frame`` with its time read as datetimes; a found time that does not read is dropped."""
    if time is not None:
        try:
            frame = apply_time_column(frame.copy(), time.column)
        except InvalidInputError as exc:
            if given:
                raise
            notes.append(f"time: {time.column.name!r} looked like one but {exc}")
            time = None
    if time is not None:
        notes.append(f"time: {time.column.name!r}, {time.reason}")
    else:
        notes.append("time: none found; batches are split at random (set 'timestamp')")
    return frame, time


def _unusable_features(
    frame: pd.DataFrame, schema: Schema, label: str, task: str
) -> list[tuple[str, str, str]]:
    """Features to ignore, each with its reason and note: label leaks and free text."""
    features = {c.name: c.kind for c in schema.columns if c.role is ColumnRole.FEATURE}
    found = [
        (leak.column, leak.reason, f"ignored: {leak.reason}")
        for leak in find_label_leaks(frame, label, features, task=_leak_task(task))
    ]
    leaked = {column for column, _, _ in found}
    found += [
        (c.name, _FREE_TEXT, f"ignored: {c.name!r}, {_FREE_TEXT}")
        for c in schema.features
        if c.kind is ColumnKind.TEXT and c.name not in leaked
    ]
    return found


_FREE_TEXT = "free text (too many distinct values to be a category)"


def _task(values: pd.Series, label: str, notes: list[str]) -> tuple[str, Any]:
    """The task and the positive class of a binary label; notes say why."""
    task, positive, why = _infer_task(values, label)
    if positive is None:
        notes.append(f"label: {label!r}, task {task}" + (f" ({why})" if why else ""))
    else:
        notes.append(f"label: {label!r}, task {task} (2 values)")
        notes.append(f"positive class: {positive!r} ({why}; set positive_class to change)")
    return task, positive


def _infer_task(values: pd.Series, label: str) -> tuple[str, Any, str]:
    """The task, the positive class of a binary label, and why (for the notes)."""
    present = values.dropna()
    distinct = present.nunique()
    if distinct < 2:
        raise InvalidInputError(
            f"The label {label!r} takes {distinct} value(s) in the sample; a model needs at "
            "least two."
        )
    if distinct == 2:
        codec = LabelCodec.fit(Task.BINARY, present.tolist())
        positive = codec.positive
        named = label_key(positive).lower() in POSITIVE_NAMES
        why = "named like a positive class" if named else "the rarer value"
        return "binary", positive, why
    numeric = pd.api.types.is_numeric_dtype(present.dtype) and not isinstance(
        present.dtype, pd.CategoricalDtype
    )
    counts = present.value_counts()
    few = distinct <= MAX_CLASSES and int(counts.min()) >= MIN_CLASS_ROWS
    if not numeric:
        if few:
            return "multiclass", None, f"{distinct} classes"
        raise InvalidInputError(
            f"The label {label!r} is text with {distinct} values, some rarer than "
            f"{MIN_CLASS_ROWS} rows; a class label may have at most {MAX_CLASSES} values "
            f"of at least {MIN_CLASS_ROWS} rows each."
        )
    whole = bool((present.astype("float64") % 1 == 0).all())
    if whole and few and distinct <= MAX_INTEGER_CLASSES:
        return "multiclass", None, f"{distinct} integer classes"
    return "regression", None, ""


def _leak_task(task: str) -> LeakTask:
    if task == "binary":
        return "binary"
    return "multiclass" if task == "multiclass" else "regression"


def _window_rows(rows: int, frame: pd.DataFrame, time: TimeGuess | None) -> tuple[int, str]:
    """The training window in rows: the sample's size, never fewer than the gate needs."""
    need = rows_for_test(GateSpec().min_rows, TrainingSpec().split[2])
    window = max(need, min(rows, MAX_WINDOW_ROWS))
    span = ""
    if time is not None:
        times = frame[time.column.name].dropna()
        if not times.empty:
            days = (times.max() - times.min()).total_seconds() / 86_400
            span = f" over {days:,.0f} days"
    return window, (
        f"training.window_rows: {window:,} (the sample has {rows:,} rows{span}; the gate's "
        f"{GateSpec().min_rows} test rows need at least {need:,})"
    )


def _calendar_features(schema: Schema, ignore: list[str], parts: Iterable[str]) -> list[str]:
    """Features that are calendar fields: those the time is built from, and those named so."""
    built = set(parts)
    return [
        c.name
        for c in schema.features
        if c.name not in ignore and (c.name in built or is_calendar_name(c.name))
    ]
