"""Schema inference: kinds, roles, ranges, domains and the errors for bad declarations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import pandas as hpd

from conveyor.core.errors import InvalidInputError, SchemaError
from conveyor.core.schema import ColumnKind, ColumnRole, Schema
from conveyor.data import infer_schema, validate_batch
from conveyor.data.schemas import parse_datetimes, to_category_strings


def test_infer_schema_assigns_kinds_from_dtypes(flights, flights_schema):
    kinds = {c.name: c.kind for c in flights_schema.columns}
    assert kinds == {
        "flight_id": ColumnKind.NUMERIC,
        "ts": ColumnKind.DATETIME,
        "carrier": ColumnKind.CATEGORICAL,
        "distance": ColumnKind.NUMERIC,
        "dep_delay": ColumnKind.NUMERIC,
        "weekend": ColumnKind.BOOLEAN,
        "note": ColumnKind.TEXT,
        "delayed": ColumnKind.NUMERIC,
    }
    assert flights_schema.names == list(flights.columns)
    assert flights_schema.version == 1


def test_infer_schema_assigns_roles_from_arguments(flights):
    schema = infer_schema(
        flights, label="delayed", timestamp="ts", entities=["flight_id"], ignore=["note"]
    )
    roles = {c.name: c.role for c in schema.columns}
    assert roles["delayed"] is ColumnRole.LABEL
    assert roles["ts"] is ColumnRole.TIMESTAMP
    assert roles["flight_id"] is ColumnRole.ENTITY
    assert roles["note"] is ColumnRole.IGNORED
    assert [c.name for c in schema.features] == ["carrier", "distance", "dep_delay", "weekend"]


def test_infer_schema_records_observed_range_with_headroom_and_nullability(flights, flights_schema):
    distance = flights_schema.column("distance")
    low, high = flights["distance"].min(), flights["distance"].max()
    assert (distance.min_value, distance.max_value) == (0.0, high + 0.1 * (high - low))
    assert distance.nullable is False
    delay = flights_schema.column("dep_delay")
    assert delay.nullable is True
    low, high = np.nanmin(flights["dep_delay"]), np.nanmax(flights["dep_delay"])
    if low < 0:
        assert delay.min_value == pytest.approx(low - 0.1 * (high - low))


def test_infer_schema_sorts_observed_categories(flights_schema):
    assert flights_schema.column("carrier").categories == ("AA", "DL", "UA")


def test_infer_schema_range_ignores_infinities():
    frame = pd.DataFrame({"x": [1.0, np.inf, -np.inf, 3.0], "y": [0, 1, 0, 1]})
    col = infer_schema(frame, label="y").column("x")
    assert (col.min_value, col.max_value) == (0.0, 3.2)


def test_infer_schema_all_missing_numeric_has_no_range():
    frame = pd.DataFrame({"x": [np.nan, np.nan], "y": [0, 1]})
    col = infer_schema(frame, label="y").column("x")
    assert col.kind is ColumnKind.NUMERIC
    assert (col.min_value, col.max_value, col.nullable) == (None, None, True)


def test_infer_schema_text_when_too_many_distinct_values():
    frame = pd.DataFrame({"city": ["a", "b", "c", "a"], "y": [0, 1, 0, 1]})
    assert infer_schema(frame, label="y", max_categories=3).column("city").kind == "categorical"
    assert infer_schema(frame, label="y", max_categories=2).column("city").kind == "text"


def test_infer_schema_forced_categorical_keeps_string_categories():
    frame = pd.DataFrame({"zone": [10, 2, 10, 3], "y": [0, 1, 0, 1]})
    col = infer_schema(frame, label="y", categorical=["zone"]).column("zone")
    assert col.kind is ColumnKind.CATEGORICAL
    assert col.categories == ("10", "2", "3")


def test_infer_schema_pandas_category_dtype_is_categorical():
    frame = pd.DataFrame({"c": pd.Categorical(list("ab") * 300), "y": [0, 1] * 300})
    col = infer_schema(frame, label="y", max_categories=1).column("c")
    assert col.kind is ColumnKind.CATEGORICAL
    assert col.categories == ("a", "b")


def test_infer_schema_reads_kinds_from_object_values():
    frame = pd.DataFrame(
        {
            "flag": pd.Series([True, None, False], dtype=object),
            "amount": pd.Series([1, 2.5, None], dtype=object),
            "when": pd.Series([pd.Timestamp("2024-01-01"), None, pd.Timestamp("2024-02-01")]),
            "y": [0, 1, 0],
        }
    )
    schema = infer_schema(frame, label="y")
    assert schema.column("flag").kind is ColumnKind.BOOLEAN
    assert schema.column("flag").nullable is True
    assert schema.column("amount").kind is ColumnKind.NUMERIC
    assert schema.column("amount").max_value == 2.5 + 0.1 * 1.5
    assert schema.column("when").kind is ColumnKind.DATETIME


def test_infer_schema_accepts_iso_text_timestamp():
    frame = pd.DataFrame({"ts": ["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"], "y": [0, 1]})
    col = infer_schema(frame, label="y", timestamp="ts").column("ts")
    assert (col.kind, col.role) == (ColumnKind.DATETIME, ColumnRole.TIMESTAMP)


def test_infer_schema_rejects_timestamp_that_is_not_dates():
    frame = pd.DataFrame({"ts": ["2024-01-01", "yesterday-ish"], "y": [0, 1]})
    with pytest.raises(SchemaError, match=r"'ts' has 1 values that are not dates.*yesterday-ish"):
        infer_schema(frame, label="y", timestamp="ts")


def test_infer_schema_rejects_numeric_timestamp():
    frame = pd.DataFrame({"ts": [1, 2], "y": [0, 1]})
    with pytest.raises(SchemaError, match=r"timestamp column 'ts' holds int64.*to_datetime"):
        infer_schema(frame, label="y", timestamp="ts")


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"label": "nope"}, r"label column 'nope' is not a column"),
        ({"label": "y", "timestamp": "when"}, r"timestamp column 'when'"),
        ({"label": "y", "entities": ["id"]}, r"entity column 'id'"),
        ({"label": "y", "ignore": ["junk"]}, r"ignored column 'junk'"),
        ({"label": "y", "categorical": ["zone"]}, r"categorical column 'zone'"),
    ],
)
def test_infer_schema_names_a_missing_declared_column(kwargs, pattern):
    frame = pd.DataFrame({"x": [1.0], "y": [0]})
    with pytest.raises(SchemaError, match=pattern) as info:
        infer_schema(frame, **kwargs)
    assert "['x', 'y']" in str(info.value)


def test_infer_schema_treats_a_bare_string_as_one_column_name():
    frame = pd.DataFrame({"id": [1, 2], "y": [0, 1]})
    schema = infer_schema(frame, label="y", entities="id")
    assert schema.column("id").role is ColumnRole.ENTITY


def test_infer_schema_rejects_two_roles_for_one_column():
    frame = pd.DataFrame({"x": [1.0], "y": [0]})
    with pytest.raises(InvalidInputError, match=r"'y' is declared both label and entity"):
        infer_schema(frame, label="y", entities=["y"])


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "10"])
def test_infer_schema_rejects_bad_max_categories(bad):
    frame = pd.DataFrame({"x": [1.0], "y": [0]})
    with pytest.raises(InvalidInputError, match="max_categories"):
        infer_schema(frame, label="y", max_categories=bad)


def test_infer_schema_rejects_non_string_and_duplicate_column_names():
    with pytest.raises(SchemaError, match=r"must be strings. Got 0 \(int\)"):
        infer_schema(pd.DataFrame({0: [1.0], "y": [0]}), label="y")
    duplicated = pd.DataFrame([[1.0, 2.0, 0]], columns=["x", "x", "y"])
    with pytest.raises(SchemaError, match=r"duplicates \['x'\]"):
        infer_schema(duplicated, label="y")


def test_inferred_schema_survives_a_dict_round_trip(flights, flights_schema):
    again = Schema.from_dict(flights_schema.to_dict())
    assert again == flights_schema
    assert validate_batch(flights, again).anomalies == ()


def test_to_category_strings_matches_model_encoding():
    values = pd.Series([1, 2, None], dtype="Int64")
    assert to_category_strings(values).tolist()[:2] == ["1", "2"]
    assert to_category_strings(pd.Index([1.5, 2.0])).tolist() == ["1.5", "2.0"]


def test_parse_datetimes_reads_iso_and_other_formats():
    parsed = parse_datetimes(pd.Series(["2024-01-01T10:00:00Z", "Jan 2 2024", None, "junk"]))
    assert parsed.iloc[0] == pd.Timestamp("2024-01-01 10:00", tz="UTC")
    assert parsed.iloc[1] == pd.Timestamp("2024-01-02", tz="UTC")
    assert parsed.iloc[2:].isna().all()


_words = st.sampled_from(["red", "green", "blue", "", "x y", "Ünï"])
_frames = hpd.data_frames(
    [
        hpd.column("num", elements=st.floats(allow_infinity=False, width=64), dtype=float),
        hpd.column("count", elements=st.integers(-(2**40), 2**40), dtype=np.int64),
        hpd.column("word", elements=st.one_of(st.none(), _words), dtype=object),
        hpd.column("free", elements=st.one_of(st.none(), st.text(max_size=5)), dtype=object),
        hpd.column("flag", elements=st.booleans(), dtype=bool),
        hpd.column("y", elements=st.integers(0, 1), dtype=np.int64),
    ],
    index=hpd.range_indexes(min_size=1, max_size=30),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=_frames, max_categories=st.integers(1, 10))
def test_inferring_then_validating_the_same_frame_yields_no_errors(frame, max_categories):
    schema = infer_schema(frame, label="y", max_categories=max_categories)
    report = validate_batch(frame, schema)
    assert report.errors == [], report.summary()
    assert report.passed
