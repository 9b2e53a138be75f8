from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conveyor.core.errors import InvalidInputError
from conveyor.serving.feedback import FeedbackLog, FeedbackResult, join_feedback
from conveyor.serving.predlog import PredictionLogWriter, compact_predictions

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def log_predictions(directory, rows):
    """rows: (request_id, minutes after T0, inputs)."""
    writer = PredictionLogWriter(directory)
    writer.write(
        [
            {
                "request_id": rid,
                "ts": (T0 + timedelta(minutes=minutes)).isoformat(),
                "model_version": 1,
                "inputs": inputs,
                "score": 0.8,
                "label": 1,
                "latency_ms": 1.0,
            }
            for rid, minutes, inputs in rows
        ]
    )
    return writer


@pytest.fixture
def dirs(tmp_path):
    return tmp_path / "predictions", tmp_path / "feedback"


def test_labels_join_by_request_id_and_last_write_wins(dirs):
    pred_dir, fb_dir = dirs
    log_predictions(pred_dir, [("a", 0, {"x": 1.0}), ("b", 1, {"x": 2.0}), ("c", 2, {"x": 3.0})])
    fb = FeedbackLog(fb_dir, predictions_dir=pred_dir)
    first = fb.record([{"request_id": "a", "label": 1}, {"request_id": "b", "label": 1}])
    assert first == FeedbackResult(accepted=2, duplicates=0, unknown_ids=())
    again = fb.record([{"request_id": "a", "label": 1}, {"request_id": "b", "label": 0}])
    assert again.duplicates == 2
    joined = join_feedback(pred_dir, fb_dir)
    assert joined["request_id"].tolist() == ["a", "b"]
    assert joined["label"].tolist() == [1.0, 0.0]
    assert joined["predicted_label"].tolist() == [1, 1]
    assert joined["in_x"].tolist() == [1.0, 2.0]
    assert joined["feedback_by"].tolist() == ["request_id", "request_id"]


def test_unknown_request_ids_are_reported_not_dropped(dirs):
    pred_dir, fb_dir = dirs
    log_predictions(pred_dir, [("a", 0, {"x": 1.0})])
    result = FeedbackLog(fb_dir, predictions_dir=pred_dir).record(
        [{"request_id": "a", "label": 0}, {"request_id": "ghost", "label": 1}]
    )
    assert result.accepted == 2 and result.unknown_ids == ("ghost",)
    joined = join_feedback(pred_dir, fb_dir)
    assert joined["request_id"].tolist() == ["a"]
    assert joined.attrs["unknown_ids"] == ["ghost"]


def test_entity_time_feedback_labels_latest_prediction_at_or_before(dirs):
    pred_dir, fb_dir = dirs
    log_predictions(
        pred_dir,
        [
            ("p1", 0, {"flight": 7, "x": 1.0}),
            ("p2", 10, {"flight": 7, "x": 2.0}),
            ("p3", 5, {"flight": 8, "x": 3.0}),
            ("p4", 30, {"flight": 7, "x": 4.0}),
        ],
    )
    fb = FeedbackLog(fb_dir)
    fb.record(
        [
            {"entity": {"flight": 7}, "time": (T0 + timedelta(minutes=12)).isoformat(), "label": 1},
            {"entity": {"flight": 8}, "time": (T0 + timedelta(minutes=5)).isoformat(), "label": 0},
            {"entity": {"flight": 9}, "time": (T0 + timedelta(minutes=50)).isoformat(), "label": 1},
            {"entity": {"flight": 7}, "time": T0.replace(hour=11).isoformat(), "label": 0},
        ]
    )
    joined = join_feedback(pred_dir, fb_dir)
    assert dict(zip(joined["request_id"], joined["label"], strict=True)) == {"p2": 1.0, "p3": 0.0}
    assert set(joined["feedback_by"]) == {"entity"}
    assert joined.attrs["unmatched_entities"] == 2


def test_request_id_label_beats_entity_label(dirs):
    pred_dir, fb_dir = dirs
    log_predictions(pred_dir, [("p1", 0, {"flight": 7})])
    fb = FeedbackLog(fb_dir)
    fb.record([{"request_id": "p1", "label": 1}])
    fb.record(
        [{"entity": {"flight": 7}, "time": (T0 + timedelta(hours=1)).isoformat(), "label": 0}]
    )
    joined = join_feedback(pred_dir, fb_dir)
    assert joined["label"].tolist() == [1.0] and joined["feedback_by"].tolist() == ["request_id"]


def test_join_reads_compacted_predictions_and_filters_by_time(dirs):
    pred_dir, fb_dir = dirs
    writer = log_predictions(pred_dir, [("a", 0, {"x": 1.0}), ("b", 90, {"x": 2.0})])
    writer.close()
    compact_predictions(pred_dir)
    FeedbackLog(fb_dir).record([{"request_id": "a", "label": 1}, {"request_id": "b", "label": 0}])
    joined = join_feedback(pred_dir, fb_dir, since=T0 + timedelta(minutes=60))
    assert joined["request_id"].tolist() == ["b"]
    assert joined.attrs["unknown_ids"] == []


def test_invalid_items_store_nothing(dirs):
    _, fb_dir = dirs
    fb = FeedbackLog(fb_dir)
    with pytest.raises(InvalidInputError, match="2 of 3 feedback items are invalid") as info:
        fb.record(
            [
                {"request_id": "a", "label": 1},
                {"request_id": "b"},
                {"entity": {"flight": 1}, "time": "yesterday", "label": 0},
            ]
        )
    assert "item 1: 'label'" in str(info.value) and "item 2: 'time'" in str(info.value)
    assert not list(fb_dir.glob("*.jsonl"))


def test_string_labels_are_kept(dirs):
    pred_dir, fb_dir = dirs
    log_predictions(pred_dir, [("a", 0, {"x": 1.0})])
    FeedbackLog(fb_dir).record([{"request_id": "a", "label": "late"}])
    assert join_feedback(pred_dir, fb_dir)["label"].tolist() == ["late"]
