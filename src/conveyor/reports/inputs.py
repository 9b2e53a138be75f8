"""Input checks and conversions shared by the chart functions.

X values become one numpy array of a single kind: floats, ``datetime64[us]`` (naive, in UTC)
or strings as objects; numbers become float arrays with NaN for missing values. Problems raise
:class:`~conveyor.core.errors.InvalidInputError` naming the argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import numpy as np

from conveyor.core.clock import as_utc
from conveyor.core.errors import InvalidInputError

__all__ = ["as_floats", "as_x", "check_same_x_kind", "finite_edges", "is_dates", "tick_label"]


def as_floats(values: Any, *, what: str, ndim: int = 1) -> np.ndarray:
    """Return ``values`` as a float array of ``ndim`` dimensions (None becomes NaN)."""
    try:
        array = np.array(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"The {what} must be numbers (None or NaN for missing). They do not convert: {exc}."
        ) from exc
    if array.size == 0:
        return array.reshape((0,) * ndim)
    if array.ndim != ndim:
        raise InvalidInputError(
            f"The {what} must be a {ndim}-dimensional array of numbers. Got {array.ndim} "
            "dimensions instead."
        )
    return array


def as_x(values: Sequence[Any], *, what: str) -> np.ndarray:
    """Return x values as float, datetime64 (naive UTC) or str categories."""
    items = list(values)
    if not items:
        return np.array([], dtype=float)
    if all(isinstance(v, datetime | date | np.datetime64) for v in items):
        return np.array([_naive_utc(v) for v in items], dtype="datetime64[us]")
    if all(isinstance(v, str) for v in items):
        return np.array(items, dtype=object)
    try:
        return np.array(items, dtype=float)
    except (TypeError, ValueError) as exc:
        kinds = sorted({type(v).__name__ for v in items})
        raise InvalidInputError(
            f"The {what} must all be numbers, all datetimes or all strings. Got {kinds} instead."
        ) from exc


def _naive_utc(value: datetime | date | np.datetime64) -> Any:
    if isinstance(value, datetime):
        return as_utc(value).replace(tzinfo=None)
    return value


def is_dates(xs: np.ndarray) -> bool:
    """Tell whether x values converted by :func:`as_x` are datetimes."""
    return xs.dtype.kind == "M"


def check_same_x_kind(columns: Sequence[np.ndarray], *, what: str) -> None:
    """Raise unless all non-empty x arrays are of one kind (numbers, datetimes or strings)."""
    kinds = {xs.dtype.kind for xs in columns if len(xs)}
    if len(kinds) > 1:
        raise InvalidInputError(
            f"The x values of all {what} must be of one kind (numbers, datetimes or strings). "
            f"Got numpy kinds {sorted(kinds)} instead."
        )


def tick_label(value: Any) -> str:
    """Return a short label for a category or column: dates as YYYY-MM-DD, floats to 4 digits."""
    if isinstance(value, np.datetime64):
        value = value.astype("datetime64[us]").item()
    if isinstance(value, datetime):
        moment = as_utc(value)
        if (moment.hour, moment.minute, moment.second) == (0, 0, 0):
            return moment.strftime("%Y-%m-%d")
        return moment.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float | np.floating):
        return format(float(value), ".4g")
    return str(value)


def finite_edges(raw: Sequence[Any]) -> np.ndarray:
    """Return increasing bin edges with infinite outer edges cut to the mean finite bin width."""
    edges = as_floats(raw, what="bin edges of histogram_pair()")
    if np.isnan(edges).any() or not np.all(np.diff(edges) > 0):
        raise InvalidInputError(
            f"The bin edges of histogram_pair() must be strictly increasing numbers. Got "
            f"{edges.tolist()} instead."
        )
    inner = edges[np.isfinite(edges)]
    if len(inner) == 0:
        return np.arange(len(edges), dtype=float)
    width = float(np.diff(inner).mean()) if len(inner) > 1 else 1.0
    edges = edges.copy()
    if np.isinf(edges[0]):
        edges[0] = (edges[1] if np.isfinite(edges[1]) else inner[0]) - width
    if np.isinf(edges[-1]):
        edges[-1] = (edges[-2] if np.isfinite(edges[-2]) else inner[-1]) + width
    return edges
