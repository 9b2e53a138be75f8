"""Label-free performance estimates: they must track the realised metric on calibrated data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.core.errors import InvalidInputError
from conveyor.evaluation.metrics import evaluate
from conveyor.monitoring.cbpe import (
    estimate_performance,
    expected_accuracy,
    expected_roc_auc,
    fit_calibration,
)


def calibrated_window(rng: np.random.Generator, n: int, spread: float, centre: float):
    """Scores that are true probabilities: labels are drawn from them."""
    p = 1.0 / (1.0 + np.exp(-rng.normal(centre, spread, n)))
    y = (rng.random(n) < p).astype(np.float64)
    return p, y


def test_estimate_tracks_realised_metrics_on_a_calibrated_stream_with_shifts():
    rng = np.random.default_rng(7)
    # The stream's windows get harder and easier (spread) and more or less positive (centre),
    # so the realised metrics move a lot; the estimate must follow without labels.
    regimes = [(2.5, 0.0), (2.5, 0.0), (1.0, 0.5), (0.5, -1.0), (3.5, 1.0), (1.5, -2.0)]
    realised, estimated = [], []
    for spread, centre in regimes:
        p, y = calibrated_window(rng, 4000, spread, centre)
        truth = evaluate("binary", y, p)
        est = estimate_performance("binary", p)
        for metric in ("roc_auc", "accuracy", "brier"):
            assert est[metric] == pytest.approx(truth[metric], abs=0.03), (spread, metric)
        realised.append(truth["roc_auc"])
        estimated.append(est["roc_auc"])
    assert max(realised) - min(realised) > 0.2  # the metric really moved
    assert np.corrcoef(realised, estimated)[0, 1] > 0.97


def test_uncalibrated_scores_are_corrected_by_a_calibration_fitted_on_labelled_rows():
    rng = np.random.default_rng(3)
    p, y = calibrated_window(rng, 6000, 1.5, 0.0)
    squashed = 0.5 + (p - 0.5) * 0.3  # overconfident the other way: all near 0.5
    raw = estimate_performance("binary", squashed)
    truth = evaluate("binary", y, squashed)
    assert abs(raw["accuracy"] - truth["accuracy"]) > 0.1
    calibration = fit_calibration(squashed[:3000], y[:3000])
    fixed = estimate_performance("binary", squashed[3000:], calibration=calibration)
    held_out = evaluate("binary", y[3000:], squashed[3000:])
    assert fixed["calibrated"] is True
    assert fixed["accuracy"] == pytest.approx(held_out["accuracy"], abs=0.03)
    assert fixed["roc_auc"] == pytest.approx(held_out["roc_auc"], abs=0.03)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=40))
def test_expected_auc_equals_the_exact_expectation_ratio_by_pairs(values):
    p = np.array(values)
    num = den = 0.0
    for i in range(p.size):
        for j in range(p.size):
            if i == j:
                continue
            weight = p[i] * (1 - p[j])
            den += weight
            num += weight * (1.0 if p[i] > p[j] else 0.5 if p[i] == p[j] else 0.0)
    got = expected_roc_auc(p)
    if den <= 1e-15:
        assert math.isnan(got)
    else:
        assert got == pytest.approx(num / den, rel=1e-9, abs=1e-12)
        assert 0.0 <= got <= 1.0


def test_expected_accuracy_counts_each_side_of_the_threshold():
    assert expected_accuracy(np.array([0.9, 0.1])) == pytest.approx(0.9)
    assert expected_accuracy(np.array([0.9, 0.1]), threshold=0.95) == pytest.approx(0.5)


def test_regression_has_no_label_free_estimate():
    assert estimate_performance("regression", [1.0, 2.0]) == {}


def test_scores_outside_zero_one_are_rejected_with_their_range():
    with pytest.raises(InvalidInputError, match=r"probabilities in \[0, 1\].*1.5"):
        estimate_performance("binary", [0.2, 1.5])
    with pytest.raises(InvalidInputError, match="0/1 labels"):
        fit_calibration([0.1, 0.2], [0, 2])
