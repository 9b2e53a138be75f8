from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conveyor.serving.predlog import (
    PredictionLogWriter,
    compact_predictions,
    read_predictions,
    read_segment,
)

T0 = datetime(2024, 5, 1, 23, 59, 0, tzinfo=UTC)


def entry(i: int, *, ts: datetime = T0, version: int = 1) -> dict:
    return {
        "request_id": f"r{i:04d}",
        "ts": ts.isoformat(),
        "model_version": version,
        "inputs": {"distance": float(i), "carrier": "UA"},
        "score": i / 1000,
        "label": i % 2,
        "latency_ms": 0.5,
    }


def test_round_trip_with_inputs_as_columns(tmp_path):
    writer = PredictionLogWriter(tmp_path)
    writer.write([entry(1), entry(2)])
    writer.write([entry(3)])
    frame = read_predictions(tmp_path)
    assert frame["request_id"].tolist() == ["r0001", "r0002", "r0003"]
    assert frame["in_distance"].tolist() == [1.0, 2.0, 3.0]
    assert frame["in_carrier"].tolist() == ["UA"] * 3
    assert str(frame["ts"].dt.tz) == "UTC" and frame["ts"].iloc[0] == T0
    raw = read_predictions(tmp_path, raw_inputs=True)
    assert "inputs" in raw.columns and "in_distance" not in raw.columns


def test_filters_by_time_and_version(tmp_path):
    writer = PredictionLogWriter(tmp_path)
    writer.write([entry(i, ts=T0 + timedelta(minutes=i), version=1 + i % 2) for i in range(6)])
    window = read_predictions(
        tmp_path, since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=4)
    )
    assert window["request_id"].tolist() == ["r0002", "r0003"]
    v2 = read_predictions(tmp_path, model_version=2)
    assert v2["request_id"].tolist() == ["r0001", "r0003", "r0005"]


def test_trailing_partial_line_is_ignored(tmp_path):
    writer = PredictionLogWriter(tmp_path)
    writer.write([entry(1), entry(2)])
    assert writer.path is not None
    with writer.path.open("ab") as handle:
        handle.write(b'{"request_id": "torn", "ts": "2024-')
    assert read_predictions(tmp_path)["request_id"].tolist() == ["r0001", "r0002"]
    assert read_segment(writer.path).num_rows == 2


def test_one_request_is_one_write_of_whole_lines(tmp_path):
    writer = PredictionLogWriter(tmp_path)
    writer.write([entry(i) for i in range(50)])
    assert writer.path is not None
    data = writer.path.read_bytes()
    assert data.endswith(b"\n") and data.count(b"\n") == 50


def test_segments_rotate_at_the_size_limit(tmp_path):
    writer = PredictionLogWriter(tmp_path, segment_max_bytes=400)
    for i in range(10):
        writer.write([entry(i)])
    segments = sorted(tmp_path.glob("seg-*.jsonl"))
    assert len(segments) >= 3
    assert all(s.stat().st_size >= 400 for s in segments[:-1])
    assert len(read_predictions(tmp_path)) == 10


def test_compaction_skips_the_open_segment_and_partitions_by_day(tmp_path):
    writer = PredictionLogWriter(tmp_path)
    writer.write([entry(1), entry(2, ts=T0 + timedelta(minutes=5))])  # crosses midnight
    assert compact_predictions(tmp_path) == 0
    before = read_predictions(tmp_path)
    writer.close()
    assert compact_predictions(tmp_path) == 2
    assert not list(tmp_path.glob("seg-*.jsonl"))
    days = sorted(p.parent.name for p in tmp_path.glob("date=*/part-*.parquet"))
    assert days == ["date=2024-05-01", "date=2024-05-02"]
    after = read_predictions(tmp_path)
    assert after.equals(before)
    writer.write([entry(3)])  # a new segment, readable next to the Parquet parts
    assert read_predictions(tmp_path)["request_id"].tolist() == ["r0001", "r0003", "r0002"]


def test_compaction_interrupted_before_delete_never_duplicates(tmp_path):
    writer = PredictionLogWriter(tmp_path)
    writer.write([entry(i) for i in range(5)])
    segment = writer.path
    assert segment is not None
    writer.close()
    kept = tmp_path / "copy.bak"
    shutil.copy(segment, kept)
    compact_predictions(tmp_path)
    shutil.copy(kept, segment)  # as if the process died after the rename, before the delete
    kept.unlink()
    assert len(read_predictions(tmp_path)) == 5
    compact_predictions(tmp_path)
    assert len(read_predictions(tmp_path)) == 5
    assert not list(tmp_path.rglob("*.tmp"))


def test_empty_log_reads_as_empty_frame(tmp_path):
    frame = read_predictions(tmp_path / "none")
    assert frame.empty and {"request_id", "ts", "score"} <= set(frame.columns)


def test_writer_rejects_bad_segment_size(tmp_path: Path):
    with pytest.raises(ValueError, match="'segment_max_bytes' parameter"):
        PredictionLogWriter(tmp_path, segment_max_bytes=0)
