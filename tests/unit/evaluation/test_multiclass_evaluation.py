"""Multiclass metrics, their paired bootstrap, the gate's checks, test-set analysis and probes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, log_loss, roc_auc_score

from conveyor.core.errors import InvalidInputError
from conveyor.evaluation import (
    GatePolicy,
    compare_models,
    evaluate,
    evaluate_test_set,
    primary_metric,
    sanity_check,
)
from conveyor.evaluation.behaviour import directional_test, invariance_test, noise_test
from conveyor.evaluation.metrics import TASKS, comparable_metrics
from conveyor.evaluation.paired import bootstrap_draws, paired_bootstrap


def _scores(n: int, k: int, skill: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + skill * np.eye(k)[y]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y.astype(np.float64), p


def test_multiclass_is_a_task_with_its_metrics():
    assert TASKS == ("binary", "multiclass", "regression")
    assert primary_metric("multiclass") == "roc_auc_macro"
    assert comparable_metrics("multiclass") == ("roc_auc_macro", "log_loss", "accuracy", "macro_f1")
    assert GatePolicy().metric_for("multiclass") == "roc_auc_macro"
    with pytest.raises(InvalidInputError, match="gate metric for a multiclass task"):
        GatePolicy(metric="rmse").metric_for("multiclass")


def test_multiclass_metrics_match_scikit_learn():
    y, p = _scores(400, 4, 1.5, 0)
    m = evaluate("multiclass", y, p)
    assert m["roc_auc_macro"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr"))
    assert m["log_loss"] == pytest.approx(log_loss(y, p, labels=[0, 1, 2, 3]))
    assert m["accuracy"] == pytest.approx(np.mean(p.argmax(axis=1) == y))
    assert m["macro_f1"] == pytest.approx(f1_score(y, p.argmax(axis=1), average="macro"))
    freq = np.bincount(y.astype(int)) / len(y)
    assert m["prior_log_loss"] == pytest.approx(-(freq * np.log(freq)).sum())
    assert (m["n"], m["n_classes"], m["classes_present"]) == (400.0, 4.0, 4.0)


def test_macro_auc_averages_the_classes_present():
    # Class 2 never occurs: the AUC averages classes 0 and 1, both perfectly ranked.
    y = np.array([0, 0, 1, 1], dtype=float)
    p = np.array([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]])
    assert evaluate("multiclass", y, p)["roc_auc_macro"] == 1.0
    assert np.isnan(evaluate("multiclass", y[:2], p[:2])["roc_auc_macro"])


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 3], np.full((2, 3), 1 / 3), r"class codes in 0..2. Got 3.0"),
        ([0, 1], np.full((2, 3), 1.5), r"probabilities in \[0, 1\]"),
        ([0, 1], np.full((3, 3), 1 / 3), "same length. Got 2 and 3"),
    ],
)
def test_bad_multiclass_inputs_are_refused(y, p, message):
    with pytest.raises(InvalidInputError, match=message):
        evaluate("multiclass", y, p)


@pytest.mark.parametrize("metric", ["roc_auc_macro", "log_loss", "accuracy", "macro_f1"])
def test_the_multiclass_bootstrap_is_the_metric_on_each_resample(metric):
    y, a = _scores(120, 3, 1.5, 1)
    _, b = _scores(120, 3, 0.5, 1)
    diffs = paired_bootstrap(metric, y, a, b, n_resamples=6, seed=3, workers=1)
    _, draws = next(bootstrap_draws(len(y), 6, seed=3))
    for d, rows in zip(diffs, draws, strict=True):
        expected = (
            evaluate("multiclass", y[rows], a[rows])[metric]
            - evaluate("multiclass", y[rows], b[rows])[metric]
        )
        assert d == pytest.approx(expected, abs=1e-9)


def test_the_gate_compares_multiclass_models():
    y, strong = _scores(600, 3, 2.0, 2)
    _, weak = _scores(600, 3, 0.3, 3)
    better = compare_models(y, strong, weak, task="multiclass")
    assert better.passed and better.metric == "roc_auc_macro"
    assert better.ci_low > 0
    worse = compare_models(y, weak, strong, task="multiclass")
    assert not worse.passed and worse.ci_high < 0
    by_loss = compare_models(
        y, strong, weak, task="multiclass", policy=GatePolicy(metric="log_loss")
    )
    assert by_loss.passed and by_loss.delta > 0


def test_sanity_checks_catch_a_multiclass_model_at_chance_but_hold_no_oracle_prior():
    y, p = _scores(600, 3, 2.0, 4)
    good = evaluate("multiclass", y, p)
    assert sanity_check({"candidate": good}, "multiclass") == []
    # An easy table (wine, iris) separates its classes perfectly with honest features.
    perfect = evaluate("multiclass", y, 0.9 * np.eye(3)[y.astype(int)] + 0.1 / 3)
    assert perfect["roc_auc_macro"] == 1.0
    assert sanity_check({"candidate": perfect}, "multiclass") == []
    _, noise = _scores(600, 3, 0.0, 5)
    reasons = sanity_check({"candidate": evaluate("multiclass", y, noise)}, "multiclass")
    assert any("roc_auc_macro" in r and "no better than chance" in r for r in reasons)
    # The truth's own class mix is no bar (a model of an earlier season cannot know it): a
    # log loss worse than that oracle prior is not, alone, a reason to refuse.
    y1, p1 = _scores(600, 3, 1.0, 6)
    confident = np.full((600, 3), 0.01) + 0.97 * np.eye(3)[p1.argmax(axis=1)]
    shifted = evaluate("multiclass", y1, confident)
    assert shifted["log_loss"] >= shifted["prior_log_loss"]
    assert sanity_check({"candidate": shifted}, "multiclass") == []
    one = evaluate("multiclass", np.zeros(50), np.tile([0.9, 0.05, 0.05], (50, 1)))
    assert any("one class" in r for r in sanity_check({"candidate": one}, "multiclass"))


def test_a_multiclass_test_set_evaluation_has_a_k_by_k_confusion_and_top_label_calibration():
    y, p = _scores(300, 3, 2.0, 6)
    groups = {"g": np.where(np.arange(300) % 2 == 0, "even", "odd")}
    ev = evaluate_test_set("multiclass", y, p, groups=groups, min_slice_rows=50)
    confusion = np.asarray(ev.confusion)
    assert confusion.shape == (3, 3) and confusion.sum() == 300
    assert np.trace(confusion) == round(ev.metrics["accuracy"] * 300)
    assert [e["rows"] for e in ev.errors] == np.bincount(y.astype(int)).tolist()
    assert 0 <= ev.metrics["ece"] <= 1 and "Top-label" in ev.calibration["note"]
    assert [s["value"] for s in ev.slices] == ["even", "odd"]
    assert all("roc_auc_macro" in s for s in ev.slices)
    ev.to_dict()


def test_behaviour_probes_use_the_largest_class_probability_change():
    frame = pd.DataFrame({"x": np.linspace(-1, 1, 50), "noise": np.arange(50.0)})

    def predict(f: pd.DataFrame) -> np.ndarray:
        logits = np.column_stack([f["x"], -f["x"], 0.01 * f["noise"]])
        return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    moved = invariance_test(predict, frame, ["noise"], epsilon=0.0)
    assert not moved.passed and 0 < moved.figures["max_change"] < 0.5
    robust = noise_test(predict, frame, ["x"], scale=0.5, max_mean_change=0.5, task="multiclass")
    # The same noise, drawn as the test draws it (seed 0, one column).
    noisy = frame.assign(
        x=frame["x"] + np.random.default_rng(0).normal(0, 0.5 * frame["x"].std(ddof=0), 50)
    )
    before, after = predict(frame), predict(noisy)
    largest = np.abs(after - before).max(axis=1)
    assert robust.figures["mean_change"] == pytest.approx(largest.mean())
    flips = np.mean(before.argmax(axis=1) != after.argmax(axis=1))
    assert flips > 0 and robust.figures["label_flips"] == pytest.approx(flips)
    with pytest.raises(InvalidInputError, match="needs one score per row"):
        directional_test(predict, frame, "x", direction="increasing", delta=0.1, max_violations=0.0)
