"""The run buffer: size flushes, interval flushes by the background thread, retries."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

import conveyor as cv
from conveyor.core.entities import MetricPoint
from conveyor.core.errors import ConflictError
from conveyor.tracking.buffer import Flusher, RunBuffer
from conveyor.workspace import Workspace

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def test_points_are_written_when_max_points_are_pending(ws: Workspace) -> None:
    run = ws.stores.runs.create_run("p", "e", "r")
    buffer = RunBuffer(ws.stores.runs, run.id, max_points=10)
    for step in range(9):
        buffer.add_metric(MetricPoint("m", float(step), step, T0))
    assert ws.stores.runs.get_metric_history(run.id, "m") == []
    buffer.add_metric(MetricPoint("m", 9.0, 9, T0))
    assert len(ws.stores.runs.get_metric_history(run.id, "m")) == 10
    assert buffer.pending == 0


def test_background_flusher_writes_without_end_run(ws: Workspace) -> None:
    run = ws.stores.runs.create_run("p", "e", "r")
    buffer = RunBuffer(ws.stores.runs, run.id)
    flusher = Flusher(interval_s=0.05)
    flusher.register(buffer)
    buffer.add_metric(MetricPoint("m", 1.0, 0, T0))
    buffer.add_params({"lr": "0.1"})
    deadline = time.monotonic() + 5
    while ws.stores.runs.get_run(run.id).metrics == {} and time.monotonic() < deadline:
        time.sleep(0.02)
    stored = ws.stores.runs.get_run(run.id)
    assert (stored.metrics, stored.params) == ({"m": 1.0}, {"lr": "0.1"})
    flusher.unregister(buffer)


def test_fluent_run_is_flushed_by_interval_while_still_running(ws: Workspace) -> None:
    with cv.start_run("live") as run:
        cv.log_metric("m", 2.0)
        deadline = time.monotonic() + 5
        while ws.stores.runs.get_run(run.id).metrics == {} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ws.stores.runs.get_run(run.id).metrics == {"m": 2.0}


def test_a_conflict_from_another_writer_drops_params_keeps_points(ws: Workspace) -> None:
    run = ws.stores.runs.create_run("p", "e", "r")
    ws.stores.runs.log_params(run.id, {"lr": "0.1"})  # as another process would
    buffer = RunBuffer(ws.stores.runs, run.id)
    buffer.add_params({"lr": "0.2"})
    buffer.add_metric(MetricPoint("m", 1.0, 0, T0))
    with pytest.raises(ConflictError, match="cannot become '0.2'"):
        buffer.flush()
    assert buffer.pending == 1
    with pytest.raises(ConflictError):
        buffer.close()  # writes the point, then reports the dropped params
    assert ws.stores.runs.get_run(run.id).metrics == {"m": 1.0}
    assert ws.stores.runs.get_run(run.id).params == {"lr": "0.1"}
