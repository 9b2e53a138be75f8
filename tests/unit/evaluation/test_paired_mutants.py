"""Paired statistics checked against references that share no code with them.

The resamples are redrawn here straight from numpy's documented streams (block ``k`` uses the
``k``-th child of ``SeedSequence(seed)``), each resample's metric comes from scikit-learn with
the draw counts as sample weights, and McNemar's p-values come from scipy. Nothing below calls
the production resampler or metric code to compute an expected value.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest, chi2
from sklearn.metrics import (
    accuracy_score,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)

from conveyor.core.errors import InvalidInputError
from conveyor.evaluation.paired import (
    CHUNK_CELLS,
    EXACT_DISCORDANT,
    McNemarResult,
    bootstrap_draws,
    mcnemar_test,
    paired_bootstrap,
)


def _reference_draws(n: int, n_resamples: int, seed: int, per_block: int) -> np.ndarray:
    """Rows of every resample: block k of ``per_block`` resamples from the k-th child stream."""
    starts = list(range(0, n_resamples, per_block))
    streams = np.random.SeedSequence(seed).spawn(len(starts))
    blocks = [
        np.random.default_rng(stream).integers(0, n, size=(min(per_block, n_resamples - s), n))
        for s, stream in zip(starts, streams, strict=True)
    ]
    return np.vstack(blocks)


def _log_loss(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    per_row = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    return float(np.sum(w * per_row) / np.sum(w))


def _reference(metric: str, y: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
    if metric == "roc_auc":
        if len(np.unique(y[w > 0])) < 2:
            return math.nan
        return float(roc_auc_score(y, p, sample_weight=w))
    if metric == "accuracy":
        return float(accuracy_score(y, (p >= 0.5).astype(float), sample_weight=w))
    if metric == "log_loss":
        return _log_loss(y, p, w)
    if metric == "brier":
        return float(mean_squared_error(y, p, sample_weight=w))
    if metric == "mae":
        return float(mean_absolute_error(y, p, sample_weight=w))
    if metric == "rmse":
        return float(np.sqrt(mean_squared_error(y, p, sample_weight=w)))
    if metric == "r2":
        return float(r2_score(y, p, sample_weight=w))
    raise AssertionError(metric)


def _expected(
    metric: str, y: np.ndarray, a: np.ndarray, b: np.ndarray, draws: np.ndarray
) -> list[float]:
    n = len(y)
    out = []
    for rows in draws:
        w = np.bincount(rows, minlength=n).astype(float)
        out.append(_reference(metric, y, a, w) - _reference(metric, y, b, w))
    return out


def _binary(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(float)
    a = np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)
    b = np.round(rng.random(n), 1)  # ties, exact 0.0 and 1.0, and exactly 0.5
    return y, a, b


@pytest.mark.parametrize("metric", ["roc_auc", "accuracy", "log_loss", "brier", "mae", "rmse"])
def test_each_binary_metric_matches_scikit_learn_on_every_resample(metric: str) -> None:
    y, a, b = _binary(60, seed=1)
    got = paired_bootstrap(metric, y, a, b, n_resamples=25, seed=7, workers=1)
    draws = _reference_draws(60, 25, seed=7, per_block=25)
    np.testing.assert_allclose(got, _expected(metric, y, a, b, draws), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("metric", ["mae", "rmse", "r2"])
def test_each_regression_metric_matches_scikit_learn_on_every_resample(metric: str) -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(3.0, 2.0, size=40)
    a = y + rng.normal(scale=0.5, size=40)
    b = y + rng.normal(scale=1.5, size=40)
    got = paired_bootstrap(metric, y, a, b, n_resamples=20, seed=3, workers=2)
    draws = _reference_draws(40, 20, seed=3, per_block=20)
    np.testing.assert_allclose(got, _expected(metric, y, a, b, draws), rtol=1e-9, atol=1e-12)


def test_r2_of_a_resample_with_constant_truth_is_nan() -> None:
    y = np.array([1.0] * 9 + [5.0])
    a = y + 0.1
    b = y - 0.2
    got = paired_bootstrap("r2", y, a, b, n_resamples=200, seed=0, workers=1)
    draws = _reference_draws(10, 200, seed=0, per_block=200)
    constant = ~(draws == 9).any(axis=1)
    assert constant.any() and (~constant).any()
    assert np.isnan(got[constant]).all()
    assert np.isfinite(got[~constant]).all()


def test_auc_treats_a_tie_as_half_a_win() -> None:
    # One positive scored like one of two negatives: AUC = (1 + 0.5) / 2 = 0.75 for a,
    # and 0.0 for b which ranks the positive last; every row drawn once on the identity draw.
    y = np.array([0.0, 0.0, 1.0])
    a = np.array([0.2, 0.6, 0.6])
    b = np.array([0.5, 0.9, 0.1])
    got = paired_bootstrap("roc_auc", y, a, b, n_resamples=300, seed=5, workers=1)
    draws = _reference_draws(3, 300, seed=5, per_block=300)
    identity = np.array([sorted(r) == [0, 1, 2] for r in draws])
    assert identity.any()
    np.testing.assert_allclose(got[identity], 0.75)


def test_resamples_spread_over_blocks_follow_the_documented_streams() -> None:
    # 2,000,000 cells per block: with 400,000 rows a block holds 5 resamples, so 12 resamples
    # are blocks of 5, 5 and 2 from three child streams.
    n = CHUNK_CELLS // 5
    starts = [(start, draws.shape) for start, draws in bootstrap_draws(n, 12, seed=9)]
    assert starts == [(0, (5, n)), (5, (5, n)), (10, (2, n))]
    streams = np.random.SeedSequence(9).spawn(3)
    last = [d for _, d in bootstrap_draws(n, 12, seed=9)][-1]
    np.testing.assert_array_equal(last, np.random.default_rng(streams[2]).integers(0, n, (2, n)))


def test_a_multi_block_bootstrap_is_the_same_on_one_thread_and_two() -> None:
    n = CHUNK_CELLS // 4
    rng = np.random.default_rng(4)
    y = rng.normal(size=n)
    a = y + rng.normal(scale=0.1, size=n)
    b = y + rng.normal(scale=0.2, size=n)
    one = paired_bootstrap("mae", y, a, b, n_resamples=9, seed=1, workers=1)
    two = paired_bootstrap("mae", y, a, b, n_resamples=9, seed=1, workers=2)
    draws = _reference_draws(n, 9, seed=1, per_block=4)
    want = [np.mean(np.abs(y[r] - a[r])) - np.mean(np.abs(y[r] - b[r])) for r in draws]
    np.testing.assert_allclose(one, want, rtol=1e-9)
    np.testing.assert_array_equal(one, two)


def test_one_row_draws_that_row_in_every_resample() -> None:
    starts = [(s, d.tolist()) for s, d in bootstrap_draws(1, 3, seed=0)]
    assert starts == [(0, [[0], [0], [0]])]


def test_an_unknown_metric_is_named_in_the_error() -> None:
    y = np.array([0.0, 1.0])
    with pytest.raises(InvalidInputError) as caught:
        paired_bootstrap("f1", y, y, y, n_resamples=10, seed=0)
    assert "Got 'f1' instead" in str(caught.value)
    assert "'roc_auc'" in str(caught.value) and "'r2'" in str(caught.value)


def _pairs(
    only_a: int, only_b: int, both: int = 3, neither: int = 2
) -> tuple[list[bool], list[bool]]:
    a = [True] * only_a + [False] * only_b + [True] * both + [False] * neither
    b = [False] * only_a + [True] * only_b + [True] * both + [False] * neither
    return a, b


@pytest.mark.parametrize(("only_a", "only_b"), [(0, 1), (3, 9), (9, 3), (12, 12), (20, 4)])
def test_exact_mcnemar_matches_scipy_binomtest(only_a: int, only_b: int) -> None:
    result = mcnemar_test(*_pairs(only_a, only_b))
    assert (result.only_a, result.only_b, result.exact) == (only_a, only_b, True)
    assert result.statistic == min(only_a, only_b)
    assert result.p_value == pytest.approx(
        binomtest(only_a, only_a + only_b, 0.5).pvalue, rel=1e-12
    )


@pytest.mark.parametrize(("only_a", "only_b"), [(10, 15), (15, 10), (30, 12), (50, 50)])
def test_chi_square_mcnemar_matches_the_corrected_statistic(only_a: int, only_b: int) -> None:
    result = mcnemar_test(*_pairs(only_a, only_b))
    statistic = (abs(only_a - only_b) - 1) ** 2 / (only_a + only_b)
    assert result.exact is False
    assert result.statistic == pytest.approx(statistic, rel=1e-12)
    assert result.p_value == pytest.approx(chi2.sf(statistic, 1), rel=1e-12)


def test_mcnemar_without_discordant_rows_gives_p_one_in_both_forms() -> None:
    a, b = _pairs(0, 0)
    exact = mcnemar_test(a, b)
    assert (exact.exact, exact.statistic, exact.p_value) == (True, 0.0, 1.0)
    forced = mcnemar_test(a, b, exact=False)
    assert forced == McNemarResult(0, 0, 0.0, 1.0, False)


def test_mcnemar_chi_square_can_be_forced_below_the_switch() -> None:
    result = mcnemar_test(*_pairs(2, 8), exact=False)
    assert result.exact is False
    assert result.p_value == pytest.approx(chi2.sf((6 - 1) ** 2 / 10, 1), rel=1e-12)


def test_mcnemar_switch_is_at_twenty_five_discordant_rows() -> None:
    assert EXACT_DISCORDANT == 25
    assert mcnemar_test(*_pairs(12, 12)).exact is True
    assert mcnemar_test(*_pairs(12, 13)).exact is False


def test_mcnemar_length_error_names_both_lengths() -> None:
    with pytest.raises(InvalidInputError, match="Got 3 and 2 instead"):
        mcnemar_test([True, True, False], [True, False])


def test_mcnemar_accepts_a_column_vector() -> None:
    a = np.array([[True], [True], [False]])
    b = np.array([[False], [True], [True]])
    result = mcnemar_test(a, b)
    assert (result.only_a, result.only_b) == (1, 1)


def test_mcnemar_to_dict_holds_every_field() -> None:
    result = mcnemar_test(*_pairs(2, 0))
    assert result.to_dict() == {
        "only_a": 2,
        "only_b": 0,
        "statistic": 0.0,
        "p_value": 0.5,
        "exact": True,
    }


def test_auc_is_defined_on_a_resample_of_one_positive_and_one_negative() -> None:
    # Two rows: a ranks the positive first (AUC 1), b last (AUC 0). A resample drawing each row
    # once has exactly one positive-negative pair, so the difference is 1; a resample drawing
    # one row twice has one class only and no AUC.
    y = np.array([0.0, 1.0])
    got = paired_bootstrap(
        "roc_auc", y, np.array([0.2, 0.8]), np.array([0.8, 0.2]), n_resamples=40, seed=2
    )
    draws = _reference_draws(2, 40, seed=2, per_block=40)
    both = draws[:, 0] != draws[:, 1]
    assert both.any() and (~both).any()
    np.testing.assert_array_equal(got[both], 1.0)
    assert np.isnan(got[~both]).all()


def test_r2_of_a_nearly_constant_truth_is_nan_not_a_rounding_artefact() -> None:
    # 3.3 is not exact in binary: the weighted sum of squares around the mean of a constant
    # column is a rounding residue, not a spread, and R² stays undefined.
    y = np.full(30, 3.3)
    a = y + 0.01
    got = paired_bootstrap("r2", y, a, y - 0.02, n_resamples=50, seed=1, workers=1)
    assert np.isnan(got).all()


def test_a_row_count_above_the_block_size_gives_one_resample_per_block() -> None:
    n = CHUNK_CELLS + 1
    assert [(s, d.shape) for s, d in bootstrap_draws(n, 2, seed=0)] == [(0, (1, n)), (1, (1, n))]


def test_one_row_fits_the_whole_block_size_in_one_block() -> None:
    shapes = [(s, d.shape) for s, d in bootstrap_draws(1, CHUNK_CELLS // 2 + 1, seed=0)]
    assert shapes == [(0, (CHUNK_CELLS // 2 + 1, 1))]


def test_mcnemar_reads_float_correctness_as_booleans() -> None:
    result = mcnemar_test(np.array([1.0, 1.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0, 0.0]))
    assert (result.only_a, result.only_b) == (2, 1)


def test_mcnemar_flattens_a_column_against_a_flat_vector() -> None:
    column = np.array([[True], [True], [False]])
    flat = np.array([False, True, True])
    assert (mcnemar_test(column, flat).only_a, mcnemar_test(column, flat).only_b) == (1, 1)
    assert (mcnemar_test(flat, column).only_a, mcnemar_test(flat, column).only_b) == (1, 1)
