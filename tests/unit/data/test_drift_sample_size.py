"""Drift judged with the sampling noise in mind: few rows, multiple tests, effect floors,
the spread between past windows, and seasonal features.

Windows drawn from the reference's own distribution must flag (almost) nothing whatever
their size, while a real shift of half a standard deviation on 500 rows is still found.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from conveyor.core.entities import BatchStatus, DatasetVersion, DatasetVersionId
from conveyor.data import infer_schema, profile_frame
from conveyor.data.drift import compute_drift, compute_drift_frames, drift_share, psi_pvalue
from conveyor.data.drift_history import batch_drift, reference_spread, same_season
from conveyor.spec import DriftSpec

NUMERIC = [f"x{i}" for i in range(10)]
SEEDS = range(20)


def _frame(rng: np.random.Generator, rows: int, *, shift: float = 0.0) -> pd.DataFrame:
    """Ten numeric features and two categorical ones; ``shift`` moves x0's mean (in sds)."""
    data: dict[str, object] = {name: rng.normal(size=rows) for name in NUMERIC}
    data["x0"] = rng.normal(loc=shift, size=rows)
    data["x1"] = rng.gamma(2.0, 3.0, rows)
    data["c0"] = rng.choice(["a", "b", "c", "d"], rows, p=[0.4, 0.3, 0.2, 0.1])
    data["c1"] = rng.choice(["yes", "no"], rows)
    data["y"] = rng.integers(0, 2, rows)
    return pd.DataFrame(data)


SCHEMA = infer_schema(_frame(np.random.default_rng(0), 50), label="y")


def _profile_drift(
    seed: int, rows: int, spec: DriftSpec, *, shift: float = 0.0
) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    reference = profile_frame(_frame(rng, 5000), SCHEMA)
    current = profile_frame(_frame(rng, rows, shift=shift), SCHEMA, reference=reference)
    return compute_drift(reference, current, spec=spec)


@pytest.mark.parametrize("rows", [30, 100])
def test_windows_of_unchanged_data_flag_almost_no_feature(rows: int) -> None:
    # judged even at 30 rows (min_rows=1): significance alone must hold the noise back
    spec = DriftSpec(min_rows=1)
    flagged = 0
    for seed in SEEDS:
        summary = _profile_drift(seed, rows, spec)["summary"]
        assert summary["evaluated"] == 12 and summary["share_drifted"] <= 0.1, (seed, summary)
        flagged += len(summary["drifted_features"])
    assert flagged / (12 * len(SEEDS)) <= spec.alpha


@pytest.mark.parametrize("rows", [30, 100])
def test_frames_of_unchanged_data_flag_almost_no_feature(rows: int) -> None:
    spec = DriftSpec(min_rows=1, decide_by=["psi", "ks", "chi2", "js", "wasserstein", "linf"])
    shares = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        drift = compute_drift_frames(_frame(rng, 5000), _frame(rng, rows), schema=SCHEMA, spec=spec)
        shares.append(drift["summary"]["share_drifted"])
    assert max(shares) <= 0.1 and float(np.mean(shares)) <= spec.alpha


def test_a_half_sd_shift_on_500_rows_is_flagged() -> None:
    found = [
        "x0" in _profile_drift(seed, 500, DriftSpec(), shift=0.5)["summary"]["drifted_features"]
        for seed in SEEDS
    ]
    assert sum(found) >= 0.7 * len(SEEDS)


def test_a_large_shift_on_100_rows_is_flagged_and_nothing_else() -> None:
    drift = _profile_drift(3, 100, DriftSpec(), shift=1.5)
    assert drift["summary"]["drifted_features"] == ["x0"]
    x0 = drift["features"]["x0"]
    assert x0["flags"]["psi"] and x0["psi_pvalue_adjusted"] < 0.05 and x0["psi"] > 0.2


