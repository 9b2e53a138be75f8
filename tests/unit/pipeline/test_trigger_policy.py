"""The trigger policy as a pure function: each trigger, debounce, cool-down, daily cap, catch-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest
import yaml
from benchmarks.ct import POLICY

from conveyor.core.errors import ConfigError
from conveyor.pipeline.triggers import Signals, Window, decide, schedule_ticks
from conveyor.spec import TriggerSpec, parse_spec

T0 = datetime(2024, 3, 4, 12, 0, tzinfo=UTC)


def _policy(**kw: object) -> TriggerSpec:
    base = {"new_data_rows": None, "drift_share": None}
    return TriggerSpec.model_validate({**base, **kw})


def _signals(**kw: object) -> Signals:
    base: dict[str, object] = {"now": T0, "has_model": True}
    return Signals(**{**base, **kw})  # type: ignore[arg-type]


def _windows(*values: tuple[float | None, float | None], labels: int = 1000) -> tuple[Window, ...]:
    """Hourly windows ending at T0, each (drift share, live metric)."""
    n = len(values)
    return tuple(
        Window(end=T0 - timedelta(hours=n - 1 - i), drift_share=d, live=m, labels=labels)
        for i, (d, m) in enumerate(values)
    )


def names(decision: object) -> set[str]:
    return {t.name for t in decision.fired}  # type: ignore[attr-defined]


def test_manual_and_bootstrap_fire_without_a_policy() -> None:
    assert names(decide(_policy(), _signals(manual=True))) == {"manual"}
    first = decide(_policy(), _signals(has_model=False, new_batches=(1, 2), new_rows=10))
    assert names(first) == {"bootstrap"} and first.fired[0].evidence["batches"] == 2
    assert names(decide(_policy(), _signals())) == set()


@pytest.mark.parametrize(
    ("policy", "rows", "batches", "fires"),
    [
        ({"new_data_rows": 1000}, 999, (3,), False),
        ({"new_data_rows": 1000}, 1000, (3,), True),
        ({"new_data_batches": 2}, 5000, (3,), False),
        ({"new_data_batches": 2}, 10, (3, 4), True),
    ],
)
def test_new_data_counts_rows_or_batches(
    policy: dict[str, int], rows: int, batches: tuple[int, ...], fires: bool
) -> None:
    decision = decide(_policy(**policy), _signals(new_rows=rows, new_batches=batches))
    assert ("new_data" in names(decision)) is fires
    if fires:
        assert decision.fired[0].evidence["batches"] == list(batches)


def test_drift_needs_k_consecutive_windows_over_the_threshold() -> None:
    policy = _policy(drift_share=0.3, consecutive_windows=3)
    assert "drift" not in names(decide(policy, _signals(windows=_windows((0.5, None)) * 1)))
    broken = _windows((0.5, None), (0.1, None), (0.5, None), (0.6, None))
    assert "drift" not in names(decide(policy, _signals(windows=broken)))
    streak = _windows((0.1, None), (0.4, None), (0.5, None), (0.6, None))
    fired = decide(policy, _signals(windows=streak))
    assert names(fired) == {"drift"}
    assert fired.fired[0].evidence["share_drifted"] == [0.4, 0.5, 0.6]


def test_debounce_waits_until_the_condition_held_long_enough() -> None:
    policy = _policy(drift_share=0.3, debounce_minutes=150)
    windows = _windows((0.1, None), (0.4, None), (0.5, None))  # streak began 1 h before T0
    assert "drift" not in names(decide(policy, _signals(windows=windows)))
    later = _signals(windows=windows, now=T0 + timedelta(minutes=91))
    assert "drift" in names(decide(policy, later))


def test_decay_under_the_floor_or_behind_the_training_score() -> None:
    floor = _policy(metric_floor=0.7)
    assert "decay" in names(decide(floor, _signals(windows=_windows((None, 0.65)))))
    assert "decay" not in names(decide(floor, _signals(windows=_windows((None, 0.75)))))
    margin = _policy(metric_margin=0.03)
    behind = _signals(windows=_windows((None, 0.75)), training_score=0.80)
    fired = decide(margin, behind)
    assert names(fired) == {"decay"}
    assert fired.fired[0].evidence["bar"] == pytest.approx(0.77)
    assert "decay" not in names(decide(margin, _signals(windows=_windows((None, 0.78)))))


def test_decay_of_a_lower_is_better_metric() -> None:
    policy = _policy(metric_floor=10.0)
    worse = _signals(metric="rmse", windows=_windows((None, 12.0)))
    assert "decay" in names(decide(policy, worse))
    assert "decay" not in names(
        decide(policy, _signals(metric="rmse", windows=_windows((None, 8.0))))
    )


def test_decay_uses_the_estimate_when_labels_are_few() -> None:
    window = Window(end=T0, live=0.9, labels=10, estimated=0.6)
    fired = decide(_policy(metric_floor=0.7), _signals(windows=(window,)))
    assert names(fired) == {"decay"} and fired.fired[0].evidence["source"] == "estimated"
    no_estimate = _policy(metric_floor=0.7, use_estimate=False)
    assert "decay" not in names(decide(no_estimate, _signals(windows=(window,))))
    labelled = Window(end=T0, live=0.9, labels=5000, estimated=0.6)
    assert "decay" not in names(decide(_policy(metric_floor=0.7), _signals(windows=(labelled,))))


def test_cooldown_and_daily_cap_hold_triggers_back_but_not_manual() -> None:
    busy = _signals(new_rows=10_000, new_batches=(5,), trained_at=(T0 - timedelta(hours=1),))
    cool = decide(_policy(new_data_rows=100, cooldown_hours=2), busy)
    assert names(cool) == set() and {t.name for t in cool.held} == {"new_data"}
    assert cool.held_because is not None and "cooling down" in cool.held_because
    after = decide(_policy(new_data_rows=100, cooldown_hours=0.5), busy)
    assert names(after) == {"new_data"}
    three = tuple(T0 - timedelta(hours=h) for h in (30, 20, 10, 2))
    capped = _policy(new_data_rows=100, max_runs_per_day=3)
    held = decide(capped, _signals(new_rows=10_000, new_batches=(5,), trained_at=three))
    assert names(held) == set() and "max 3" in (held.held_because or "")
    manual = _signals(new_rows=10_000, new_batches=(5,), trained_at=three, manual=True)
    assert names(decide(capped, manual)) == {"manual"}
    assert names(decide(capped, _signals(new_rows=10_000, new_batches=(5,), trained_at=three[:3])))


def test_a_missed_cron_schedule_is_caught_up_once() -> None:
    policy = _policy(schedule_cron="0 2 * * *")
    tick, count = schedule_ticks(policy, T0, T0 + timedelta(days=5))
    assert count == 5 and tick == datetime(2024, 3, 9, 2, 0, tzinfo=UTC)
    fired = decide(policy, _signals(schedule_after=T0, now=T0 + timedelta(days=5)))
    assert names(fired) == {"schedule"}
    assert fired.fired[0].evidence == {
        "tick": "2024-03-09T02:00:00+00:00",
        "missed": 4,
        "cron": "0 2 * * *",
        "every_hours": None,
    }
    consumed = _signals(schedule_after=tick, now=T0 + timedelta(days=5))
    assert names(decide(policy, consumed)) == set()


def test_an_interval_schedule_is_due_after_its_period() -> None:
    policy = _policy(schedule_every_hours=24)
    assert names(decide(policy, _signals(schedule_after=T0 - timedelta(hours=23)))) == set()
    fired = decide(policy, _signals(schedule_after=T0 - timedelta(hours=73)))
    assert fired.fired[0].evidence["missed"] == 2
    assert names(decide(policy, _signals(schedule_after=None))) == set()


def test_a_bad_cron_expression_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="triggers.schedule_cron"):
        parse_spec(
            {
                "project": "p",
                "task": "binary",
                "label": "y",
                "triggers": {"schedule_cron": "61 * * *"},
            }
        )


def test_the_demo_uses_the_benchmarked_policy() -> None:
    text = resources.files("conveyor.demo").joinpath("flights.yaml").read_text()
    assert parse_spec(yaml.safe_load(text)).triggers == POLICY


def test_decay_takes_the_stricter_of_floor_and_margin() -> None:
    both = _policy(metric_floor=0.70, metric_margin=0.03)
    # Training score 0.80: the margin's bar (0.77) is stricter than the floor (0.70).
    stricter_margin = decide(both, _signals(windows=_windows((None, 0.75)), training_score=0.80))
    assert names(stricter_margin) == {"decay"}
    assert stricter_margin.fired[0].evidence["bar"] == pytest.approx(0.77)
    # Training score 0.72: now the floor (0.70) is stricter than the margin's bar (0.69).
    stricter_floor = decide(both, _signals(windows=_windows((None, 0.695)), training_score=0.72))
    assert names(stricter_floor) == {"decay"}
    assert stricter_floor.fired[0].evidence["bar"] == pytest.approx(0.70)
    ok = decide(both, _signals(windows=_windows((None, 0.78)), training_score=0.80))
    assert "decay" not in names(ok)


def test_decay_of_a_lower_is_better_metric_takes_the_stricter_bar() -> None:
    both = _policy(metric_floor=10.0, metric_margin=0.125)
    # RMSE at training 8.0: the margin's bar 9.0 (12.5% over) is stricter than the floor 10.0.
    fired = decide(both, _signals(metric="rmse", windows=_windows((None, 9.5)), training_score=8.0))
    assert names(fired) == {"decay"} and fired.fired[0].evidence["bar"] == pytest.approx(9.0)


def test_cooldown_counts_from_the_newest_training() -> None:
    # Trainings 30 h and 1 h ago, given oldest first as the stores return them.
    trained = (T0 - timedelta(hours=30), T0 - timedelta(hours=1))
    busy = _signals(new_rows=10_000, new_batches=(5,), trained_at=trained)
    held = decide(_policy(new_data_rows=100, cooldown_hours=2), busy)
    assert names(held) == set() and "cooling down" in (held.held_because or "")
    free = _signals(
        new_rows=10_000, new_batches=(5,), trained_at=trained, now=T0 + timedelta(hours=2)
    )
    assert names(decide(_policy(new_data_rows=100, cooldown_hours=2), free)) == {"new_data"}
