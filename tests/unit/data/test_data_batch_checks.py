"""Batch-level anomalies: duplicates, volume jumps, label leaks, forced severities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conveyor.core.errors import ConfigError, InvalidInputError
from conveyor.core.schema import Severity
from conveyor.data import ValidationPolicy, infer_schema, validate_batch
from conveyor.data.service import policy_from_spec
from conveyor.spec import parse_spec


def kinds(report) -> list[tuple[str, str | None, str]]:
    return [(a.kind, a.column, str(a.severity)) for a in report.anomalies]


def test_duplicate_rows_respect_the_share_threshold(flights, flights_schema):
    batch = pd.concat([flights, flights.iloc[:30]], ignore_index=True)
    report = validate_batch(batch, flights_schema)
    assert ("duplicate_rows", None, "warning") in kinds(report)
    assert ("duplicate_keys", None, "error") in kinds(report)
    rows = next(a for a in report.anomalies if a.kind == "duplicate_rows")
    assert rows.details["count"] == 30 and rows.details["share"] == pytest.approx(30 / 1030)
    lenient = ValidationPolicy(duplicate_rows_share=0.05, duplicate_keys_share=0.05)
    assert validate_batch(batch, flights_schema, policy=lenient).anomalies == ()
    assert validate_batch(batch, flights_schema, environment="serving").anomalies == ()


def test_duplicate_keys_use_entities_and_timestamp(flights, flights_schema):
    same_key = flights.assign(distance=flights["distance"] + 1).iloc[:5]
    report = validate_batch(pd.concat([flights, same_key]), flights_schema)
    assert kinds(report) == [("duplicate_keys", None, "error")]
    assert report.errors[0].details["key"] == ["flight_id", "ts"]
    later = same_key.assign(ts=same_key["ts"] + pd.Timedelta(days=365))
    assert validate_batch(pd.concat([flights, later]), flights_schema).anomalies == ()


def test_volume_jump_against_the_median_of_recent_batches(flights, flights_schema):
    report = validate_batch(flights, flights_schema, recent_row_counts=[9000, 8000, 100, 7000])
    assert kinds(report) == [("volume_jump", None, "warning")]
    assert report.warnings[0].details["median"] == 7500.0
    assert "allows [1,500, 37,500]" in report.warnings[0].message
    recent = [9000, 8000, 100, 7000, 1200, 900, 1100, 1000, 1000]
    assert validate_batch(flights, flights_schema, recent_row_counts=recent).anomalies == ()
    strict = ValidationPolicy(volume_jump="error", volume_ratio=1.5)
    assert not validate_batch(
        flights, flights_schema, policy=strict, recent_row_counts=[2000]
    ).passed


def test_numeric_leak_is_caught_on_either_side_and_noise_is_not(flights, flights_schema):
    rng = np.random.default_rng(3)
    leak = flights.assign(distance=flights["delayed"] * -1000.0 + rng.uniform(100, 500, 1000))
    report = validate_batch(leak, flights_schema, policy=ValidationPolicy(out_of_range="warning"))
    [anomaly] = report.errors
    assert (anomaly.kind, anomaly.column) == ("label_leak", "distance")
    assert anomaly.details["value"] <= 0.02 and anomaly.details["measure"] == "auc"
    assert validate_batch(leak, flights_schema, environment="serving").passed
    relaxed = ValidationPolicy(columns={"distance": {"label_leak": "warning"}})
    assert validate_batch(leak, flights_schema, policy=relaxed).passed


def test_categorical_leak_by_purity_but_not_for_id_like_columns():
    rng = np.random.default_rng(0)
    n = 2000
    y = rng.integers(0, 2, n)
    frame = pd.DataFrame(
        {
            "status": np.where(y == 1, "refunded", rng.choice(["open", "paid"], n)),
            "ticket": [f"t{i}" for i in range(n)],
            "y": y,
        }
    )
    schema = infer_schema(frame, label="y", categorical=["ticket"], max_categories=5000)
    report = validate_batch(frame, schema)
    assert [(a.kind, a.column) for a in report.errors] == [("label_leak", "status")]


def test_continuous_label_leak_uses_rank_correlation():
    rng = np.random.default_rng(1)
    y = rng.normal(size=500)
    frame = pd.DataFrame({"echo": np.exp(y), "noise": rng.normal(size=500), "y": y})
    report = validate_batch(frame, infer_schema(frame, label="y"))
    assert [(a.column, a.details["measure"]) for a in report.errors] == [("echo", "spearman")]


def test_small_batches_are_not_checked_for_leaks():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [0, 0, 1, 1]})
    assert validate_batch(frame, infer_schema(frame, label="y")).anomalies == ()


def test_forced_severities_globally_and_per_column(flights, flights_schema):
    batch = flights.copy()
    batch.loc[batch.index[:3], "distance"] = np.inf
    batch.loc[batch.index[:3], "dep_delay"] = np.inf
    policy = ValidationPolicy(
        severities={"inf_values": "warning"},
        columns={"dep_delay": {"severities": {"inf_values": "error"}}},
    )
    report = validate_batch(batch, flights_schema, policy=policy)
    assert kinds(report) == [
        ("inf_values", "distance", "warning"),
        ("inf_values", "dep_delay", "error"),
    ]
    unlabelled = validate_batch(
        flights.drop(columns=["delayed"]),
        flights_schema,
        policy=ValidationPolicy(severities={"missing_column": "warning"}),
    )
    assert kinds(unlabelled) == [("missing_column", "delayed", "error")]
    with pytest.raises(InvalidInputError, match=r"unknown anomaly kinds \['nan'\]"):
        ValidationPolicy(severities={"nan": "error"})


def test_conveyor_yaml_configures_every_new_field():
    spec = parse_spec(
        {
            "project": "p",
            "task": "binary",
            "label": "y",
            "validation": {
                "duplicate_rows": "error",
                "duplicate_keys_share": 0.1,
                "volume_ratio": 2.0,
                "volume_window": 3,
                "label_leak": "warning",
                "label_leak_auc": 0.95,
                "constant_label": "error",
                "severities": {"null_rate_spike": "error"},
                "columns": {"x": {"label_leak": "error"}},
            },
        }
    )
    policy = policy_from_spec(spec)
    assert policy.duplicate_rows is Severity.ERROR and policy.volume_window == 3
    assert policy.label_leak_auc == 0.95 and policy.constant_label is Severity.ERROR
    assert policy.for_column("x").label_leak is Severity.ERROR
    assert policy.severity_of("null_rate_spike", "x", Severity.WARNING) is Severity.ERROR
    bad = parse_spec(
        {"project": "p", "task": "binary", "label": "y", "validation": {"columns": {"x": {"a": 1}}}}
    )
    with pytest.raises(ConfigError, match=r"conveyor.yaml 'validation'.*\['a'\]"):
        policy_from_spec(bad)