def test_fewer_rows_than_min_rows_are_reported_insufficient_not_drifted() -> None:
    drift = _profile_drift(1, 30, DriftSpec(min_rows=100), shift=3.0)
    summary = drift["summary"]
    assert summary["insufficient"] == [*NUMERIC, "c0", "c1"]
    assert summary["evaluated"] == 0 and summary["drifted_features"] == []
    assert summary["share_drifted"] == 0.0 and summary["min_rows"] == 100
    x0 = drift["features"]["x0"]
    assert x0["insufficient"] is True and x0["drifted"] is False and x0["psi"] > 1.0
    assert "30 in the current data, 100 needed" in x0["reason"]
    assert drift_share(drift) is None


def test_a_significant_change_under_the_effect_floor_is_not_drifted() -> None:
    rng = np.random.default_rng(5)
    reference, current = _frame(rng, 50_000), _frame(rng, 50_000, shift=0.15)
    drift = compute_drift_frames(reference, current, schema=SCHEMA)
    x0 = drift["features"]["x0"]
    assert x0["psi_pvalue_adjusted"] < 1e-6 and x0["psi"] < 0.2
    assert x0["drifted"] is False
    floored = compute_drift_frames(
        reference, current, schema=SCHEMA, spec=DriftSpec(decide_by=["ks"], thresholds={"ks": 0.1})
    )
    assert floored["features"]["x0"]["ks_pvalue_adjusted"] < 1e-6
    assert floored["features"]["x0"]["drifted"] is False  # KS distance ~0.06 < its floor


def test_psi_pvalue_is_uniform_under_no_change_and_matches_the_chi2_null() -> None:
    rng = np.random.default_rng(11)
    shares = np.full(10, 0.1)
    pvalues = [
        psi_pvalue(rng.multinomial(400, shares), rng.multinomial(400, shares)) for _ in range(600)
    ]
    rejected = float(np.mean(np.asarray(pvalues) < 0.05))
    assert 0.02 <= rejected <= 0.08
    # smoothed PSI of [60, 40] vs [40, 60] times n m / (n + m) against chi2 with 1 dof
    p, q = np.array([60.5, 40.5]) / 101, np.array([40.5, 60.5]) / 101
    want = stats.chi2.sf(float(np.sum((q - p) * np.log(q / p))) / (2 / 100), 1)
    assert psi_pvalue([60, 40], [40, 60]) == pytest.approx(want, rel=1e-12)
    assert psi_pvalue([5, 0], [3, 0]) == 1.0


def test_seasonal_features_are_judged_and_reported_but_left_out_of_the_share() -> None:
    rng = np.random.default_rng(2)
    reference = _frame(rng, 3000)
    current = _frame(rng, 3000).assign(x0=lambda f: f["x0"] + 2.0)  # the season moves x0
    plain = compute_drift_frames(reference, current, schema=SCHEMA)
    seasonal = compute_drift_frames(
        reference, current, schema=SCHEMA, spec=DriftSpec(seasonal=["x0"])
    )
    assert plain["summary"]["share_drifted"] == pytest.approx(1 / 12)
    assert seasonal["summary"]["drifted_features"] == ["x0"]
    assert seasonal["features"]["x0"]["drifted"] is True
    assert seasonal["summary"]["seasonal"] == ["x0"]
    assert seasonal["summary"]["share_drifted"] == 0.0


def _version(seq: int, start: datetime, profile: dict[str, object]) -> DatasetVersion:
    return DatasetVersion(
        id=DatasetVersionId(f"ds_{seq}"),
        project="p",
        seq=seq,
        status=BatchStatus.ACCEPTED,
        digest=f"d{seq}",
        row_count=1000,
        schema_version=1,
        source="test",
        created_at=start,
        min_time=start,
        max_time=start + timedelta(days=6, hours=23),
        profile=profile,
    )


def test_same_season_picks_the_batch_a_period_earlier() -> None:
    start = datetime(2011, 1, 3, tzinfo=UTC)
    weeks = [_version(i + 1, start + timedelta(weeks=i), {"columns": {}}) for i in range(60)]
    now = datetime(2012, 3, 14, tzinfo=UTC)  # a Wednesday; the week of 2011-03-14 a year ago
    span = (now, now + timedelta(days=6))
    assert same_season(weeks, span, "year").min_time == datetime(2011, 3, 14, tzinfo=UTC)
    midweek = datetime(2011, 6, 15, tzinfo=UTC)  # a week earlier is mostly the week of 06-06
    in_june = (midweek, midweek + timedelta(days=6))
    assert same_season(weeks, in_june, "week").min_time == datetime(2011, 6, 6, tzinfo=UTC)
    assert same_season(weeks, in_june, "day").min_time == datetime(2011, 6, 13, tzinfo=UTC)
    assert same_season(weeks, span, "none") is None
    assert same_season(weeks, (None, None), "year") is None
    assert same_season(weeks[:5], span, "year") is None  # the history does not reach back


