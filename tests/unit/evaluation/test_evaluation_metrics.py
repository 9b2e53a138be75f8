from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
)

from conveyor.core.errors import InvalidInputError
from conveyor.evaluation import (
    comparable_metrics,
    evaluate,
    higher_is_better,
    is_better,
    primary_metric,
)


@pytest.fixture
def binary_data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.2, 500), 0, 1)
    return y, p


def test_binary_metrics_match_sklearn(binary_data):
    y, p = binary_data
    m = evaluate("binary", y, p)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p >= 0.5))
    assert m["log_loss"] == pytest.approx(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15)))
    assert m["brier"] == pytest.approx(brier_score_loss(y, p))
    assert m["positive_rate"] == pytest.approx(y.mean())
    assert m["mean_prediction"] == pytest.approx(p.mean())
    assert m["n"] == 500
    assert all(isinstance(v, float) for v in m.values())


def test_regression_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    y = rng.normal(size=300)
    p = y + rng.normal(scale=0.5, size=300)
    m = evaluate("regression", y, p)
    assert m["mae"] == pytest.approx(mean_absolute_error(y, p))
    assert m["rmse"] == pytest.approx(math.sqrt(np.mean((y - p) ** 2)))
    assert m["r2"] == pytest.approx(r2_score(y, p))
    assert m["mean_prediction"] == pytest.approx(p.mean())
    assert m["n"] == 300


def test_single_class_gives_nan_auc_but_other_metrics():
    m = evaluate("binary", [1, 1, 1], [0.9, 0.2, 0.6])
    assert math.isnan(m["roc_auc"])
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert math.isfinite(m["log_loss"]) and math.isfinite(m["brier"])


def test_confident_mistakes_give_a_finite_log_loss():
    m = evaluate("binary", [0, 1], [1.0, 0.0])
    assert math.isfinite(m["log_loss"]) and m["log_loss"] > 30


def test_constant_truth_gives_nan_r2():
    m = evaluate("regression", [2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
    assert math.isnan(m["r2"])
    assert m["mae"] == pytest.approx(2 / 3)


def test_booleans_are_labels():
    assert evaluate("binary", [True, False], [0.8, 0.3])["accuracy"] == 1.0


@pytest.mark.parametrize(
    ("task", "y", "p", "message"),
    [
        ("ranking", [0, 1], [0.1, 0.2], "task must be one of"),
        ("multiclass", [0, 1], [0.1, 0.2], r"an \(n, k\) matrix"),
        ("binary", [0, 1], [0.1], "same length. Got 2 and 1"),
        ("binary", [], [], "at least one row"),
        ("binary", [0, 2], [0.1, 0.2], "must be 0 or 1. Got 2.0"),
        ("binary", [0, 1], [0.1, 1.2], r"probabilities in \[0, 1\]"),
        ("binary", [0, 1], [0.1, np.nan], "finite values. Got 1 missing"),
        ("regression", ["a", "b"], [0.1, 0.2], "must hold numbers"),
    ],
)
def test_bad_inputs_are_refused(task, y, p, message):
    with pytest.raises(InvalidInputError, match=message):
        evaluate(task, y, p)


def test_primary_metrics_and_directions():
    assert primary_metric("binary") == "roc_auc"
    assert primary_metric("regression") == "rmse"
    assert comparable_metrics("binary")[0] == "roc_auc"
    assert higher_is_better("roc_auc") and higher_is_better("r2")
    assert not higher_is_better("rmse") and not higher_is_better("log_loss")
    with pytest.raises(InvalidInputError, match="Got 'n' instead"):
        higher_is_better("n")


def test_is_better_respects_direction_and_nan():
    assert is_better("roc_auc", 0.7, 0.6)
    assert not is_better("roc_auc", 0.6, 0.6)
    assert is_better("rmse", 1.0, 1.5)
    assert not is_better("rmse", 2.0, 1.5)
    assert not is_better("roc_auc", math.nan, 0.5)
    assert not is_better("roc_auc", 0.7, math.nan)
