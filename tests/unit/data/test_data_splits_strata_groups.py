from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.core.errors import InvalidInputError
from conveyor.data.splits import group_split, stratified_split


def test_stratified_split_keeps_the_positive_rate_in_every_part():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"y": (rng.random(10_000) < 0.03).astype(int), "x": range(10_000)})
    parts = stratified_split(frame, label_column="y", fractions=(0.7, 0.15, 0.15), seed=5)
    rates = [p["y"].mean() for p in parts]
    assert max(rates) - min(rates) < 0.002
    assert sum(len(p) for p in parts) == len(frame)
    assert sorted(np.concatenate([p.index for p in parts]).tolist()) == list(range(10_000))


def test_stratified_split_puts_a_rare_class_in_every_part():
    frame = pd.DataFrame({"y": [0] * 50 + [1] * 3})
    parts = stratified_split(frame, label_column="y", fractions=(0.8, 0.1, 0.1))
    assert [int(p["y"].sum()) for p in parts] == [1, 1, 1]


def test_stratified_split_is_seeded():
    frame = pd.DataFrame({"y": [0, 1] * 50})
    a = stratified_split(frame, label_column="y", seed=1)
    b = stratified_split(frame, label_column="y", seed=1)
    c = stratified_split(frame, label_column="y", seed=2)
    assert all(x.index.equals(y.index) for x, y in zip(a, b, strict=True))
    assert not a[0].index.equals(c[0].index)


def test_stratified_split_refuses_missing_labels():
    frame = pd.DataFrame({"y": [0, None, 1]})
    with pytest.raises(InvalidInputError, match="label column 'y' has 1 missing"):
        stratified_split(frame, label_column="y")


def test_group_split_never_shares_a_group_between_parts():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"user": rng.integers(0, 300, 6000)})
    parts = group_split(frame, group_column="user", fractions=(0.6, 0.2, 0.2), seed=3)
    groups = [set(p["user"]) for p in parts]
    assert not (groups[0] & groups[1]) and not (groups[0] & groups[2])
    assert not (groups[1] & groups[2])
    shares = [len(p) / len(frame) for p in parts]
    assert shares == pytest.approx([0.6, 0.2, 0.2], abs=0.02)


def test_group_split_needs_a_group_per_part():
    frame = pd.DataFrame({"g": ["a", "a", "b"]})
    with pytest.raises(InvalidInputError, match="at least 3 groups"):
        group_split(frame, group_column="g")
    with pytest.raises(InvalidInputError, match="group column 'h'"):
        group_split(frame, group_column="h")


@settings(max_examples=40, deadline=None)
@given(
    groups=st.lists(st.integers(0, 30), min_size=3, max_size=300),
    seed=st.integers(0, 100),
)
def test_group_split_partitions_the_rows(groups, seed):
    frame = pd.DataFrame({"g": groups})
    if frame["g"].nunique() < 3:
        with pytest.raises(InvalidInputError):
            group_split(frame, group_column="g", seed=seed)
        return
    parts = group_split(frame, group_column="g", seed=seed)
    assert all(len(p) > 0 for p in parts)
    assert sorted(np.concatenate([p.index for p in parts]).tolist()) == list(range(len(frame)))
    owners = {}
    for i, part in enumerate(parts):
        for g in set(part["g"]):
            assert owners.setdefault(g, i) == i
