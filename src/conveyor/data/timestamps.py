"""Read a table's time as aware UTC datetimes, whatever form it comes in.

A project names its time column in ``conveyor.yaml`` (``timestamp``) and says how its values
read (``timestamp_format``): dates and date-times (``auto``), integer years (``2013``),
fractional years (``2013.25``), or seconds or milliseconds since 1970. A table whose time is
spread over several columns (a year, a month, a day, an hour) names them in
``timestamp_parts``; the timestamp column is then built from them, and they stay features.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from conveyor.core.errors import InvalidInputError
from conveyor.spec import ProjectSpec, TimePart, TimestampFormat

__all__ = ["TimeColumn", "apply_time_column", "parse_times", "time_column_of"]

NOMINAL_YEAR = 2000
"""The year of a time built from parts that have no year column (a leap year: day 366 fits)."""

_MONTH_NAMES = {
    name: i
    for i, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}


@dataclass(frozen=True, slots=True)
class TimeColumn:
    """A table's time column, how its values read, and the columns it is built from, if any."""

    name: str
    format: TimestampFormat = "auto"
    parts: Mapping[TimePart, str] = field(default_factory=dict)


def time_column_of(spec: ProjectSpec) -> TimeColumn | None:
    """The time column ``conveyor.yaml`` declares, or None when it declares none."""
    if not spec.timestamp:
        return None
    return TimeColumn(spec.timestamp, spec.timestamp_format, dict(spec.timestamp_parts))


def parse_times(values: pd.Series, fmt: TimestampFormat, *, name: str = "timestamp") -> pd.Series:
    """``values`` as aware UTC datetimes read by ``fmt``; missing values stay missing.

    Raises
    ------
    InvalidInputError
        If a value cannot be read so; the message names the column and the format.

    Examples
    --------
    >>> times = parse_times(pd.Series([2013.25, 2014.0]), "fractional_year")
    >>> times.dt.strftime("%Y-%m-%d").tolist()
    ['2013-04-02', '2014-01-01']
    >>> parse_times(pd.Series([1990]), "year").dt.year.tolist()
    [1990]
    """
    try:
        if fmt == "auto":
            if pd.api.types.is_numeric_dtype(values.dtype) and not _is_bool(values):
                raise InvalidInputError(
                    f"Timestamp column {name!r} holds numbers, not dates; set "
                    "'timestamp_format' to year, fractional_year, epoch_s or epoch_ms."
                )
            return _text_times(values)
        numbers = pd.to_numeric(values, errors="raise").astype("float64")
        if fmt == "epoch_s":
            return pd.to_datetime(numbers, unit="s", utc=True)
        if fmt == "epoch_ms":
            return pd.to_datetime(numbers, unit="ms", utc=True)
        return _from_years(numbers, fractional=fmt == "fractional_year", name=name)
    except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime) as exc:
        raise InvalidInputError(
            f"Timestamp column {name!r} has values that are not times of format {fmt!r}: {exc}"
        ) from exc


def apply_time_column(frame: pd.DataFrame, time: TimeColumn | str | None) -> pd.DataFrame:
    """``frame`` with its time column read as UTC datetimes (built from its parts if declared).

    A frame without the column (or without every part) is returned unchanged: a serving
    request or a feedback file may not carry the time.

    Raises
    ------
    InvalidInputError
        If a value cannot be read as a time.
    """
    if time is None:
        return frame
    if isinstance(time, str):
        time = TimeColumn(time)
    if time.parts and time.name not in frame.columns:
        if not set(time.parts.values()) <= set(frame.columns):
            return frame
        frame[time.name] = _from_parts(frame, time.parts)
        return frame
    if time.name in frame.columns:
        frame[time.name] = parse_times(frame[time.name], time.format, name=time.name)
    return frame


