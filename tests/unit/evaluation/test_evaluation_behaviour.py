"""Behavioural tests and latency measurement on real models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from conveyor.core.errors import InvalidInputError
from conveyor.evaluation import measure_latency, run_behaviour_tests
from conveyor.evaluation.behaviour import directional_test, invariance_test, noise_test
from conveyor.spec import EvaluationSpec


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 800
    return pd.DataFrame(
        {
            "delay_risk": rng.normal(size=n),
            "distance": rng.gamma(2.0, 1.0, n),
            "flight_id": [f"f{i}" for i in range(n)],
        }
    )


@pytest.fixture(scope="module")
def predict(frame):
    """A fitted logistic model: risk raises the probability, distance lowers it."""
    x = frame[["delay_risk", "distance"]].to_numpy()
    rng = np.random.default_rng(1)
    logit = 2.0 * x[:, 0] - 1.0 * x[:, 1]
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-logit))).astype(int)
    model = LogisticRegression().fit(x, y)
    return lambda f: model.predict_proba(f[["delay_risk", "distance"]].to_numpy())[:, 1]


def test_invariance_holds_for_an_unused_column_and_fails_for_a_used_one(frame, predict):
    assert invariance_test(predict, frame, ["flight_id"], epsilon=0.0).passed
    used = invariance_test(predict, frame, ["delay_risk"], epsilon=0.05)
    assert not used.passed and used.figures["max_change"] > 0.05
    assert "more than epsilon" in used.detail


def test_directional_expectations_follow_the_model(frame, predict):
    up = directional_test(
        predict, frame, "delay_risk", direction="increasing", delta=0.5, max_violations=0.0
    )
    assert up.passed and up.figures["wrong_share"] == 0.0 and up.figures["mean_change"] > 0
    wrong = directional_test(
        predict, frame, "distance", direction="increasing", delta=0.5, max_violations=0.1
    )
    assert not wrong.passed and wrong.figures["wrong_share"] == 1.0


def test_directional_test_refuses_a_categorical_feature_and_a_bad_direction(frame, predict):
    with pytest.raises(InvalidInputError, match="must be numeric"):
        directional_test(
            predict, frame, "flight_id", direction="increasing", delta=1.0, max_violations=0.1
        )
    with pytest.raises(InvalidInputError, match="'increasing' or 'decreasing'"):
        directional_test(predict, frame, "distance", direction="up", delta=1.0, max_violations=0)


def test_noise_robustness_passes_small_noise_and_fails_large_noise(frame, predict):
    small = noise_test(
        predict, frame, ["delay_risk", "distance"], scale=0.01, max_mean_change=0.01, task="binary"
    )
    large = noise_test(
        predict, frame, ["delay_risk", "distance"], scale=2.0, max_mean_change=0.01, task="binary"
    )
    assert small.passed and not large.passed
    assert large.figures["label_flips"] > small.figures["label_flips"]


def test_noise_on_regression_is_measured_in_prediction_standard_deviations(frame):
    x = frame[["delay_risk", "distance"]].to_numpy()
    model = LinearRegression().fit(x, 1000 * x[:, 0] + 5 * x[:, 1])
    result = noise_test(
        lambda f: model.predict(f[["delay_risk", "distance"]].to_numpy()),
        frame,
        ["delay_risk", "distance"],
        scale=0.01,
        max_mean_change=0.02,
        task="regression",
    )
    assert result.passed and result.figures["mean_change"] < 0.02  # 1000x scale cancels out


def test_run_behaviour_tests_runs_what_the_spec_declares(frame, predict):
    spec = EvaluationSpec.model_validate(
        {
            "invariance": [{"columns": ["flight_id"], "epsilon": 0.0}],
            "directional": [{"feature": "distance", "direction": "decreasing"}],
            "noise": {"scale": 0.01, "max_mean_change": 0.05},
            "behaviour_rows": 300,
        }
    )
    results = run_behaviour_tests(predict, frame, spec, task="binary", numeric=["distance"])
    assert [r.kind for r in results] == ["invariance", "directional", "robustness"]
    assert all(r.passed for r in results)
    with pytest.raises(InvalidInputError, match=r"not in the test rows: \['carrier'\]"):
        invariance_test(predict, frame, ["carrier"], epsilon=0.1)


def test_measure_latency_reports_single_row_and_batch_percentiles(frame, predict):
    figures = measure_latency(predict, frame.iloc[:50], single_rows=30, batch_repeats=3)
    assert 0 < figures["single_p50_ms"] <= figures["single_p99_ms"]
    assert figures["batch_rows"] == 50 and figures["batch_rows_per_s"] > 0
    with pytest.raises(InvalidInputError, match="at least one row"):
        measure_latency(predict, frame.iloc[:0])
