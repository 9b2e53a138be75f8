"""Metric rows: validation on the fast path, exact time conversion, reading back as points."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from conveyor.core.entities import MetricPoint
from conveyor.core.errors import InvalidInputError
from conveyor.core.metric_batch import (
    EPOCH,
    MetricBatch,
    datetime_of,
    metric_row,
    micros_of,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_defaults_are_step_zero_and_now_in_microseconds() -> None:
    before = time.time_ns() // 1000
    key, value, step, micros = metric_row("loss", 0.5)
    after = time.time_ns() // 1000
    assert (key, value, step) == ("loss", 0.5, 0)
    assert before <= micros <= after


@pytest.mark.parametrize(
    ("value", "step", "expected"),
    [
        (1, 2, (1.0, 2)),
        (np.float32(0.5), np.int64(3), (0.5, 3)),
        (True, 0, (1.0, 0)),
        (float("nan"), None, (None, 0)),
    ],
)
def test_numbers_of_other_types_become_float_and_int(
    value: object, step: object, expected: tuple[float | None, int]
) -> None:
    row = metric_row("m", value, step, T0)  # type: ignore[arg-type]
    assert type(row[1]) is float and type(row[2]) is int
    assert (row[1] if row[1] == row[1] else None, row[2]) == expected


def test_timestamps_convert_exactly_whatever_their_zone() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert metric_row("m", 1.0, 0, T0)[3] == micros_of(T0)
    assert micros_of(T0.astimezone(plus_two)) == micros_of(T0)
    assert micros_of(T0.replace(tzinfo=None)) == micros_of(T0)
    assert datetime_of(micros_of(T0)) == T0
    assert datetime_of(micros_of(T0)).tzinfo is UTC
    before_epoch = datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert micros_of(before_epoch) == -1 and datetime_of(-1) == before_epoch


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", 1.0, 0, None), "A metric key must be a non-empty string. Got ''"),
        ((3, 1.0, 0, None), "A metric key must be a non-empty string. Got 3"),
        (("m", "high", 0, None), "The value of metric 'm' must be a real number. Got 'high'"),
        (("m", 1.0, 1.5, None), "The step of metric 'm' must be an int. Got 1.5"),
        (("m", 1.0, True, None), "The step of metric 'm' must be an int. Got True"),
        (("m", 1.0, 0, "2024-05-01"), "timestamp of metric 'm' must be a datetime"),
    ],
)
def test_malformed_points_are_rejected_naming_the_bad_value(
    args: tuple[object, ...], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        metric_row(*args)  # type: ignore[arg-type]


def test_a_batch_reads_as_the_points_it_holds() -> None:
    points = [MetricPoint("loss", 1.0 / (i + 1), i, T0 + timedelta(seconds=i)) for i in range(5)]
    batch = MetricBatch.from_points(points)
    assert len(batch) == 5
    assert list(batch) == points
    assert batch[-1] == points[-1]
    assert list(batch[1:3]) == points[1:3]
    assert batch.rows[0] == ("loss", 1.0, 0, micros_of(T0))
    assert batch == MetricBatch(list(batch.rows)) and batch != points
    assert repr(batch) == "MetricBatch(<5 points>)"
    assert datetime_of(0) == EPOCH


def test_from_points_checks_every_point() -> None:
    with pytest.raises(InvalidInputError, match="The step of metric 'm'"):
        MetricBatch.from_points([MetricPoint("m", 1.0, "2", T0)])  # type: ignore[arg-type]
