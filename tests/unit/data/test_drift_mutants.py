"""Drift statistics at their edges, with expected values worked by hand or taken from SciPy.

Each case pins one thing a silent change would move: the PSI floor of an empty bin, the base of
the Jensen-Shannon logarithm, the sample size where KS switches from SciPy's exact p-value to
the asymptotic one, Bonferroni's cap at 1, Benjamini-Hochberg's monotone step, and the messages
that name the bad input.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from conveyor.core.errors import InvalidInputError
from conveyor.data.drift import (
    KS_EXACT_MAX_N,
    adjust_pvalues,
    chi2_test,
    jensen_shannon,
    ks_2samp,
    linf,
    psi,
    wasserstein,
)


def test_psi_of_two_bins_worked_by_hand() -> None:
    # shares 0.5/0.5 and 0.4/0.6: (0.4-0.5) ln(0.4/0.5) + (0.6-0.5) ln(0.6/0.5)
    want = -0.1 * math.log(0.8) + 0.1 * math.log(1.2)
    assert psi([50, 50], [40, 60]) == pytest.approx(want, rel=1e-12)


def test_psi_floors_an_empty_bin_at_the_default_epsilon() -> None:
    # shares [1, 0] vs [0, 1] floored to 1e-4: 2 * (1 - 1e-4) * ln(1e4)
    want = 2 * (1 - 1e-4) * math.log(1e4)
    assert psi([10, 0], [0, 10]) == pytest.approx(want, rel=1e-12)


def test_psi_uses_the_given_epsilon() -> None:
    want = 2 * (1 - 1e-2) * math.log(1e2)
    assert psi([3, 0], [0, 7], eps=1e-2) == pytest.approx(want, rel=1e-12)


def test_psi_is_zero_for_equal_shares_and_symmetric() -> None:
    assert psi([1, 2, 3], [2, 4, 6]) == 0.0
    assert psi([5, 1], [1, 5]) == pytest.approx(psi([1, 5], [5, 1]), rel=1e-12)


@pytest.mark.parametrize("eps", [0.0, -1e-4, float("nan")])
def test_psi_refuses_a_non_positive_epsilon(eps: float) -> None:
    with pytest.raises(InvalidInputError, match=r"'eps' parameter of psi\(\) must be > 0"):
        psi([1, 1], [1, 1], eps=eps)


@pytest.mark.parametrize(
    ("first", "second", "words"),
    [
        ([1, 2], [1, 2, 3], "same length. Got shapes (2,) and (3,)"),
        ([], [], "non-empty"),
        ([[1, 2]], [[1, 2]], "1-D"),
        ([1, -1], [1, 1], "finite non-negative counts. Got [1.0, -1.0]"),
        ([1, 1], [1, float("inf")], "finite non-negative counts"),
        ([0, 0], [1, 1], "positive total. Got [0.0, 0.0]"),
        ([1, 1], [0, 0], "positive total. Got [0.0, 0.0]"),
        ([1, 1], [2, -2], "finite non-negative counts. Got [2.0, -2.0]"),
    ],
)
def test_count_vectors_are_checked_and_the_function_named(
    first: list[float], second: list[float], words: str
) -> None:
    for func in (psi, jensen_shannon, linf, chi2_test):
        with pytest.raises(InvalidInputError) as caught:
            func(first, second)
        assert f"{func.__name__}()" in str(caught.value)
        assert words in str(caught.value)


@pytest.mark.parametrize(
    ("p", "q"), [([1, 0], [0, 1]), ([3, 1], [1, 3]), ([5, 0, 5], [0, 5, 5]), ([1, 2, 3], [3, 2, 1])]
)
def test_jensen_shannon_is_scipys_squared_distance_in_base_two(p: list[int], q: list[int]) -> None:
    want = jensenshannon(p, q, base=2) ** 2
    assert jensen_shannon(p, q) == pytest.approx(want, rel=1e-9, abs=1e-15)


def test_jensen_shannon_of_one_shared_bin_worked_by_hand() -> None:
    # p = [1, 0], q = [0.5, 0.5], m = [0.75, 0.25]:
    # KL(p||m) = log2(4/3); KL(q||m) = 0.5 log2(2/3) + 0.5 log2(2)
    want = 0.5 * math.log2(4 / 3) + 0.5 * (0.5 * math.log2(2 / 3) + 0.5)
    assert jensen_shannon([2, 0], [1, 1]) == pytest.approx(want, rel=1e-12)


def test_linf_is_the_largest_share_gap() -> None:
    assert linf([1, 1, 2], [2, 1, 1]) == pytest.approx(0.25, rel=1e-12)
    assert linf([1, 0], [0, 1]) == 1.0


@pytest.mark.parametrize("n", [KS_EXACT_MAX_N, KS_EXACT_MAX_N + 1])
def test_ks_switches_to_the_asymptotic_pvalue_above_the_exact_limit(n: int) -> None:
    assert KS_EXACT_MAX_N == 10_000
    rng = np.random.default_rng(n)
    a = np.round(rng.normal(size=n), 2)
    b = np.round(rng.normal(0.05, size=n - 30), 2)
    method = "exact" if n <= KS_EXACT_MAX_N else "asymp"
    want = stats.ks_2samp(a, b, method=method)
    stat, p = ks_2samp(a, b)
    assert stat == pytest.approx(want.statistic, rel=1e-12)
    assert p == pytest.approx(want.pvalue, rel=1e-6)


@pytest.mark.parametrize(("n1", "n2"), [(12_000, 300), (300, 12_000)])
def test_ks_on_unequal_large_samples_matches_scipy_asymptotics(n1: int, n2: int) -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=n1)
    b = rng.normal(0.1, 1.2, size=n2)
    want = stats.ks_2samp(a, b, method="asymp")
    stat, p = ks_2samp(a, b)
    assert stat == pytest.approx(want.statistic, rel=1e-12)
    assert p == pytest.approx(want.pvalue, rel=1e-9)


def test_ks_of_disjoint_large_samples_is_one_either_way_round() -> None:
    low = np.arange(11_000, dtype=float)
    high = low + 20_000
    assert ks_2samp(low, high)[0] == pytest.approx(1.0, rel=1e-12)
    assert ks_2samp(high, low)[0] == pytest.approx(1.0, rel=1e-12)
    assert wasserstein(low, high) == pytest.approx(20_000.0, rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wasserstein_matches_scipy_with_ties_and_unequal_sizes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 6, size=37).astype(float)
    b = rng.integers(1, 9, size=23).astype(float)
    assert wasserstein(a, b) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-12)
    assert wasserstein(b, a) == pytest.approx(stats.wasserstein_distance(b, a), rel=1e-12)


def test_wasserstein_of_a_shift_worked_by_hand() -> None:
    assert wasserstein([0.0, 1.0, 3.0], [5.0, 6.0, 8.0]) == 5.0
    assert wasserstein([1.0], [1.0, 1.0, 4.0]) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize(
    ("values", "side", "words"),
    [([], "reference", "reference sample is empty"), ([1.0, float("nan")], "reference", "NaN")],
)
def test_two_sample_inputs_are_checked_naming_the_side(
    values: list[float], side: str, words: str
) -> None:
    for func in (ks_2samp, wasserstein):
        with pytest.raises(InvalidInputError, match=f"The {side} sample"):
            func(values, [1.0, 2.0])
        with pytest.raises(InvalidInputError, match=words):
            func(values, [1.0, 2.0])
        with pytest.raises(InvalidInputError, match="The current sample"):
            func([1.0, 2.0], values)


@pytest.mark.parametrize(
    ("ref", "cur"),
    [
        ([30, 10], [10, 30]),
        ([5, 0, 7, 3], [2, 0, 9, 9]),
        ([8, 2, 0], [1, 1, 0]),
        ([1, 4, 5], [0, 6, 2]),
    ],
)
def test_chi2_matches_scipy_after_dropping_bins_empty_on_both_sides(
    ref: list[int], cur: list[int]
) -> None:
    table = np.array([ref, cur], dtype=float)
    table = table[:, table.sum(axis=0) > 0]
    want = stats.chi2_contingency(table)
    stat, p, dof = chi2_test(ref, cur)
    assert (stat, p, dof) == (
        pytest.approx(want.statistic, rel=1e-12),
        pytest.approx(want.pvalue, rel=1e-12),
        want.dof,
    )


def test_chi2_of_one_non_empty_bin_cannot_differ() -> None:
    assert chi2_test([4, 0], [9, 0]) == (0.0, 1.0, 0)


def test_bonferroni_multiplies_by_the_count_and_caps_at_one() -> None:
    got = adjust_pvalues([0.01, 0.3, 0.5], "bonferroni")
    np.testing.assert_allclose(got, [0.03, 0.9, 1.0], rtol=1e-12)


def test_benjamini_hochberg_worked_by_hand() -> None:
    # sorted 0.01, 0.02, 0.03, 0.5 -> p * 4 / rank = 0.04, 0.04, 0.04, 0.5 (already monotone)
    got = adjust_pvalues([0.5, 0.03, 0.01, 0.02], "bh")
    np.testing.assert_allclose(got, [0.5, 0.04, 0.04, 0.04], rtol=1e-12)
    # the step-up takes the minimum from the right: 0.04*2/1=0.08 > 0.05*2/2=0.05
    np.testing.assert_allclose(adjust_pvalues([0.04, 0.05], "bh"), [0.05, 0.05], rtol=1e-12)
    np.testing.assert_allclose(adjust_pvalues([0.9, 0.8], "bh"), [0.9, 0.9], rtol=1e-12)
    np.testing.assert_allclose(
        adjust_pvalues([0.04, 0.05, 0.7, 0.001], "bh"),
        stats.false_discovery_control([0.04, 0.05, 0.7, 0.001]),
        rtol=1e-12,
    )


def test_bh_caps_at_one_and_none_returns_a_copy() -> None:
    np.testing.assert_allclose(adjust_pvalues([1.0, 1.0], "bh"), [1.0, 1.0])
    raw = np.array([0.2, 0.01])
    kept = adjust_pvalues(raw, "none")
    np.testing.assert_array_equal(kept, raw)
    kept[0] = 0.9
    assert raw[0] == 0.2
    assert adjust_pvalues([], "bh").size == 0


@pytest.mark.parametrize("bad", [[-0.1], [1.1], [float("nan")]])
def test_adjust_pvalues_names_values_outside_the_unit_interval(bad: list[float]) -> None:
    with pytest.raises(InvalidInputError, match=r"p-values must be in \[0, 1\]"):
        adjust_pvalues([0.5, *bad])


def test_adjust_pvalues_names_an_unknown_method() -> None:
    with pytest.raises(InvalidInputError, match="'bh', 'bonferroni' or 'none'. Got 'holm'"):
        adjust_pvalues([0.5], "holm")  # type: ignore[arg-type]


def test_benjamini_hochberg_is_the_default_adjustment() -> None:
    np.testing.assert_allclose(adjust_pvalues([0.01, 0.04, 0.03]), [0.03, 0.04, 0.04], rtol=1e-12)


def test_integer_p_values_out_of_range_are_shown_as_floats() -> None:
    with pytest.raises(InvalidInputError, match=r"Got \[0.0, 2.0\] instead"):
        adjust_pvalues([0, 2])
