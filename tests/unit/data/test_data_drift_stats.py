"""Drift statistics against SciPy, p-value adjustment, drift of frames and profiles, and skew."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from conveyor.core.errors import InvalidInputError
from conveyor.data import infer_schema, profile_frame
from conveyor.data.drift import (
    adjust_pvalues,
    chi2_test,
    compute_drift,
    compute_drift_frames,
    compute_skew,
    ks_2samp,
    wasserstein,
)
from conveyor.spec import DriftSpec

_values = st.lists(
    st.one_of(
        st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
        st.integers(-5, 5).map(float),  # ties
    ),
    min_size=1,
    max_size=80,
)


@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful:RuntimeWarning")
@settings(max_examples=150, deadline=None)
@given(a=_values, b=_values)
def test_ks_and_wasserstein_match_scipy_on_small_samples(a, b):
    stat, p = ks_2samp(a, b)
    expected = stats.ks_2samp(a, b)
    assert stat == pytest.approx(expected.statistic, rel=1e-9, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)
    assert wasserstein(a, b) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9, abs=1e-9)


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shift=st.floats(0.0, 0.2),
    discrete=st.booleans(),
)
def test_ks_and_wasserstein_match_scipy_on_large_samples(seed, shift, discrete):
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, 12_000)
    b = rng.normal(shift, 1.0, 15_000)
    if discrete:
        a, b = np.round(a * 4), np.round(b * 4)
    stat, p = ks_2samp(a, b)
    expected = stats.ks_2samp(a, b)
    assert stat == pytest.approx(expected.statistic, rel=1e-9, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert wasserstein(a, b) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9)


_counts = st.integers(1, 10).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 500), min_size=n, max_size=n).filter(any),
        st.lists(st.integers(0, 500), min_size=n, max_size=n).filter(any),
    )
)


@settings(max_examples=150, deadline=None)
@given(pair=_counts)
def test_chi2_matches_scipy_contingency_and_js_matches_scipy(pair):
    p, q = pair
    stat, pvalue, dof = chi2_test(p, q)
    table = np.array([p, q], dtype=float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        assert (stat, pvalue, dof) == (0.0, 1.0, 0)
    else:
        expected = stats.chi2_contingency(table)
        assert stat == pytest.approx(expected.statistic, rel=1e-9, abs=1e-12)
        assert pvalue == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)
        assert dof == expected.dof
    frames = compute_drift_frames(
        pd.DataFrame({"c": np.repeat([f"v{i}" for i in range(len(p))], p)}),
        pd.DataFrame({"c": np.repeat([f"v{i}" for i in range(len(q))], q)}),
    )
    js = frames["features"]["c"]["js"]
    assert np.sqrt(js) == pytest.approx(jensenshannon(p, q, base=2), rel=1e-9, abs=1e-7)


@settings(max_examples=100, deadline=None)
@given(pvalues=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30))
def test_adjusted_pvalues_match_scipy_and_bonferroni(pvalues):
    bh = adjust_pvalues(pvalues, "bh")
    assert bh == pytest.approx(stats.false_discovery_control(pvalues, method="bh"), abs=1e-12)
    bonferroni = adjust_pvalues(pvalues, "bonferroni")
    assert bonferroni == pytest.approx(np.minimum(np.asarray(pvalues) * len(pvalues), 1.0))
    assert (bh <= bonferroni + 1e-12).all() and (bh >= np.asarray(pvalues) - 1e-12).all()
    assert adjust_pvalues(pvalues, "none").tolist() == pvalues


def test_adjust_pvalues_rejects_bad_input():
    with pytest.raises(InvalidInputError, match=r"p-values must be in \[0, 1\]"):
        adjust_pvalues([0.5, 1.5])
    with pytest.raises(InvalidInputError, match="'bh', 'bonferroni' or 'none'"):
        adjust_pvalues([0.5], "holm")  # type: ignore[arg-type]


def _frames(n: int = 5_000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame(
        {
            "same": rng.normal(0, 1, n),
            "shifted": rng.normal(0, 1, n),
            "c_same": rng.choice(list("abc"), n),
            "c_moved": rng.choice(list("abc"), n, p=[0.6, 0.3, 0.1]),
            "y": rng.integers(0, 2, n),
        }
    )
    cur = pd.DataFrame(
        {
            "same": rng.normal(0, 1, n),
            "shifted": rng.normal(0.5, 1, n),
            "c_same": rng.choice(list("abc"), n),
            "c_moved": rng.choice(list("abcd"), n, p=[0.1, 0.3, 0.5, 0.1]),
            "y": rng.integers(0, 2, n),
        }
    )
    return ref, cur


def test_drift_of_frames_flags_the_moved_features_and_matches_scipy():
    ref, cur = _frames()
    schema = infer_schema(ref, label="y")
    spec = DriftSpec(decide_by=["ks", "chi2"], adjustment="bonferroni")
    drift = compute_drift_frames(ref, cur, schema=schema, spec=spec, workers=2)
    assert sorted(drift["summary"]["drifted_features"]) == ["c_moved", "shifted"]
    assert drift["summary"]["exact"] is True
    assert set(drift["features"]) == {"same", "shifted", "c_same", "c_moved"}
    shifted = drift["features"]["shifted"]
    expected = stats.ks_2samp(ref["shifted"], cur["shifted"])
    assert shifted["ks"] == pytest.approx(expected.statistic, rel=1e-12)
    assert shifted["ks_pvalue"] == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert shifted["wasserstein"] == pytest.approx(
        stats.wasserstein_distance(ref["shifted"], cur["shifted"]), rel=1e-9
    )
    assert shifted["wasserstein_norm"] == pytest.approx(
        shifted["wasserstein"] / ref["shifted"].std(ddof=0), rel=1e-12
    )
    raw = [drift["features"][n]["ks_pvalue"] for n in ("same", "shifted")]
    adjusted = [drift["features"][n]["ks_pvalue_adjusted"] for n in ("same", "shifted")]
    assert adjusted == pytest.approx(np.minimum(np.asarray(raw) * 2, 1.0).tolist())
    moved = drift["features"]["c_moved"]
    table = pd.crosstab(
        np.r_[np.zeros(len(ref)), np.ones(len(cur))],
        np.r_[ref["c_moved"].to_numpy(), cur["c_moved"].to_numpy()],
    )
    assert moved["chi2"] == pytest.approx(stats.chi2_contingency(table).statistic, rel=1e-9)
    assert moved["unseen_share"] == pytest.approx((cur["c_moved"] == "d").mean())
    assert moved["flags"] == {"psi": True, "chi2": True, "js": True, "linf": True}
    assert drift["features"]["same"]["flags"]["ks"] is False


def test_frame_and_profile_drift_agree_on_binned_statistics_and_sketches_bound_ks():
    ref, cur = _frames(n=30_000, seed=4)
    schema = infer_schema(ref, label="y")
    exact = compute_drift_frames(ref, cur, schema=schema, features=["same", "shifted"])
    ref_profile = profile_frame(ref, schema)
    approx = compute_drift(
        ref_profile,
        profile_frame(cur, schema, reference=ref_profile),
        features=["same", "shifted"],
    )
    assert approx["summary"]["exact"] is False
    for name in ("same", "shifted"):
        e, a = exact["features"][name], approx["features"][name]
        for key in ("psi", "js", "linf", "chi2", "chi2_pvalue"):
            assert a[key] == pytest.approx(e[key], rel=1e-9, abs=1e-12), key
        assert abs(a["ks"] - e["ks"]) <= a["ks_error_bound"]
        assert abs(a["wasserstein"] - e["wasserstein"]) <= a["wasserstein_error_bound"]
    assert approx["summary"]["drifted_features"] == exact["summary"]["drifted_features"]


def test_profile_drift_is_exact_while_sketches_hold_every_value():
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"x": rng.normal(size=150), "y": 0})
    cur = pd.DataFrame({"x": rng.normal(0.4, size=120), "y": 0})
    schema = infer_schema(ref, label="y")
    reference = profile_frame(ref, schema)
    drift = compute_drift(reference, profile_frame(cur, schema, reference=reference))
    x = drift["features"]["x"]
    assert x["exact"] is True and drift["summary"]["exact"] is True
    expected = stats.ks_2samp(ref["x"], cur["x"])
    assert (x["ks"], x["ks_pvalue"]) == pytest.approx((expected.statistic, expected.pvalue))
    assert x["wasserstein"] == pytest.approx(stats.wasserstein_distance(ref["x"], cur["x"]))


def test_per_feature_thresholds_override_and_tests_can_be_chosen():
    ref, cur = _frames(n=3_000, seed=1)
    spec = DriftSpec(
        tests=["psi", "wasserstein"],
        decide_by=["wasserstein"],
        thresholds={"psi": 0.2, "wasserstein": 0.1},
        columns={"shifted": {"wasserstein": 5.0}},
    )
    drift = compute_drift_frames(ref, cur, features=["same", "shifted"], spec=spec)
    assert drift["summary"]["drifted_features"] == []
    assert drift["features"]["shifted"]["flags"] == {"psi": True, "wasserstein": False}
    assert drift["features"]["shifted"]["chi2"] is None
    assert drift["summary"]["flagged"] == {"psi": ["shifted"], "wasserstein": []}


def test_drift_of_frames_reports_empty_columns_and_rejects_bad_requests():
    ref = pd.DataFrame({"x": [1.0, 2.0, np.inf], "t": pd.to_datetime(["2024-01-01"] * 3)})
    cur = pd.DataFrame({"x": [np.nan] * 3, "t": pd.to_datetime(["2024-01-02"] * 3)})
    drift = compute_drift_frames(ref, cur)
    assert drift["features"]["x"]["reason"] == "no values in the current"
    assert drift["features"]["t"]["reason"].startswith("datetime")
    assert drift["summary"]["evaluated"] == 0
    with pytest.raises(InvalidInputError, match="'z' is not in the reference frame"):
        compute_drift_frames(ref, cur, features=["z"])
    with pytest.raises(InvalidInputError, match="'bins' must be an int"):
        compute_drift_frames(ref, cur, bins=0)
    with pytest.raises(InvalidInputError, match="holds NaN"):
        ks_2samp([1.0, np.nan], [1.0])
    with pytest.raises(InvalidInputError, match="sample is empty"):
        wasserstein([], [1.0])


def test_skew_compares_joined_rows_value_by_value():
    n = 400
    rng = np.random.default_rng(5)
    times = pd.date_range("2024-03-01", periods=n, freq="min", tz="UTC")
    training = pd.DataFrame(
        {
            "id": np.arange(n) % 50,
            "ts": times,
            "fare": rng.uniform(5, 50, n),
            "zone": rng.choice(["n", "s", "e"], n),
            "same": rng.normal(size=n),
        }
    )
    served = training.sample(frac=1.0, random_state=1).iloc[: n - 20].copy()
    served["ts"] = served["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")  # text at serving
    served.loc[served.index[:30], "fare"] *= 1.1  # computed differently at serving
    served.loc[served.index[:5], "zone"] = None
    served["same"] += 1e-12
    skew = compute_skew(training, served, keys=["id", "ts"], max_mismatch_rate=0.01)
    summary = skew["summary"]
    assert (summary["joined_rows"], summary["unmatched_training"]) == (n - 20, 20)
    assert summary["skewed_features"] == ["fare", "zone"]
    fare = skew["features"]["fare"]
    assert (fare["mismatches"], fare["compared"]) == (30, n - 20)
    changed = served.iloc[:30]
    original = training.set_index(["id", "ts"])["fare"]
    gaps = [
        abs(row.fare - original[(row.id, pd.Timestamp(row.ts))]) for row in changed.itertuples()
    ]
    assert fare["max_abs_diff"] == pytest.approx(max(gaps))
    assert skew["features"]["zone"]["mismatches"] == 5
    assert skew["features"]["zone"]["max_abs_diff"] is None
    assert skew["features"]["same"]["mismatches"] == 0
    assert skew["features"]["fare"]["drift"]["ks"] is not None


def test_skew_rejects_missing_or_repeated_keys():
    frame = pd.DataFrame({"id": [1, 1, 2], "x": [1.0, 2.0, 3.0]})
    with pytest.raises(InvalidInputError, match="repeats 1 key"):
        compute_skew(frame, frame.iloc[1:], keys=["id"])
    with pytest.raises(InvalidInputError, match=r"Join key\(s\) \['ts'\]"):
        compute_skew(frame, frame, keys=["ts"])
    with pytest.raises(InvalidInputError, match="at least one join key"):
        compute_skew(frame, frame, keys=[])
    with pytest.raises(InvalidInputError, match="'tolerance' must be a number >= 0"):
        compute_skew(frame, frame, keys=["id"], tolerance=-1)
