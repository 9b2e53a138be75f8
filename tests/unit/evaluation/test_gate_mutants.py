"""The gate's rules and sentences at their boundaries, with expected values worked by hand.

Metric values come from scikit-learn, interval ends from resamples redrawn here from numpy's
documented streams, chance bounds from the Mann-Whitney formula written out below; none of
them from the gate's own code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import mean_squared_error, roc_auc_score

from conveyor.core.errors import InvalidInputError
from conveyor.evaluation.gate import (
    GateDecision,
    GatePolicy,
    check_floors,
    compare_models,
    compare_slices,
    sanity_check,
)


def _labels(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(float)
    p = np.clip(0.3 * y + 0.7 * rng.random(n), 0.0, 1.0)
    return y, p


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"margin": -0.01},
            "The 'margin' of GatePolicy must be a finite float >= 0. Got -0.01 instead.",
        ),
        ({"margin": float("nan")}, "'margin' of GatePolicy must be a finite float >= 0. Got nan"),
        ({"margin": float("inf")}, "Got inf instead."),
        (
            {"min_rows": 0},
            "The 'min_rows' of GatePolicy must be an int in [1, inf). Got 0 instead.",
        ),
        (
            {"n_bootstrap": 9},
            "The 'n_bootstrap' of GatePolicy must be an int in [10, inf). Got 9 instead.",
        ),
        (
            {"confidence": 0.0},
            "The 'confidence' of GatePolicy must be a float in (0, 1). Got 0.0 instead.",
        ),
        ({"confidence": 1.0}, "must be a float in (0, 1). Got 1.0 instead."),
        (
            {"floor": float("inf")},
            "The 'floor' of GatePolicy must be a finite float or None. Got inf instead.",
        ),
    ],
)
def test_each_bad_policy_setting_is_named(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        GatePolicy(**kwargs)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_the_smallest_allowed_policy_settings_are_accepted() -> None:
    policy = GatePolicy(margin=0.0, min_rows=1, n_bootstrap=10, confidence=0.01, floor=0.0)
    assert (policy.margin, policy.min_rows, policy.n_bootstrap) == (0.0, 1, 10)


def test_the_policy_metric_defaults_to_the_tasks_primary_and_is_checked() -> None:
    assert GatePolicy().metric_for("binary") == "roc_auc"
    assert GatePolicy().metric_for("regression") == "rmse"
    assert GatePolicy(metric="mae").metric_for("regression") == "mae"
    with pytest.raises(InvalidInputError) as caught:
        GatePolicy(metric="rmse").metric_for("binary")
    assert "The gate metric for a binary task must be one of [" in str(caught.value)
    assert "Got 'rmse' instead." in str(caught.value)


def test_a_first_model_is_judged_on_rows_and_floor_with_its_sentence() -> None:
    y, p = _labels()
    auc = roc_auc_score(y, p)
    alone = compare_models(y, p, None, task="binary")
    assert alone.passed and alone.production is None and alone.delta is None
    assert alone.ci_low is None and alone.ci_high is None and alone.mcnemar is None
    assert alone.n == 400 and alone.challenger == pytest.approx(auc, rel=1e-12)
    assert alone.metric == "roc_auc"
    assert alone.reasons == (
        f"There is no production model yet: the challenger's roc_auc {auc:.3f} on 400 rows is "
        "accepted on its own.",
    )
    floored = compare_models(y, p, None, task="binary", policy=GatePolicy(floor=0.5))
    assert floored.reasons[0].endswith("accepted on its own (floor 0.500).")
    failed = compare_models(y, p, None, task="binary", policy=GatePolicy(floor=0.99))
    assert not failed.passed
    assert failed.reasons == (
        f"The challenger's roc_auc {auc:.3f} is below the floor 0.990.",
        "There is no production model yet to compare with.",
    )


def test_the_row_count_boundary_is_inclusive() -> None:
    y, p = _labels(n=50)
    q = np.clip(p + np.random.default_rng(1).normal(scale=0.1, size=50), 0.0, 1.0)
    enough = compare_models(y, p, q, task="binary", policy=GatePolicy(min_rows=50))
    assert not any("fewer than the" in r for r in enough.reasons)
    short = compare_models(y, p, q, task="binary", policy=GatePolicy(min_rows=51))
    assert short.reasons[0].startswith("The test set has 50 rows, fewer than the 51 the gate")


def test_a_first_model_on_too_few_rows_passes_with_a_recorded_warning() -> None:
    y, p = _labels(n=50)
    enough = compare_models(y, p, None, task="binary", policy=GatePolicy(min_rows=50))
    assert enough.passed and enough.warnings == ()
    short = compare_models(y, p, None, task="binary", policy=GatePolicy(min_rows=51))
    assert short.passed
    assert short.warnings == (
        "Warning: the test set has 50 rows, fewer than the 51 the gate needs to compare with "
        "production; with no production model yet the challenger is judged on its own. Its "
        "successor will be compared with it once enough rows have arrived.",
    )
    assert short.reasons[0] == short.warnings[0]
    assert short.to_dict()["warnings"] == list(short.warnings)
    # The floor still applies to a first model on few rows.
    floored = compare_models(y, p, None, task="binary", policy=GatePolicy(min_rows=51, floor=0.99))
    assert not floored.passed


def test_a_floor_met_exactly_passes_and_a_ceiling_is_named_for_rmse() -> None:
    y, p = _labels()
    auc = roc_auc_score(y, p)
    assert compare_models(y, p, None, task="binary", policy=GatePolicy(floor=auc)).passed
    rng = np.random.default_rng(1)
    t = rng.normal(size=300)
    pred = t + rng.normal(scale=0.5, size=300)
    rmse = float(np.sqrt(mean_squared_error(t, pred)))
    assert compare_models(t, pred, None, task="regression", policy=GatePolicy(floor=rmse)).passed
    over = compare_models(t, pred, None, task="regression", policy=GatePolicy(floor=rmse - 0.01))
    assert over.reasons[0] == (
        f"The challenger's rmse {rmse:.3f} is above the ceiling {rmse - 0.01:.3f}."
    )


def test_an_undefined_metric_is_named() -> None:
    y = np.zeros(300)
    p = np.linspace(0, 1, 300)
    decision = compare_models(y, p, None, task="binary")
    assert decision.reasons[0] == (
        "The challenger's roc_auc cannot be computed on this test set (a single class or a "
        "constant truth)."
    )


def _reference_interval(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, n: int, seed: int, confidence: float
) -> tuple[float, float]:
    rows = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0]).integers(
        0, len(y), size=(n, len(y))
    )
    deltas = []
    for r in rows:
        if len(np.unique(y[r])) == 2:
            deltas.append(roc_auc_score(y[r], a[r]) - roc_auc_score(y[r], b[r]))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(deltas, [tail, 100 - tail])
    return float(low), float(high)


def test_the_interval_is_the_percentile_interval_of_the_paired_resamples() -> None:
    y, a = _labels(seed=2)
    b = np.clip(a + np.random.default_rng(3).normal(scale=0.2, size=400), 0, 1)
    policy = GatePolicy(n_bootstrap=200, confidence=0.95, seed=5, margin=0.01)
    decision = compare_models(y, a, b, task="binary", policy=policy)
    # The one-sided 95% bound is the lower end of the two-sided 90% percentile interval.
    low, high = _reference_interval(y, a, b, 200, seed=5, confidence=0.9)
    assert decision.ci_low == pytest.approx(low, rel=1e-9)
    assert decision.ci_high == pytest.approx(high, rel=1e-9)
    delta = roc_auc_score(y, a) - roc_auc_score(y, b)
    assert decision.delta == pytest.approx(delta, rel=1e-9)
    assert decision.passed is (low > -0.01 and delta >= 0)
    head = (
        f"roc_auc {roc_auc_score(y, a):.3f} vs production {roc_auc_score(y, b):.3f}: "
        f"difference {delta:+.3f}, 90% CI [{low:.3f}, {high:.3f}]"
    )
    assert decision.reasons[-1].startswith(head)


def test_identical_models_fail_a_zero_margin_and_pass_any_positive_one() -> None:
    # Every paired resample of identical predictions differs by exactly 0: the interval is
    # [0, 0], and the rule "lower bound above -margin" is strict.
    y, p = _labels()
    strict = compare_models(y, p, p, task="binary", policy=GatePolicy(margin=0.0))
    assert (strict.ci_low, strict.ci_high, strict.passed) == (0.0, 0.0, False)
    assert strict.reasons[-1].endswith(
        "90% CI [0.000, 0.000]: the one-sided 95% bound 0.000 is below the allowed margin -0.000."
    )
    loose = compare_models(y, p, p, task="binary", policy=GatePolicy(margin=0.001))
    assert loose.passed
    assert loose.reasons[-1].endswith(
        "90% CI [0.000, 0.000]: the one-sided 95% bound 0.000 lies above the allowed margin "
        "-0.001: the challenger is not worse, and better on these rows."
    )


def test_a_lower_is_better_metric_is_oriented_and_says_so() -> None:
    rng = np.random.default_rng(4)
    t = rng.normal(size=300)
    good = t + rng.normal(scale=0.3, size=300)
    bad = t + rng.normal(scale=0.9, size=300)
    decision = compare_models(t, good, bad, task="regression")
    want = float(np.sqrt(mean_squared_error(t, bad)) - np.sqrt(mean_squared_error(t, good)))
    assert decision.delta == pytest.approx(want, rel=1e-9) and decision.delta > 0
    assert decision.ci_low is not None and decision.ci_low > 0 and decision.passed
    assert "(positive means the challenger's rmse is lower)" in decision.reasons[-1]
    assert decision.mcnemar is None


def test_mcnemar_is_recorded_and_stated_only_when_accuracy_decides() -> None:
    y = np.array([1.0, 0.0] * 150)
    right = np.where(y == 1, 0.9, 0.1)
    wrong_some = right.copy()
    wrong_some[:30] = 1 - wrong_some[:30]  # 30 rows only the challenger gets right
    by_acc = compare_models(
        y, right, wrong_some, task="binary", policy=GatePolicy(metric="accuracy")
    )
    assert by_acc.mcnemar == {
        "only_a": 30,
        "only_b": 0,
        "statistic": pytest.approx((30 - 1) ** 2 / 30),
        "p_value": pytest.approx(math.erfc(math.sqrt((30 - 1) ** 2 / 30 / 2))),
        "exact": False,
    }
    p = math.erfc(math.sqrt((30 - 1) ** 2 / 30 / 2))
    assert by_acc.reasons[0] == (
        f"McNemar (chi-square): 30 rows only the challenger classifies right, 0 only "
        f"production does; p = {p:.3g}."
    )
    few = wrong_some.copy()
    few[3:30] = right[3:30]
    exact = compare_models(y, right, few, task="binary", policy=GatePolicy(metric="accuracy"))
    assert exact.reasons[0].startswith("McNemar (exact binomial): 3 rows only the challenger")
    assert not any("McNemar" in r for r in compare_models(y, right, few, task="binary").reasons)


def test_a_decision_without_a_finite_interval_cannot_pass() -> None:
    # One class only: no resample has an AUC, so there is no interval to judge by.
    y = np.ones(300)
    p = np.linspace(0.01, 0.99, 300)
    decision = compare_models(y, p, p[::-1].copy(), task="binary")
    assert not decision.passed
    assert math.isnan(decision.ci_low) and math.isnan(decision.ci_high)  # type: ignore[arg-type]
    assert decision.reasons[-1].endswith(
        "the one-sided 95% bound could not be computed, so the challenger cannot be shown not "
        "to be worse."
    )


def test_to_dict_turns_nan_into_none_and_keeps_every_field() -> None:
    decision = GateDecision(
        passed=False,
        metric="roc_auc",
        challenger=math.nan,
        production=0.7,
        delta=None,
        ci_low=math.inf,
        ci_high=None,
        n=3,
        reasons=("r",),
    )
    assert decision.to_dict() == {
        "passed": False,
        "metric": "roc_auc",
        "challenger": None,
        "production": 0.7,
        "delta": None,
        "ci_low": None,
        "ci_high": None,
        "n": 3,
        "reasons": ["r"],
        "mcnemar": None,
        "margin": None,
        "warnings": [],
    }


def test_floors_bound_minimums_and_maximums_inclusively_with_sentences() -> None:
    metrics = {"recall": 0.5, "ece": 0.05, "rmse": 2.0, "f1": None, "accuracy": 0.81234}
    assert check_floors(metrics, {"recall": 0.5, "ece": 0.05}) == []
    assert check_floors(metrics, {"recall": 0.6, "ece": 0.04, "f1": 0.1, "accuracy": 0.9}) == [
        "The challenger's test recall 0.5000 is below its floor 0.6.",
        "The challenger's test ece 0.0500 is above its ceiling 0.04.",
        "The challenger's test f1 is undefined, so its floor fails.",
        "The challenger's test accuracy 0.8123 is below its floor 0.9.",
    ]
    assert check_floors(metrics, {"rmse": 1.5}) == [
        "The challenger's test rmse 2.0000 is above its ceiling 1.5."
    ]
    with pytest.raises(InvalidInputError, match=r"A gate floor must name one of \[.*Got 'auc'"):
        check_floors(metrics, {"auc": 0.5})


def test_slices_regress_beyond_the_tolerance_only() -> None:
    y = np.array([0.0, 1.0] * 100)
    good = np.where(y == 1, 0.8, 0.2)
    # slice "b": the challenger swaps 10 of its 100 rows' scores (5 positives, 5 negatives)
    worse = good.copy()
    groups = np.array(["a"] * 100 + ["b"] * 100)
    flip = np.arange(100, 110)
    worse[flip] = 1 - worse[flip]
    ours_b = roc_auc_score(y[100:], worse[100:])
    rows, failures = compare_slices(
        "binary", y, worse, good, {"g": groups}, metric="roc_auc", min_rows=100, tolerance=0.01
    )
    assert rows == [
        {"column": "g", "value": "a", "rows": 100, "challenger": 1.0, "production": 1.0,
         "delta": 0.0, "regressed": False},
        {"column": "g", "value": "b", "rows": 100, "challenger": pytest.approx(ours_b),
         "production": 1.0, "delta": pytest.approx(ours_b - 1.0), "regressed": True},
    ]  # fmt: skip
    assert failures == [
        f"Slice g=b (100 rows): roc_auc {ours_b:.3f} vs production 1.000, worse by "
        f"{1.0 - ours_b:.3f} (tolerance 0.01)."
    ]
    tolerant, none = compare_slices(
        "binary", y, worse, good, {"g": groups}, metric="roc_auc", min_rows=100,
        tolerance=1.0 - ours_b,
    )  # fmt: skip
    assert none == [] and not tolerant[1]["regressed"]
    small, _ = compare_slices(
        "binary", y, worse, good, {"g": groups}, metric="roc_auc", min_rows=101, tolerance=0.01
    )
    assert small == []


def test_slices_of_a_lower_is_better_metric_are_oriented() -> None:
    t = np.arange(200, dtype=float)
    close = t + 1.0
    far = t + 3.0
    rows, failures = compare_slices(
        "regression", t, far, close, {"g": ["x"] * 200}, metric="mae", min_rows=10, tolerance=0.5
    )
    assert rows[0]["delta"] == pytest.approx(-2.0) and rows[0]["regressed"]
    assert failures[0].startswith(
        "Slice g=x (200 rows): mae 3.000 vs production 1.000, worse by 2.000"
    )


def test_slices_with_an_undefined_metric_are_skipped() -> None:
    y = np.array([0.0] * 100 + [0.0, 1.0] * 50)
    p = np.linspace(0.01, 0.99, 200)
    rows, _ = compare_slices(
        "binary", y, p, p, {"g": ["one"] * 100 + ["two"] * 100}, metric="roc_auc", min_rows=10,
        tolerance=0.0,
    )  # fmt: skip
    assert [r["value"] for r in rows] == ["two"]


def _chance(n: int, rate: float) -> float:
    positives, negatives = n * rate, n * (1 - rate)
    return 0.5 + 1.6449 * math.sqrt((positives + negatives + 1) / (12 * positives * negatives))


def test_sanity_check_chance_bar_is_inclusive_and_named() -> None:
    bar = _chance(400, 0.25)
    at_bar = {"candidate": {"roc_auc": bar, "n": 400, "positive_rate": 0.25}}
    assert sanity_check(at_bar, "binary") == [
        f"The candidate's validation roc_auc is {bar:.4f}, no better than chance (<= {bar:.4f}, "
        "the one-sided 95% bound of a random ranking's AUC on these rows): the labels may be "
        "shuffled or unrelated to the features."
    ]
    above = {"candidate": {"roc_auc": bar + 1e-9, "n": 400, "positive_rate": 0.25}}
    assert sanity_check(above, "binary") == []


def test_sanity_check_without_rows_uses_one_half_as_chance() -> None:
    assert sanity_check({"candidate": {"roc_auc": 0.5}}, "binary", stage="test")[0].startswith(
        "The candidate's test roc_auc is 0.5000, no better than chance (<= 0.5000"
    )
    assert sanity_check({"candidate": {"roc_auc": 0.5001}}, "binary") == []
    one_class = {"candidate": {"roc_auc": 0.52, "n": 100, "positive_rate": 0.005}}
    assert sanity_check(one_class, "binary") == []


def test_sanity_check_too_good_is_inclusive_for_auc_and_r2() -> None:
    assert sanity_check({"candidate": {"roc_auc": 0.9989}}, "binary") == []
    leak = sanity_check({"candidate": {"roc_auc": 0.999}}, "binary")
    assert leak == [
        "The candidate's validation roc_auc is 0.9990, suspiciously perfect (>= 0.999): check "
        "the features for a leak of the label."
    ]
    r2 = sanity_check({"candidate": {"rmse": 0.1, "r2": 0.9995}}, "regression", stage="test")
    assert r2 == [
        "The candidate's test r2 is 0.9995, suspiciously perfect (>= 0.999): check the features "
        "for a leak of the label."
    ]


def test_sanity_check_constant_labels_and_undefined_scores() -> None:
    constant = sanity_check({"candidate": {"roc_auc": None, "positive_rate": 1.0}}, "binary")
    assert constant[:2] == [
        "The validation labels are constant (all 1): nothing can be learned or ranked.",
        "The candidate's validation roc_auc is undefined (nan).",
    ]
    zero = sanity_check({"candidate": {"roc_auc": 0.8, "positive_rate": 0.0}}, "binary")
    assert (
        zero[0] == "The validation labels are constant (all 0): nothing can be learned or ranked."
    )
    flat = sanity_check({"candidate": {"rmse": 0.0, "r2": None}}, "regression")
    assert flat == ["The validation labels are constant: R² is undefined."]
    assert sanity_check({"candidate": {"rmse": 0.5}}, "regression") == []


def test_sanity_check_baseline_must_be_strictly_beaten() -> None:
    tie = {"candidate": {"rmse": 1.0}, "baseline": {"rmse": 1.0}}
    assert sanity_check(tie, "regression") == [
        "The candidate's validation rmse 1.0000 is not better than the baseline's 1.0000."
    ]
    assert sanity_check({"candidate": {"rmse": 0.9}, "baseline": {"rmse": 1.0}}, "regression") == []
    undefined = {"candidate": {"rmse": None}, "baseline": {"rmse": 1.0}}
    assert sanity_check(undefined, "regression") == [
        "The candidate's validation rmse is undefined (nan)."
    ]


def test_sanity_check_needs_a_candidate_entry() -> None:
    assert sanity_check({}, "binary") == []
    with pytest.raises(InvalidInputError) as caught:
        sanity_check({"baseline": {"roc_auc": 0.5}}, "binary")
    assert str(caught.value).startswith(
        "valid_metrics must have a 'candidate' entry. Got keys ['baseline'] instead."
    )


@pytest.mark.parametrize("rate", [0.01, 0.99])
def test_one_row_of_a_class_is_enough_for_the_chance_bound(rate: float) -> None:
    # 100 rows with exactly one positive (or one negative): the bound is still the formula's.
    bar = _chance(100, rate)
    below = {"candidate": {"roc_auc": bar - 1e-6, "n": 100, "positive_rate": rate}}
    assert len(sanity_check(below, "binary")) == 1
    assert sanity_check({"candidate": {"roc_auc": 0.6, "n": 100, "positive_rate": rate}}, "binary")


def test_a_score_of_exactly_one_half_predicts_the_positive_class() -> None:
    y = np.array([1.0, 0.0] * 150)
    right = np.where(y == 1, 0.9, 0.1)
    half = right.copy()
    half[[0, 2, 4, 6, 8]] = 0.5  # five positives scored 0.5: still classified right
    for challenger, production in ((right, half), (half, right)):
        decision = compare_models(y, challenger, production, task="binary")
        assert decision.mcnemar is not None
        assert (decision.mcnemar["only_a"], decision.mcnemar["only_b"]) == (0, 0)


def test_labels_outside_the_task_are_refused_for_both_models() -> None:
    y = np.array([0.0, 1.0, 2.0] * 100)
    p = np.full(300, 0.5)
    with pytest.raises(InvalidInputError):
        compare_models(y, p, p, task="binary")
    good_y = np.array([0.0, 1.0] * 150)
    with pytest.raises(InvalidInputError):
        compare_models(good_y, np.full(300, 0.5), np.full(300, 1.5), task="binary")


def test_a_small_slice_is_skipped_and_the_next_still_compared() -> None:
    y = np.array([0.0, 1.0] * 105)
    p = np.where(y == 1, 0.8, 0.2)
    groups = {"g": ["tiny"] * 10 + ["big"] * 200}
    rows, _ = compare_slices(
        "binary", y, p, p, groups, metric="roc_auc", min_rows=200, tolerance=0.0
    )
    assert [(r["value"], r["rows"]) for r in rows] == [("big", 200)]


def test_a_single_negative_row_still_gets_the_formula_bound() -> None:
    # 4 rows, 3 positives and 1 negative: 0.5 + 1.6449 * sqrt(5 / 36) = 1.113, above any AUC.
    one_negative = {"candidate": {"roc_auc": 0.9, "n": 4, "positive_rate": 0.75}}
    assert len(sanity_check(one_negative, "binary")) == 1


def test_slices_check_the_labels_even_when_no_slice_is_compared() -> None:
    y = np.array([0.0, 2.0] * 50)
    p = np.full(100, 0.5)
    with pytest.raises(InvalidInputError, match="Binary labels in y_true must be 0 or 1"):
        compare_slices("binary", y, p, p, {"g": ["a"] * 100}, metric="roc_auc", min_rows=500,
                       tolerance=0.0)  # fmt: skip
    good = np.array([0.0, 1.0] * 50)
    with pytest.raises(InvalidInputError, match=r"must be probabilities in \[0, 1\]"):
        compare_slices("binary", good, p, p + 0.6, {"g": ["a"] * 100}, metric="roc_auc",
                       min_rows=500, tolerance=0.0)  # fmt: skip
    with pytest.raises(InvalidInputError, match=r"must be probabilities in \[0, 1\]"):
        compare_slices("binary", good, p + 0.6, p, {"g": ["a"] * 100}, metric="roc_auc",
                       min_rows=500, tolerance=0.0)  # fmt: skip


def test_a_slice_column_of_the_wrong_length_is_named() -> None:
    y = np.array([0.0, 1.0] * 50)
    p = np.full(100, 0.5)
    with pytest.raises(InvalidInputError, match="The slice column 'region' must have one value"):
        compare_slices("binary", y, p, p, {"region": ["a"] * 99}, metric="roc_auc", min_rows=1,
                       tolerance=0.0)  # fmt: skip
