"""PipelineStore contract: CT cycles, the step cache and expiring leases."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor.core.entities import PipelineRun, PipelineRunId, PipelineStatus
from conveyor.core.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from conveyor.store.sql.database import Database
from conveyor.store.sql.pipeline_store import SqlPipelineStore

T0 = datetime(2024, 7, 1, tzinfo=UTC)


def _run(n: int, project: str = "churn") -> PipelineRun:
    return PipelineRun(
        id=PipelineRunId(f"{project}-p{n}"),
        project=project,
        trigger="new_data",
        status=PipelineStatus.RUNNING,
        started_at=T0 + timedelta(hours=n),
        evidence={"batches": [n]},
    )


def test_cycles_are_added_finished_and_listed(pipeline: SqlPipelineStore) -> None:
    pipeline.add_pipeline_run(_run(2))
    pipeline.add_pipeline_run(_run(1))
    pipeline.add_pipeline_run(_run(1, "fraud"))
    assert pipeline.list_pipeline_runs("churn") == [_run(1), _run(2)]
    done = pipeline.finish_pipeline_run(
        PipelineRunId("churn-p1"),
        PipelineStatus.SUCCEEDED,
        steps={"train": {"seconds": 1.5}},
        evidence={"promoted": 3},
    )
    assert done.status is PipelineStatus.SUCCEEDED
    assert done.ended_at is not None and done.ended_at.utcoffset() == timedelta(0)
    assert done.steps == {"train": {"seconds": 1.5}}
    assert done.evidence == {"batches": [1], "promoted": 3}
    assert pipeline.list_pipeline_runs("churn")[0] == done


def test_cycle_errors(pipeline: SqlPipelineStore) -> None:
    pipeline.add_pipeline_run(_run(1))
    with pytest.raises(AlreadyExistsError, match="'churn-p1'"):
        pipeline.add_pipeline_run(_run(1))
    with pytest.raises(NotFoundError, match="'nope'"):
        pipeline.finish_pipeline_run(PipelineRunId("nope"), PipelineStatus.FAILED, steps={})


def test_lease_is_exclusive_renewable_and_releasable(pipeline: SqlPipelineStore) -> None:
    assert pipeline.acquire_lease("ct:churn", "a", 60)
    first = pipeline.find_lease("ct:churn")
    assert not pipeline.acquire_lease("ct:churn", "b", 60)
    assert pipeline.acquire_lease("ct:churn", "a", 120)
    renewed = pipeline.find_lease("ct:churn")
    assert first is not None and renewed is not None
    assert renewed.holder == "a" and renewed.expires_at > first.expires_at
    assert pipeline.acquire_lease("ct:fraud", "b", 60)
    pipeline.release_lease("ct:churn", "b")  # not the holder: no effect
    assert not pipeline.acquire_lease("ct:churn", "b", 60)
    pipeline.release_lease("ct:churn", "a")
    assert pipeline.find_lease("ct:churn") is None
    assert pipeline.acquire_lease("ct:churn", "b", 60)


def test_expired_lease_is_taken_over(pipeline: SqlPipelineStore) -> None:
    assert pipeline.acquire_lease("ct:churn", "a", 3.0)
    held = pipeline.find_lease("ct:churn")
    assert held is not None
    assert not pipeline.acquire_lease("ct:churn", "b", 60)
    # Poll until the lease has expired: never taken over before its expiry, always after it.
    deadline = time.monotonic() + 60
    while not pipeline.acquire_lease("ct:churn", "b", 60):
        assert time.monotonic() < deadline, "an expired lease was never taken over"
        time.sleep(0.1)
    assert datetime.now(UTC) >= held.expires_at
    lease = pipeline.find_lease("ct:churn")
    assert lease is not None and lease.holder == "b"
    assert not pipeline.acquire_lease("ct:churn", "a", 60)


@pytest.mark.parametrize("ttl_s", [0, -1.0, float("nan")])
def test_lease_needs_a_positive_ttl(pipeline: SqlPipelineStore, ttl_s: float) -> None:
    with pytest.raises(InvalidInputError, match="'ttl_s'"):
        pipeline.acquire_lease("ct:churn", "a", ttl_s)


def _acquire(index: int, url: str) -> bool:
    db = Database(url)
    try:
        return SqlPipelineStore(db).acquire_lease("ct:race", f"agent-{index}", 60)
    finally:
        db.dispose()


def test_concurrent_acquirers_get_one_lease(
    database: Database, in_processes: Callable[..., list[Any]]
) -> None:
    outcomes = in_processes(_acquire, 4, database.url)
    assert sorted(outcomes) == [False, False, False, True]
    lease = SqlPipelineStore(database).find_lease("ct:race")
    assert lease is not None and lease.holder == f"agent-{outcomes.index(True)}"


def test_step_cache_stores_and_replaces_results(pipeline: SqlPipelineStore) -> None:
    assert pipeline.get_cached_step("k1") is None
    pipeline.put_cached_step("k1", {"digest": "sha256:1", "rows": 10})
    assert pipeline.get_cached_step("k1") == {"digest": "sha256:1", "rows": 10}
    pipeline.put_cached_step("k1", {"digest": "sha256:2"})
    assert pipeline.get_cached_step("k1") == {"digest": "sha256:2"}
    assert pipeline.get_cached_step("k2") is None