def _text_times(values: pd.Series) -> pd.Series:
    """Dates and date-times: ISO 8601 first, else one inferred format (day first when a
    leading field exceeds 12, as in 13/03/2024), else each value on its own."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return pd.to_datetime(values, utc=True)
    try:
        return pd.to_datetime(values, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        pass
    text = values.dropna().astype(str)
    leading = pd.to_numeric(text.str.extract(_DAY_FIRST, expand=False), errors="coerce")
    dayfirst = bool((leading > 12).any())
    try:
        return pd.to_datetime(values, utc=True, dayfirst=dayfirst)
    except (ValueError, TypeError):
        return pd.to_datetime(values, utc=True, dayfirst=dayfirst, format="mixed")


_DAY_FIRST = r"^\s*(\d{1,2})[/.-]\d{1,2}[/.-]\d{2,4}"


def _is_bool(values: pd.Series) -> bool:
    return bool(pd.api.types.is_bool_dtype(values.dtype))


def _from_years(numbers: pd.Series, *, fractional: bool, name: str) -> pd.Series:
    present = numbers.dropna()
    if not fractional and not np.all(np.mod(present, 1) == 0):
        raise ValueError(f"{name!r} has fractional values; use fractional_year")
    if ((present < 1) | (present > 9998)).any():
        raise ValueError(f"years must lie in [1, 9998], got {present.min()}..{present.max()}")
    whole = np.floor(numbers)
    starts = pd.to_datetime(whole.astype("Int64").astype(str), format="%Y", errors="coerce")
    ends = pd.to_datetime((whole + 1).astype("Int64").astype(str), format="%Y", errors="coerce")
    times = starts + (ends - starts) * (numbers - whole)
    return pd.Series(times, index=numbers.index).dt.tz_localize("UTC")


def _from_parts(frame: pd.DataFrame, parts: Mapping[TimePart, str]) -> pd.Series:
    def number(part: TimePart, default: int) -> pd.Series:
        column = parts.get(part)
        if column is None:
            return pd.Series(default, index=frame.index, dtype="float64")
        values = frame[column]
        if part == "month" and not pd.api.types.is_numeric_dtype(values.dtype):
            lowered = values.astype("string").str.strip().str.lower().str.rstrip(".")
            mapped = lowered.map(_MONTH_NAMES)
            bad = values.notna() & mapped.isna()
            if bad.any():
                raise InvalidInputError(
                    f"Time part column {column!r} (month) has values that are not months, "
                    f"e.g. {values[bad].iloc[0]!r}; allowed: 1..12 or month names."
                )
            return mapped.astype("float64")
        try:
            return pd.to_numeric(values.astype("object"), errors="raise").astype("float64")
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(
                f"Time part column {column!r} ({part}) has values that are not numbers: {exc}"
            ) from exc

    year = number("year", NOMINAL_YEAR)
    base = pd.to_datetime(year.astype("Int64").astype(str), format="%Y", errors="coerce")
    if "day_of_year" in parts:
        offset = pd.to_timedelta(number("day_of_year", 1) - 1, unit="D")
    else:
        month, day = number("month", 1), number("day", 1)
        base = pd.to_datetime(
            pd.DataFrame({"year": year, "month": month, "day": day}), errors="coerce"
        )
        # A "day" column may count days of the year (ISLP's Bikeshare does): in January both
        # readings agree, so a sample of January cannot tell them apart. A day past its
        # month's end is read as a day of the year when that day falls in the row's month.
        # Without a year column, days of the year are counted in a common year (the nominal
        # year is a leap year, so that a 29 February of the data has a date).
        counted = year if "year" in parts else year + 1
        start = pd.to_datetime(counted.astype("Int64").astype(str), format="%Y", errors="coerce")
        by_year = start + pd.to_timedelta(day - 1, unit="D")
        if "year" not in parts:
            by_year = by_year - pd.DateOffset(years=1)  # back to the nominal year
        of_year = base.isna() & (by_year.dt.month == month) & (by_year.dt.year == year)
        base = base.where(~of_year, by_year)
        offset = pd.to_timedelta(0, unit="D")
    hours = pd.to_timedelta(number("hour", 0), unit="h")
    minutes = pd.to_timedelta(number("minute", 0), unit="m")
    return pd.Series(base + offset + hours + minutes, index=frame.index).dt.tz_localize("UTC")
