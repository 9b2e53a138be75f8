"""Many real processes on one metadata database, SQLite and PostgreSQL: nothing is lost, no
writer sees "database is locked", versions stay gapless and an alias has one winner."""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import conveyor as cv
from conveyor.core.entities import RunId, RunStatus
from conveyor.core.errors import ConflictError
from conveyor.store.sql.database import Database
from conveyor.store.sql.model_store import SqlModelStore
from conveyor.store.sql.run_store import SqlRunStore
from conveyor.workspace import Workspace

ARTIFACT = "sha256:" + "b" * 64
WRITERS = 50
POINTS = 200
FLUSH_EVERY = 45  # points: 200 points reach the store in five flushes, the last at run end


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _log_one_run(index: int, url: str, home: str) -> tuple[str, list[str]]:
    """One process's training loop through the fluent API; returns its run id and warnings."""
    warnings = _Collect()
    logging.getLogger("conveyor").addHandler(warnings)
    cv.set_workspace(Workspace.open(cv.Settings(home=Path(home) / f"w{index}", db_url=url)))
    with cv.start_run(f"worker-{index}", project="race", tags={"worker": index}) as run:
        run.buffer.max_points = FLUSH_EVERY
        cv.log_params({"worker": index, "lr": 0.01 * index})
        for step in range(POINTS):
            cv.log_metric("loss", 1.0 / (step + 1), step=step)
            cv.log_metric("worker", float(index), step=step)
            if step % 50 == 0:
                cv.set_tag("progress", step)
    cv.set_workspace(None)
    return run.id, warnings.messages


def test_fifty_processes_logging_at_once_lose_nothing(
    database: Database, tmp_path: Path, in_processes: Callable[..., list[Any]]
) -> None:
    outcomes = in_processes(_log_one_run, WRITERS, database.url, str(tmp_path), timeout_s=240)
    failures = [o for o in outcomes if not isinstance(o, tuple)]
    assert failures == [], failures[:3]
    assert [warnings for _, warnings in outcomes] == [[]] * WRITERS
    runs = SqlRunStore(database)
    for index, (run_id, _) in enumerate(outcomes):
        run = runs.get_run(RunId(run_id))
        assert run.status is RunStatus.FINISHED
        assert run.params == {"worker": str(index), "lr": str(0.01 * index)}
        assert run.tags == {"worker": str(index), "progress": "150"}
        assert run.metrics == {"loss": 1.0 / POINTS, "worker": float(index)}
        loss = runs.get_metric_history(RunId(run_id), "loss")
        assert [(p.step, p.value) for p in loss] == [(s, 1.0 / (s + 1)) for s in range(POINTS)]
        assert len(runs.get_metric_history(RunId(run_id), "worker")) == POINTS
    assert len(runs.list_runs("race")) == WRITERS


def _register_one(index: int, url: str) -> int:
    db = Database(url)
    try:
        version = SqlModelStore(db).create_model_version(
            "churn",
            artifact=ARTIFACT,
            run_id=None,
            signature={},
            lineage={"writer": index},
            metrics={},
            actor=f"p{index}",
        )
        return version.version
    finally:
        db.dispose()


def test_twenty_concurrent_registrations_get_versions_one_to_twenty(
    database: Database, models: SqlModelStore, in_processes: Callable[..., list[Any]]
) -> None:
    outcomes = in_processes(_register_one, 20, database.url)
    assert sorted(outcomes) == list(range(1, 21)), outcomes
    stored = models.list_model_versions("churn")
    assert [v.version for v in stored] == list(range(1, 21))
    # Each process got the version it was told about, not another process's.
    assert {v.lineage["writer"]: v.version for v in stored} == dict(enumerate(outcomes))


def _move_production(index: int, url: str, expected: int) -> tuple[int, int] | str:
    db = Database(url)
    try:
        pointer = SqlModelStore(db).move_alias(
            "churn",
            "production",
            2 + index,
            expected_revision=expected,
            action="promote",
            actor=f"p{index}",
            reason="race",
        )
        return pointer.version, pointer.revision
    except ConflictError:
        return "conflict"
    finally:
        db.dispose()


def _watch_production(url: str, ready: Any, stop: Any, results: Any) -> None:
    """Poll the production alias until ``stop``; report reads and every odd sight."""
    db = Database(url)
    store = SqlModelStore(db)
    reads, odd, revisions = 0, [], set()
    try:
        while True:
            stopping = stop.is_set()
            pointer = store.find_alias("churn", "production")
            listed = [a for a in store.list_aliases("churn") if a.alias == "production"]
            if pointer is None or len(listed) != 1 or pointer.version not in (1, 2, 3):
                odd.append((pointer, listed))
            else:
                revisions.add(pointer.revision)
            reads += 1
            if reads == 1:
                ready.set()
            if stopping:
                break
        results.put((reads, odd, sorted(revisions)))
    except BaseException as exc:  # reported to the test
        ready.set()
        results.put(exc)
    finally:
        db.dispose()


def test_racing_production_moves_have_one_winner_and_readers_always_see_one_version(
    database: Database, models: SqlModelStore, in_processes: Callable[..., list[Any]]
) -> None:
    for _ in range(3):
        models.create_model_version(
            "churn", artifact=ARTIFACT, run_id=None, signature={}, lineage={}, metrics={},
            actor="ci",
        )  # fmt: skip
    models.move_alias(
        "churn", "production", 1, expected_revision=None, action="promote", actor="ci", reason="r"
    )
    context = multiprocessing.get_context("fork")
    ready, stop, results = context.Event(), context.Event(), context.Queue()
    watcher = context.Process(target=_watch_production, args=(database.url, ready, stop, results))
    watcher.start()
    try:
        assert ready.wait(60), "the watcher never read the alias"
        for revision in range(1, 6):  # five rounds, each a race from the same revision
            outcomes = in_processes(_move_production, 2, database.url, revision)
            winners = [o for o in outcomes if o != "conflict"]
            assert len(winners) == 1 and outcomes.count("conflict") == 1, outcomes
            pointer = models.find_alias("churn", "production")
            assert pointer is not None
            assert (
                (pointer.version, pointer.revision) == winners[0] == (pointer.version, revision + 1)
            )
            time.sleep(0.05)  # let the watcher see this revision too
        stop.set()
        outcome = results.get(timeout=60)
    finally:
        stop.set()
        watcher.join(timeout=10)
        if watcher.is_alive():
            watcher.kill()
    assert not isinstance(outcome, BaseException), outcome
    reads, odd, revisions = outcome
    assert odd == []
    assert reads > 10
    assert revisions[0] <= 2 and revisions[-1] == 6
    moves = models.list_audit_events("churn", alias="production")
    assert len(moves) == 6
