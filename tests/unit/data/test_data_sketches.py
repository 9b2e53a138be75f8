"""Mergeable sketches: KLL quantiles and HyperLogLog distinct counts, and merged profiles."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.core.errors import InvalidInputError
from conveyor.data import infer_schema, merge_profiles, profile_frame
from conveyor.data.profiles import QUANTILES, without_sketches
from conveyor.data.sketches import DistinctSketch, QuantileSketch

_floats = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
_small = st.lists(_floats, min_size=1, max_size=120)


def _true_cdf(values: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.sort(values), points, side="right") / values.size


@settings(max_examples=60, deadline=None)
@given(values=_small, ranks=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=10))
def test_small_sketch_is_exact_inverted_cdf(values, ranks):
    x = np.asarray(values)
    sketch = QuantileSketch.of(x)
    assert sketch.is_exact and sketch.rank_error == 0.0
    assert (sketch.n, sketch.min, sketch.max) == (x.size, x.min(), x.max())
    expected = np.quantile(x, ranks, method="inverted_cdf")
    assert sketch.quantiles(ranks) == pytest.approx(expected.tolist(), rel=0, abs=0)


@settings(max_examples=40, deadline=None)
@given(parts=st.lists(_small, min_size=1, max_size=4))
def test_merge_of_exact_sketches_equals_sketch_of_concatenation(parts):
    sketches = [QuantileSketch.of(np.asarray(p)) for p in parts]
    merged = sketches[0]
    for sketch in sketches[1:]:
        merged = merged.merge(sketch)
    whole = QuantileSketch.of(np.concatenate([np.asarray(p) for p in parts]))
    ranks = np.linspace(0, 1, 21).tolist()
    assert merged.n == whole.n
    if whole.is_exact:
        assert merged.quantiles(ranks) == whole.quantiles(ranks)
    points = np.linspace(-1e6, 1e6, 17)
    truth = _true_cdf(np.concatenate([np.asarray(p) for p in parts]), points)
    assert np.abs(merged.cdf(points) - truth).max() <= merged.rank_error + 1e-12


_big = st.tuples(
    st.integers(0, 2**32 - 1),
    st.integers(3_000, 30_000),
    st.sampled_from(["normal", "lognormal", "integers", "uniform"]),
)


def _draw(seed: int, n: int, kind: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.normal(5.0, 3.0, n)
    if kind == "lognormal":
        return rng.lognormal(0.0, 2.0, n)
    if kind == "integers":
        return rng.integers(0, 40, n).astype(float)
    return rng.uniform(-1.0, 1.0, n)


@settings(max_examples=25, deadline=None)
@given(spec=_big)
def test_rank_error_stays_within_the_documented_bound(spec):
    x = _draw(*spec)
    sketch = QuantileSketch.of(x)
    assert not sketch.is_exact
    assert 0.005 < sketch.rank_error < 0.02  # k=200: about 1.33%
    points = np.quantile(x, np.linspace(0.01, 0.99, 60))
    assert np.abs(sketch.cdf(points) - _true_cdf(x, points)).max() <= sketch.rank_error
    # quantiles are observed values whose true rank is within the bound of the asked rank
    ranks = np.linspace(0.02, 0.98, 25)
    got = np.asarray(sketch.quantiles(ranks.tolist()))
    assert np.isin(got, x).all()
    low = np.searchsorted(np.sort(x), got, side="left") / x.size
    high = np.searchsorted(np.sort(x), got, side="right") / x.size
    assert (low <= ranks + sketch.rank_error).all() and (high >= ranks - sketch.rank_error).all()


@settings(max_examples=15, deadline=None)
@given(a=_big, b=_big, c=_big)
def test_merge_is_associative_and_matches_the_concatenation_within_error(a, b, c):
    xa, xb, xc = _draw(*a), _draw(*b), _draw(*c)
    sa, sb, sc = QuantileSketch.of(xa), QuantileSketch.of(xb), QuantileSketch.of(xc)
    left = sa.merge(sb).merge(sc)
    right = sa.merge(sb.merge(sc))
    whole = np.concatenate([xa, xb, xc])
    assert left.n == right.n == whole.size
    assert (left.min, left.max) == (right.min, right.max) == (whole.min(), whole.max())
    points = np.quantile(whole, np.linspace(0.01, 0.99, 40))
    truth = _true_cdf(whole, points)
    for merged in (left, right):
        assert np.abs(merged.cdf(points) - truth).max() <= merged.rank_error
    assert np.abs(left.cdf(points) - right.cdf(points)).max() <= 2 * left.rank_error


def test_bin_counts_of_an_exact_sketch_match_the_histogram():
    x = np.array([0.0, 1.0, 1.0, 2.0, 5.0, 7.0])
    sketch = QuantileSketch.of(x)
    assert sketch.bin_counts([1.0, 5.0]).tolist() == [1, 3, 2]
    assert QuantileSketch().bin_counts([1.0]).tolist() == [0, 0]


def test_quantile_sketch_round_trips_through_json_and_rejects_garbage():
    sketch = QuantileSketch.of(np.arange(5000.0))
    again = QuantileSketch.from_dict(json.loads(json.dumps(sketch.to_dict())))
    assert again.n == 5000 and again.quantiles([0.5]) == sketch.quantiles([0.5])
    assert QuantileSketch.of([np.nan, np.inf, 1.0]).n == 1
    with pytest.raises(InvalidInputError, match="kind 'kll'"):
        QuantileSketch.from_dict({"kind": "tdigest"})
    with pytest.raises(InvalidInputError, match="not valid base64"):
        QuantileSketch.from_dict({"kind": "kll", "data": "@@@"})
    with pytest.raises(InvalidInputError, match="corrupt"):
        QuantileSketch.from_dict({"kind": "kll", "data": "AAAA"})
    with pytest.raises(InvalidInputError, match=r"k must be an int in \[8, 65535\]"):
        QuantileSketch(4)


@settings(max_examples=40, deadline=None)
@given(
    parts=st.lists(
        st.lists(st.integers(0, 5_000), min_size=0, max_size=400), min_size=1, max_size=4
    )
)
def test_distinct_sketch_merge_is_exact_associative_and_idempotent(parts):
    sketches = [DistinctSketch.of(np.asarray(p, dtype=float)) for p in parts]
    merged = sketches[0]
    for sketch in sketches[1:]:
        merged = merged.merge(sketch)
    union = DistinctSketch.of(np.concatenate([np.asarray(p, dtype=float) for p in parts]))
    assert np.array_equal(merged.registers, union.registers)
    assert np.array_equal(merged.merge(merged).registers, merged.registers)
    n = len(set().union(*map(set, parts)))
    assert abs(merged.estimate() - n) <= max(2.0, 0.05 * n)


@pytest.mark.parametrize("n", [2_000, 20_000, 200_000])
def test_distinct_estimate_is_within_five_percent(n):
    x = np.random.default_rng(n).permutation(n).astype(float)
    estimate = DistinctSketch.of(np.concatenate([x, x[: n // 2]])).estimate()
    assert abs(estimate - n) / n < 0.05  # 3 standard errors of 1.6%


def test_distinct_sketch_hashes_numbers_by_value_and_strings_by_text():
    assert np.array_equal(
        DistinctSketch.of(np.array([1, 2, 0])).registers,
        DistinctSketch.of(np.array([1.0, 2.0, -0.0])).registers,
    )
    strings = DistinctSketch.of(pd.Index(["a", "b", "a"]))
    assert round(strings.estimate()) == 2
    again = DistinctSketch.from_dict(json.loads(json.dumps(strings.to_dict())))
    assert np.array_equal(again.registers, strings.registers)
    assert DistinctSketch().estimate() == 0.0
    with pytest.raises(InvalidInputError, match="index bits"):
        DistinctSketch.from_dict({"kind": "hll", "bits": 10, "data": ""})
    with pytest.raises(InvalidInputError, match="corrupt"):
        DistinctSketch.from_dict({"kind": "hll", "bits": 12, "data": "AAAA"})


def test_window_profile_is_merged_from_batch_profiles_without_the_data():
    rng = np.random.default_rng(3)
    batches = [
        pd.DataFrame(
            {
                "x": rng.normal(i, 1.0, 20_000),
                "c": rng.choice([f"v{j}" for j in range(30 + 10 * i)], 20_000),
                "y": rng.integers(0, 2, 20_000),
            }
        )
        for i in range(3)
    ]
    schema = infer_schema(batches[0], label="y", categorical=["c"], max_categories=100)
    # each batch profiled on its own: histogram edges differ, so the sketches rebuild them
    profiles = [profile_frame(b, schema) for b in batches]
    merged = merge_profiles(profiles)
    whole = pd.concat(batches, ignore_index=True)
    x = whole["x"].to_numpy()
    col = merged["columns"]["x"]
    sketch = QuantileSketch.from_dict(col["sketch"])
    assert sketch.n == x.size
    for key, q in QUANTILES.items():
        rank = np.searchsorted(np.sort(x), col["quantiles"][key], side="right") / x.size
        assert abs(rank - q) <= sketch.rank_error
    counts = np.asarray(col["histogram"]["counts"])
    edges = np.asarray(col["histogram"]["edges"][1:-1])
    exact = np.bincount(np.searchsorted(edges, x, side="right"), minlength=edges.size + 1)
    assert counts.sum() == x.size
    assert np.abs(counts - exact).max() <= sketch.pmf_error * x.size
    assert abs(col["distinct"] - x.size) / x.size < 0.05
    assert col["mean"] == pytest.approx(x.mean(), rel=1e-9)
    cat = merged["columns"]["c"]
    assert cat["distinct"] == 50  # small sets: the HLL estimate rounds to the exact count
    assert cat["distinct_ratio"] == pytest.approx(50 / len(whole))
    # merging the same batches again gives the same numbers; only sketch bytes may differ
    again = merge_profiles(profiles)
    assert without_sketches(again)["columns"]["c"] == without_sketches(merged)["columns"]["c"]
