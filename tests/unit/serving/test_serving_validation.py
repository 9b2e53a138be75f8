from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from conveyor.core.schema import ColumnKind, ColumnSchema
from conveyor.core.signature import Signature, encode_frame
from conveyor.serving.validation import (
    RecordValidator,
    ServingLimits,
    columns_to_records,
)


def test_valid_records_encode_like_training(signature, record):
    records = [record(), record(carrier="AA", hour=None, weekend=True)]
    batch = RecordValidator(signature).validate(records)
    assert batch.ok
    expected = encode_frame(pd.DataFrame(records), signature)
    np.testing.assert_array_equal(batch.matrix, expected)
    assert batch.matrix.dtype == np.float64
    assert len(batch.request_ids) == 2 and batch.request_ids[0] != batch.request_ids[1]


def test_string_for_number_names_row_field_and_value(signature, record):
    batch = RecordValidator(signature).validate([record(), record(distance="abc")])
    assert batch.errors == [
        {"row": 1, "field": "distance", "error": "expected a number, got 'abc'"}
    ]


def test_number_for_categorical_is_rejected(signature, record):
    batch = RecordValidator(signature).validate([record(carrier=3.5)])
    assert batch.errors == [
        {"row": 0, "field": "carrier", "error": "expected a string category, got 3.5"}
    ]


def test_missing_required_field_and_null_required_field(signature, record):
    missing = record()
    del missing["distance"]
    batch = RecordValidator(signature).validate([missing, record(distance=None)])
    assert batch.errors == [
        {"row": 0, "field": "distance", "error": "missing required field"},
        {"row": 1, "field": "distance", "error": "null not allowed"},
    ]


def test_missing_nullable_field_is_encoded_as_missing(signature, record):
    rec = record()
    del rec["hour"]
    batch = RecordValidator(signature).validate([rec])
    assert batch.ok and math.isnan(batch.matrix[0, 1])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_rejected(signature, record, bad):
    batch = RecordValidator(signature).validate([record(hour=bad)])
    assert batch.errors == [
        {"row": 0, "field": "hour", "error": "NaN and infinity are not allowed"}
    ]


def test_extra_field_is_rejected_with_the_allowed_fields(signature, record):
    batch = RecordValidator(signature).validate([record(colour="red")])
    assert len(batch.errors) == 1
    error = batch.errors[0]
    assert (error["row"], error["field"]) == (0, "colour")
    assert "unexpected field" in error["error"] and "distance" in error["error"]


def test_extra_fields_allowed_when_configured_and_passthrough_fields_always(signature, record):
    loose = RecordValidator(signature, ServingLimits(allow_extra_fields=True))
    assert loose.validate([record(colour="red")]).ok
    strict = RecordValidator(signature, passthrough=["flight_id"])
    assert strict.validate([record(flight_id=7)]).ok
    assert not strict.validate([record(tail="N1")]).ok


def test_unseen_category_is_missing_and_counted(signature, record):
    batch = RecordValidator(signature).validate([record(carrier="ZZ"), record(carrier="ZZ")])
    assert batch.ok
    assert math.isnan(batch.matrix[0, 2])
    assert batch.unseen == {"carrier": 2}


def test_client_request_id_is_used_and_not_a_feature(signature, record):
    batch = RecordValidator(signature).validate([record(request_id="abc-1")])
    assert batch.ok and batch.request_ids == ["abc-1"]
    bad = RecordValidator(signature).validate([record(request_id=5)])
    assert bad.errors[0]["field"] == "request_id"


def test_too_many_rows_is_one_error(signature, record):
    batch = RecordValidator(signature, ServingLimits(max_rows=2)).validate([record()] * 3)
    assert batch.errors == [
        {
            "row": None,
            "field": None,
            "error": "too many rows: 3; at most 2 are allowed in one request",
        }
    ]


def test_non_object_record_and_empty_request(signature, record):
    batch = RecordValidator(signature).validate([record(), [1, 2], None])
    assert [e["row"] for e in batch.errors] == [1, 2]
    assert "expected an object, got list" in batch.errors[0]["error"]
    assert RecordValidator(signature).validate([]).errors[0]["error"] == "no records to score"


def test_errors_are_capped_with_a_summary(signature, record):
    validator = RecordValidator(signature, ServingLimits(max_errors=3))
    batch = validator.validate([record(distance="x")] * 10)
    assert len(batch.errors) == 4
    assert batch.errors[-1]["error"] == "... and 7 more errors"


def test_datetime_feature_accepts_iso_strings():
    sig = Signature((ColumnSchema("when", ColumnKind.DATETIME),))
    validator = RecordValidator(sig)
    batch = validator.validate([{"when": "2024-01-01T00:00:00Z"}, {"when": "2024-01-01T01:00:00"}])
    assert batch.ok
    assert batch.matrix[:, 0].tolist() == [1704067200.0, 1704070800.0]
    expected = encode_frame(pd.DataFrame({"when": ["2024-01-01T00:00:00Z"]}), sig)
    assert batch.matrix[0, 0] == expected[0, 0]
    assert validator.validate([{"when": "soon"}]).errors[0]["field"] == "when"


def test_columns_to_records_checks_lengths():
    records, errors = columns_to_records({"a": [1, 2], "b": ["x", "y"]})
    assert records == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}] and errors == []
    _, errors = columns_to_records({"a": [1, 2], "b": ["x"]})
    assert "columns differ in length" in errors[0]["error"]
    _, errors = columns_to_records({"a": 1})
    assert errors[0]["field"] == "a"


def test_limits_reject_nonsense():
    with pytest.raises(ValueError, match="'max_rows' field of ServingLimits"):
        ServingLimits(max_rows=0)
