"""The gate judges every metric on its own scale: margins and tolerances are points of a score
or a share of production's error, never label units, and a first model is not stalled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conveyor.evaluation import GatePolicy, compare_models, compare_slices
from conveyor.evaluation.behaviour import noise_test
from conveyor.evaluation.gate import MarginKind, margin_in_units, margin_kind


def _regression(seed: int = 0, n: int = 1000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n)
    shared, own = rng.normal(size=n), rng.normal(size=n)
    production = y + shared
    challenger = y + 0.995 * (0.98 * shared + np.sqrt(1 - 0.98**2) * own)
    return y, challenger, production


@pytest.mark.parametrize("units", [1.0, 150.0, 1e5])
def test_a_regression_decision_does_not_depend_on_the_labels_units(units: float) -> None:
    # A price in cents or in thousands: the same models, the same verdict and interval shape.
    y, challenger, production = _regression()
    base = compare_models(y, challenger, production, task="regression")
    scaled = compare_models(y * units, challenger * units, production * units, task="regression")
    assert scaled.passed is base.passed is True
    assert scaled.ci_low == pytest.approx(base.ci_low * units)
    assert scaled.margin == pytest.approx(0.015 * scaled.production)
    assert "1.5% of production's rmse" in scaled.reasons[-1]


def test_a_label_unit_margin_would_refuse_a_price_model_that_the_relative_one_passes() -> None:
    # In label units 0.015 is nothing for a price near 150: the same interval fails it.
    y, challenger, production = _regression()
    y, challenger, production = y * 150, challenger * 150, production * 150
    decision = compare_models(y, challenger, production, task="regression")
    assert decision.passed
    assert -decision.margin < decision.ci_low < -0.015  # passes only on the relative margin


def test_margins_are_points_of_scores_and_shares_of_errors() -> None:
    assert margin_kind("roc_auc") is MarginKind.POINTS
    assert margin_kind("r2") is MarginKind.POINTS
    for error in ("rmse", "mae", "log_loss", "brier"):
        assert margin_kind(error) is MarginKind.RELATIVE
    assert margin_in_units("accuracy", 0.02, 0.9) == 0.02
    assert margin_in_units("log_loss", 0.02, 0.5) == pytest.approx(0.01)


def test_near_identical_retrains_are_not_all_waved_through() -> None:
    # Twenty retrains that differ from production by noise only: the interval is tight around
    # zero, so a rule on the lower bound alone would promote every one; the rule also asks
    # the challenger to do no worse on the test rows, so about half are promoted.
    rng = np.random.default_rng(4)
    y = (rng.random(1000) < 0.3).astype(float)
    latent = 1.2 * y + rng.normal(size=1000)
    production = 1 / (1 + np.exp(-latent))
    passed = []
    for _ in range(20):
        retrain = 1 / (1 + np.exp(-(latent + rng.normal(scale=0.05, size=1000))))
        decision = compare_models(y, retrain, production, task="binary")
        assert decision.ci_low > -decision.margin  # never shown worse
        passed.append(decision.passed)
    assert 3 <= sum(passed) <= 17


def test_a_challenger_its_interval_shows_better_is_promoted_on_few_rows() -> None:
    # Like +0.028 AUC with a two-sided 95% interval of [-0.008, 0.069] on a few hundred rows:
    # here +0.024, [-0.012, 0.054], which the old rule (that interval above -0.005) refused.
    rng = np.random.default_rng(17)
    y = (rng.random(300) < 0.4).astype(float)
    shared = rng.normal(size=300)
    production = 1 / (1 + np.exp(-(1.0 * y + shared)))
    challenger = 1 / (1 + np.exp(-(1.1 * y + 0.85 * shared + 0.53 * rng.normal(size=300))))
    decision = compare_models(y, challenger, production, task="binary")
    wide = compare_models(
        y, challenger, production, task="binary", policy=GatePolicy(confidence=0.975)
    )
    assert decision.delta > 0.02 and wide.ci_low < -0.005
    assert decision.ci_low > -decision.margin
    assert decision.passed


def test_a_first_model_on_a_small_test_set_passes_and_a_challenger_must_be_clearly_better() -> None:
    y, challenger, production = _regression(n=120)
    first = compare_models(y, challenger, None, task="regression")
    assert first.passed
    assert first.warnings and "120 rows, fewer than the 200" in first.warnings[0]
    against = compare_models(y, challenger, production, task="regression")
    assert not against.warnings
    assert against.reasons[0].startswith("The test set has 120 rows, fewer than the 200")
    assert against.passed == (against.ci_low is not None and against.ci_low > 0)


def test_slice_tolerance_of_an_error_is_a_share_of_productions_slice_error() -> None:
    y, challenger, production = _regression(n=400)
    worse = y + 1.01 * (production - y)  # 1% worse on every row
    groups = {"g": np.array(["a", "b"] * 200)}
    for units in (1.0, 1000.0):
        rows, failures = compare_slices(
            "regression", y * units, worse * units, production * units, groups,
            metric="rmse", min_rows=50, tolerance=0.02,
        )  # fmt: skip
        assert failures == [] and len(rows) == 2
        rows, failures = compare_slices(
            "regression", y * units, worse * units, production * units, groups,
            metric="rmse", min_rows=50, tolerance=0.005,
        )  # fmt: skip
        assert len(failures) == 2


def test_the_noise_limit_of_a_regression_scales_with_the_labels_spread() -> None:
    # A smooth but wiggly model moves about 8% of its predictions' spread under 1% noise: an
    # ordinary tree ensemble's range, which the old limit (0.02 of the predictions' std) failed.
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"x": rng.uniform(0, 10, 1000)})

    def predict(f: pd.DataFrame) -> np.ndarray:
        return np.asarray(10 * np.sin(4 * f["x"].to_numpy()))

    for units in (1.0, 1000.0):
        labels = units * (predict(frame) + rng.normal(scale=5.0, size=1000))
        result = noise_test(
            lambda f, u=units: u * predict(f), frame, ["x"], scale=0.01, task="regression",
            labels=labels,
        )  # fmt: skip
        assert result.passed, result.detail
        assert 0.03 < result.figures["mean_change"] < 0.15
        assert result.figures["allowed"] == 0.15
        assert "label std" in result.detail
    jumpy = noise_test(
        lambda f: np.asarray(10 * np.sin(400 * f["x"].to_numpy())), frame, ["x"], scale=0.01,
        task="regression", labels=labels / 1000.0,
    )  # fmt: skip
    assert not jumpy.passed
    binary = noise_test(lambda f: np.full(len(f), 0.3), frame, ["x"], scale=0.01, task="binary")
    assert binary.passed and binary.figures["allowed"] == 0.02


def test_noise_limit_is_at_least_twice_what_production_moves_on_the_same_noise() -> None:
    # A concept with a sharp threshold: every good model of it moves under a little noise.
    frame = pd.DataFrame({"x": np.linspace(-0.02, 0.02, 400)})

    def sharp(d: pd.DataFrame) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-2000.0 * d["x"].to_numpy()))

    def softer(d: pd.DataFrame) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-1500.0 * d["x"].to_numpy()))

    alone = noise_test(sharp, frame, ["x"], scale=0.3, task="binary")
    assert not alone.passed  # over the absolute 0.02 with no production to compare
    judged = noise_test(sharp, frame, ["x"], scale=0.3, task="binary", reference=softer)
    assert judged.passed
    assert judged.figures["allowed"] == pytest.approx(2 * judged.figures["reference_change"])
    smooth = noise_test(
        sharp,
        frame,
        ["x"],
        scale=0.3,
        task="binary",
        reference=lambda d: 0 * d["x"].to_numpy() + 0.5,
    )
    assert not smooth.passed  # production barely moves: the absolute limit holds
