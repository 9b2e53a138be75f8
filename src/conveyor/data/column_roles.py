"""Recognise a sample's id columns and its time, for drafting ``conveyor.yaml``.

An id or key column (unique or nearly so, named like one, or a row counter) is never a
feature: a model would memorise it. The time may be a date-time column, text dates, seconds
or milliseconds since 1970, integer or fractional years, or a set of year / month / day /
hour columns; :mod:`conveyor.data.timestamps` reads each form at ingestion.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from conveyor.data.schemas import parse_datetimes
from conveyor.data.timestamps import TimeColumn
from conveyor.spec import TimePart

__all__ = ["IdColumn", "TimeGuess", "find_id_columns", "find_time"]

_NEAR_UNIQUE = 0.95
_ROW_COUNTER_NAMES = {"rownames", "index", "row", "rownum", "row_number", "unnamed: 0", ""}
_ID_NAME = re.compile(r"(^|[_\s.-])(id|key|uuid|guid)$|^(id|key|uuid|guid)([_\s.-]|$)")
_CAMEL_ID = re.compile(r"[a-z0-9]I[dD]$")
_TIME_HINT = re.compile(r"time|date|timestamp|^ts$|_ts$|^ts_|created|updated|epoch|unix|when")
_YEAR_NAME = re.compile(r"(^|[_\s.-])(year|yr)s?($|[_\s.-])|^year|year$", re.IGNORECASE)
_PART_NAMES: dict[TimePart, re.Pattern[str]] = {
    "month": re.compile(r"^(month|mnth|mon|mo|month_of_year)$"),
    "day": re.compile(r"^(day|dd|dom|day_of_month|mday)$"),
    "day_of_year": re.compile(r"^(day_of_year|dayofyear|doy|yday|julian_day)$"),
    "hour": re.compile(r"^(hour|hr|hh|hour_of_day)$"),
    "minute": re.compile(r"^(minute|minute_of_hour)$"),
}
#: Calendar fields that are not parts a time is built from.
_CALENDAR_NAME = re.compile(
    r"^(years?|yrs?|season|quarter|week|weekofyear|week_of_year|dayofweek|day_of_week|weekday"
    r"|dow|holiday|workingday)$"
)


def is_calendar_name(name: str) -> bool:
    """Whether ``name`` (any case) names a calendar field: a time part or a season, week day or
    holiday flag, which moves with the date by nature."""
    lowered = name.lower()
    return bool(_CALENDAR_NAME.match(lowered)) or any(
        p.match(lowered) for p in _PART_NAMES.values()
    )


_PART_RANGES: dict[TimePart, tuple[int, int]] = {
    "month": (1, 12),
    "day": (1, 31),
    "day_of_year": (1, 366),
    "hour": (0, 23),
    "minute": (0, 59),
}
_YEARS = (1900, 2100)
_EPOCH_S = (3e8, 4.2e9)  # 1979..2103
_EPOCH_MS = (3e11, 4.2e12)
_TEXT_SAMPLE = 500


@dataclass(frozen=True, slots=True)
class IdColumn:
    """An id, key or row-counter column: ``entity`` keys rows, ``ignore`` just numbers them."""

    name: str
    role: str
    reason: str


@dataclass(frozen=True, slots=True)
class TimeGuess:
    """The sample's time: the column (or parts) and how its values read, and why."""

    column: TimeColumn
    reason: str
    sources: tuple[str, ...] = field(default=())
    """The sample's columns the time comes from (the column itself, or its parts)."""


