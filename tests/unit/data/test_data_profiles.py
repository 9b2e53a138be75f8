"""Profiles: numeric moments, histograms on shared edges, value counts, merging, JSON safety."""

from __future__ import annotations

import json
import math

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.core.errors import InvalidInputError
from conveyor.core.schema import ColumnKind, ColumnRole, ColumnSchema, Schema
from conveyor.data import infer_schema, merge_profiles, profile_frame
from conveyor.data.profiles import OTHER, QUANTILES, inner_edges, without_sketches
from conveyor.data.sketches import DistinctSketch


def test_profile_covers_schema_columns_but_not_ignored_ones(flights):
    schema = infer_schema(flights, label="delayed", timestamp="ts", ignore=["note"])
    profile = profile_frame(flights, schema)
    assert profile["row_count"] == len(flights)
    assert set(profile["columns"]) == set(flights.columns) - {"note"}
    assert profile["columns"]["delayed"]["role"] == "label"
    assert profile["columns"]["delayed"]["kind"] == "numeric"


def test_numeric_profile_matches_numpy(flights, flights_schema):
    col = profile_frame(flights, flights_schema)["columns"]["dep_delay"]
    values = flights["dep_delay"].dropna().to_numpy()
    assert col["count"] == values.size
    assert col["null_count"] == flights["dep_delay"].isna().sum()
    assert col["inf_count"] == 0
    assert col["mean"] == pytest.approx(values.mean())
    assert col["std"] == pytest.approx(values.std())
    assert (col["min"], col["max"]) == (values.min(), values.max())
    assert list(col["quantiles"]) == ["p01", "p05", "p25", "p50", "p75", "p95", "p99"]
    assert col["quantiles"]["p50"] == pytest.approx(np.median(values))
    assert col["quantiles"]["p99"] == pytest.approx(np.quantile(values, 0.99))


def test_histogram_uses_quantile_edges_with_infinite_ends(flights, flights_schema):
    hist = profile_frame(flights, flights_schema, bins=4)["columns"]["distance"]["histogram"]
    values = flights["distance"].to_numpy()
    assert hist["edges"][0] == -math.inf and hist["edges"][-1] == math.inf
    assert hist["edges"][1:-1] == pytest.approx(
        np.quantile(values, [0.25, 0.5, 0.75], method="higher")
    )
    assert len(hist["counts"]) == len(hist["edges"]) - 1 == 4
    assert hist["counts"] == [250, 250, 250, 250]


def test_histogram_collapses_repeated_quantiles():
    frame = pd.DataFrame({"x": [0.0] * 90 + [5.0] * 10, "y": [0, 1] * 50})
    hist = profile_frame(frame, infer_schema(frame, label="y"))["columns"]["x"]["histogram"]
    assert hist == {"edges": [-math.inf, 0.0, 5.0, math.inf], "counts": [0, 90, 10]}


def test_histogram_reuses_reference_edges_and_catches_everything(flights, flights_schema):
    reference = profile_frame(flights, flights_schema)
    shifted = flights.assign(distance=flights["distance"] * 10)
    shifted.loc[shifted.index[:3], "distance"] = [-np.inf, np.inf, np.nan]
    current = profile_frame(shifted, flights_schema, reference=reference)
    ref_hist = reference["columns"]["distance"]["histogram"]
    hist = current["columns"]["distance"]["histogram"]
    assert hist["edges"] == ref_hist["edges"]
    assert sum(hist["counts"]) == len(flights) - 1
    assert hist["counts"][-1] > 900
    assert current["columns"]["distance"]["inf_count"] == 2
    assert current["columns"]["distance"]["null_count"] == 1


def test_categorical_profile_counts_top_values_and_pools_the_rest():
    frame = pd.DataFrame({"c": list("aaaabbbccd") + [None], "y": [0] * 11})
    schema = infer_schema(frame, label="y")
    col = profile_frame(frame, schema, top_k=2)["columns"]["c"]
    assert col.pop("distinct_ratio") == 0.4
    assert round(DistinctSketch.from_dict(col.pop("hll")).estimate()) == 4
    assert col == {
        "kind": "categorical",
        "role": "feature",
        "count": 10,
        "null_count": 1,
        "distinct": 4,
        "values": {"a": 4, "b": 3, OTHER: 3},
        "categories": ["a", "b", "c", "d"],
    }


def test_categorical_profile_keeps_reference_values(flights, flights_schema):
    reference = profile_frame(flights, flights_schema)
    current = profile_frame(
        flights.assign(carrier="AA"), flights_schema, reference=reference, top_k=1
    )
    assert current["columns"]["carrier"]["values"] == {"AA": 1000, "DL": 0, "UA": 0, OTHER: 0}


def test_boolean_profile_labels_true_and_false(flights, flights_schema):
    col = profile_frame(flights, flights_schema)["columns"]["weekend"]
    assert col["kind"] == "boolean"
    assert set(col["values"]) == {"True", "False", OTHER}
    assert col["values"]["True"] == flights["weekend"].sum()
    as_ints = profile_frame(flights.assign(weekend=flights["weekend"].astype(int)), flights_schema)
    assert as_ints["columns"]["weekend"]["values"] == col["values"]


def test_datetime_and_text_profiles(flights, flights_schema):
    columns = profile_frame(flights, flights_schema)["columns"]
    assert columns["ts"] == {
        "kind": "datetime",
        "role": "timestamp",
        "count": 1000,
        "null_count": 0,
        "min": "2024-01-01T00:00:00+00:00",
        "max": flights["ts"].max().isoformat(),
    }
    assert columns["note"]["distinct"] == 1000
    assert columns["note"]["kind"] == "text"


