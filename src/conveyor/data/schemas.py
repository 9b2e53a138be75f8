"""Schema inference: what the first batch says every later batch must look like.

Kinds come from dtypes and a look at the values; roles come from the project's declaration.
Categorical values are compared as strings everywhere (inference, validation, profiles and the
model encoding in :mod:`conveyor.core.signature`), so ``to_category_strings`` is the one
conversion all of them use.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pandas.api import types as pdt

from conveyor.core.errors import InvalidInputError, SchemaError
from conveyor.core.schema import ColumnKind, ColumnRole, ColumnSchema, Schema

_NUMERIC_VALUES = frozenset({"integer", "floating", "mixed-integer-float", "decimal"})
_DATETIME_VALUES = frozenset({"datetime", "datetime64", "date"})
RANGE_HEADROOM = 0.1  # share of a sample's spread added on each side of an inferred range


def to_category_strings(values: pd.Series | pd.Index) -> pd.Series:
    """Return ``values`` as nullable strings, the form categories are stored and compared in.

    Parameters
    ----------
    values : pandas.Series or pandas.Index
        Values of any dtype; missing values stay missing.

    Returns
    -------
    pandas.Series
        A ``string`` series of the same length.

    Examples
    --------
    >>> to_category_strings(pd.Series([1, 2, None], dtype="Int64")).tolist()
    ['1', '2', <NA>]
    """
    return pd.Series(values).astype("string")


def parse_datetimes(values: pd.Series) -> pd.Series:
    """Parse ``values`` to aware UTC datetimes; unparseable values become ``NaT``.

    ISO 8601 text is parsed in one vectorised pass; only what it cannot read falls back to
    per-value format inference.

    Parameters
    ----------
    values : pandas.Series
        Datetimes, or text or objects holding dates.

    Returns
    -------
    pandas.Series
        A ``datetime64[ns, UTC]``-like series of the same index.
    """
    if pdt.is_datetime64_any_dtype(values.dtype):
        return pd.to_datetime(values, utc=True)
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    retry = parsed.isna() & values.notna()
    if retry.any():
        again = pd.to_datetime(values[retry], errors="coerce", utc=True, format="mixed")
        parsed = parsed.copy()
        parsed[retry] = again
    return parsed


def infer_schema(
    frame: pd.DataFrame,
    *,
    label: str,
    timestamp: str | None = None,
    entities: Sequence[str] = (),
    ignore: Sequence[str] = (),
    categorical: Sequence[str] = (),
    max_categories: int = 200,
) -> Schema:
    """Infer a schema from a sample batch.

    Parameters
    ----------
    frame : pandas.DataFrame
        The sample; every column becomes a schema column, in frame order.
    label : str
        The column to predict (role ``label``).
    timestamp : str, optional
        The event-time column (role ``timestamp``, kind ``datetime``).
    entities : sequence of str
        Entity key columns (role ``entity``).
    ignore : sequence of str
        Columns kept in the schema but used by nothing (role ``ignored``).
    categorical : sequence of str
        Columns forced to kind ``categorical`` whatever their dtype or number of values.
    max_categories : int
        Text columns with at most this many distinct values are ``categorical``; more make
        them ``text``.

    Returns
    -------
    Schema
        Version 1. ``nullable`` is whether the column had missing values in the sample; numeric
        columns carry the observed finite range with headroom (:func:`inferred_range`: never
        zero-width, 0 as the lower bound of a column with no negative value); categorical
        columns the sorted observed values.

    Raises
    ------
    SchemaError
        If a named column is not in ``frame``, column names are not unique strings, or the
        timestamp column holds values that are not dates.
    InvalidInputError
        If a column is given two roles or ``max_categories`` is not a positive int.

    Examples
    --------
    >>> frame = pd.DataFrame({"x": [1.0, 2.0], "colour": ["red", "blue"], "y": [0, 1]})
    >>> schema = infer_schema(frame, label="y")
    >>> [(c.name, str(c.kind), str(c.role)) for c in schema.columns]
    [('x', 'numeric', 'feature'), ('colour', 'categorical', 'feature'), ('y', 'numeric', 'label')]
    >>> schema.column("colour").categories
    ('blue', 'red')
    """
    if (
        isinstance(max_categories, bool)
        or not isinstance(max_categories, int)
        or max_categories < 1
    ):
        raise InvalidInputError(
            "The 'max_categories' parameter of infer_schema() must be an int in [1, inf). "
            f"Got {max_categories!r} instead."
        )
    _check_column_names(frame)
    roles = _assign_roles(frame, label=label, timestamp=timestamp, entities=entities, ignore=ignore)
    forced = set(_require_columns(frame, categorical, "categorical"))
    columns = []
    for name in frame.columns:
        role = roles.get(name, ColumnRole.FEATURE)
        columns.append(
            _infer_column(
                frame[name],
                name=name,
                role=role,
                force_categorical=name in forced,
                max_categories=max_categories,
            )
        )
    return Schema(columns=tuple(columns))


def _check_column_names(frame: pd.DataFrame) -> None:
    bad = [c for c in frame.columns if not isinstance(c, str)]
    if bad:
        raise SchemaError(
            f"Column names must be strings. Got {bad[0]!r} ({type(bad[0]).__name__}) instead."
        )
    dupes = sorted(set(frame.columns[frame.columns.duplicated()]))
    if dupes:
        raise SchemaError(f"Column names must be unique. Got duplicates {dupes} instead.")


def _require_columns(frame: pd.DataFrame, names: Sequence[str], what: str) -> list[str]:
    if isinstance(names, str):
        names = [names]
    present = set(frame.columns)
    for name in names:
        if name not in present:
            raise SchemaError(
                f"The {what} column {name!r} is not a column of the frame. "
                f"Columns: {list(frame.columns)}."
            )
    return list(names)


def _assign_roles(
    frame: pd.DataFrame,
    *,
    label: str,
    timestamp: str | None,
    entities: Sequence[str],
    ignore: Sequence[str],
) -> dict[str, ColumnRole]:
    declared: list[tuple[str, ColumnRole]] = [
        (name, ColumnRole.LABEL) for name in _require_columns(frame, [label], "label")
    ]
    if timestamp is not None:
        declared += [(timestamp, ColumnRole.TIMESTAMP)]
        _require_columns(frame, [timestamp], "timestamp")
    declared += [(n, ColumnRole.ENTITY) for n in _require_columns(frame, entities, "entity")]
    declared += [(n, ColumnRole.IGNORED) for n in _require_columns(frame, ignore, "ignored")]
    roles: dict[str, ColumnRole] = {}
    for name, role in declared:
        if name in roles and roles[name] is not role:
            raise InvalidInputError(
                f"Column {name!r} is declared both {roles[name]} and {role}; a column has one role."
            )
        roles[name] = role
    return roles


def _infer_column(
    values: pd.Series,
    *,
    name: str,
    role: ColumnRole,
    force_categorical: bool,
    max_categories: int,
) -> ColumnSchema:
    nullable = bool(values.isna().any())
    if role is ColumnRole.TIMESTAMP:
        _check_timestamp(values, name)
        return ColumnSchema(name, ColumnKind.DATETIME, role, nullable)
    kind = _infer_kind(values, force_categorical=force_categorical, max_categories=max_categories)
    if kind is ColumnKind.NUMERIC:
        low, high = _finite_range(values)
        return ColumnSchema(name, kind, role, nullable, min_value=low, max_value=high)
    if kind is ColumnKind.CATEGORICAL:
        observed = to_category_strings(values.dropna()).unique()
        categories = tuple(sorted(str(v) for v in observed))
        return ColumnSchema(name, kind, role, nullable, categories=categories)
    return ColumnSchema(name, kind, role, nullable)


def _infer_kind(values: pd.Series, *, force_categorical: bool, max_categories: int) -> ColumnKind:
    dtype = values.dtype
    if force_categorical or isinstance(dtype, pd.CategoricalDtype):
        return ColumnKind.CATEGORICAL
    if pdt.is_bool_dtype(dtype):
        return ColumnKind.BOOLEAN
    if pdt.is_numeric_dtype(dtype):
        return ColumnKind.NUMERIC
    if pdt.is_datetime64_any_dtype(dtype):
        return ColumnKind.DATETIME
    inferred = pdt.infer_dtype(values, skipna=True)
    if inferred == "boolean":
        return ColumnKind.BOOLEAN
    if inferred in _NUMERIC_VALUES:
        return ColumnKind.NUMERIC
    if inferred in _DATETIME_VALUES:
        return ColumnKind.DATETIME
    if values.nunique(dropna=True) <= max_categories:
        return ColumnKind.CATEGORICAL
    return ColumnKind.TEXT


def _finite_range(values: pd.Series) -> tuple[float | None, float | None]:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    finite = numbers[np.isfinite(numbers)]
    if finite.size == 0:
        return None, None
    return inferred_range(float(finite.min()), float(finite.max()))


def inferred_range(low: float, high: float) -> tuple[float, float]:
    """The schema range inferred from a sample spanning ``[low, high]``: never zero-width.

    A sample is narrower than the data to come, so the range gets headroom of
    ``RANGE_HEADROOM`` times the sample's spread on each side. A constant sample says nothing
    about the spread: its headroom is the value's magnitude (at least 1), so a sample where it
    never rained (``precip`` all 0) admits rain. A sample with no negative value keeps 0 as
    its lower bound (counts, durations, speeds stay non-negative, and validation never widens
    a non-negative range below 0).

    Examples
    --------
    >>> inferred_range(0.0, 0.0)
    (0.0, 1.0)
    >>> inferred_range(2.0, 12.0)
    (0.0, 13.0)
    >>> inferred_range(-10.0, 30.0)
    (-14.0, 34.0)
    """
    spread = high - low
    headroom = RANGE_HEADROOM * spread if spread > 0 else max(abs(high), abs(low), 1.0)
    lower = 0.0 if low >= 0 else low - headroom
    return lower, high + headroom


def _check_timestamp(values: pd.Series, name: str) -> None:
    if pdt.is_datetime64_any_dtype(values.dtype):
        return
    if pdt.is_numeric_dtype(values.dtype) or pdt.is_bool_dtype(values.dtype):
        raise SchemaError(
            f"The timestamp column {name!r} holds {values.dtype} values; it must hold dates. "
            "Convert it with pandas.to_datetime() first."
        )
    parsed = parse_datetimes(values)
    bad = values[parsed.isna() & values.notna()]
    if len(bad):
        raise SchemaError(
            f"The timestamp column {name!r} has {len(bad)} values that are not dates, "
            f"e.g. {bad.iloc[0]!r}."
        )