def find_id_columns(frame: pd.DataFrame, *, exclude: Collection[str] = ()) -> list[IdColumn]:
    """The columns of ``frame`` that identify or number rows rather than describe them.

    A column qualifies when its values are integers or text, (nearly) all distinct, and it
    is named like an id (``id``, ``customer_id``, ``CustomerID``, ``key``, ``uuid``) or a
    row counter (``rownames``, ``index``, ``Unnamed: 0``), or its integers count rows
    (consecutive, in order). Ids with every value distinct go to ``entities`` (ingestion checks
    that they key rows uniquely); row counters and ids that repeat go to ``ignore``.

    Examples
    --------
    >>> frame = pd.DataFrame({"rownames": [1, 2, 3], "user_id": ["a", "b", "c"], "x": [5, 1, 5]})
    >>> [(c.name, c.role) for c in find_id_columns(frame)]
    [('rownames', 'ignore'), ('user_id', 'entity')]
    """
    found = []
    for name in frame.columns:
        if name in exclude:
            continue
        values = frame[name].dropna()
        if len(values) < 2 or not _is_key_like(values):
            continue
        lowered = str(name).strip().lower()
        share = values.nunique() / len(values)
        counter = _is_counter(values)
        if lowered in _ROW_COUNTER_NAMES or lowered.startswith("unnamed:"):
            if share >= _NEAR_UNIQUE:
                found.append(IdColumn(name, "ignore", "a row number, not a property of the row"))
        elif (_ID_NAME.search(lowered) or _CAMEL_ID.search(str(name))) and share >= _NEAR_UNIQUE:
            if share == 1.0:
                found.append(IdColumn(name, "entity", "an id: every value distinct"))
            else:
                # Repeats would fail ingestion's duplicate-key check on every batch.
                why = f"an id, {share:.1%} distinct: it repeats, so it keys no row"
                found.append(IdColumn(name, "ignore", why))
        elif counter:
            found.append(IdColumn(name, "ignore", "counts rows (1, 2, 3, ... in order)"))
    return found


def find_time(frame: pd.DataFrame, *, exclude: Collection[str] = ()) -> TimeGuess | None:
    """The sample's time, in order of preference: a date-time column, text dates, epoch
    numbers named like a time, a set of year/month/day/hour columns, a year column.

    Examples
    --------
    >>> frame = pd.DataFrame({"year": [2006, 2004, 2003], "wage": [75.0, 70.5, 131.0]})
    >>> guess = find_time(frame)
    >>> guess.column.name, guess.column.format
    ('year', 'year')
    """
    columns = [c for c in frame.columns if c not in exclude]
    for finder in (_datetime_column, _text_dates, _epoch_column, _time_parts, _year_column):
        guess = finder(frame, columns)
        if guess is not None:
            return guess
    return None


def _is_key_like(values: pd.Series) -> bool:
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return False
    if pd.api.types.is_integer_dtype(dtype):
        return True
    if pd.api.types.is_float_dtype(dtype):
        return bool(np.all(np.mod(values.to_numpy(), 1) == 0))
    if isinstance(dtype, pd.CategoricalDtype):
        return False
    return bool(pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype))


def _is_counter(values: pd.Series) -> bool:
    if not pd.api.types.is_numeric_dtype(values.dtype) or len(values) < 3:
        return False
    steps = np.diff(values.to_numpy(dtype=np.float64))
    return bool(np.all(steps == 1) or np.all(steps == -1))


def _guess(name: str, fmt: str, reason: str) -> TimeGuess:
    return TimeGuess(TimeColumn(name, fmt), reason, (name,))  # type: ignore[arg-type]


def _datetime_column(frame: pd.DataFrame, columns: list[str]) -> TimeGuess | None:
    for c in columns:
        if pd.api.types.is_datetime64_any_dtype(frame[c].dtype):
            return _guess(c, "auto", "a date-time column")
    return None


def _text_dates(frame: pd.DataFrame, columns: list[str]) -> TimeGuess | None:
    found = []
    for c in columns:
        values = frame[c].dropna()
        if values.empty or not (
            pd.api.types.is_string_dtype(values.dtype) or values.dtype == object
        ):
            continue
        sample = values.astype(str).head(_TEXT_SAMPLE)
        # Dates carry digits and a separator; bare numbers or words ("Jan") are not times.
        if not sample.str.contains(r"\d[-/.:T ]\d|\d[-/ ][A-Za-z]|[A-Za-z][-/ ]\d").all():
            continue
        if sample.str.fullmatch(r"[+-]?\d+(\.\d+)?").any():
            continue
        if parse_datetimes(sample).notna().mean() >= 0.99 and sample.nunique() > 1:
            found.append(c)
    if not found:
        return None
    named = [c for c in found if _TIME_HINT.search(c.lower())]
    return _guess((named or found)[0], "auto", "text dates")