def test_batch_drift_compares_with_the_same_season_and_falls_back_to_previous() -> None:
    rng = np.random.default_rng(4)
    start = datetime(2011, 1, 3, tzinfo=UTC)
    summer = [7, 8, 9]  # x0 is high in these weeks every year

    def week(i: int) -> dict[str, object]:
        shift = 2.0 if i % 52 in summer else 0.0
        return profile_frame(_frame(rng, 800, shift=shift), SCHEMA, reference=first)

    first = profile_frame(_frame(rng, 800), SCHEMA)
    history = [_version(1, start, first)]
    history += [_version(i + 1, start + timedelta(weeks=i), week(i)) for i in range(1, 59)]
    now = start + timedelta(weeks=52 + 8)
    span = (now, now + timedelta(days=6, hours=23))
    current = week(52 + 8)
    by_season = batch_drift(current, history, DriftSpec(season="year"), span=span)
    assert by_season is not None and by_season["against"] == "season"
    assert by_season["seq"] == 9  # week 8 of the year before
    assert by_season["summary"]["drifted_features"] == []
    previous = batch_drift(current, history, DriftSpec(spread_windows=0), span=span)
    assert previous is not None and (previous["against"], previous["seq"]) == ("previous", 59)
    assert previous["summary"]["drifted_features"] == ["x0"]


def test_a_change_within_the_spread_between_past_batches_is_not_drifted() -> None:
    rng = np.random.default_rng(8)
    start = datetime(2011, 1, 3, tzinfo=UTC)
    shifts = [0.0, 0.8, 0.0, 0.8, 0.0, 0.8, 0.0]  # x0 swings every other week

    first = profile_frame(_frame(rng, 2000), SCHEMA)
    profiles = [first] + [
        profile_frame(_frame(rng, 2000, shift=s), SCHEMA, reference=first) for s in shifts[1:]
    ]
    history = [_version(i + 1, start + timedelta(weeks=i), p) for i, p in enumerate(profiles)]
    spread = reference_spread(profiles, DriftSpec())
    assert spread["x0"]["psi"] > 0.5 > spread["x2"]["psi"]
    swing = profile_frame(_frame(rng, 2000, shift=0.8), SCHEMA, reference=first)
    judged = batch_drift(swing, history, DriftSpec())
    assert judged is not None and judged["spread_windows"] == 6
    assert judged["features"]["x0"]["yardstick"]["psi"] == spread["x0"]["psi"]
    assert judged["summary"]["drifted_features"] == []
    assert judged["summary"]["yardstick"] is True
    blind = batch_drift(swing, history, DriftSpec(spread_windows=0))
    assert blind is not None and blind["summary"]["drifted_features"] == ["x0"]
    beyond = profile_frame(_frame(rng, 2000, shift=3.0), SCHEMA, reference=first)
    far = batch_drift(beyond, history, DriftSpec())
    assert far is not None and far["summary"]["drifted_features"] == ["x0"]


_COUNTS = st.lists(st.integers(0, 500), min_size=2, max_size=12)


@settings(max_examples=60, deadline=None)
@given(_COUNTS, st.data())
def test_psi_pvalue_is_a_symmetric_probability_and_one_for_equal_samples(
    first: list[int], data: st.DataObject
) -> None:
    second = data.draw(st.lists(st.integers(0, 500), min_size=len(first), max_size=len(first)))
    if sum(first) == 0 or sum(second) == 0:
        return
    p = psi_pvalue(first, second)
    assert 0.0 <= p <= 1.0
    assert p == pytest.approx(psi_pvalue(second, first), abs=1e-12)
    assert psi_pvalue(first, first) == pytest.approx(1.0)
