"""Monitoring a multiclass or text-binary model: the label-free estimate, prediction drift on
the predicted class, realised metrics and bias on label codes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conveyor.core.labels import LabelCodec, Task
from conveyor.core.schema import Schema
from conveyor.monitoring.cbpe import estimate_performance
from conveyor.monitoring.jobs import class_profile, live_metrics, window_stats
from conveyor.serving.feedback import evaluate_labelled

SPECIES = ("bream", "perch", "pike")
CODEC = LabelCodec(Task.MULTICLASS, SPECIES)


def calibrated(rng: np.random.Generator, n: int, spread: float, shares=(1.0, 1.0, 1.0)):
    """Class probabilities that are true: each label is drawn from its row's vector."""
    logits = rng.normal(0, spread, (n, 3)) + np.log(np.asarray(shares))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p])
    return p, y


def test_the_multiclass_estimate_tracks_the_realised_macro_auc_and_accuracy():
    rng = np.random.default_rng(11)
    realised, estimated = [], []
    for spread in (0.3, 1.0, 2.0, 3.5):
        p, y = calibrated(rng, 3000, spread)
        truth = evaluate_labelled(CODEC, y, p)
        est = estimate_performance("multiclass", p)
        for metric in ("roc_auc_macro", "accuracy", "log_loss"):
            assert est[metric] == pytest.approx(truth[metric], abs=0.03), (spread, metric)
        low, high = est["intervals"]["accuracy"]
        assert low <= est["accuracy"] <= high
        realised.append(truth["roc_auc_macro"])
        estimated.append(est["roc_auc_macro"])
    assert max(realised) - min(realised) > 0.25


def _window(p: np.ndarray, labels: list | None, reference: dict | None) -> dict:
    n = len(p)
    predictions = pd.DataFrame(
        {
            "score": p.max(axis=1),
            "proba": list(p),
            "latency_ms": np.ones(n),
        }
    )
    labelled = predictions.iloc[: len(labels or [])].assign(label=labels or [])
    stats, _ = window_stats(
        task="multiclass", version=1, predictions=predictions, inputs=pd.DataFrame(index=range(n)),
        labelled=labelled, features=Schema(()), reference={}, score_reference=reference,
        calibration=None, psi_threshold=0.2, min_estimate_rows=100, labels=CODEC,
    )  # fmt: skip
    return stats


def test_prediction_drift_is_judged_on_the_predicted_class_distribution():
    rng = np.random.default_rng(5)
    reference = class_profile(CODEC, calibrated(rng, 3000, 2.0)[0])
    same = _window(calibrated(rng, 2000, 2.0)[0], None, reference)["prediction_drift"]
    shifted = _window(calibrated(rng, 2000, 2.0, (1.0, 1.0, 8.0))[0], None, reference)
    moved = shifted["prediction_drift"]
    assert same["psi"] < 0.05 and not same["drifted"]
    assert moved["psi"] > 0.2 and moved["drifted"]
    assert moved["chi2_pvalue"] < 1e-6
    assert moved["per_class"]["pike"]["psi"] > moved["per_class"]["perch"]["psi"]
    assert moved["current_values"]["pike"] > moved["reference_values"]["pike"]


def test_realised_metrics_read_class_names_and_leave_unknown_ones_out():
    rng = np.random.default_rng(9)
    p, y = calibrated(rng, 400, 2.0)
    names = [SPECIES[i] for i in y]
    names[0] = "salmon"  # stored before labels were checked: left out, never a crash
    stats = _window(p, names, None)
    live = stats["live"]
    assert live["metric_name"] == "roc_auc_macro" and live["labels"] == 399
    expected = evaluate_labelled(CODEC, y[1:], p[1:])
    assert live["metric"] == pytest.approx(expected["roc_auc_macro"])
    assert live["metrics"]["accuracy"] == pytest.approx(expected["accuracy"])
    gaps = p[1:].mean(axis=0) - np.bincount(y[1:], minlength=3) / 399
    assert live["bias_by_class"] == pytest.approx(dict(zip(SPECIES, gaps, strict=True)))
    assert live["bias"] == pytest.approx(gaps[np.argmax(np.abs(gaps))])
    assert stats["estimated"]["metric_name"] == "roc_auc_macro"


def test_bias_of_a_text_binary_label_uses_its_codes():
    codec = LabelCodec(Task.BINARY, ("no", "yes"))
    rows = pd.DataFrame({"score": [0.9, 0.8, 0.1, 0.2], "label": ["yes", "yes", "no", "yes"]})
    live = live_metrics(codec, rows)
    assert live["labels"] == 4
    assert live["bias"] == pytest.approx(0.5 - 0.75)
    expected = evaluate_labelled(codec, [1, 1, 0, 1], rows["score"])
    assert live["metrics"]["roc_auc"] == pytest.approx(expected["roc_auc"])


def test_a_regression_window_says_its_metric_is_not_estimated():
    predictions = pd.DataFrame({"score": [1.0, 2.0, 3.0], "latency_ms": [1.0, 1.0, 1.0]})
    stats, _ = window_stats(
        task="regression", version=1, predictions=predictions,
        inputs=pd.DataFrame(index=range(3)), labelled=predictions.iloc[:0].assign(label=[]),
        features=Schema(()), reference={}, score_reference=None, calibration=None,
        psi_threshold=0.2, min_estimate_rows=1,
    )  # fmt: skip
    assert stats["estimated"]["metric"] is None
    assert stats["estimated"]["reason"].startswith("not estimated")
