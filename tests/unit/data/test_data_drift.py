"""Drift statistics: PSI, Jensen-Shannon and L-infinity, and per-column drift between profiles."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon

from conveyor.core.errors import InvalidInputError
from conveyor.data import compute_drift, infer_schema, jensen_shannon, linf, profile_frame, psi
from conveyor.data.profiles import OTHER, without_sketches


def test_psi_matches_hand_computed_value():
    # shares e = (.25, .25, .5), a = (.5, .25, .25):
    # (.5 - .25) ln 2 + 0 + (.25 - .5) ln .5 = 0.5 ln 2
    assert psi([25, 25, 50], [50, 25, 25]) == pytest.approx(0.5 * math.log(2), rel=1e-12)


def test_psi_floors_empty_bins_at_eps():
    value = psi([1, 0], [0, 1], eps=1e-4)
    manual = (1e-4 - 1.0) * math.log(1e-4 / 1.0) + (1.0 - 1e-4) * math.log(1.0 / 1e-4)
    assert value == pytest.approx(manual)
    assert psi([1, 0], [0, 1], eps=1e-2) < value


def test_psi_is_zero_for_identical_shares_and_ignores_scale():
    assert psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0, abs=1e-15)


def test_psi_of_a_shifted_normal_exceeds_the_threshold():
    rng = np.random.default_rng(0)
    reference = rng.normal(0.0, 1.0, 20_000)
    edges = np.quantile(reference, np.linspace(0, 1, 11)[1:-1])

    def counts(x):
        return np.bincount(np.searchsorted(edges, x, side="right"), minlength=10)

    same = psi(counts(reference), counts(rng.normal(0.0, 1.0, 20_000)))
    shifted = psi(counts(reference), counts(rng.normal(0.75, 1.0, 20_000)))
    assert same < 0.01
    assert shifted > 0.2


def test_jensen_shannon_bounds():
    assert jensen_shannon([1, 0], [0, 1]) == 1.0
    assert jensen_shannon([2, 5, 3], [4, 10, 6]) == pytest.approx(0.0, abs=1e-15)


@settings(max_examples=100, deadline=None)
@given(
    pair=st.integers(1, 12).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, 1000), min_size=n, max_size=n).filter(any),
            st.lists(st.integers(0, 1000), min_size=n, max_size=n).filter(any),
        )
    )
)
def test_jensen_shannon_equals_scipy_distance_squared(pair):
    p, q = pair
    expected = jensenshannon(p, q, base=2) ** 2
    value = jensen_shannon(p, q)
    assert value == pytest.approx(expected, abs=1e-12)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(jensen_shannon(q, p), abs=1e-15)


def test_linf_is_the_largest_share_change():
    assert linf([1, 1], [3, 1]) == 0.25
    assert linf([1, 2, 7], [1, 2, 7]) == 0.0


@pytest.mark.parametrize("func", [psi, jensen_shannon, linf])
@pytest.mark.parametrize(
    ("p", "q", "pattern"),
    [
        ([1, 2], [1, 2, 3], "same length"),
        ([], [], "non-empty"),
        ([[1, 2]], [[1, 2]], "1-D"),
        ([1, -1], [1, 1], "non-negative"),
        ([1, np.nan], [1, 1], "finite"),
        ([0, 0], [1, 1], "positive total"),
    ],
)
def test_distances_reject_bad_counts(func, p, q, pattern):
    with pytest.raises(InvalidInputError, match=pattern):
        func(p, q)


def test_psi_rejects_non_positive_eps():
    with pytest.raises(InvalidInputError, match="'eps' parameter of psi"):
        psi([1, 1], [1, 1], eps=0)


@pytest.fixture
def reference(flights, flights_schema):
    return profile_frame(flights, flights_schema)


def test_same_distribution_does_not_drift(flights_schema, reference, make_batch):
    current = profile_frame(make_batch(seed=1), flights_schema, reference=reference)
    drift = compute_drift(reference, current)
    assert set(drift["features"]) == {"carrier", "distance", "dep_delay", "weekend"}
    assert drift["summary"]["drifted_features"] == []
    assert drift["summary"]["max_psi"] < 0.05
    assert drift["summary"]["share_drifted"] == 0.0
    assert drift["summary"]["evaluated"] == 4
    for result in drift["features"].values():
        assert 0.0 <= result["js"] < 0.02
        assert result["drifted"] is False


def test_shifted_numeric_and_categorical_features_drift(flights, flights_schema, reference):
    rng = np.random.default_rng(3)
    shifted = flights.assign(
        distance=flights["distance"] + 1500.0,
        carrier=rng.choice(["AA", "DL", "UA"], len(flights), p=[0.8, 0.1, 0.1]),
    )
    current = profile_frame(shifted, flights_schema, reference=reference)
    drift = compute_drift(reference, current)
    assert drift["summary"]["drifted_features"] == ["carrier", "distance"]
    assert drift["summary"]["share_drifted"] == 0.5
    distance = drift["features"]["distance"]
    assert distance["kind"] == "numeric"
    assert distance["psi"] > 0.2
    assert drift["summary"]["max_psi"] == distance["psi"]
    counts_ref = reference["columns"]["distance"]["histogram"]["counts"]
    counts_cur = current["columns"]["distance"]["histogram"]["counts"]
    assert distance["psi"] == psi(counts_ref, counts_cur)
    assert distance["js"] == jensen_shannon(counts_ref, counts_cur)
    assert drift["features"]["carrier"]["kind"] == "categorical"


def test_unseen_categories_pool_into_other(flights_schema, reference, flights):
    batch = flights.assign(carrier=np.where(np.arange(len(flights)) % 2, "ZZ", flights["carrier"]))
    current = profile_frame(batch, flights_schema, reference=reference)
    assert current["columns"]["carrier"]["values"]["ZZ"] == 500
    result = compute_drift(reference, current, features=["carrier"])["features"]["carrier"]
    ref_values = reference["columns"]["carrier"]["values"]
    cur_values = current["columns"]["carrier"]["values"]
    expected_ref = [ref_values[k] for k in ("AA", "DL", "UA")] + [ref_values[OTHER]]
    expected_cur = [cur_values[k] for k in ("AA", "DL", "UA")] + [500]
    assert result["psi"] == pytest.approx(psi(expected_ref, expected_cur))
    assert result["drifted"] is True


def test_drift_of_chosen_columns_and_threshold(flights, flights_schema, reference):
    current = profile_frame(flights.assign(delayed=1), flights_schema, reference=reference)
    drift = compute_drift(reference, current, features=["delayed"], psi_threshold=5.0)
    assert list(drift["features"]) == ["delayed"]
    assert drift["features"]["delayed"]["psi"] > 0.2
    assert drift["features"]["delayed"]["drifted"] is False
    assert drift["summary"]["psi_threshold"] == 5.0


def test_drift_with_no_current_values_is_not_evaluated(flights, flights_schema, reference):
    current = profile_frame(flights.assign(dep_delay=np.nan), flights_schema, reference=reference)
    drift = compute_drift(reference, current, features=["dep_delay", "distance"])
    result = drift["features"]["dep_delay"]
    assert (result["psi"], result["drifted"], result["reason"]) == (
        None,
        False,
        "no values in the current",
    )
    assert drift["summary"]["evaluated"] == 1


def test_compute_drift_rejects_bad_requests(flights, flights_schema, reference):
    current = profile_frame(flights, flights_schema, reference=reference)
    with pytest.raises(InvalidInputError, match=r"'speed' is not in the reference profile"):
        compute_drift(reference, current, features=["speed"])
    with pytest.raises(InvalidInputError, match="'psi_threshold'"):
        compute_drift(reference, current, psi_threshold=0)
    unaligned = without_sketches(profile_frame(flights.iloc[:300], flights_schema))
    with pytest.raises(InvalidInputError, match=r"'distance' has different histogram edges"):
        compute_drift(reference, unaligned, features=["distance"])


def test_unaligned_profiles_are_rebinned_from_the_sketch(flights, flights_schema):
    # 150 values a side fit the sketches uncompacted, so re-binned counts are the true ones
    reference = profile_frame(flights.iloc[:150], flights_schema)
    own_edges = profile_frame(flights.iloc[150:300], flights_schema)
    aligned = profile_frame(flights.iloc[150:300], flights_schema, reference=reference)
    rebinned = compute_drift(reference, own_edges, features=["distance"])["features"]["distance"]
    exact = compute_drift(reference, aligned, features=["distance"])["features"]["distance"]
    assert rebinned["rebinned"] is True and rebinned["exact"] is False
    assert exact["exact"] is True and "rebinned" not in exact
    assert rebinned["psi"] == pytest.approx(exact["psi"], rel=1e-12)
    assert rebinned["ks"] == pytest.approx(exact["ks"], rel=1e-12)


def test_compute_drift_of_frames_with_only_shared_columns():
    frame = pd.DataFrame({"x": np.arange(100.0), "y": [0, 1] * 50})
    schema = infer_schema(frame, label="y")
    ref = profile_frame(frame, schema)
    cur = profile_frame(frame[["y"]], schema, reference=ref)
    drift = compute_drift(ref, cur)
    assert drift["features"] == {}
    assert {k: drift["summary"][k] for k in ("drifted_features", "max_psi", "evaluated")} == {
        "drifted_features": [],
        "max_psi": None,
        "evaluated": 0,
    }
    assert (drift["summary"]["share_drifted"], drift["summary"]["psi_threshold"]) == (0.0, 0.2)
    assert drift["summary"]["flagged"] == dict.fromkeys(drift["summary"]["tests"], [])


def test_requested_columns_without_a_distribution_are_reported_not_compared(
    flights, flights_schema, reference
):
    current = profile_frame(flights, flights_schema, reference=reference)
    drift = compute_drift(reference, current, features=["note", "ts", "distance"])
    note = drift["features"]["note"]
    assert (note["kind"], note["drifted"], note["flags"]) == ("text", False, {})
    assert note["reason"] == "text columns have no distribution to compare"
    assert {
        k: note[k] for k in ("psi", "js", "linf", "ks", "chi2", "wasserstein")
    } == dict.fromkeys(("psi", "js", "linf", "ks", "chi2", "wasserstein"))
    assert drift["features"]["ts"]["reason"].startswith("datetime")
    assert drift["summary"]["evaluated"] == 1


def test_compute_drift_rejects_a_kind_change(flights, flights_schema, reference):
    current = profile_frame(flights, flights_schema, reference=reference)
    current["columns"]["distance"]["kind"] = "categorical"
    with pytest.raises(InvalidInputError, match=r"'distance' is numeric in the reference"):
        compute_drift(reference, current, features=["distance"])


def test_psi_default_floor_is_one_in_ten_thousand():
    # Each of the two bins moves from share 1 to the floor 1e-4 or back: (1 - 1e-4) * ln(1e4).
    want = 2 * (1 - 1e-4) * math.log(1e4)
    assert psi([1, 0], [0, 1]) == pytest.approx(want, rel=1e-12)
