"""Time and random splits: sizes, ordering, no timestamp straddling parts, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.core.errors import InvalidInputError
from conveyor.data import random_split, time_split


def test_time_split_orders_by_time_and_hits_fractions(flights):
    shuffled = flights.sample(frac=1.0, random_state=0)
    train, valid, test = time_split(shuffled, time_column="ts")
    assert [len(train), len(valid), len(test)] == [700, 150, 150]
    assert train["ts"].is_monotonic_increasing
    assert train["ts"].max() < valid["ts"].min()
    assert valid["ts"].max() < test["ts"].min()
    rejoined = pd.concat([train, valid, test])
    assert sorted(rejoined.index) == list(flights.index)
    pd.testing.assert_frame_equal(rejoined.sort_index(), flights)


def test_time_split_keeps_equal_timestamps_together():
    # 10 rows at t=1..4 in groups of sizes 4, 3, 2, 1: the 70% cut (row 7) is a group boundary,
    # the 85% cut (row 8.5) is not and moves to the nearest boundary (row 9).
    frame = pd.DataFrame({"t": [1, 1, 1, 1, 2, 2, 2, 3, 3, 4], "x": range(10)})
    train, valid, test = time_split(frame, time_column="t")
    assert train["t"].tolist() == [1, 1, 1, 1, 2, 2, 2]
    assert valid["t"].tolist() == [3, 3]
    assert test["t"].tolist() == [4]


def test_time_split_parses_text_timestamps():
    frame = pd.DataFrame(
        {"when": ["2024-01-03", "2024-01-01T12:00Z", "2024-01-02", "2024-01-04"], "x": range(4)}
    )
    train, valid, test = time_split(frame, time_column="when", fractions=(0.5, 0.25, 0.25))
    assert train["x"].tolist() == [1, 2]
    assert valid["x"].tolist() == [0]
    assert test["x"].tolist() == [3]


def test_time_split_allows_an_empty_validation_or_test_part(flights):
    train, valid, test = time_split(flights, time_column="ts", fractions=(0.8, 0.0, 0.2))
    assert (len(train), len(valid), len(test)) == (800, 0, 200)
    train, valid, test = time_split(flights, time_column="ts", fractions=(0.9, 0.1, 0.0))
    assert (len(train), len(valid), len(test)) == (900, 100, 0)
    assert list(valid.columns) == list(flights.columns)


def test_time_split_gives_every_part_a_timestamp_when_few_exist():
    frame = pd.DataFrame({"t": [1] * 98 + [2, 3], "x": range(100)})
    train, valid, test = time_split(frame, time_column="t")
    assert [len(train), len(valid), len(test)] == [98, 1, 1]


@settings(max_examples=60, deadline=None)
@given(
    times=st.lists(st.integers(0, 15), min_size=3, max_size=60).filter(
        lambda ts: len(set(ts)) >= 3
    ),
    train=st.floats(0.1, 0.8),
    valid_share=st.floats(0.1, 0.9),
)
def test_time_split_never_straddles_a_timestamp(times, train, valid_share):
    valid = (1.0 - train) * valid_share
    fractions = (train, valid, 1.0 - train - valid)
    frame = pd.DataFrame({"t": times, "row": range(len(times))})
    parts = time_split(frame, time_column="t", fractions=fractions)
    assert all(len(p) > 0 for p in parts)
    assert sum(len(p) for p in parts) == len(frame)
    assert parts[0]["t"].max() < parts[1]["t"].min()
    assert parts[1]["t"].max() < parts[2]["t"].min()
    assert sorted(pd.concat(parts)["row"]) == list(range(len(times)))


@pytest.mark.parametrize(
    "fractions",
    [
        (0.5, 0.5),
        (0.5, 0.3, 0.3),
        (0.0, 0.5, 0.5),
        (1.2, -0.1, -0.1),
        (0.7, 0.15, np.nan),
        (True, 0.0, 0.0),
        "0.7,0.15,0.15",
        (0.7, "0.15", 0.15),
    ],
)
def test_splits_reject_bad_fractions(flights, fractions):
    with pytest.raises(InvalidInputError, match="'fractions' parameter of time_split"):
        time_split(flights, time_column="ts", fractions=fractions)
    with pytest.raises(InvalidInputError, match="'fractions' parameter of random_split"):
        random_split(flights, fractions=fractions, seed=0)


def test_time_split_rejects_missing_column_and_missing_or_bad_times():
    frame = pd.DataFrame({"t": ["2024-01-01", None, "2024-01-03"], "x": [1, 2, 3]})
    with pytest.raises(InvalidInputError, match=r"time column 'when' is not a column"):
        time_split(frame, time_column="when")
    with pytest.raises(InvalidInputError, match=r"'t' has 1 missing values"):
        time_split(frame, time_column="t")
    with pytest.raises(InvalidInputError, match=r"'t' has 1 values that are not dates.*'later'"):
        time_split(frame.fillna("later"), time_column="t")
    with pytest.raises(InvalidInputError, match=r"'t' has 1 missing values"):
        time_split(pd.DataFrame({"t": [1.0, np.nan, 3.0]}), time_column="t")
    with pytest.raises(InvalidInputError, match="booleans"):
        time_split(pd.DataFrame({"t": [True, False, True]}), time_column="t")


def test_time_split_rejects_too_few_distinct_timestamps():
    frame = pd.DataFrame({"t": [1, 1, 2, 2], "x": range(4)})
    with pytest.raises(InvalidInputError, match=r"at least 3 distinct timestamps.*Got 2"):
        time_split(frame, time_column="t")
    assert [len(p) for p in time_split(frame, time_column="t", fractions=(0.5, 0.5, 0.0))] == [
        2,
        2,
        0,
    ]
    with pytest.raises(InvalidInputError, match=r"Got 0"):
        time_split(frame.iloc[:0], time_column="t")


def test_time_split_rejects_a_non_frame():
    with pytest.raises(InvalidInputError, match="takes a pandas DataFrame. Got list"):
        time_split([1, 2, 3], time_column="t")


def test_random_split_sizes_add_up_and_parts_are_disjoint(flights):
    train, valid, test = random_split(flights, fractions=(0.6, 0.25, 0.15), seed=7)
    assert [len(train), len(valid), len(test)] == [600, 250, 150]
    index = [*train.index, *valid.index, *test.index]
    assert sorted(index) == list(flights.index)
    for part in (train, valid, test):
        assert part.index.is_monotonic_increasing
        pd.testing.assert_frame_equal(part, flights.loc[part.index])


def test_random_split_is_reproducible_by_seed(flights):
    first = random_split(flights, seed=3)
    again = random_split(flights, seed=3)
    other = random_split(flights, seed=4)
    for a, b in zip(first, again, strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert not first[0].index.equals(other[0].index)


def test_random_split_rounds_by_largest_remainder_and_fills_every_part():
    frame = pd.DataFrame({"x": range(3)})
    assert [len(p) for p in random_split(frame, fractions=(0.9, 0.05, 0.05), seed=0)] == [1, 1, 1]
    frame = pd.DataFrame({"x": range(11)})
    assert [len(p) for p in random_split(frame, fractions=(0.7, 0.15, 0.15), seed=0)] == [8, 2, 1]


def test_random_split_rejects_too_few_rows_and_bad_seed():
    with pytest.raises(InvalidInputError, match=r"at least 3 rows.*Got 2"):
        random_split(pd.DataFrame({"x": [1, 2]}), seed=0)
    with pytest.raises(InvalidInputError, match="'seed' parameter of random_split"):
        random_split(pd.DataFrame({"x": range(10)}), seed=-1)
    with pytest.raises(InvalidInputError, match="'seed' parameter of random_split"):
        random_split(pd.DataFrame({"x": range(10)}), seed="1")
