"""Feedback joins at their boundaries, against a real prediction log and real feedback files.

Expected joins are worked out by hand from the rows written here: which prediction an entity
label reaches when the times are equal, which label wins when several arrive, which rows a
``since``/``until`` window keeps, and the exact message for each malformed item.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conveyor.core.errors import InvalidInputError
from conveyor.serving.feedback import (
    FeedbackLog,
    join_feedback,
    live_metrics,
    read_feedback_rows,
    read_feedback_table,
)
from conveyor.serving.predlog import PredictionLogWriter

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _log(directory: Path, rows: list[tuple[str, int, dict[str, Any]]], version: int = 1) -> None:
    """rows: (request_id, minutes after T0, inputs); every score 0.8, predicted label 1."""
    writer = PredictionLogWriter(directory)
    writer.write(
        [
            {
                "request_id": rid,
                "ts": (T0 + timedelta(minutes=minutes)).isoformat(),
                "model_version": version,
                "inputs": inputs,
                "score": 0.8,
                "label": 1,
                "latency_ms": 1.0,
            }
            for rid, minutes, inputs in rows
        ]
    )
    writer.close()


def _at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "predictions", tmp_path / "feedback"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ([1], "item 0: expected an object, got list"),
        ({"request_id": "a"}, "item 0: 'label' must be a number, boolean or string, got None"),
        ({"request_id": "a", "label": [1]}, "'label' must be a number, boolean or string, got [1]"),
        ({"request_id": "a", "label": {"y": 1}}, "got {'y': 1}"),
        ({"request_id": "a", "label": float("nan")}, "item 0: 'label' must be a finite number"),
        ({"request_id": "", "label": 1}, "item 0: 'request_id' must be a non-empty string"),
        ({"request_id": 7, "label": 1}, "item 0: 'request_id' must be a non-empty string"),
        (
            {"label": 1},
            "item 0: needs a 'request_id', or an 'entity' object with a 'time'; got keys ['label']",
        ),
        ({"entity": {}, "time": _at(0), "label": 1}, "needs a 'request_id'"),
        ({"entity": [1], "time": _at(0), "label": 1}, "needs a 'request_id'"),
        ({"entity": {"f": 1}, "label": 1}, "item 0: 'time' must be an ISO-8601 time, got None"),
        ({"entity": {"f": 1}, "time": 5, "label": 1}, "'time' must be an ISO-8601 time, got 5"),
        ({"entity": {"f": 1}, "time": "noon", "label": 1}, "got 'noon'"),
    ],
)
def test_each_malformed_item_is_named(tmp_path: Path, item: Any, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        FeedbackLog(tmp_path).record([item])
    assert message in str(caught.value)
    assert str(caught.value).startswith("1 of 1 feedback items are invalid: item 0: ")


@pytest.mark.parametrize("label", [0, 1.5, True, "late"])
def test_every_scalar_label_is_accepted(tmp_path: Path, label: Any) -> None:
    assert FeedbackLog(tmp_path).record([{"request_id": "a", "label": label}]).accepted == 1
    assert read_feedback_rows(tmp_path)[0]["label"] == label


def test_an_entity_item_is_stored_with_its_time_in_utc(tmp_path: Path) -> None:
    FeedbackLog(tmp_path).record(
        [{"entity": {"flight": 7}, "time": "2024-05-01T14:00:00+02:00", "label": 1}]
    )
    row = read_feedback_rows(tmp_path)[0]
    assert (row["request_id"], row["entity"], row["time"], row["label"], row["seq"]) == (
        None,
        {"flight": 7},
        "2024-05-01T12:00:00+00:00",
        1,
        0,
    )


def test_an_empty_feedback_directory_reads_as_an_empty_table(tmp_path: Path) -> None:
    table = read_feedback_table(tmp_path)
    assert table.num_rows == 0
    assert table.column_names == ["request_id", "entity", "time", "label", "received_at", "seq"]
    assert [str(t) for t in table.schema.types] == ["string"] * 5 + ["int64"]
    (tmp_path / "fb-1.jsonl").write_bytes(b"")
    assert read_feedback_table(tmp_path).num_rows == 0


def test_an_empty_file_does_not_hide_the_files_after_it(tmp_path: Path) -> None:
    (tmp_path / "fb-0.jsonl").write_bytes(b"")
    FeedbackLog(tmp_path).record([{"request_id": "a", "label": 1}])
    assert sorted(p.name for p in tmp_path.glob("fb-*.jsonl"))[0] == "fb-0.jsonl"
    assert read_feedback_table(tmp_path)["request_id"].to_pylist() == ["a"]


def test_a_torn_last_line_is_skipped_and_seq_follows_write_order(tmp_path: Path) -> None:
    fb = FeedbackLog(tmp_path)
    fb.record([{"request_id": "a", "label": 1}, {"request_id": "b", "label": 0}])
    with (tmp_path / next(p.name for p in tmp_path.glob("fb-*.jsonl"))).open("ab") as f:
        f.write(b'{"request_id": "c", "lab')
    rows = read_feedback_rows(tmp_path)
    assert [(r["request_id"], r["label"], r["seq"]) for r in rows] == [("a", 1, 0), ("b", 0, 1)]


def test_a_feedback_directory_with_a_quote_in_its_name_is_read(tmp_path: Path) -> None:
    odd = tmp_path / "it's"
    FeedbackLog(odd).record([{"request_id": "a", "label": 1}])
    assert read_feedback_table(odd)["request_id"].to_pylist() == ["a"]


def test_an_entity_label_at_exactly_the_prediction_time_reaches_it(dirs: tuple[Path, Path]) -> None:
    pred_dir, fb_dir = dirs
    _log(pred_dir, [("p1", 0, {"flight": 7}), ("p2", 10, {"flight": 7})])
    FeedbackLog(fb_dir).record([{"entity": {"flight": 7}, "time": _at(10), "label": 0}])
    joined = join_feedback(pred_dir, fb_dir)
    assert joined["request_id"].tolist() == ["p2"]
    assert joined.attrs["unmatched_entities"] == 0


def test_the_last_entity_label_for_a_prediction_wins(dirs: tuple[Path, Path]) -> None:
    pred_dir, fb_dir = dirs
    _log(pred_dir, [("p1", 0, {"flight": 7})])
    fb = FeedbackLog(fb_dir)
    fb.record([{"entity": {"flight": 7}, "time": _at(5), "label": 1}])
    fb.record([{"entity": {"flight": 7}, "time": _at(3), "label": 0}])
    joined = join_feedback(pred_dir, fb_dir)
    assert joined["label"].tolist() == [0.0]
    assert joined["feedback_by"].tolist() == ["entity"]


def test_entity_values_match_as_json_so_a_number_is_not_its_string(
    dirs: tuple[Path, Path],
) -> None:
    pred_dir, fb_dir = dirs
    _log(pred_dir, [("num", 0, {"flight": 7}), ("text", 1, {"flight": "7"})])
    FeedbackLog(fb_dir).record([{"entity": {"flight": "7"}, "time": _at(5), "label": 1}])
    assert join_feedback(pred_dir, fb_dir)["request_id"].tolist() == ["text"]


def test_entity_labels_with_two_key_sets_and_a_quoted_key(dirs: tuple[Path, Path]) -> None:
    pred_dir, fb_dir = dirs
    _log(
        pred_dir,
        [
            ("a", 0, {"flight": 7, "day": 1, 'odd"key': 1}),
            ("b", 1, {"flight": 7, "day": 2, 'odd"key': 2}),
            ("c", 2, {"flight": 8, "day": 2, 'odd"key': 3}),
        ],
    )
    FeedbackLog(fb_dir).record(
        [
            {"entity": {"flight": 7, "day": 2}, "time": _at(30), "label": 1},
            {"entity": {'odd"key': 3}, "time": _at(30), "label": 0},
            {"entity": {"flight": 7, "day": 3}, "time": _at(30), "label": 1},
        ]
    )
    joined = join_feedback(pred_dir, fb_dir)
    assert dict(zip(joined["request_id"], joined["label"], strict=True)) == {"b": 1.0, "c": 0.0}
    assert joined.attrs["unmatched_entities"] == 1


def test_mixed_labels_are_compared_as_text(dirs: tuple[Path, Path]) -> None:
    pred_dir, fb_dir = dirs
    _log(pred_dir, [("a", 0, {"flight": 1}), ("b", 1, {"flight": 2})])
    FeedbackLog(fb_dir).record(
        [
            {"request_id": "a", "label": 1},
            {"entity": {"flight": 2}, "time": _at(5), "label": "late"},
        ]
    )
    joined = join_feedback(pred_dir, fb_dir)
    assert joined["label"].tolist() == ["1", "late"]
    assert joined["feedback_by"].tolist() == ["request_id", "entity"]


def test_since_is_inclusive_until_exclusive_and_unknown_ids_need_the_whole_log(
    dirs: tuple[Path, Path],
) -> None:
    pred_dir, fb_dir = dirs
    _log(pred_dir, [("a", 0, {"x": 1.0}), ("b", 10, {"x": 2.0}), ("c", 20, {"x": 3.0})])
    FeedbackLog(fb_dir).record(
        [{"request_id": r, "label": 1} for r in ("a", "b", "c", "ghost", "apparition")]
    )
    window = join_feedback(
        pred_dir, fb_dir, since=T0 + timedelta(minutes=10), until=T0 + timedelta(minutes=20)
    )
    assert window["request_id"].tolist() == ["b"]
    assert window.attrs["unknown_ids"] == []
    assert (
        join_feedback(pred_dir, fb_dir, until=T0 + timedelta(minutes=10)).attrs["unknown_ids"] == []
    )
    whole = join_feedback(pred_dir, fb_dir)
    assert whole["request_id"].tolist() == ["a", "b", "c"]
    assert whole.attrs["unknown_ids"] == ["apparition", "ghost"]
    assert str(whole["ts"].dt.tz) == "UTC"
    assert list(whole.columns[-2:]) == ["label", "feedback_by"]


def test_rows_are_ordered_by_time_then_request_id(dirs: tuple[Path, Path]) -> None:
    pred_dir, fb_dir = dirs
    _log(pred_dir, [("z", 5, {"x": 1.0}), ("b", 0, {"x": 2.0}), ("a", 5, {"x": 3.0})])
    FeedbackLog(fb_dir).record([{"request_id": r, "label": 0} for r in ("z", "a", "b")])
    assert join_feedback(pred_dir, fb_dir)["request_id"].tolist() == ["b", "a", "z"]


def test_live_metrics_report_an_unscorable_version_with_its_row_count(tmp_path: Path) -> None:
    preds, fb_dir = tmp_path / "predictions", tmp_path / "feedback"
    _log(preds, [("a", 0, {"x": 1.0}), ("b", 1, {"x": 2.0})], version=3)
    FeedbackLog(fb_dir).record(
        [
            {"request_id": "a", "label": 7},
            {"request_id": "b", "label": 2},
            {"request_id": "g", "label": 1},
        ]
    )
    live = live_metrics(preds, fb_dir, task="binary")
    assert (
        live["labelled"] == 2 and live["unknown_ids"] == ["g"] and live["unmatched_entities"] == 0
    )
    assert set(live["versions"]) == {"3"}
    # Labels the task cannot use are left out of the metrics and counted, never an error.
    assert live["versions"]["3"] == {"n": 0.0, "invalid_labels": 2.0}
    assert live["invalid_labels"] == 2


def test_live_metrics_count_unmatched_entities_and_score_each_version(tmp_path: Path) -> None:
    preds, fb_dir = tmp_path / "predictions", tmp_path / "feedback"
    _log(preds, [("a", 0, {"f": 1}), ("b", 1, {"f": 2})], version=1)
    _log(preds, [("c", 2, {"f": 3}), ("d", 3, {"f": 4})], version=2)
    FeedbackLog(fb_dir).record(
        [
            {"request_id": "a", "label": 1},
            {"request_id": "b", "label": 0},
            {"request_id": "c", "label": 1},
            {"request_id": "d", "label": 1},
            {"entity": {"f": 9}, "time": _at(9), "label": 1},
        ]
    )
    live = live_metrics(preds, fb_dir, task="binary", since=T0)
    assert live["unmatched_entities"] == 1
    # every score is 0.8 (predicted 1): version 1 is right on a only, version 2 on both
    assert live["versions"]["1"]["accuracy"] == pytest.approx(0.5)
    assert live["versions"]["2"]["accuracy"] == pytest.approx(1.0)
    assert live["versions"]["2"]["n"] == 2


def test_live_metrics_keep_only_predictions_since_and_list_versions_in_order(
    tmp_path: Path,
) -> None:
    preds, fb_dir = tmp_path / "predictions", tmp_path / "feedback"
    # Version 2 answered first: the versions are still listed in ascending order.
    _log(preds, [("c", 0, {"f": 3}), ("d", 1, {"f": 4})], version=2)
    _log(preds, [("a", 2, {"f": 1}), ("b", 3, {"f": 2})], version=1)
    FeedbackLog(fb_dir).record([{"request_id": r, "label": 1} for r in "abcd"])
    assert list(live_metrics(preds, fb_dir, task="binary")["versions"]) == ["1", "2"]
    later = live_metrics(preds, fb_dir, task="binary", since=T0 + timedelta(minutes=2))
    assert later["labelled"] == 2 and list(later["versions"]) == ["1"]


def test_live_metrics_count_a_label_the_task_cannot_use(tmp_path: Path) -> None:
    preds, fb_dir = tmp_path / "predictions", tmp_path / "feedback"
    _log(preds, [("a", 0, {"x": 1.0}), ("b", 1, {"x": 2.0})], version=4)
    FeedbackLog(fb_dir).record([{"request_id": "a", "label": 3}, {"request_id": "b", "label": 1}])
    version = live_metrics(preds, fb_dir, task="binary")["versions"]["4"]
    assert version["n"] == 1.0 and version["invalid_labels"] == 1.0


def test_a_windowed_join_labels_what_the_whole_log_labels(tmp_path):
    """A label whose prediction falls after the window is not given to an older one inside it."""
    pred_dir, fb_dir = tmp_path / "predictions", tmp_path / "feedback"
    _log(pred_dir, [("p1", 0, {"flight": 7}), ("p2", 20, {"flight": 7})])
    FeedbackLog(fb_dir).record([{"entity": {"flight": 7}, "time": _at(25), "label": 1}])
    assert join_feedback(pred_dir, fb_dir)["request_id"].tolist() == ["p2"]
    window = join_feedback(pred_dir, fb_dir, until=T0 + timedelta(minutes=15))
    assert window["request_id"].tolist() == []
