from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import r2_score, roc_auc_score

from conveyor.core.errors import InvalidInputError
from conveyor.evaluation import GateDecision, GatePolicy, compare_models, evaluate, sanity_check
from conveyor.evaluation.paired import bootstrap_draws, paired_bootstrap


def _scores(y: np.ndarray, strength: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 1 / (1 + np.exp(-(strength * (y - 0.5) + rng.normal(size=len(y)))))


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return (np.random.default_rng(42).random(3000) < 0.3).astype(float)


def test_equal_models_pass(labels):
    pred = _scores(labels, 1.5, seed=1)
    decision = compare_models(labels, pred, pred.copy(), task="binary", policy=GatePolicy())
    assert decision.passed
    assert decision.delta == 0.0 and decision.ci_low == 0.0 and decision.ci_high == 0.0
    assert decision.metric == "roc_auc"
    assert decision.n == 3000
    assert "not worse" in decision.reasons[-1]


def test_clearly_worse_challenger_fails_with_a_readable_reason(labels):
    good = _scores(labels, 2.0, seed=1)
    bad = _scores(labels, 0.7, seed=2)
    decision = compare_models(labels, bad, good, task="binary", policy=GatePolicy())
    assert not decision.passed
    assert decision.delta < -0.05
    assert decision.ci_low <= decision.delta <= decision.ci_high < 0
    assert decision.challenger == pytest.approx(roc_auc_score(labels, bad))
    assert decision.production == pytest.approx(roc_auc_score(labels, good))
    assert decision.reasons == (
        f"roc_auc {decision.challenger:.3f} vs production {decision.production:.3f}: "
        f"difference {decision.delta:+.3f}, 90% CI [{decision.ci_low:.3f}, "
        f"{decision.ci_high:.3f}]: the one-sided 95% bound {decision.ci_low:.3f} is below the "
        "allowed margin -0.015.",
    )


def test_better_challenger_passes(labels):
    good = _scores(labels, 2.0, seed=1)
    bad = _scores(labels, 0.7, seed=2)
    decision = compare_models(labels, good, bad, task="binary")
    assert decision.passed
    assert decision.ci_low > 0


def test_slightly_worse_within_margin_is_not_promoted(labels):
    pred = _scores(labels, 1.5, seed=1)
    # Noise on a few rows lowers the AUC a little: within a wide margin, so not shown worse,
    # but no better on these rows either, so production stays.
    worse = pred.copy()
    worse[:30] = np.random.default_rng(3).random(30)
    strict = compare_models(labels, worse, pred, task="binary", policy=GatePolicy(margin=0.0))
    loose = compare_models(labels, worse, pred, task="binary", policy=GatePolicy(margin=0.05))
    assert strict.delta < 0
    assert not strict.passed
    assert loose.ci_low > -0.05
    assert not loose.passed
    assert loose.reasons[-1].endswith(
        "not worse than the allowed margin -0.050, but no better than production on these "
        "rows, so production stays."
    )
    # The same gap the other way round is promoted.
    assert compare_models(labels, pred, worse, task="binary", policy=GatePolicy()).passed


def test_floor_fails_an_otherwise_equal_challenger(labels):
    pred = _scores(labels, 0.5, seed=1)
    decision = compare_models(labels, pred, pred, task="binary", policy=GatePolicy(floor=0.8))
    assert not decision.passed
    assert decision.reasons[0] == (
        f"The challenger's roc_auc {decision.challenger:.3f} is below the floor 0.800."
    )


def test_too_few_rows_fail(labels):
    pred = _scores(labels, 2.0, seed=1)
    decision = compare_models(labels[:100], pred[:100], pred[:100], task="binary")
    assert not decision.passed
    assert "has 100 rows, fewer than the 200 the gate needs" in decision.reasons[0]


def test_first_model_passes_on_the_floor_alone(labels):
    pred = _scores(labels, 2.0, seed=1)
    decision = compare_models(labels, pred, None, task="binary", policy=GatePolicy(floor=0.6))
    assert decision.passed
    assert decision.production is None and decision.delta is None and decision.ci_low is None
    assert "no production model yet" in decision.reasons[-1]
    failed = compare_models(labels, pred, None, task="binary", policy=GatePolicy(floor=0.99))
    assert not failed.passed
    assert "below the floor 0.990" in failed.reasons[0]


def test_single_class_test_set_cannot_pass():
    y = np.ones(300)
    pred = np.full(300, 0.7)
    decision = compare_models(y, pred, pred, task="binary")
    assert not decision.passed
    assert math.isnan(decision.challenger)
    assert decision.to_dict()["challenger"] is None
    assert "cannot be computed" in decision.reasons[0]


def test_regression_delta_is_positive_when_the_challenger_errs_less():
    rng = np.random.default_rng(5)
    y = rng.normal(size=2000)
    close = y + rng.normal(scale=0.3, size=2000)
    far = y + rng.normal(scale=0.6, size=2000)
    better = compare_models(y, close, far, task="regression")
    worse = compare_models(y, far, close, task="regression")
    assert better.metric == "rmse"
    assert better.passed and better.delta > 0 and better.ci_low > 0
    assert not worse.passed and worse.delta < 0
    assert worse.delta == pytest.approx(-better.delta)
    assert "positive means the challenger's rmse is lower" in worse.reasons[0]


def test_regression_floor_is_a_ceiling_for_rmse():
    rng = np.random.default_rng(6)
    y = rng.normal(size=500)
    pred = y + rng.normal(scale=1.0, size=500)
    decision = compare_models(y, pred, None, task="regression", policy=GatePolicy(floor=0.5))
    assert not decision.passed
    assert "above the ceiling 0.500" in decision.reasons[0]


@pytest.mark.parametrize("metric", ["roc_auc", "accuracy", "log_loss", "brier"])
def test_bootstrap_resamples_match_sklearn_on_the_same_rows(labels, metric):
    a = _scores(labels, 1.5, seed=1)
    b = np.round(_scores(labels, 1.0, seed=2), 2)  # ties must be ranked like sklearn does
    got = paired_bootstrap(metric, labels, a, b, n_resamples=20, seed=9)
    draws = np.vstack([d for _, d in bootstrap_draws(len(labels), 20, seed=9)])
    want = [
        evaluate("binary", labels[i], a[i])[metric] - evaluate("binary", labels[i], b[i])[metric]
        for i in draws
    ]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_bootstrap_r2_matches_sklearn():
    rng = np.random.default_rng(2)
    y = rng.normal(size=400)
    a, b = y + rng.normal(size=400), y + 2 * rng.normal(size=400)
    got = paired_bootstrap("r2", y, a, b, n_resamples=10, seed=1)
    draws = np.vstack([d for _, d in bootstrap_draws(400, 10, seed=1)])
    want = [r2_score(y[i], a[i]) - r2_score(y[i], b[i]) for i in draws]
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_bootstrap_blocks_do_not_depend_on_the_thread_count():
    y = (np.random.default_rng(0).random(6000) < 0.2).astype(float)
    a, b = _scores(y, 1.5, seed=1), _scores(y, 1.4, seed=2)
    one = paired_bootstrap("roc_auc", y, a, b, n_resamples=700, seed=3, workers=1)
    two = paired_bootstrap("roc_auc", y, a, b, n_resamples=700, seed=3, workers=2)
    np.testing.assert_array_equal(one, two)
    assert len({d.shape[0] for _, d in bootstrap_draws(6000, 700, seed=3)}) == 2  # several blocks


def test_same_seed_same_decision(labels):
    a, b = _scores(labels, 1.5, seed=1), _scores(labels, 1.4, seed=2)
    first = compare_models(labels, a, b, task="binary")
    assert compare_models(labels, a, b, task="binary") == first
    other = compare_models(labels, a, b, task="binary", policy=GatePolicy(seed=1))
    assert other.ci_low != first.ci_low


def test_decision_to_dict_is_json_ready(labels):
    pred = _scores(labels, 1.5, seed=1)
    data = compare_models(labels, pred, pred, task="binary").to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert isinstance(data["reasons"], list)
    assert set(data) == {f for f in GateDecision.__slots__}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "n"}, "metric must be one of"),
        ({"margin": -0.1}, "'margin' of GatePolicy"),
        ({"min_rows": 0}, "'min_rows' of GatePolicy"),
        ({"n_bootstrap": 1}, "'n_bootstrap' of GatePolicy"),
        ({"confidence": 1.0}, "'confidence' of GatePolicy"),
        ({"floor": math.nan}, "'floor' of GatePolicy"),
    ],
)
def test_policy_rejects_bad_settings(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        GatePolicy(**kwargs)


def test_policy_metric_must_fit_the_task(labels):
    pred = _scores(labels, 1.5, seed=1)
    with pytest.raises(InvalidInputError, match="for a binary task must be one of"):
        compare_models(labels, pred, pred, task="binary", policy=GatePolicy(metric="rmse"))


def test_policy_metric_other_than_primary(labels):
    good = _scores(labels, 2.0, seed=1)
    decision = compare_models(
        labels, good, np.full(len(labels), 0.5), task="binary", policy=GatePolicy(metric="brier")
    )
    assert decision.metric == "brier"
    assert decision.passed and decision.delta > 0


def test_sanity_check_accepts_a_sound_candidate():
    metrics = {"candidate": {"roc_auc": 0.78}, "baseline": {"roc_auc": 0.5}}
    assert sanity_check(metrics, "binary") == []


def test_sanity_check_flags_a_perfect_score():
    reasons = sanity_check(
        {"candidate": {"roc_auc": 0.9995}, "baseline": {"roc_auc": 0.5}}, "binary"
    )
    assert len(reasons) == 1 and "suspiciously perfect" in reasons[0]
    reasons = sanity_check({"candidate": {"rmse": 0.01, "r2": 0.9999}}, "regression")
    assert len(reasons) == 1 and "r2 is 0.9999" in reasons[0]


def test_sanity_check_flags_no_gain_over_the_baseline():
    reasons = sanity_check(
        {"candidate": {"rmse": 2.0, "r2": 0.1}, "baseline": {"rmse": 1.9, "r2": 0.0}}, "regression"
    )
    assert reasons == [
        "The candidate's validation rmse 2.0000 is not better than the baseline's 1.9000."
    ]


@pytest.mark.parametrize("undefined", [math.nan, None])
def test_sanity_check_flags_an_undefined_score(undefined):
    reasons = sanity_check({"candidate": {"roc_auc": undefined}}, "binary")
    assert reasons == ["The candidate's validation roc_auc is undefined (nan)."]


def test_sanity_check_on_trained_results_needs_candidate_key():
    assert sanity_check({}, "binary") == []
    with pytest.raises(InvalidInputError, match="'candidate' entry"):
        sanity_check({"lightgbm": {"roc_auc": 0.7}}, "binary")