def test_profile_of_all_missing_numeric_column():
    frame = pd.DataFrame({"x": [np.nan, np.nan], "y": [0, 1]})
    col = profile_frame(frame, infer_schema(frame, label="y"))["columns"]["x"]
    assert (col["count"], col["null_count"], col["mean"], col["std"]) == (0, 2, None, None)
    assert col["quantiles"] == dict.fromkeys(QUANTILES)
    assert col["histogram"] == {"edges": [-math.inf, math.inf], "counts": [0]}


def test_profile_survives_strict_json_and_still_serves_as_reference(flights, flights_schema):
    reference = profile_frame(flights, flights_schema)
    stored = orjson.loads(orjson.dumps(reference))  # strict JSON: infinities become null
    assert stored["columns"]["distance"]["histogram"]["edges"][0] is None
    assert json.loads(json.dumps(reference)) == reference
    direct = profile_frame(flights, flights_schema, reference=reference)
    via_json = profile_frame(flights, flights_schema, reference=stored)
    assert without_sketches(via_json) == without_sketches(direct)


def test_inner_edges_drops_infinite_and_null_ends():
    assert inner_edges({"edges": [None, 1.0, 2.0, None]}) == [1.0, 2.0]
    assert inner_edges({"edges": [-math.inf, math.inf]}) == []


@pytest.mark.parametrize(
    ("kwargs", "name"), [({"bins": 0}, "bins"), ({"top_k": 1.5}, "top_k"), ({"bins": True}, "bins")]
)
def test_profile_rejects_bad_parameters(flights, flights_schema, kwargs, name):
    with pytest.raises(InvalidInputError, match=f"'{name}' parameter of profile_frame"):
        profile_frame(flights, flights_schema, **kwargs)


def test_merge_of_chunks_equals_profile_of_whole(flights, flights_schema):
    whole = profile_frame(flights, flights_schema)
    parts = [
        profile_frame(chunk, flights_schema, reference=whole)
        for chunk in (flights.iloc[:100], flights.iloc[100:550], flights.iloc[550:])
    ]
    merged = merge_profiles(parts)
    assert merged["row_count"] == whole["row_count"]
    for name in ("distance", "dep_delay", "flight_id"):
        m, w = merged["columns"][name], whole["columns"][name]
        for key in ("count", "null_count", "inf_count", "min", "max", "histogram"):
            assert m[key] == w[key], (name, key)
        assert m["mean"] == pytest.approx(w["mean"], rel=1e-12)
        assert m["std"] == pytest.approx(w["std"], rel=1e-12)
        # Merged quantiles come from the merged KLL sketch: their rank in the whole column is
        # within the sketch's rank error (1.33% at k=200, 99% confidence) of the asked one.
        values = np.sort(flights[name].dropna().to_numpy(dtype=float))
        for key, value in m["quantiles"].items():
            q = float(key[1:]) / 100
            low = np.searchsorted(values, value, side="left") / len(values)
            high = np.searchsorted(values, value, side="right") / len(values)
            assert low - 0.02 <= q <= high + 0.02, (name, key, value, low, high)
    assert merged["columns"]["carrier"]["values"] == whole["columns"]["carrier"]["values"]
    assert merged["columns"]["carrier"]["distinct"] == 3
    assert merged["columns"]["ts"]["min"] == whole["columns"]["ts"]["min"]
    assert merged["columns"]["ts"]["max"] == whole["columns"]["ts"]["max"]


@settings(max_examples=50, deadline=None)
@given(
    chunks=st.lists(
        st.lists(st.floats(-1e6, 1e6), min_size=0, max_size=20), min_size=1, max_size=5
    ).filter(lambda cs: sum(map(len, cs)) > 0)
)
def test_merged_moments_are_exact(chunks):
    schema = Schema(
        (
            ColumnSchema("x", ColumnKind.NUMERIC),
            ColumnSchema("y", ColumnKind.NUMERIC, ColumnRole.LABEL),
        )
    )
    frames = [pd.DataFrame({"x": np.asarray(c, dtype=float), "y": 0}) for c in chunks]
    whole = pd.concat(frames, ignore_index=True)
    reference = profile_frame(whole, schema)
    merged = merge_profiles([profile_frame(f, schema, reference=reference) for f in frames])
    x = whole["x"].to_numpy()
    col = merged["columns"]["x"]
    assert col["count"] == x.size
    assert col["mean"] == pytest.approx(x.mean(), rel=1e-9, abs=1e-6)
    assert col["std"] == pytest.approx(x.std(), rel=1e-6, abs=1e-4)
    assert col["histogram"]["counts"] == reference["columns"]["x"]["histogram"]["counts"]


def test_merge_rejects_empty_mismatched_edges_and_kinds(flights, flights_schema):
    with pytest.raises(InvalidInputError, match="at least one profile"):
        merge_profiles([])
    a = profile_frame(flights.iloc[:500], flights_schema)
    b = profile_frame(flights.iloc[500:], flights_schema)
    with pytest.raises(InvalidInputError, match="'flight_id' has different histogram edges"):
        merge_profiles([without_sketches(a), without_sketches(b)])
    c = json.loads(json.dumps(a))
    c["columns"]["distance"]["kind"] = "categorical"
    with pytest.raises(InvalidInputError, match=r"'distance' has different kinds"):
        merge_profiles([a, c])
