"""Drift over Parquet files, one column at a time, equals drift of the frames read whole."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pytest

from conveyor.core.errors import InvalidInputError, NotFoundError
from conveyor.data import infer_schema
from conveyor.data.drift import compute_drift_frames, compute_drift_parquet
from conveyor.spec import DriftSpec


def _frame(n: int, shift: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    x[rng.random(n) < 0.05] = np.nan
    x[:3] = [np.inf, -np.inf, np.inf]
    counts = rng.integers(0, 6 + int(shift), n).astype(float)  # discrete, with ties
    counts[rng.random(n) < 0.1] = np.nan
    colours = np.array(["red", "green", "blue", "teal"], dtype=object)
    p = [0.4, 0.3, 0.2, 0.1] if not shift else [0.1, 0.2, 0.3, 0.4]
    colour = pd.Series(colours[rng.choice(4, n, p=p)], dtype=object)
    colour[rng.random(n) < 0.07] = None
    if shift:
        colour[:50] = "violet"  # unseen in the reference
    flag = pd.Series(rng.random(n) < 0.3 + 0.2 * shift, dtype=bool)
    ints = rng.integers(-3, 4, n)
    stamps = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s")
    return pd.DataFrame(
        {
            "x": x,
            "counts": counts,
            "colour": colour,
            "flag": flag,
            "ints": ints,
            "at": stamps,
        }
    )


def _same(actual: object, expected: object) -> bool:
    if isinstance(actual, float) and isinstance(expected, float):
        return actual == expected or (math.isnan(actual) and math.isnan(expected))
    if isinstance(actual, dict) and isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            _same(actual[k], expected[k]) for k in actual
        )
    if isinstance(actual, list) and isinstance(expected, list):
        return len(actual) == len(expected) and all(
            _same(a, e) for a, e in zip(actual, expected, strict=True)
        )
    return actual == expected


@pytest.fixture
def parquet_pair(tmp_path):
    ref, cur = _frame(6_000, 0.0, 1), _frame(9_000, 1.0, 2)
    ref_path, cur_path = tmp_path / "reference.parquet", tmp_path / "current.parquet"
    ref.to_parquet(ref_path, row_group_size=2_500)  # several row groups per column
    cur.to_parquet(cur_path, row_group_size=4_000)
    return ref_path, cur_path


@pytest.mark.parametrize("workers", [1, 3])
def test_parquet_drift_equals_drift_of_the_frames_read_whole(parquet_pair, workers):
    ref_path, cur_path = parquet_pair
    expected = compute_drift_frames(pd.read_parquet(ref_path), pd.read_parquet(cur_path))
    seen: list[str] = []
    actual = compute_drift_parquet(ref_path, cur_path, workers=workers, progress=seen.append)
    assert _same(actual, expected), (actual, expected)
    assert sorted(seen) == sorted(f"drift: {n}" for n in expected["features"])
    features = actual["features"]
    assert features["x"]["drifted"] and features["colour"]["drifted"]
    assert features["colour"]["unseen_share"] > 0
    assert features["flag"]["kind"] == "boolean" and features["ints"]["kind"] == "numeric"
    assert features["at"]["reason"] is not None and features["at"]["psi"] is None
    assert features["x"]["ks"] > 0.3 and features["x"]["reference_count"] == 6_000 - int(
        pd.read_parquet(ref_path)["x"].isna().sum()
    )


def test_parquet_drift_follows_schema_features_spec_and_bins(parquet_pair):
    ref_path, cur_path = parquet_pair
    ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    schema = infer_schema(ref.drop(columns=["at"]).assign(y=0), label="y")
    spec = DriftSpec(tests=["psi", "ks", "chi2"], decide_by=["ks"])
    expected = compute_drift_frames(ref, cur, schema=schema, spec=spec, bins=7)
    datasets = pads.dataset(str(ref_path)), pads.dataset(str(cur_path))
    actual = compute_drift_parquet(*datasets, schema=schema, spec=spec, bins=7)
    assert _same(actual, expected)
    assert set(actual["features"]) == {"x", "counts", "colour", "flag", "ints"}
    only = compute_drift_parquet(ref_path, cur_path, features=["colour"])
    assert _same(only, compute_drift_frames(ref, cur, features=["colour"]))


def test_parquet_drift_reads_directories_of_files(parquet_pair, tmp_path):
    ref_path, cur_path = parquet_pair
    ref = pd.read_parquet(ref_path)
    parts = tmp_path / "parts"
    parts.mkdir()
    ref.iloc[:2_000].to_parquet(parts / "a.parquet")
    ref.iloc[2_000:].to_parquet(parts / "b.parquet")
    expected = compute_drift_frames(ref, pd.read_parquet(cur_path), features=["x", "colour"])
    actual = compute_drift_parquet(parts, cur_path, features=["x", "colour"])
    assert _same(actual, expected)


def test_parquet_drift_rejects_missing_files_columns_and_bad_input(parquet_pair, tmp_path):
    ref_path, cur_path = parquet_pair
    with pytest.raises(NotFoundError, match="reference Parquet source"):
        compute_drift_parquet(tmp_path / "nope.parquet", cur_path)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InvalidInputError, match="current source .* not readable Parquet"):
        compute_drift_parquet(ref_path, broken)
    with pytest.raises(InvalidInputError, match="'missing' is not in the reference dataset"):
        compute_drift_parquet(ref_path, cur_path, features=["missing"])
    with pytest.raises(InvalidInputError, match="'bins'"):
        compute_drift_parquet(ref_path, cur_path, bins=0)
    with pytest.raises(InvalidInputError, match="must be a Parquet path"):
        compute_drift_parquet(pd.read_parquet(ref_path), cur_path)  # type: ignore[arg-type]
