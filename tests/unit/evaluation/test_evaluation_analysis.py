"""The test-set evaluation: metrics against scikit-learn, calibration, errors and slices."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    mean_absolute_percentage_error,
    precision_score,
    recall_score,
)

from conveyor.core.errors import InvalidInputError
from conveyor.evaluation import compare_slices, evaluate_test_set, reliability


@pytest.fixture(scope="module")
def binary() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    y = (rng.random(3000) < 0.35).astype(float)
    p = 1 / (1 + np.exp(-(1.8 * (y - 0.5) + rng.normal(size=3000))))
    group = rng.choice(["a", "b", "c"], 3000, p=[0.6, 0.37, 0.03])
    return y, p, group


def test_binary_metrics_match_scikit_learn(binary):
    y, p, _ = binary
    ev = evaluate_test_set("binary", y, p, threshold=0.4)
    labels = p >= 0.4
    m = ev.metrics
    assert m["precision"] == pytest.approx(precision_score(y, labels))
    assert m["recall"] == pytest.approx(recall_score(y, labels))
    assert m["f1"] == pytest.approx(f1_score(y, labels))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p))
    assert ev.confusion == confusion_matrix(y, labels).tolist()
    assert {"roc_auc", "log_loss", "brier", "accuracy", "ece"} <= set(m)


def test_errors_by_label_count_the_mistakes_and_list_the_most_confident(binary):
    y, p, _ = binary
    ev = evaluate_test_set("binary", y, p)
    negatives, positives = ev.errors
    assert negatives["rows"] == int((y == 0).sum())
    assert negatives["errors"] == ev.confusion[0][1] and positives["errors"] == ev.confusion[1][0]
    assert positives["error_rate"] == pytest.approx(positives["errors"] / positives["rows"])
    worst = positives["worst_rows"][0]
    assert y[worst] == 1 and p[worst] == p[(y == 1)].min()
    assert negatives["worst_scores"] == sorted(negatives["worst_scores"], reverse=True)


def test_reliability_and_ece_follow_the_definition():
    rng = np.random.default_rng(0)
    p = rng.random(20_000)
    calibrated = (rng.random(20_000) < p).astype(float)
    assert reliability(calibrated, p)["ece"] < 0.02
    overconfident = np.clip(p * 1.6 - 0.3, 0, 1)
    curve = reliability(calibrated, overconfident, bins=5)
    bins = curve["bins"]
    manual = sum(b["rows"] * abs(b["observed"] - b["mean_score"]) for b in bins if b["rows"]) / len(
        p
    )
    assert curve["ece"] == pytest.approx(manual) and curve["ece"] > 0.05
    assert sum(b["rows"] for b in bins) == len(p)
    with pytest.raises(InvalidInputError, match="'bins' of reliability"):
        reliability(calibrated, p, bins=1)


def test_slices_are_scored_only_above_the_minimum_size(binary):
    y, p, group = binary
    ev = evaluate_test_set("binary", y, p, groups={"group": group}, min_slice_rows=200)
    by_value = {s["value"]: s for s in ev.slices}
    assert [s["value"] for s in ev.slices] == ["a", "b", "c"]  # most rows first
    assert by_value["c"]["scored"] is False and "roc_auc" not in by_value["c"]
    rows = group == "b"
    expected = evaluate_test_set("binary", y[rows], p[rows]).metrics["roc_auc"]
    assert by_value["b"]["roc_auc"] == pytest.approx(expected)
    assert by_value["a"]["rows"] + by_value["b"]["rows"] + by_value["c"]["rows"] == len(y)


def test_a_slice_column_of_the_wrong_length_is_refused(binary):
    y, p, group = binary
    with pytest.raises(InvalidInputError, match="slice column 'group' must have one value"):
        evaluate_test_set("binary", y, p, groups={"group": group[:10]})


def test_regression_metrics_and_residuals():
    rng = np.random.default_rng(1)
    y = rng.normal(50, 10, 1000)
    y[:5] = 0.0
    p = y + rng.normal(0, 2, 1000)
    ev = evaluate_test_set("regression", y, p)
    nonzero = y != 0
    assert ev.metrics["mape"] == pytest.approx(
        mean_absolute_percentage_error(y[nonzero], p[nonzero])
    )
    (summary,) = ev.errors
    assert summary["mean"] == pytest.approx(float(np.mean(y - p)))
    assert summary["quantiles"]["p50"] == pytest.approx(float(np.median(y - p)))
    assert sum(ev.curves["residuals"]["counts"]) == 1000
    assert ev.confusion is None and ev.calibration is None


def test_to_dict_is_json_with_undefined_values_as_null():
    y = np.zeros(50)
    p = np.full(50, 0.2)
    data = evaluate_test_set("binary", y, p).to_dict()
    text = json.dumps(data, allow_nan=False)
    assert data["metrics"]["roc_auc"] is None and data["metrics"]["recall"] is None
    assert "NaN" not in text and data["curves"] == {}


def test_compare_slices_flags_only_a_slice_that_regressed_beyond_tolerance(binary):
    y, p, group = binary
    worse = p.copy()
    hurt = group == "b"
    worse[hurt] = np.random.default_rng(9).random(int(hurt.sum()))  # noise on slice b only
    rows, failures = compare_slices(
        "binary", y, worse, p, {"group": group}, metric="roc_auc", min_rows=200, tolerance=0.02
    )
    assert {r["value"] for r in rows} == {"a", "b"}  # c is under min_rows
    regressed = [r for r in rows if r["regressed"]]
    assert [r["value"] for r in regressed] == ["b"] and regressed[0]["delta"] < -0.1
    assert len(failures) == 1 and failures[0].startswith("Slice group=b (")
    _, none = compare_slices(
        "binary", y, p, p, {"group": group}, metric="roc_auc", min_rows=200, tolerance=0.0
    )
    assert none == []


def test_compare_slices_orients_lower_is_better_metrics():
    rng = np.random.default_rng(2)
    y = rng.normal(size=600)
    close, far = y + rng.normal(0, 0.1, 600), y + rng.normal(0, 1.0, 600)
    rows, failures = compare_slices(
        "regression", y, far, close, {"g": ["x"] * 600}, metric="rmse", min_rows=10, tolerance=0.1
    )
    assert rows[0]["delta"] < 0 and failures
    rows, failures = compare_slices(
        "regression", y, close, far, {"g": ["x"] * 600}, metric="rmse", min_rows=10, tolerance=0.1
    )
    assert rows[0]["delta"] > 0 and not failures
    assert not math.isnan(rows[0]["challenger"])
