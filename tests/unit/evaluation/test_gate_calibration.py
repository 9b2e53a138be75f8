"""The gate's decision rule is calibrated: simulated challengers of known true difference are
promoted as often as the documented operating curve says."""

from __future__ import annotations

import pytest

from conveyor.core.errors import InvalidInputError
from conveyor.evaluation.calibration import OperatingPoint, curve_table, operating_curve


@pytest.mark.slow
@pytest.mark.parametrize(("metric", "difference"), [("roc_auc", 0.02), ("rmse", 0.05)])
def test_at_the_defaults_a_better_challenger_is_promoted_and_a_worse_one_refused(
    metric: str, difference: float
) -> None:
    # On 1,000 rows: at least 80% of truly better challengers promoted, at most 5% of truly
    # worse ones; the tolerance covers the simulation's own noise at 80 test sets a point.
    worse, better = operating_curve(metric, [-difference, difference], [1000], n_sim=80, seed=1)
    assert better.accept_rate >= 0.80 - 0.05
    assert worse.accept_rate <= 0.05 + 0.03


def test_the_curve_rises_with_the_true_difference_and_the_rows() -> None:
    points = operating_curve("rmse", [-0.2, 0.2], [200, 2000], n_sim=6, seed=0)
    rates = {(p.true_difference, p.test_rows): p.accept_rate for p in points}
    assert rates == {(-0.2, 200): 0.0, (0.2, 200): 1.0, (-0.2, 2000): 0.0, (0.2, 2000): 1.0}


def test_below_min_rows_only_a_challenger_better_beyond_doubt_passes() -> None:
    worse, equal, better = operating_curve("roc_auc", [-0.02, 0.0, 0.2], [150], n_sim=20)
    assert worse.accept_rate <= 0.1 and equal.accept_rate <= 0.1
    assert better.accept_rate >= 0.8
    (tiny,) = operating_curve("roc_auc", [0.2], [20], n_sim=3)
    assert tiny.accept_rate == 0.0  # under 30 rows two models are not compared at all


def test_the_same_seed_gives_the_same_curve() -> None:
    first = operating_curve("roc_auc", [0.0], [300], n_sim=8, seed=3)
    assert operating_curve("roc_auc", [0.0], [300], n_sim=8, seed=3) == first


def test_the_table_has_a_row_per_difference_and_a_column_per_size() -> None:
    points = [
        OperatingPoint("roc_auc", d, rows, rate, 10)
        for d, rows, rate in [(0.02, 200, 0.4), (-0.02, 200, 0.1), (0.02, 1000, 0.9)]
    ]
    assert curve_table(points).splitlines() == [
        "| true difference (roc_auc) | 200 rows | 1000 rows |",
        "|---:|---:|---:|",
        "| -0.02 | 10% |  |",
        "| +0.02 | 40% | 90% |",
    ]
    assert points[0].standard_error == pytest.approx((0.4 * 0.6 / 10) ** 0.5)
    assert points[0].to_dict()["accept_rate"] == 0.4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "f1"}, "'metric' of operating_curve\\(\\) must be one of"),
        ({"true_differences": []}, "at least one true difference"),
        ({"n_sim": 0}, "'n_sim' of operating_curve\\(\\)"),
        ({"correlation": 1.0}, "'correlation' of operating_curve\\(\\)"),
        ({"true_differences": [0.3]}, "base_auc \\+ each true difference"),
        ({"positive_rate": 0.0}, "'positive_rate'"),
        ({"metric": "rmse", "true_differences": [1.0]}, "share of production's error, below 1"),
    ],
)
def test_bad_settings_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        operating_curve(**kwargs)  # type: ignore[arg-type]
