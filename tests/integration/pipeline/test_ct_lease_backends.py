"""The controller's lease on each metadata backend: a dead holder's lease expires and is taken
over, and a cycle never runs beside a live holder."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conveyor.config import Settings
from conveyor.core.entities import PipelineStatus
from conveyor.core.errors import ConflictError
from conveyor.pipeline.cycle import LeaseKeeper, lease_name, run_cycle
from conveyor.spec import ProjectSpec
from conveyor.workspace import Workspace


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend_ws(request: pytest.FixtureRequest, tmp_path: Path) -> Workspace:
    url = None if request.param == "sqlite" else request.getfixturevalue("pg_url")
    return Workspace.open(Settings(home=tmp_path / "ws", db_url=url))


def test_an_expired_lease_of_a_dead_controller_is_taken_over(
    backend_ws: Workspace, spec: ProjectSpec
) -> None:
    pipeline = backend_ws.stores.pipeline
    assert pipeline.acquire_lease(lease_name(spec), "dead-controller", 3.0)
    with pytest.raises(ConflictError, match="holds the lease"):
        run_cycle(backend_ws, spec)
    time.sleep(3.2)
    outcome = run_cycle(backend_ws, spec)
    assert outcome.run.status is PipelineStatus.SKIPPED
    assert pipeline.find_lease(lease_name(spec)) is None
    assert [r.status for r in pipeline.list_pipeline_runs("toy")] == [PipelineStatus.SKIPPED]


def test_a_live_keeper_renews_and_keeps_others_out(
    backend_ws: Workspace, spec: ProjectSpec
) -> None:
    pipeline = backend_ws.stores.pipeline
    with LeaseKeeper(backend_ws, lease_name(spec), ttl_s=1.5) as keeper:
        time.sleep(2.0)  # past the first time to live: only renewal keeps it
        assert not pipeline.acquire_lease(lease_name(spec), "other", 60)
        with pytest.raises(ConflictError):
            run_cycle(backend_ws, spec)
        assert not keeper.lost
    assert pipeline.find_lease(lease_name(spec)) is None
    assert pipeline.acquire_lease(lease_name(spec), "other", 60)
