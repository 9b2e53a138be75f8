"""The training window is sized in rows from what the gate needs, not in batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor.core.entities import BatchStatus, DatasetVersion, DatasetVersionId
from conveyor.core.errors import ConfigError
from conveyor.data.windows import ChangePoint, WindowRule, choose_window, gate_rows
from conveyor.spec import ProjectSpec, parse_spec

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _spec(**sections: Any) -> ProjectSpec:
    return parse_spec(
        {"project": "p", "task": "binary", "label": "y", "timestamp": "t", **sections}
    )


def _weeks(*rows: int) -> list[DatasetVersion]:
    """One batch per week with the given row counts, ingested a day after the week ends."""
    return [
        DatasetVersion(
            id=DatasetVersionId(f"d{i}"),
            project="p",
            seq=i + 1,
            status=BatchStatus.ACCEPTED,
            digest="x",
            row_count=n,
            schema_version=1,
            source="s",
            created_at=T0 + timedelta(weeks=i + 1, days=1),
            min_time=T0 + timedelta(weeks=i),
            max_time=T0 + timedelta(weeks=i + 1) - timedelta(seconds=1),
        )
        for i, n in enumerate(rows)
    ]


def _seqs(versions: tuple[DatasetVersion, ...]) -> list[int]:
    return [v.seq for v in versions]


def test_small_batches_are_taken_until_the_test_split_holds_the_gates_rows() -> None:
    spec = _spec()  # window_batches 8, gate.min_rows 200, test share 0.15
    need = gate_rows(spec)
    assert need * 0.15 >= 200
    window = choose_window(spec, _weeks(*[30] * 60))
    # 8 batches of 30 rows would test on 36 rows; the window takes whole batches instead.
    assert len(window.versions) == -(-need // 30) and window.rows >= need
    assert window.rule is WindowRule.GATE and window.expected_test_rows >= 200
    assert _seqs(window.versions) == list(range(60 - len(window.versions) + 1, 61))


def test_large_batches_keep_window_batches_as_the_minimum() -> None:
    window = choose_window(_spec(training={"window_batches": 3}), _weeks(*[5000] * 6))
    assert _seqs(window.versions) == [4, 5, 6] and window.rule is WindowRule.BATCHES


def test_window_rows_takes_whole_batches_newest_first() -> None:
    spec = _spec(training={"window_rows": 250, "window_batches": 8})
    window = choose_window(spec, _weeks(100, 100, 100, 100, 100))
    assert _seqs(window.versions) == [3, 4, 5] and window.rule is WindowRule.ROWS
    assert window.to_dict()["rows"] == 300 and window.to_dict()["want_rows"] == 250


def test_too_little_data_takes_everything_and_says_so() -> None:
    window = choose_window(_spec(), _weeks(100, 100))
    assert _seqs(window.versions) == [1, 2] and window.rule is WindowRule.ALL
    assert window.expected_test_rows < 200


def test_after_a_change_the_window_is_the_batches_since_it() -> None:
    spec = _spec(training={"window_batches": 8}, gate={"min_rows": 100})
    batches = _weeks(*[1000] * 10)
    change = ChangePoint(T0 + timedelta(weeks=7, days=2))  # inside week 8 (seq 8)
    window = choose_window(spec, batches, since=change)
    assert _seqs(window.versions) == [8, 9, 10] and window.rule is WindowRule.SINCE_CHANGE
    assert window.rows_since == 3000
    assert window.to_dict()["since"] == {"at": change.at.isoformat(), "clock": "event"}
    assert _seqs(choose_window(spec, batches).versions) == list(range(3, 11))


def test_after_a_change_the_window_never_drops_below_what_the_gate_needs() -> None:
    spec = _spec(training={"window_batches": 8}, gate={"min_rows": 100})
    need = gate_rows(spec)
    batches = _weeks(*[300] * 10)
    window = choose_window(spec, batches, since=ChangePoint(T0 + timedelta(weeks=9)))
    assert window.rows_since == 300
    assert window.rows >= need and window.rows - 300 < need
    assert window.rule is WindowRule.SINCE_CHANGE and window.want_rows == need


def test_a_change_keyed_by_arrival_compares_the_batches_ingestion_times() -> None:
    spec = _spec(training={"window_batches": 8}, gate={"min_rows": 10})
    batches = _weeks(*[1000] * 10)
    # Ingested a day after its week: week 9 (seq 9) arrived at T0 + 9 weeks + 1 day.
    arrival = ChangePoint(T0 + timedelta(weeks=9), arrival=True)
    assert _seqs(choose_window(spec, batches, since=arrival).versions) == [9, 10]
    event = ChangePoint(T0 + timedelta(weeks=9))
    assert _seqs(choose_window(spec, batches, since=event).versions) == [10]


def test_a_change_older_than_the_usual_window_changes_nothing() -> None:
    spec = _spec(training={"window_batches": 2}, gate={"min_rows": 10})
    batches = _weeks(*[1000] * 6)
    window = choose_window(spec, batches, since=ChangePoint(T0))
    assert _seqs(window.versions) == [5, 6] and window.rule is WindowRule.BATCHES


@pytest.mark.parametrize("rows", [0, -5])
def test_window_rows_must_be_positive(rows: int) -> None:
    with pytest.raises(ConfigError, match="window_rows"):
        _spec(training={"window_rows": rows})
