"""Batch validation: each anomaly kind, the policy's thresholds, overrides and speed."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from conveyor.core.errors import InvalidInputError
from conveyor.core.schema import ColumnKind, ColumnRole, ColumnSchema, Schema, Severity
from conveyor.data import ValidationPolicy, infer_schema, profile_frame, validate_batch

# Toy frames of one or two low-cardinality columns repeat rows by construction; tests of
# column checks allow that so they see only the anomaly under test.
COLUMNS_ONLY = ValidationPolicy(duplicate_rows_share=1.0)


def kinds(report) -> list[tuple[str, str | None, str]]:
    return [(a.kind, a.column, str(a.severity)) for a in report.anomalies]


def numeric_schema(**column) -> Schema:
    col = ColumnSchema(
        "distance", ColumnKind.NUMERIC, nullable=False, min_value=0.0, max_value=100.0
    )
    return Schema(
        (
            ColumnSchema(**{**_asdict(col), **column}),
            ColumnSchema("y", ColumnKind.NUMERIC, ColumnRole.LABEL, nullable=False),
        )
    )


def _asdict(col: ColumnSchema) -> dict:
    return {f: getattr(col, f) for f in col.__slots__}


def test_clean_batch_has_no_anomalies(flights, flights_schema):
    report = validate_batch(flights, flights_schema)
    assert report.anomalies == ()
    assert report.passed


def test_missing_column_is_an_error_by_default(flights, flights_schema):
    report = validate_batch(flights.drop(columns=["distance"]), flights_schema)
    assert kinds(report) == [("missing_column", "distance", "error")]
    assert report.errors[0].message == (
        "Column 'distance' (numeric) is in the schema but missing from the batch."
    )


def test_missing_column_severity_follows_policy(flights, flights_schema):
    policy = ValidationPolicy(missing_columns=Severity.WARNING)
    report = validate_batch(flights.drop(columns=["distance"]), flights_schema, policy=policy)
    assert kinds(report) == [("missing_column", "distance", "warning")]
    assert report.passed


def test_missing_ignored_column_is_fine(flights):
    schema = infer_schema(flights, label="delayed", ignore=["note"])
    assert validate_batch(flights.drop(columns=["note"]), schema).anomalies == ()


def test_extra_column_is_an_error_or_a_warning(flights, flights_schema):
    batch = flights.assign(surprise=1.5)
    assert kinds(validate_batch(batch, flights_schema)) == [("extra_column", "surprise", "error")]
    policy = ValidationPolicy(extra_columns="warning")
    report = validate_batch(batch, flights_schema, policy=policy)
    assert kinds(report) == [("extra_column", "surprise", "warning")]
    assert "float64" in report.warnings[0].message


def test_duplicate_columns_are_an_error(flights_schema, flights):
    batch = pd.concat([flights, flights[["distance"]]], axis=1)
    report = validate_batch(batch, flights_schema)
    assert ("duplicate_columns", None, "error") in kinds(report)


def test_label_is_required_in_training_only(flights, flights_schema):
    batch = flights.drop(columns=["delayed"])
    assert kinds(validate_batch(batch, flights_schema)) == [("missing_column", "delayed", "error")]
    assert validate_batch(batch, flights_schema, environment="serving").anomalies == ()
    relaxed = ValidationPolicy(label_required=False)
    assert validate_batch(batch, flights_schema, policy=relaxed).anomalies == ()


def test_serving_does_not_check_label_values(flights, flights_schema):
    batch = flights.assign(delayed=np.nan)
    assert validate_batch(batch, flights_schema, environment="serving").anomalies == ()
    assert "constant_label" in [a.kind for a in validate_batch(batch, flights_schema).errors]


def test_missing_labels_are_counted_not_an_error(flights, flights_schema):
    batch = flights.copy()
    batch.loc[batch.index[:7], "delayed"] = np.nan
    report = validate_batch(batch, flights_schema)
    assert report.passed
    found = [a for a in report.anomalies if a.kind == "missing_labels"]
    assert [(a.severity, a.details["count"]) for a in found] == [("warning", 7)]
    assert "left out of training" in found[0].message


def test_nan_in_non_nullable_numeric_column_message():
    n, bad = 6540, 412
    values = np.linspace(0.0, 100.0, n)
    values[:bad] = np.nan
    frame = pd.DataFrame({"distance": values, "y": np.arange(n) % 2})
    report = validate_batch(frame, numeric_schema(), policy=COLUMNS_ONLY)
    assert kinds(report) == [("nan_values", "distance", "error")]
    anomaly = report.errors[0]
    assert anomaly.message == (
        "Column 'distance' has 412 NaN values (6.3% of rows); "
        "the schema does not allow missing values."
    )
    assert anomaly.details["count"] == bad
    assert anomaly.details["share"] == pytest.approx(bad / n)


def test_nan_allowed_by_policy_nullable_schema_or_column_override():
    frame = pd.DataFrame({"distance": [1.0, np.nan, 3.0], "y": [0, 1, 0]})
    assert validate_batch(frame, numeric_schema(nullable=True)).anomalies == ()
    policy = ValidationPolicy(allow_nan=True)
    assert validate_batch(frame, numeric_schema(), policy=policy).anomalies == ()
    override = ValidationPolicy(columns={"distance": {"allow_nan": True}})
    assert validate_batch(frame, numeric_schema(), policy=override).anomalies == ()
    other = ValidationPolicy(columns={"speed": {"allow_nan": True}})
    assert kinds(validate_batch(frame, numeric_schema(), policy=other))[0][0] == "nan_values"


def test_inf_is_always_an_error():
    frame = pd.DataFrame({"distance": [1.0, np.inf, -np.inf, 2.0], "y": [0, 1, 0, 1]})
    policy = ValidationPolicy(allow_nan=True)
    report = validate_batch(frame, numeric_schema(nullable=True), policy=policy)
    assert kinds(report) == [("inf_values", "distance", "error")]
    assert report.errors[0].details == {"count": 2, "share": 0.5, "positive": 1}
    assert "2 infinite values (50.0% of rows)" in report.errors[0].message


def test_unparseable_strings_in_numeric_column_are_a_type_mismatch():
    frame = pd.DataFrame({"distance": ["1.5", "abc", "7", None], "y": [0, 1, 0, 1]})
    report = validate_batch(frame, numeric_schema(nullable=True))
    assert kinds(report) == [("type_mismatch", "distance", "error")]
    anomaly = report.errors[0]
    assert anomaly.details["count"] == 1
    assert anomaly.details["examples"] == ["abc"]
    assert "'abc'" in anomaly.message and "not numbers" in anomaly.message


def test_numeric_strings_in_numeric_column_are_accepted():
    frame = pd.DataFrame({"distance": ["1.5", "20", "7e1"], "y": [0, 1, 0]})
    assert validate_batch(frame, numeric_schema()).anomalies == ()


def test_dates_in_numeric_column_are_a_type_mismatch():
    frame = pd.DataFrame({"distance": pd.date_range("2024-01-01", periods=2), "y": [0, 1]})
    assert kinds(validate_batch(frame, numeric_schema())) == [
        ("type_mismatch", "distance", "error")
    ]


def test_out_of_range_uses_slack_times_width_never_below_zero():
    # Schema range [0, 100] with slack 0.5 allows [0, 150]: no negative bound, none admitted.
    frame = pd.DataFrame({"distance": [-50.0, 149.0, 150.0, 151.0, -60.0], "y": [0, 1] * 2 + [0]})
    report = validate_batch(frame, numeric_schema())
    assert kinds(report) == [("out_of_range", "distance", "warning")]
    details = report.warnings[0].details
    assert (details["count"], details["below"], details["above"]) == (3, 2, 1)
    assert (details["allowed_min"], details["allowed_max"]) == (0.0, 150.0)
    assert "[0, 150]" in report.warnings[0].message
    strict = ValidationPolicy(range_slack=0.0, out_of_range="error")
    report = validate_batch(frame, numeric_schema(), policy=strict)
    assert report.errors[0].details["count"] == 5


def test_out_of_range_override_per_column():
    frame = pd.DataFrame({"distance": [500.0], "y": [0]})
    policy = ValidationPolicy(columns={"distance": {"range_slack": 10.0}})
    assert validate_batch(frame, numeric_schema(), policy=policy).anomalies == ()


def cat_schema(nullable: bool = True) -> Schema:
    return Schema(
        (
            ColumnSchema(
                "carrier", ColumnKind.CATEGORICAL, nullable=nullable, categories=("AA", "DL")
            ),
            ColumnSchema("y", ColumnKind.NUMERIC, ColumnRole.LABEL),
        )
    )


def test_any_unseen_category_is_a_warning_by_default():
    values = ["AA"] * 90 + ["DL"] * 9 + ["ZZ"]
    frame = pd.DataFrame({"carrier": values, "y": np.arange(100) % 2})
    report = validate_batch(frame, cat_schema(), policy=COLUMNS_ONLY)
    assert kinds(report) == [("unseen_categories", "carrier", "warning")]
    anomaly = report.warnings[0]
    assert anomaly.details["count"] == 1
    assert anomaly.details["share"] == pytest.approx(0.01)
    assert anomaly.details["examples"] == ["ZZ"]
    assert "1 values (1.0% of non-missing values) in 1 categories" in anomaly.message


def test_a_few_new_categories_in_many_rows_are_a_proposed_change():
    values = ["AA"] * 70 + ["ZZ"] * 20 + ["QQ"] * 10 + [None] * 20
    frame = pd.DataFrame({"carrier": values, "y": np.arange(120) % 2})
    report = validate_batch(frame, cat_schema(), policy=COLUMNS_ONLY)
    assert kinds(report) == [("unseen_categories", "carrier", "warning")]
    proposed = report.warnings[0].details["proposed"]
    assert proposed == {"column": "carrier", "change": "categories", "added": ["QQ", "ZZ"]}


def test_many_unseen_categories_are_an_error():
    values = ["AA"] * 70 + ["ZZ"] * 20 + ["QQ"] * 10 + [None] * 20
    frame = pd.DataFrame({"carrier": values, "y": np.arange(120) % 2})
    policy = replace(COLUMNS_ONLY, new_categories_max=1)
    report = validate_batch(frame, cat_schema(), policy=policy)
    assert kinds(report) == [("unseen_categories", "carrier", "error")]
    details = report.errors[0].details
    assert details["share"] == pytest.approx(0.3)
    assert details["distinct"] == 2
    assert details["examples"] == ["ZZ", "QQ"]


def test_unseen_category_thresholds_are_configurable():
    values = ["AA"] * 95 + ["ZZ"] * 5
    frame = pd.DataFrame({"carrier": values, "y": np.arange(100) % 2})
    quiet = ValidationPolicy(unseen_category_share_warn=0.1, duplicate_rows_share=1.0)
    assert validate_batch(frame, cat_schema(), policy=quiet).anomalies == ()
    strict = ValidationPolicy(
        columns={"carrier": {"unseen_category_share_error": 0.01, "new_categories_max": 0}}
    )
    assert kinds(validate_batch(frame, cat_schema(), policy=strict))[0][2] == "error"


def test_categorical_numbers_compare_as_strings():
    schema = Schema(
        (
            ColumnSchema("zone", ColumnKind.CATEGORICAL, categories=("1", "2")),
            ColumnSchema("y", ColumnKind.NUMERIC, ColumnRole.LABEL),
        )
    )
    zones = pd.Series([1, 2] * 5 + [3], dtype="Int64")
    frame = pd.DataFrame({"zone": zones, "y": np.arange(11) % 2})
    report = validate_batch(frame, schema, policy=COLUMNS_ONLY)
    assert kinds(report) == [("unseen_categories", "zone", "warning")]
    assert report.warnings[0].details["examples"] == ["3"]


def test_null_in_non_nullable_categorical_column():
    frame = pd.DataFrame({"carrier": ["AA", None, "DL", None], "y": [0, 1, 0, 1]})
    report = validate_batch(frame, cat_schema(nullable=False), policy=COLUMNS_ONLY)
    assert kinds(report) == [("null_values", "carrier", "error")]
    assert report.errors[0].message == (
        "Column 'carrier' has 2 missing values (50.0% of rows); "
        "the schema does not allow missing values."
    )


def test_boolean_and_datetime_type_mismatches():
    schema = Schema(
        (
            ColumnSchema("flag", ColumnKind.BOOLEAN),
            ColumnSchema("when", ColumnKind.DATETIME),
            ColumnSchema("y", ColumnKind.NUMERIC, ColumnRole.LABEL),
        )
    )
    good = pd.DataFrame(
        {
            "flag": [True, False, None],
            "when": ["2024-01-01", "2024-01-02T03:00Z", None],
            "y": [0, 1, 0],
        }
    )
    assert validate_batch(good, schema).anomalies == ()
    assert validate_batch(good.assign(flag=[1, 0, 1]), schema).anomalies == ()
    bad = pd.DataFrame(
        {"flag": ["yes", "no", None], "when": ["2024-01-01", "soon", None], "y": [0, 1, 0]}
    )
    report = validate_batch(bad, schema)
    assert kinds(report) == [
        ("type_mismatch", "flag", "error"),
        ("type_mismatch", "when", "error"),
    ]
    assert report.errors[1].details["examples"] == ["soon"]
    numbers = validate_batch(good.assign(flag=[2, 0, 1], when=[1, 2, 3]), schema)
    assert [a.details["count"] for a in numbers.errors] == [1, 3]


def test_empty_batch_and_too_few_rows(flights, flights_schema):
    empty = validate_batch(flights.iloc[:0], flights_schema)
    assert kinds(empty) == [("empty_batch", None, "error")]
    few = validate_batch(flights.iloc[:5], flights_schema, policy=ValidationPolicy(min_rows=10))
    assert kinds(few) == [("too_few_rows", None, "error")]
    assert few.errors[0].message == "The batch has 5 rows; the policy requires at least 10."
    allowed = validate_batch(flights.iloc[:0], flights_schema, policy=ValidationPolicy(min_rows=0))
    assert allowed.anomalies == ()


def test_null_rate_spike_against_reference_profile(flights, flights_schema):
    reference = profile_frame(flights, flights_schema)
    batch = flights.copy()
    batch.loc[batch.index[:400], "dep_delay"] = np.nan
    report = validate_batch(batch, flights_schema, reference_profile=reference)
    assert kinds(report) == [("null_rate_spike", "dep_delay", "warning")]
    details = report.warnings[0].details
    assert details["reference_share"] == pytest.approx(flights["dep_delay"].isna().mean())
    assert details["share"] == pytest.approx(batch["dep_delay"].isna().mean())
    relaxed = ValidationPolicy(null_rate_spike=0.9)
    assert (
        validate_batch(batch, flights_schema, policy=relaxed, reference_profile=reference).anomalies
        == ()
    )


def test_constant_label_is_a_warning_in_training(flights, flights_schema):
    batch = flights.assign(delayed=1)
    report = validate_batch(batch, flights_schema)
    assert kinds(report) == [("constant_label", "delayed", "warning")]
    assert "single value 1 in all 1000 labelled rows" in report.warnings[0].message
    assert validate_batch(batch, flights_schema, environment="serving").anomalies == ()
    strict = ValidationPolicy(constant_label=Severity.ERROR)
    assert not validate_batch(batch, flights_schema, policy=strict).passed


def test_single_row_is_not_reported_as_constant_label(flights, flights_schema):
    assert validate_batch(flights.iloc[:1], flights_schema).anomalies == ()


def test_report_is_json_serialisable(flights, flights_schema):
    batch = flights.assign(carrier="ZZ", surprise="x")
    batch.loc[batch.index[:3], "distance"] = np.inf
    report = validate_batch(batch, flights_schema)
    assert {a.kind for a in report.anomalies} == {"unseen_categories", "extra_column", "inf_values"}
    text = json.dumps(report.to_dict(), allow_nan=False)
    assert json.loads(text)["passed"] is False


def test_validate_batch_rejects_bad_arguments(flights_schema):
    with pytest.raises(InvalidInputError, match="takes a pandas DataFrame. Got dict"):
        validate_batch({"a": [1]}, flights_schema)
    with pytest.raises(InvalidInputError, match="'environment'.*Got 'production'"):
        validate_batch(pd.DataFrame(), flights_schema, environment="production")


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"extra_columns": "fatal"}, r"'extra_columns'.*\['error', 'warning'\]. Got 'fatal'"),
        ({"unseen_category_share_error": 1.5}, r"'unseen_category_share_error'.*\[0.0, 1.0\]"),
        ({"unseen_category_share_warn": 0.5}, r"must not exceed"),
        ({"range_slack": -1}, r"'range_slack'"),
        ({"min_rows": -1}, r"'min_rows'"),
        ({"min_rows": 2.5}, r"'min_rows'.*int"),
        ({"null_rate_spike": True}, r"'null_rate_spike'"),
        ({"columns": {"x": {"min_rows": 3}}}, r"column 'x'.*\['min_rows'\]"),
        ({"columns": {"x": {"allow_nan": True, "range_slack": -2}}}, r"'range_slack'"),
    ],
)
def test_policy_rejects_bad_values(kwargs, pattern):
    with pytest.raises(InvalidInputError, match=pattern):
        ValidationPolicy(**kwargs)


def test_policy_coerces_severity_strings_and_round_trips():
    policy = ValidationPolicy(
        extra_columns="warning", columns={"d": {"allow_nan": True, "out_of_range": "error"}}
    )
    assert policy.extra_columns is Severity.WARNING
    assert policy.for_column("d").out_of_range is Severity.ERROR
    data = json.loads(json.dumps(policy.to_dict()))
    assert ValidationPolicy.from_dict(data) == policy
    with pytest.raises(InvalidInputError, match=r"no fields \['strictness'\]"):
        ValidationPolicy.from_dict({"strictness": 1})


def test_policy_is_hashable_and_immutable():
    policy = ValidationPolicy(columns={"d": {"allow_nan": True}})
    assert hash(policy) == hash(ValidationPolicy(columns={"d": {"allow_nan": True}}))
    with pytest.raises(AttributeError):
        policy.min_rows = 5  # type: ignore[misc]


def test_validation_of_100k_by_20_finds_only_the_unseen_category():
    rng = np.random.default_rng(1)
    n = 100_000
    data = {f"num{i}": rng.normal(size=n) for i in range(10)}
    data |= {f"cat{i}": rng.choice(["a", "b", "c", "d"], n) for i in range(6)}
    data |= {
        "flag": rng.random(n) < 0.5,
        "ts": pd.date_range("2024", periods=n, freq="min"),
        "text": rng.choice(["x", "y"], n).astype(object),
        "y": rng.integers(0, 2, n),
    }
    frame = pd.DataFrame(data)
    schema = infer_schema(frame, label="y", timestamp="ts")
    batch = frame.assign(cat0=np.where(rng.random(n) < 0.01, "zz", frame["cat0"]))
    reference = profile_frame(frame, schema)
    report = validate_batch(batch, schema, reference_profile=reference)
    # throughput is measured by `python -m benchmarks drift` (profile + validate rows/s)
    assert kinds(report) == [("unseen_categories", "cat0", "warning")]
