"""The label-leak check: a feature is flagged when it alone predicts the label nearly
perfectly and clearly better than the rest of the table, not by a fixed correlation."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tests.unit.data import drafting_shapes as shapes

from conveyor.core.schema import ColumnKind
from conveyor.data import ValidationPolicy, infer_schema, validate_batch
from conveyor.data.leaks import LeakThresholds, find_label_leaks
from conveyor.data.service import policy_from_spec
from conveyor.spec import parse_spec


def leaks(frame: pd.DataFrame, label: str, **policy: object) -> list[tuple[str, str]]:
    report = validate_batch(
        frame, infer_schema(frame, label=label), policy=ValidationPolicy(**policy)
    )
    return [(a.column, a.details["measure"]) for a in report.errors if a.kind == "label_leak"]


def test_diamonds_carat_and_sizes_against_price_pass():
    frame = shapes.diamonds()
    # Each of carat, x, y, z has a rank correlation with price above 0.98 ...
    rho = frame.drop(columns="cut").corr(method="spearman")["price"]
    assert (rho[["carat", "x", "y", "z"]] > 0.98).all()
    # ... but they agree with each other, so none predicts price better than the rest.
    assert leaks(frame, "price") == []


def test_a_copy_of_the_label_or_label_plus_tiny_noise_is_flagged():
    frame = shapes.diamonds()
    rng = np.random.default_rng(0)
    frame["price_eur"] = frame["price"] * 0.92
    assert leaks(frame, "price") == [("price_eur", "spearman")]
    noisy = shapes.diamonds().assign(listed=lambda f: f["price"] + rng.normal(0, 1.0, len(f)))
    assert leaks(noisy, "price") == [("listed", "spearman")]


def test_parts_that_sum_to_the_label_are_flagged_both():
    frame = shapes.bikeshare()
    assert leaks(frame, "bikers") == [("casual", "linear_fit"), ("registered", "linear_fit")]
    report = validate_batch(frame, infer_schema(frame, label="bikers"))
    message = report.errors[0].message
    assert "with 'registered' gives the label exactly" in message


def test_a_return_that_decides_the_direction_is_flagged_and_lags_are_not():
    frame = shapes.smarket()
    assert leaks(frame, "Direction") == [("Today", "auc")]


def test_log_of_the_label_is_flagged_with_what_the_rest_achieve():
    frame = shapes.wage()
    report = validate_batch(frame, infer_schema(frame, label="wage"))
    [anomaly] = [a for a in report.errors if a.kind == "label_leak"]
    assert anomaly.column == "logwage"
    assert anomaly.details["score"] == 1.0 and anomaly.details["rest"] < 0.9
    assert "a model on all other features" in anomaly.message


def test_a_feature_that_names_the_class_of_a_text_multiclass_label_is_flagged():
    rng = np.random.default_rng(2)
    n = 600
    weather = rng.choice(["sun", "rain", "fog", "snow"], n)
    frame = pd.DataFrame(
        {
            "code": pd.Series(weather).map({"sun": 1, "rain": 2, "fog": 3, "snow": 4}),
            "wind": rng.gamma(2, 2, n),
            "weather": weather,
        }
    )
    assert leaks(frame, "weather") == [("code", "auc_macro")]


def test_strong_but_imperfect_features_pass_in_classification():
    frame = shapes.default()
    assert leaks(frame, "default") == []
    assert leaks(shapes.oj(), "Purchase") == []


def test_margin_and_thresholds_come_from_conveyor_yaml():
    spec = parse_spec(
        {
            "project": "p",
            "task": "regression",
            "label": "price",
            "validation": {"label_leak_rank": 0.95, "label_leak_margin": 1.0},
        }
    )
    policy = policy_from_spec(spec)
    assert (policy.label_leak_rank, policy.label_leak_margin) == (0.95, 1.0)
    frame = shapes.diamonds()
    # With a margin of 1.0 a near-perfect feature need only match the rest: the best is.
    assert leaks(frame, "price", label_leak_margin=1.0) == [("carat", "spearman")]


def test_the_judgement_samples_a_bounded_number_of_rows():
    rng = np.random.default_rng(3)
    n = 60_000
    y = rng.normal(size=n)
    frame = pd.DataFrame({"copy": y, "x": rng.normal(size=n), "y": y})
    kinds = {"copy": ColumnKind.NUMERIC, "x": ColumnKind.NUMERIC}
    [found] = find_label_leaks(frame, "y", kinds, thresholds=LeakThresholds())
    assert found.column == "copy" and found.rows == 20_000


def test_a_feature_earlier_batches_carried_is_a_warning_short_of_a_copy():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 600)
    noise = rng.normal(size=600)
    strong = y + rng.normal(0, 0.3, 600)  # nearly determines the label in this batch
    seen = {"row_count": 600, "columns": {"strong": {}, "copy": {}, "noise": {}}}

    def leak_severities(feature: str, values: np.ndarray, profile: dict | None) -> set:
        frame = pd.DataFrame({feature: values, "noise": noise, "y": y})
        report = validate_batch(frame, infer_schema(frame, label="y"), reference_profile=profile)
        return {(a.column, a.severity.value) for a in report.anomalies if a.kind == "label_leak"}

    assert leak_severities("strong", strong, None) == {("strong", "error")}  # a first batch
    assert leak_severities("strong", strong, seen) == {("strong", "warning")}
    assert leak_severities("copy", y * 1.0, seen) == {("copy", "error")}  # a copy stays one
