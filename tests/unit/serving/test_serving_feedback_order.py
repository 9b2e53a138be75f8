"""Which label wins when two arrive for one prediction, whatever process stored each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from conveyor.serving.feedback import FeedbackLog, join_feedback, live_metrics, read_feedback_table
from conveyor.serving.predlog import PredictionLogWriter

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _predict(pred_dir: Path, ids: list[str]) -> None:
    writer = PredictionLogWriter(pred_dir)
    writer.write(
        [
            {"request_id": rid, "ts": T0.isoformat(), "model_version": 1, "inputs": {"x": 1.0},
             "score": 0.8, "label": 1, "latency_ms": 1.0}
            for rid in ids
        ]
    )  # fmt: skip
    writer.close()


def _stored(path: Path, request_id: str, label: int, received: datetime) -> None:
    """One feedback line as a worker process stores it (``fb-<pid>.jsonl``)."""
    line = {"request_id": request_id, "entity": None, "time": None, "label": label,
            "received_at": received.isoformat()}  # fmt: skip
    with path.open("ab") as fh:
        fh.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))


def test_the_label_received_last_wins_whichever_worker_file_sorts_first(tmp_path: Path) -> None:
    pred_dir, fb_dir = tmp_path / "predictions", tmp_path / "feedback"
    _predict(pred_dir, ["a", "b"])
    fb_dir.mkdir()
    # worker 1 received the correction later than worker 2 received the first label
    _stored(fb_dir / "fb-1.jsonl", "a", 0, T0 + timedelta(minutes=5))
    _stored(fb_dir / "fb-2.jsonl", "a", 1, T0 + timedelta(minutes=1))
    _stored(fb_dir / "fb-2.jsonl", "b", 1, T0 + timedelta(minutes=2))
    _stored(fb_dir / "fb-10.jsonl", "b", 0, T0 + timedelta(minutes=3))
    joined = join_feedback(pred_dir, fb_dir).set_index("request_id")["label"]
    assert joined.to_dict() == {"a": 0.0, "b": 0.0}
    assert read_feedback_table(fb_dir)["received_at"].to_pylist() == sorted(
        (T0 + timedelta(minutes=m)).isoformat() for m in (1, 2, 3, 5)
    )


def test_stored_labels_outside_the_task_are_left_out_of_live_metrics(tmp_path: Path) -> None:
    pred_dir, fb_dir = tmp_path / "predictions", tmp_path / "feedback"
    _predict(pred_dir, ["a", "b", "c", "d"])
    FeedbackLog(fb_dir).record(
        [{"request_id": "a", "label": True}, {"request_id": "b", "label": 0},
         {"request_id": "c", "label": "banana"}, {"request_id": "d", "label": 7}]
    )  # fmt: skip
    live = live_metrics(pred_dir, fb_dir, task="binary")
    version = live["versions"]["1"]
    assert "error" not in version and version["n"] == 2.0 and version["invalid_labels"] == 2.0
    assert live["invalid_labels"] == 2
