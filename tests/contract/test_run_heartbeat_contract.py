"""Run heartbeats and the end of runs whose client is gone, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest

from conveyor.core.entities import RunStatus
from conveyor.core.errors import ConflictError, InvalidInputError, NotFoundError
from conveyor.store.sql.database import Database
from conveyor.store.sql.run_store import END_REASON_TAG, SqlRunStore


def test_a_heartbeat_moves_heartbeat_at_of_a_running_run_only(runs: SqlRunStore) -> None:
    run = runs.create_run("p", "e", "r")
    assert run.heartbeat_at == run.started_at
    runs.heartbeat(run.id)
    beaten = runs.get_run(run.id).heartbeat_at
    assert beaten is not None and beaten >= run.started_at
    runs.end_run(run.id, RunStatus.FINISHED)
    with pytest.raises(ConflictError, match="is finished, so it takes no heartbeat"):
        runs.heartbeat(run.id)
    with pytest.raises(NotFoundError, match="'nope'"):
        runs.heartbeat("nope")  # type: ignore[arg-type]


def test_a_run_not_heard_from_is_ended_failed_on_read(database: Database) -> None:
    runs = SqlRunStore(database, stale_after_s=0.5)
    lost = runs.create_run("p", "e", "lost")
    alive = runs.create_run("p", "e", "alive")
    done = runs.create_run("p", "e", "done")
    runs.end_run(done.id, RunStatus.FINISHED)
    started = time.monotonic()
    while time.monotonic() - started < 1.5:  # only 'alive' heartbeats past the timeout
        runs.heartbeat(alive.id)
        time.sleep(0.05)
    ended = runs.get_run(lost.id)
    assert ended.status is RunStatus.FAILED and ended.ended_at is not None
    assert ended.tags[END_REASON_TAG].startswith("client lost: no heartbeat since")
    assert runs.get_run(alive.id).status is RunStatus.RUNNING
    assert runs.get_run(done.id).status is RunStatus.FINISHED
    assert {r.name: r.status for r in runs.list_runs("p")} == {
        "lost": RunStatus.FAILED,
        "alive": RunStatus.RUNNING,
        "done": RunStatus.FINISHED,
    }
    with pytest.raises(ConflictError, match="is failed"):
        runs.heartbeat(lost.id)


def test_without_a_timeout_no_run_is_ended(database: Database) -> None:
    runs = SqlRunStore(database)
    run = runs.create_run("p", "e", "r")
    time.sleep(0.3)
    assert runs.end_stale_runs() == []
    assert runs.get_run(run.id).status is RunStatus.RUNNING


def test_the_timeout_must_be_positive(database: Database) -> None:
    with pytest.raises(InvalidInputError, match="'stale_after_s'"):
        SqlRunStore(database, stale_after_s=0)
