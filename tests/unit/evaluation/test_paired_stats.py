"""McNemar's test against scipy's references, and the paired bootstrap's contract."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest, chi2, chisquare
from sklearn.metrics import mean_absolute_error, roc_auc_score

from conveyor.core.errors import InvalidInputError
from conveyor.evaluation import GatePolicy, compare_models, mcnemar_test
from conveyor.evaluation.paired import EXACT_DISCORDANT, bootstrap_draws, paired_bootstrap


def _pairs(only_a: int, only_b: int, both: int = 40, neither: int = 7) -> tuple[list, list]:
    a = [1] * only_a + [0] * only_b + [1] * both + [0] * neither
    b = [0] * only_a + [1] * only_b + [1] * both + [0] * neither
    return a, b


@pytest.mark.parametrize(("only_a", "only_b"), [(0, 0), (1, 0), (3, 9), (12, 2), (0, 24), (7, 7)])
def test_mcnemar_small_discordant_counts_match_scipy_binomtest(only_a, only_b):
    result = mcnemar_test(*_pairs(only_a, only_b))
    assert result.exact and (result.only_a, result.only_b) == (only_a, only_b)
    want = 1.0 if only_a + only_b == 0 else binomtest(only_a, only_a + only_b, 0.5).pvalue
    assert result.p_value == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize(("only_a", "only_b"), [(86, 150), (30, 30), (200, 160), (13, 40)])
def test_mcnemar_large_counts_use_the_corrected_chi_square(only_a, only_b):
    result = mcnemar_test(*_pairs(only_a, only_b))
    assert not result.exact
    statistic = (abs(only_a - only_b) - 1) ** 2 / (only_a + only_b)
    assert result.statistic == pytest.approx(statistic)
    assert result.p_value == pytest.approx(chi2.sf(statistic, 1), rel=1e-9)


def test_mcnemar_exact_form_can_be_forced_on_large_counts():
    result = mcnemar_test(*_pairs(86, 150), exact=True)
    assert result.exact
    assert result.p_value == pytest.approx(binomtest(86, 236, 0.5).pvalue, rel=1e-9)
    assert EXACT_DISCORDANT == 25


def test_mcnemar_rejects_arrays_of_different_lengths():
    with pytest.raises(InvalidInputError, match="same length"):
        mcnemar_test([1, 0], [1])


def test_gate_records_mcnemar_and_states_it_when_accuracy_decides():
    rng = np.random.default_rng(5)
    y = (rng.random(2000) < 0.4).astype(float)
    good = np.clip(np.where(y == 1, 0.7, 0.3) + rng.normal(0, 0.2, 2000), 0, 1)
    worse = np.clip(np.where(y == 1, 0.6, 0.4) + rng.normal(0, 0.25, 2000), 0, 1)
    decision = compare_models(y, worse, good, task="binary", policy=GatePolicy(metric="accuracy"))
    truth = y == 1
    expected = mcnemar_test((worse >= 0.5) == truth, (good >= 0.5) == truth)
    assert decision.mcnemar == expected.to_dict()
    assert expected.only_b > expected.only_a and expected.p_value < 1e-6
    assert any(r.startswith("McNemar (chi-square)") for r in decision.reasons)
    by_auc = compare_models(y, worse, good, task="binary")
    assert by_auc.mcnemar == expected.to_dict()
    assert not any("McNemar" in r for r in by_auc.reasons)


def test_bootstrap_auc_with_ties_and_mae_match_sklearn_per_resample():
    rng = np.random.default_rng(3)
    y = (rng.random(1500) < 0.25).astype(float)
    a = np.round(rng.random(1500), 1)  # heavy ties
    b = rng.random(1500)
    got = paired_bootstrap("roc_auc", y, a, b, n_resamples=15, seed=4)
    draws = np.vstack([d for _, d in bootstrap_draws(1500, 15, seed=4)])
    want = [roc_auc_score(y[i], a[i]) - roc_auc_score(y[i], b[i]) for i in draws]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    got_mae = paired_bootstrap("mae", y, a, b, n_resamples=15, seed=4)
    want_mae = [mean_absolute_error(y[i], a[i]) - mean_absolute_error(y[i], b[i]) for i in draws]
    np.testing.assert_allclose(got_mae, want_mae, rtol=1e-9)


def test_bootstrap_auc_of_a_resample_with_one_class_is_nan():
    y = np.array([0.0] * 99 + [1.0])
    a = np.linspace(0, 1, 100)
    got = paired_bootstrap("roc_auc", y, a, a[::-1].copy(), n_resamples=200, seed=0)
    draws = np.vstack([d for _, d in bootstrap_draws(100, 200, seed=0)])
    no_positive = ~(draws == 99).any(axis=1)
    assert no_positive.any()
    assert np.isnan(got[no_positive]).all() and np.isfinite(got[~no_positive]).all()


def test_bootstrap_rejects_a_metric_without_a_weighted_form():
    y = np.array([0.0, 1.0])
    with pytest.raises(InvalidInputError, match="bootstrap metric must be one of"):
        paired_bootstrap("f1", y, y, y, n_resamples=10, seed=0)


@pytest.mark.parametrize("discordant", [EXACT_DISCORDANT - 1, EXACT_DISCORDANT])
def test_mcnemar_switches_to_chi_square_exactly_at_the_documented_count(discordant):
    only_a = discordant // 3
    result = mcnemar_test(*_pairs(only_a, discordant - only_a))
    assert result.exact is (discordant < EXACT_DISCORDANT)
    if result.exact:
        want = binomtest(only_a, discordant, 0.5).pvalue
    else:
        want = chi2.sf((abs(discordant - 2 * only_a) - 1) ** 2 / discordant, 1)
    assert result.p_value == pytest.approx(want, rel=1e-9)


def test_bootstrap_draws_every_row_with_equal_probability():
    """Pooled draws are uniform over all rows, the last one included (chi-square fit)."""
    n = 7
    counts = np.zeros(n)
    for _, draws in bootstrap_draws(n, 6000, seed=11):
        counts += np.bincount(draws.ravel(), minlength=n)
    assert counts.min() > 0
    assert chisquare(counts).pvalue > 1e-4


def test_bootstrap_spread_of_a_mean_difference_matches_its_standard_error():
    """For MAE the bootstrap SD of the difference is the SE of the per-row difference."""
    rng = np.random.default_rng(5)
    n = 400
    y = rng.normal(size=n)
    a = y + rng.normal(scale=0.5, size=n)
    b = y + rng.normal(scale=0.8, size=n)
    diffs = paired_bootstrap("mae", y, a, b, n_resamples=4000, seed=3, workers=1)
    per_row = np.abs(a - y) - np.abs(b - y)
    se = per_row.std(ddof=0) / np.sqrt(n)
    assert np.nanmean(diffs) == pytest.approx(per_row.mean(), abs=0.15 * se)
    assert np.nanstd(diffs) == pytest.approx(se, rel=0.08)
