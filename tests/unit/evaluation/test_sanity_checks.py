"""Sanity: a perfect score, shuffled labels or a constant label is never blessed; floors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from conveyor.core.errors import InvalidInputError
from conveyor.evaluation import check_floors, evaluate, sanity_check


def _fit_and_score(x, y_train, x_valid, y_valid):
    model = LogisticRegression(C=0.1).fit(x, y_train)
    return evaluate("binary", y_valid, model.predict_proba(x_valid)[:, 1])


def _data(seed: int = 0, n: int = 2000):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12))  # two informative features among twelve
    y = (rng.random(n) < 1 / (1 + np.exp(-(x[:, 0] - 0.5 * x[:, 1])))).astype(float)
    return x, y


def test_a_sound_model_passes():
    x, y = _data()
    candidate = _fit_and_score(x[:1500], y[:1500], x[1500:], y[1500:])
    baseline = evaluate("binary", y[1500:], np.full(500, y[:1500].mean()))
    assert sanity_check({"candidate": candidate, "baseline": baseline}, "binary") == []


def test_a_leaked_label_gives_a_suspiciously_perfect_score():
    x, y = _data()
    leaky = np.column_stack([x, y])  # the label itself is a feature
    candidate = _fit_and_score(leaky[:1500], y[:1500], leaky[1500:], y[1500:])
    reasons = sanity_check({"candidate": candidate}, "binary")
    assert any("suspiciously perfect" in r for r in reasons)


def test_shuffled_labels_score_within_chance_and_are_refused():
    x, y = _data()
    shuffled = np.random.default_rng(100).permutation(y[:1500])
    candidate = _fit_and_score(x[:1500], shuffled, x[1500:], y[1500:])
    baseline = evaluate("binary", y[1500:], np.full(500, shuffled.mean()))
    reasons = sanity_check({"candidate": candidate, "baseline": baseline}, "binary")
    assert any("no better than chance" in r for r in reasons), reasons
    real = _fit_and_score(x[:1500], y[:1500], x[1500:], y[1500:])
    assert sanity_check({"candidate": real, "baseline": baseline}, "binary") == []


def test_the_chance_bound_narrows_with_more_rows():
    small = {"roc_auc": 0.53, "n": 400.0, "positive_rate": 0.3}
    large = {**small, "n": 40_000.0}
    assert any("no better than chance" in r for r in sanity_check({"candidate": small}, "binary"))
    assert sanity_check({"candidate": large}, "binary") == []


def test_a_constant_label_is_refused_with_its_reason():
    y = np.zeros(400)
    candidate = evaluate("binary", y, np.full(400, 0.01))
    reasons = sanity_check({"candidate": candidate}, "binary", stage="test")
    assert reasons[0] == "The test labels are constant (all 0): nothing can be learned or ranked."
    assert any("test roc_auc is undefined" in r for r in reasons)
    regression = evaluate("regression", np.ones(100), np.ones(100))
    assert any("undefined" in r for r in sanity_check({"candidate": regression}, "regression"))


def test_absolute_floors_bound_minimums_and_maximums():
    metrics = {"recall": 0.42, "ece": 0.08, "rmse": 3.0, "f1": None}
    assert check_floors(metrics, {"recall": 0.4, "ece": 0.1}) == []
    reasons = check_floors(metrics, {"recall": 0.5, "ece": 0.05, "f1": 0.3})
    assert reasons == [
        "The challenger's test recall 0.4200 is below its floor 0.5.",
        "The challenger's test ece 0.0800 is above its ceiling 0.05.",
        "The challenger's test f1 is undefined, so its floor fails.",
    ]


def test_a_floor_on_an_unknown_metric_is_refused():
    with pytest.raises(InvalidInputError, match="gate floor must name one of"):
        check_floors({"recall": 0.5}, {"recal": 0.4})
