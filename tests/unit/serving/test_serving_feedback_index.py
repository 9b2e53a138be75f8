"""Recording feedback scales with the call, not the log: the id index and unknown-id checks."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from conveyor.serving.feedback import INDEX_NAME, FeedbackLog, join_feedback, live_metrics
from conveyor.serving.predlog import PredictionLogWriter, compact_predictions, prediction_entry


def log(directory: Path, ids: list[str], version: int = 1) -> None:
    writer = PredictionLogWriter(directory)
    writer.write(
        [
            prediction_entry(
                request_id=rid,
                ts="2024-05-01T12:00:00+00:00",
                model_version=version,
                inputs={"x": i},
                score=0.9 if i % 2 else 0.1,
                label=i % 2,
                latency_ms=0.2,
            )
            for i, rid in enumerate(ids)
        ]
    )
    writer.close()


def record_from_process(directory: str, start: int) -> None:
    fb = FeedbackLog(Path(directory))
    for i in range(start, start + 50):
        fb.record([{"request_id": f"r{i}", "label": 1}])


def test_duplicates_are_found_across_instances_and_processes(tmp_path):
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=record_from_process, args=(str(tmp_path), s))
             for s in (0, 25)]  # fmt: skip
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    # ids r25..r49 were sent by both processes: one of each pair was a duplicate
    again = FeedbackLog(tmp_path).record([{"request_id": f"r{i}", "label": 0} for i in range(80)])
    assert again.accepted == 80 and again.duplicates == 75


def test_a_lost_index_is_rebuilt_from_the_files(tmp_path):
    fb = FeedbackLog(tmp_path)
    fb.record([{"request_id": "a", "label": 1}, {"request_id": "b", "label": 0}])
    (tmp_path / INDEX_NAME).unlink()
    for leftover in tmp_path.glob(f"{INDEX_NAME}-*"):
        leftover.unlink()
    result = FeedbackLog(tmp_path).record([{"request_id": "a", "label": 0}])
    assert result.duplicates == 1


def test_unknown_ids_are_checked_against_segments_and_parts(tmp_path):
    preds, fb_dir = tmp_path / "predictions", tmp_path / "feedback"
    log(preds, ["p0", "p1"])
    compact_predictions(preds)
    log(preds, ["p2", "p3"], version=2)
    fb = FeedbackLog(fb_dir, predictions_dir=preds)
    result = fb.record([{"request_id": r, "label": 1} for r in ("p0", "p3", "ghost")])
    assert result.unknown_ids == ("ghost",)
    joined = join_feedback(preds, fb_dir)
    assert sorted(joined["request_id"]) == ["p0", "p3"]
    assert joined.attrs["unknown_ids"] == ["ghost"]


def test_live_metrics_per_model_version(tmp_path):
    preds, fb_dir = tmp_path / "predictions", tmp_path / "feedback"
    log(preds, [f"a{i}" for i in range(10)], version=1)
    log(preds, [f"b{i}" for i in range(6)], version=2)
    fb = FeedbackLog(fb_dir, predictions_dir=preds)
    # version 1 right on every row; version 2 wrong on every row
    fb.record([{"request_id": f"a{i}", "label": i % 2} for i in range(10)])
    fb.record([{"request_id": f"b{i}", "label": 1 - i % 2} for i in range(6)])
    live = live_metrics(preds, fb_dir, task="binary")
    assert live["labelled"] == 16
    assert live["versions"]["1"]["accuracy"] == pytest.approx(1.0)
    assert live["versions"]["2"]["accuracy"] == pytest.approx(0.0)
    assert live["versions"]["2"]["n"] == 6
