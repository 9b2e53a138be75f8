from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.core.errors import InvalidInputError
from conveyor.data.sampling import (
    class_weights,
    importance_sample,
    rebalance,
    reservoir_sample,
    stratified_sample,
    weighted_sample,
)


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield pd.DataFrame({"x": np.arange(start, min(n, start + size))})


def test_reservoir_keeps_n_rows_in_stream_order_and_is_seeded():
    sample = reservoir_sample(_chunks(10_000, 777), 50, seed=3)
    assert len(sample) == 50
    assert sample["x"].is_monotonic_increasing and sample["x"].is_unique
    assert sample.equals(reservoir_sample(_chunks(10_000, 777), 50, seed=3))
    assert not sample.equals(reservoir_sample(_chunks(10_000, 777), 50, seed=4))


def test_reservoir_is_uniform_over_the_stream():
    # Each of 20 rows should be kept with probability 5/20; count over many seeds.
    counts = np.zeros(20)
    for seed in range(1000):
        counts[reservoir_sample(_chunks(20, 3), 5, seed=seed)["x"].to_numpy()] += 1
    share = counts / 1000
    assert np.all(np.abs(share - 0.25) < 0.06), share


def test_reservoir_of_a_short_stream_is_the_whole_stream():
    assert reservoir_sample(_chunks(7, 3), 10)["x"].tolist() == list(range(7))
    assert reservoir_sample(iter([]), 3).empty


def test_stratified_sample_keeps_class_shares():
    frame = pd.DataFrame({"y": ["a"] * 700 + ["b"] * 200 + ["c"] * 100, "v": range(1000)})
    sample = stratified_sample(frame, column="y", fraction=0.1, seed=1)
    assert sample["y"].value_counts().to_dict() == {"a": 70, "b": 20, "c": 10}
    assert sample.index.is_unique


def test_stratified_sample_needs_exactly_one_size():
    frame = pd.DataFrame({"y": [0, 1]})
    with pytest.raises(InvalidInputError, match="exactly one of 'n' and 'fraction'"):
        stratified_sample(frame, column="y", n=1, fraction=0.5)
    with pytest.raises(InvalidInputError, match="at most the 2 rows"):
        stratified_sample(frame, column="y", n=3)
    with pytest.raises(InvalidInputError, match="'nope' of stratified_sample"):
        stratified_sample(frame, column="nope", n=1)


def test_weighted_sample_follows_the_weights():
    frame = pd.DataFrame({"w": [1.0, 3.0]})
    firsts = [weighted_sample(frame, "w", 1, seed=s).index[0] for s in range(2000)]
    assert np.mean(np.array(firsts) == 1) == pytest.approx(0.75, abs=0.03)
    with pytest.raises(InvalidInputError, match="at most the 2 rows of positive weight"):
        weighted_sample(frame, "w", 3)
    assert len(weighted_sample(frame, "w", 5, replace=True)) == 5
    with pytest.raises(InvalidInputError, match="finite numbers >= 0"):
        weighted_sample(frame, [1.0, -1.0], 1)


def test_importance_sample_is_unbiased_for_the_target_mean():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.exponential(size=2000)})
    frame["q"] = frame["x"] + 0.1  # oversample large x
    sample = importance_sample(frame, "q", 40_000, seed=2)
    estimate = float((sample["x"] * sample["importance_weight"]).sum())
    assert estimate == pytest.approx(frame["x"].mean(), rel=0.02)
    # A plain mean of the biased sample is far off: the weights do the work.
    assert sample["x"].mean() > 1.5 * frame["x"].mean()


def test_importance_sample_refuses_a_proposal_that_misses_target_rows():
    frame = pd.DataFrame({"q": [1.0, 0.0]})
    with pytest.raises(InvalidInputError, match="positive chance"):
        importance_sample(frame, "q", 10)


def test_class_weights_balance_the_classes():
    y = np.array([0] * 90 + [1] * 10)
    w = class_weights(y)
    assert w[y == 0].sum() == pytest.approx(w[y == 1].sum())
    assert w.mean() == pytest.approx(1.0)


@pytest.mark.parametrize(("method", "counts"), [("downsample", [10, 10]), ("upsample", [90, 90])])
def test_rebalance_evens_the_classes(method, counts):
    frame = pd.DataFrame({"y": [0] * 90 + [1] * 10, "i": range(100)})
    out = rebalance(frame, label_column="y", method=method, seed=0)
    assert sorted(out["y"].value_counts().tolist()) == counts
    assert set(out["i"]) <= set(frame["i"])
    if method == "upsample":
        assert set(out["i"]) == set(frame["i"])


def test_rebalance_refuses_bad_options():
    frame = pd.DataFrame({"y": [0, 1]})
    with pytest.raises(InvalidInputError, match="'downsample' or 'upsample'"):
        rebalance(frame, label_column="y", method="smote")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"in \(0, 1\]"):
        rebalance(frame, label_column="y", method="upsample", ratio=2.0)


@settings(max_examples=40, deadline=None)
@given(
    labels=st.lists(st.integers(0, 3), min_size=1, max_size=200),
    fraction=st.floats(0.0, 1.0),
    seed=st.integers(0, 1000),
)
def test_stratified_sample_size_is_exact_and_rows_are_unique(labels, fraction, seed):
    frame = pd.DataFrame({"y": labels})
    sample = stratified_sample(frame, column="y", fraction=fraction, seed=seed)
    assert len(sample) == round(fraction * len(frame))
    assert sample.index.is_unique and set(sample.index) <= set(frame.index)
    for value, count in sample["y"].value_counts().items():
        assert abs(count - fraction * (frame["y"] == value).sum()) <= 1 + 1e-9