def _numbers(values: pd.Series) -> pd.Series | None:
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(values.cat.categories.dtype)
    if not pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        return None
    return values.dropna().astype("float64")


def _epoch_column(frame: pd.DataFrame, columns: list[str]) -> TimeGuess | None:
    for c in columns:
        numbers = _numbers(frame[c])
        if numbers is None or numbers.empty or not _TIME_HINT.search(c.lower()):
            continue
        lo, hi = numbers.min(), numbers.max()
        if _EPOCH_S[0] <= lo and hi <= _EPOCH_S[1]:
            return _guess(c, "epoch_s", "seconds since 1970")
        if _EPOCH_MS[0] <= lo and hi <= _EPOCH_MS[1]:
            return _guess(c, "epoch_ms", "milliseconds since 1970")
    return None


def _year_like(frame: pd.DataFrame, c: str) -> str | None:
    """``year`` or ``fractional_year`` when ``c`` holds years, else None."""
    numbers = _numbers(frame[c])
    if numbers is None or numbers.empty:
        return None
    if not (_YEARS[0] <= numbers.min() and numbers.max() <= _YEARS[1]):
        return None
    whole = bool(np.all(np.mod(numbers.to_numpy(), 1) == 0))
    if _YEAR_NAME.search(c) and whole:
        return "year"
    if not whole and (_YEAR_NAME.search(c) or _TIME_HINT.search(c.lower())):
        return "fractional_year"
    return None


def _year_column(frame: pd.DataFrame, columns: list[str]) -> TimeGuess | None:
    for c in columns:
        fmt = _year_like(frame, c)
        if fmt == "fractional_year":
            return _guess(c, fmt, "fractional years (2013.25 is 2013-04-02)")
    for c in columns:
        if _year_like(frame, c) == "year":
            return _guess(c, "year", "integer years")
    return None


def _part_column(frame: pd.DataFrame, c: str) -> TimePart | None:
    lowered = c.strip().lower()
    for part, pattern in _PART_NAMES.items():
        if not pattern.match(lowered):
            continue
        values = frame[c]
        numbers = _numbers(values)
        if numbers is None:
            if part == "month" and values.dropna().astype(str).str.len().ge(3).all():
                return part
            return None
        lo, hi = _PART_RANGES[part]
        if numbers.empty or numbers.min() < lo or numbers.max() > 366:
            return None
        if part == "day" and numbers.max() > 31:
            return "day_of_year"
        return part if numbers.max() <= hi else None
    return None


def _time_parts(frame: pd.DataFrame, columns: list[str]) -> TimeGuess | None:
    parts: dict[TimePart, str] = {}
    for c in columns:
        part = _part_column(frame, c)
        if part is not None and part not in parts:
            parts[part] = c
        elif part is None and "year" not in parts and _year_like(frame, c) == "year":
            parts["year"] = c
    if "day_of_year" in parts:
        parts.pop("month", None)
        parts.pop("day", None)
    finer = {"month", "day", "day_of_year", "hour"} & set(parts)
    # A time from parts needs a date part and one more: {year, month}, {day_of_year, hour}...
    if not finer or len(parts) < 2 or ("hour" in parts and len(finer) < 2):
        return None
    name = next(n for n in ("time", "event_time", "row_time") if n not in frame.columns)
    ordered = dict(sorted(parts.items(), key=lambda kv: list(_PART_ORDER).index(kv[0])))
    listed = ", ".join(f"{p} {c!r}" for p, c in ordered.items())
    no_year = "" if "year" in parts else " (no year column: year 2000 stands in)"
    return TimeGuess(
        TimeColumn(name, "auto", ordered),
        f"built from {listed}{no_year}",
        tuple(ordered.values()),
    )


_PART_ORDER: tuple[TimePart, ...] = ("year", "month", "day", "day_of_year", "hour", "minute")
