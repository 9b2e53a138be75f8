"""Fixtures of the port contract suites: every store over SQLite and PostgreSQL, artifacts over
a local folder, a ``file://`` URL and a remote (in-memory) fsspec filesystem."""

from __future__ import annotations

import multiprocessing
import queue
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest

from conveyor.store.fs import FsArtifactStore
from conveyor.store.sql.database import Database
from conveyor.store.sql.dataset_store import SqlDatasetStore
from conveyor.store.sql.model_store import SqlModelStore
from conveyor.store.sql.monitor_store import SqlMonitorStore
from conveyor.store.sql.pipeline_store import SqlPipelineStore
from conveyor.store.sql.run_store import SqlRunStore


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty metadata database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url)
    db.upgrade()
    yield db
    db.dispose()


@pytest.fixture
def datasets(database: Database) -> SqlDatasetStore:
    return SqlDatasetStore(database)


@pytest.fixture
def runs(database: Database) -> SqlRunStore:
    return SqlRunStore(database)


@pytest.fixture
def models(database: Database) -> SqlModelStore:
    return SqlModelStore(database)


@pytest.fixture
def monitor(database: Database) -> SqlMonitorStore:
    return SqlMonitorStore(database)


@pytest.fixture
def pipeline(database: Database) -> SqlPipelineStore:
    return SqlPipelineStore(database)


@pytest.fixture(params=["local", "file-url", "remote"])
def artifacts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FsArtifactStore]:
    """An empty artifact store; ``remote`` goes through fsspec's non-local code path."""
    if request.param == "local":
        yield FsArtifactStore(str(tmp_path / "artifacts"))
    elif request.param == "file-url":
        yield FsArtifactStore(f"file://{tmp_path / 'artifacts'}")
    else:
        root = f"memory://conveyor-test-{uuid.uuid4().hex}"
        yield FsArtifactStore(root, cache_dir=tmp_path / "cache")
        memory = fsspec.filesystem("memory")
        if memory.exists(root):
            memory.rm(root, recursive=True)


def _child(
    target: Callable[..., Any],
    index: int,
    args: tuple[Any, ...],
    barrier: Any,
    results: Any,
) -> None:
    try:
        barrier.wait(timeout=60)
        results.put((index, "ok", target(index, *args)))
    except BaseException as exc:  # reported to the parent, which fails the test
        results.put((index, "error", exc))


def run_in_processes(
    target: Callable[..., Any], count: int, *args: Any, timeout_s: float = 120
) -> list[Any]:
    """Run ``target(i, *args)`` in ``count`` forked processes released together by a barrier.

    Returns each call's result (or the exception it raised) in the order of ``i``.
    """
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(count)
    results = context.Queue()
    processes = [
        context.Process(target=_child, args=(target, i, args, barrier, results))
        for i in range(count)
    ]
    for process in processes:
        process.start()
    outcomes: dict[int, Any] = {}
    try:
        for _ in range(count):
            index, _status, value = results.get(timeout=timeout_s)
            outcomes[index] = value
    except queue.Empty:
        pytest.fail(f"Only {len(outcomes)} of {count} processes reported in {timeout_s} s.")
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    return [outcomes[i] for i in range(count)]


@pytest.fixture
def in_processes() -> Callable[..., list[Any]]:
    """:func:`run_in_processes`, for tests that race several processes."""
    return run_in_processes
