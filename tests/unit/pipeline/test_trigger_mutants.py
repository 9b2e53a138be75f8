"""The trigger policy at its boundaries, with the whole evidence each trigger records.

A cycle's evidence is what an operator reads to learn why training ran, so it is compared as a
whole dict written out by hand; the thresholds are probed exactly at, just under and just over
their values.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conveyor.pipeline.triggers import (
    Decision,
    Signals,
    Trigger,
    Window,
    decide,
    schedule_ticks,
    window_metric,
)
from conveyor.spec import TriggerSpec

T0 = datetime(2024, 3, 4, 12, 0, tzinfo=UTC)


def _policy(**kw: object) -> TriggerSpec:
    base = {"new_data_rows": None, "drift_share": None}
    return TriggerSpec.model_validate({**base, **kw})


def _signals(**kw: object) -> Signals:
    base: dict[str, object] = {"now": T0, "has_model": True}
    return Signals(**{**base, **kw})  # type: ignore[arg-type]


def _hourly(**kw: list[object]) -> tuple[Window, ...]:
    """Hourly windows ending at T0, one per list element of each given field."""
    n = len(next(iter(kw.values())))
    return tuple(
        Window(end=T0 - timedelta(hours=n - 1 - i), **{k: v[i] for k, v in kw.items()})  # type: ignore[arg-type]
        for i in range(n)
    )


def test_decay_records_its_whole_evidence() -> None:
    windows = _hourly(live=[0.9, 0.74, 0.73], labels=[500, 500, 500], report=["r1", None, "r3"])
    policy = _policy(metric_floor=0.70, metric_margin=0.05, consecutive_windows=2)
    fired = decide(policy, _signals(windows=windows, training_score=0.80))
    assert fired == Decision(
        fired=(
            Trigger(
                "decay",
                {
                    "live_metric": 0.73,
                    "source": "realised",
                    "metric": "roc_auc",
                    "bar": pytest.approx(0.75),
                    "floor": 0.70,
                    "training_score": 0.80,
                    "margin": 0.05,
                    "margin_kind": "points",
                    "windows": 2,
                    "reports": ["r3"],
                },
            ),
        )
    )


def test_drift_records_its_whole_evidence() -> None:
    windows = _hourly(drift_share=[0.1, 0.5, 0.6], report=["a", "b", None])
    fired = decide(_policy(drift_share=0.4, consecutive_windows=2), _signals(windows=windows))
    assert fired.fired == (
        Trigger(
            "drift",
            {"share_drifted": [0.5, 0.6], "threshold": 0.4, "windows": 2, "reports": ["b"]},
        ),
    )


def test_new_data_records_rows_batches_and_both_thresholds() -> None:
    policy = _policy(new_data_rows=100, new_data_batches=5)
    fired = decide(policy, _signals(new_rows=150, new_batches=(7, 8)))
    assert fired.fired == (
        Trigger(
            "new_data",
            {"rows": 150, "batches": [7, 8], "threshold_rows": 100, "threshold_batches": 5},
        ),
    )


def test_bootstrap_records_batches_and_rows_and_comes_after_manual() -> None:
    fired = decide(
        _policy(), _signals(has_model=False, new_batches=(1, 2, 3), new_rows=42, manual=True)
    )
    assert fired.fired == (Trigger("manual"), Trigger("bootstrap", {"batches": 3, "rows": 42}))
    assert fired.name == "manual,bootstrap"
    assert decide(_policy(), _signals()).name == "none"


def test_no_bootstrap_without_new_batches_or_with_a_model() -> None:
    assert decide(_policy(), _signals(has_model=False)).fired == ()
    assert decide(_policy(), _signals(new_batches=(1,), new_rows=5)).fired == ()


def test_without_a_model_neither_drift_nor_decay_nor_new_data_fires() -> None:
    windows = _hourly(drift_share=[0.9], live=[0.1], labels=[1000])
    policy = _policy(drift_share=0.3, metric_floor=0.7, new_data_rows=1)
    fired = decide(policy, _signals(has_model=False, windows=windows, new_rows=10))
    assert fired.fired == ()


def test_drift_fires_at_exactly_the_threshold_share() -> None:
    policy = _policy(drift_share=0.3)
    assert decide(policy, _signals(windows=_hourly(drift_share=[0.3]))).name == "drift"
    assert decide(policy, _signals(windows=_hourly(drift_share=[0.2999]))).name == "none"
    assert decide(policy, _signals(windows=_hourly(drift_share=[None]))).name == "none"


@pytest.mark.parametrize(
    ("metric", "live", "fires"),
    [
        ("roc_auc", 0.7, False),
        ("roc_auc", 0.6999, True),
        ("rmse", 10.0, False),
        ("rmse", 10.001, True),
    ],
)
def test_decay_at_exactly_the_bar_does_not_fire(metric: str, live: float, fires: bool) -> None:
    floor = 0.7 if metric == "roc_auc" else 10.0
    windows = _hourly(live=[live], labels=[1000])
    fired = decide(_policy(metric_floor=floor), _signals(metric=metric, windows=windows))
    assert (fired.name == "decay") is fires


def test_decay_by_margin_alone_on_a_lower_is_better_metric() -> None:
    # The margin of an error metric is relative: 20% over the test RMSE 10.0.
    policy = _policy(metric_margin=0.2)
    windows = _hourly(live=[12.5], labels=[1000])
    fired = decide(policy, _signals(metric="rmse", windows=windows, training_score=10.0))
    assert fired.fired[0].evidence["bar"] == 12.0
    calm = _hourly(live=[11.5], labels=[1000])
    assert decide(policy, _signals(metric="rmse", windows=calm, training_score=10.0)).name == "none"


def test_a_margin_without_a_training_score_sets_no_bar() -> None:
    windows = _hourly(live=[0.1], labels=[1000])
    assert decide(_policy(metric_margin=0.01), _signals(windows=windows)).name == "none"


def test_a_window_without_any_metric_breaks_the_decay_streak() -> None:
    windows = _hourly(live=[0.5, None, 0.5], labels=[1000, 0, 1000])
    policy = _policy(metric_floor=0.7, consecutive_windows=2, use_estimate=False)
    assert decide(policy, _signals(windows=windows[:2])).name == "none"
    assert decide(policy, _signals(windows=windows)).name == "none"


def test_window_metric_prefers_labels_at_exactly_min_labels() -> None:
    policy = _policy(min_labels=200)
    assert window_metric(policy, Window(end=T0, live=0.8, labels=200, estimated=0.6)) == (
        0.8,
        "realised",
    )
    assert window_metric(policy, Window(end=T0, live=0.8, labels=199, estimated=0.6)) == (
        0.6,
        "estimated",
    )
    assert window_metric(policy, Window(end=T0, live=0.8, labels=199)) == (None, "none")
    assert window_metric(policy, Window(end=T0, labels=500, estimated=0.6)) == (0.6, "estimated")


def test_the_streak_is_the_last_k_windows_and_debounce_counts_from_its_first() -> None:
    # Drifted in windows ending T0-3h .. T0; k = 2, debounce 180 minutes from T0-3h: fires at T0.
    windows = _hourly(drift_share=[0.1, 0.5, 0.5, 0.5, 0.5])
    policy = _policy(drift_share=0.3, consecutive_windows=2, debounce_minutes=180)
    fired = decide(policy, _signals(windows=windows))
    assert fired.fired[0].evidence["share_drifted"] == [0.5, 0.5]
    late = _policy(drift_share=0.3, consecutive_windows=2, debounce_minutes=181)
    assert decide(late, _signals(windows=windows)).name == "none"


def test_a_streak_from_the_first_window_debounces_from_that_window() -> None:
    windows = _hourly(drift_share=[0.5, 0.5])
    policy = _policy(drift_share=0.3, debounce_minutes=60)
    assert decide(policy, _signals(windows=windows)).name == "drift"
    stricter = _policy(drift_share=0.3, debounce_minutes=61)
    assert decide(stricter, _signals(windows=windows)).name == "none"


def test_fewer_windows_than_k_never_fire() -> None:
    policy = _policy(drift_share=0.3, consecutive_windows=3)
    assert decide(policy, _signals(windows=_hourly(drift_share=[0.9, 0.9]))).name == "none"
    assert decide(policy, _signals(windows=_hourly(drift_share=[0.9, 0.9, 0.9]))).name == "drift"


def test_cooldown_ends_exactly_at_its_hour_and_names_the_time() -> None:
    trained = (T0 - timedelta(hours=2),)
    busy = dict(new_rows=500, new_batches=(4,), trained_at=trained)
    done = decide(_policy(new_data_rows=100, cooldown_hours=2), _signals(**busy))
    assert done.name == "new_data" and done.held == () and done.held_because is None
    held = decide(_policy(new_data_rows=100, cooldown_hours=2.5), _signals(**busy))
    assert held.name == "none"
    assert held.held == (
        Trigger(
            "new_data",
            {"rows": 500, "batches": [4], "threshold_rows": 100, "threshold_batches": None},
        ),
    )
    assert held.held_because == "cooling down until 2024-03-04T12:30:00+00:00"


def test_the_daily_cap_counts_trainings_strictly_within_24_hours() -> None:
    day_ago = (T0 - timedelta(hours=24), T0 - timedelta(hours=3))
    busy = dict(new_rows=500, new_batches=(4,))
    capped = _policy(new_data_rows=100, max_runs_per_day=2)
    assert decide(capped, _signals(trained_at=day_ago, **busy)).name == "new_data"
    inside = (T0 - timedelta(hours=23, minutes=59), T0 - timedelta(hours=3))
    held = decide(capped, _signals(trained_at=inside, **busy))
    assert held.held_because == "2 training cycles in the last 24 hours (max 2)"


def test_manual_is_never_held_and_held_triggers_are_listed() -> None:
    trained = (T0 - timedelta(minutes=5),)
    signals = _signals(manual=True, new_rows=500, new_batches=(4,), trained_at=trained)
    held = decide(_policy(new_data_rows=100, cooldown_hours=1), signals)
    assert held.fired == (Trigger("manual"),)
    assert [t.name for t in held.held] == ["new_data"]


@pytest.mark.parametrize(("hours", "count"), [(23.99, 0), (24.0, 1), (71.9, 2), (72.0, 3)])
def test_interval_ticks_count_whole_periods(hours: float, count: int) -> None:
    policy = _policy(schedule_every_hours=24)
    after = T0 - timedelta(hours=hours)
    tick, n = schedule_ticks(policy, after, T0)
    assert n == count
    assert tick == (None if count == 0 else after + timedelta(hours=24 * count))


def test_a_cron_tick_exactly_now_is_due_and_the_evidence_names_the_interval() -> None:
    policy = _policy(schedule_cron="0 12 * * *")
    tick, n = schedule_ticks(policy, T0 - timedelta(days=1), T0)
    assert (tick, n) == (T0, 1)
    assert schedule_ticks(policy, T0 - timedelta(days=1), T0 - timedelta(seconds=1)) == (None, 0)
    every = _policy(schedule_every_hours=6)
    fired = decide(every, _signals(schedule_after=T0 - timedelta(hours=13)))
    assert fired.fired == (
        Trigger(
            "schedule",
            {
                "tick": (T0 - timedelta(hours=1)).isoformat(),
                "missed": 1,
                "cron": None,
                "every_hours": 6.0,
            },
        ),
    )


def test_no_schedule_means_no_ticks() -> None:
    assert schedule_ticks(_policy(), T0 - timedelta(days=9), T0) == (None, 0)


def test_new_data_needs_a_model_and_new_batches() -> None:
    policy = _policy(new_data_rows=100)
    assert decide(policy, _signals(new_rows=500)).fired == ()
    first = decide(policy, _signals(has_model=False, new_rows=500, new_batches=(1,)))
    assert first.fired == (Trigger("bootstrap", {"batches": 1, "rows": 500}),)


def test_a_cooldown_without_past_trainings_holds_nothing() -> None:
    fired = decide(
        _policy(new_data_rows=100, cooldown_hours=2), _signals(new_rows=500, new_batches=(4,))
    )
    assert fired.name == "new_data"


def test_a_cooldown_under_an_hour_still_holds() -> None:
    trained = (T0 - timedelta(minutes=10),)
    signals = _signals(new_rows=500, new_batches=(4,), trained_at=trained)
    held = decide(_policy(new_data_rows=100, cooldown_hours=0.5), signals)
    assert held.held_because == "cooling down until 2024-03-04T12:20:00+00:00"


@pytest.mark.parametrize(("debounce", "fires"), [(180, True), (181, False)])
def test_the_debounce_starts_at_the_first_window_of_a_long_streak(
    debounce: int, fires: bool
) -> None:
    # Drift in the windows ending T0-3h .. T0 (four in a row after two calm ones).
    windows = _hourly(drift_share=[0.1, 0.1, 0.5, 0.5, 0.5, 0.5])
    policy = _policy(drift_share=0.3, debounce_minutes=debounce)
    assert (decide(policy, _signals(windows=windows)).name == "drift") is fires


def test_cron_catch_up_stops_at_its_cap() -> None:
    policy = _policy(schedule_cron="* * * * *")
    after = T0 - timedelta(days=80)
    tick, count = schedule_ticks(policy, after, T0)
    assert count == 100_000
    assert tick == after + timedelta(minutes=100_000)
