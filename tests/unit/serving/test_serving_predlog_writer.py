"""The prediction log's writer thread: callers hand bytes over without touching the disk,
writes waiting together go out as one group, and close writes whatever is buffered."""

from __future__ import annotations

import time

import orjson
import pytest

from conveyor.serving.predlog import PredictionLogError, PredictionLogWriter, read_predictions


def line(rid: str) -> bytes:
    entry = {
        "request_id": rid,
        "ts": "2024-05-01T12:00:00+00:00",
        "model_version": 1,
        "inputs": {"x": 1.0},
        "score": 0.5,
        "label": 1,
        "latency_ms": 0.1,
    }
    return orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE)


def wait_until_taken(writer: PredictionLogWriter) -> None:
    deadline = time.monotonic() + 10
    while writer.stats()["queued_bytes"]:
        assert time.monotonic() < deadline, "the writer thread never took the buffer"
        time.sleep(0.01)


def test_submit_hands_over_without_waiting_and_waiting_writes_form_one_group(tmp_path):
    writer = PredictionLogWriter(tmp_path, write_delay_s=0.5)  # a slow disk
    first = writer.submit(line("a"))
    wait_until_taken(writer)
    assert not first.done()  # the caller got control back while the disk works
    rest = [writer.submit(line(rid)) for rid in "bcdef"]
    for future in [first, *rest]:
        assert future.result(timeout=30) is None
    assert writer.written_writes == 6 and writer.group_commits == 2
    assert sorted(read_predictions(tmp_path)["request_id"]) == list("abcdef")


def test_a_full_buffer_refuses_at_once_and_close_writes_what_was_accepted(tmp_path):
    writer = PredictionLogWriter(tmp_path, write_delay_s=0.5, max_pending_bytes=len(line("a")))
    writer.submit(line("a"))
    wait_until_taken(writer)
    writer.submit(line("b"))  # waits in the buffer, which is now full
    with pytest.raises(PredictionLogError, match="past its"):
        writer.submit(line("c"))
    writer.close()  # flushes a and b, then closes the segment
    assert writer.stats()["rejected_writes"] == 1
    assert sorted(read_predictions(tmp_path)["request_id"]) == ["a", "b"]


@pytest.mark.parametrize("delay", [-1.0, float("nan"), float("inf")])
def test_a_bad_write_delay_is_refused(tmp_path, delay):
    with pytest.raises(ValueError, match="'write_delay_s' parameter of PredictionLogWriter"):
        PredictionLogWriter(tmp_path, write_delay_s=delay)
