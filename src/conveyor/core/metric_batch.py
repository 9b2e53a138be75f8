"""Metric points in bulk: one plain tuple per point, read as :class:`MetricPoint` on demand.

Logging a metric point is the hottest call of experiment tracking, so a point travels from
the logging call to the database as a :data:`MetricRow`, a tuple ``(key, value, step,
time_us)`` whose time is an integer count of microseconds since the Unix epoch (UTC), rather
than as a dataclass holding a datetime. :func:`metric_row` validates a point and builds its
row; :class:`MetricBatch` is a sequence of such rows that reads as ``MetricPoint`` objects, so
every :class:`~conveyor.store.base.RunStore` accepts it, while a store that knows it can write
``batch.rows`` as they are.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import overload

from conveyor.core.entities import MetricPoint
from conveyor.core.errors import InvalidInputError

MetricRow = tuple[str, float, int, int]
"""``(key, value, step, time_us)``: a validated metric point, its time in µs since the epoch."""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_time_ns = time.time_ns


def metric_row(
    key: str, value: float, step: int | None = None, timestamp: datetime | None = None
) -> MetricRow:
    """Validate one metric point and return it as a row.

    Parameters
    ----------
    key : str
        The metric's name; non-empty.
    value : float
        Any real number (ints, numpy scalars, NaN and infinities included).
    step : int, optional
        Default 0.
    timestamp : datetime, optional
        Default: now. A naive datetime is taken to be UTC.

    Returns
    -------
    MetricRow

    Raises
    ------
    InvalidInputError
        If the key is not a non-empty string, the value not a real number, the step not an
        int or the timestamp not a datetime.

    Examples
    --------
    >>> metric_row("loss", 1, step=3, timestamp=datetime(2024, 5, 1, tzinfo=UTC))
    ('loss', 1.0, 3, 1714521600000000)
    """
    # The exact-type checks keep the common case (str, float, int, no timestamp) cheap.
    if type(key) is not str or not key:
        key = _checked_key(key)
    if type(value) is not float:
        value = _checked_value(key, value)
    if step is None:
        step = 0
    elif type(step) is not int:
        step = _checked_step(key, step)
    if timestamp is None:
        return (key, value, step, _time_ns() // 1000)
    return (key, value, step, _checked_micros(key, timestamp))


def micros_of(timestamp: datetime) -> int:
    """Microseconds since the Unix epoch of ``timestamp`` (naive is taken to be UTC)."""
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    return (timestamp - EPOCH) // _ONE_US


def datetime_of(micros: int) -> datetime:
    """The aware UTC datetime ``micros`` microseconds after the Unix epoch."""
    return EPOCH + timedelta(microseconds=micros)


class MetricBatch(Sequence[MetricPoint]):
    """Metric rows that read as :class:`MetricPoint` objects, in logging order.

    Parameters
    ----------
    rows : list of MetricRow
        Rows built by :func:`metric_row` (or :meth:`from_points`); kept as given, not copied.

    Examples
    --------
    >>> batch = MetricBatch.from_points([MetricPoint("loss", 0.5, 1, EPOCH)])
    >>> batch.rows, batch[0] == MetricPoint("loss", 0.5, 1, EPOCH), len(batch)
    ([('loss', 0.5, 1, 0)], True, 1)
    """

    __slots__ = ("rows",)

    def __init__(self, rows: list[MetricRow]) -> None:
        self.rows = rows

    @classmethod
    def from_points(cls, points: Iterable[MetricPoint]) -> MetricBatch:
        """Validate ``points`` and batch them; raise InvalidInputError for a malformed one."""
        return cls([metric_row(p.key, p.value, p.step, p.timestamp) for p in points])

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> MetricPoint: ...

    @overload
    def __getitem__(self, index: slice) -> MetricBatch: ...

    def __getitem__(self, index: int | slice) -> MetricPoint | MetricBatch:
        if isinstance(index, slice):
            return MetricBatch(self.rows[index])
        return _point(self.rows[index])

    def __iter__(self) -> Iterator[MetricPoint]:
        return map(_point, self.rows)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MetricBatch) and self.rows == other.rows

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MetricBatch(<{len(self.rows)} points>)"


def _point(row: MetricRow) -> MetricPoint:
    key, value, step, micros = row
    return MetricPoint(key, value, step, datetime_of(micros))


def _checked_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidInputError(f"A metric key must be a non-empty string. Got {key!r} instead.")
    return str(key)


def _checked_value(key: str, value: object) -> float:
    if isinstance(value, bool | numbers.Real):
        return float(value)
    raise InvalidInputError(
        f"The value of metric {key!r} must be a real number. Got {value!r} instead."
    )


def _checked_step(key: str, step: object) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise InvalidInputError(f"The step of metric {key!r} must be an int. Got {step!r} instead.")
    return int(step)


def _checked_micros(key: str, timestamp: object) -> int:
    if not isinstance(timestamp, datetime):
        raise InvalidInputError(
            f"The timestamp of metric {key!r} must be a datetime. Got {timestamp!r} instead."
        )
    return micros_of(timestamp)
