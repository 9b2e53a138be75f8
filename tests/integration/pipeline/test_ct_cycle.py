"""The controller against real stores: cached steps and resume, lease expiry, catch-up, holds."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from tests.integration.conftest import SPEC, make_batch

from conveyor.core.entities import PipelineStatus
from conveyor.core.errors import ConflictError
from conveyor.pipeline.agent import Agent, AgentConfig
from conveyor.pipeline.cycle import lease_name, run_cycle
from conveyor.registry.service import PRODUCTION, find_alias_version
from conveyor.spec import parse_spec
from conveyor.workspace import Workspace

T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


def test_a_cycle_stopped_after_training_resumes_at_the_gate(ws: Workspace, spec) -> None:
    run_cycle(ws, spec, sources=[make_batch(0), make_batch(1)])
    trained = ws.stores.models.list_model_versions("toy")
    stop = {"now": False}

    def progress(msg: str) -> None:
        if msg.startswith("registered"):
            stop["now"] = True  # the stop request arrives while training

    stopped = run_cycle(
        ws, spec, sources=[make_batch(2)], progress=progress, should_stop=lambda: stop["now"]
    )
    assert stopped.aborted and stopped.steps["aborted"] == "after train"
    assert stopped.run.status is PipelineStatus.FAILED and "gate" not in stopped.steps
    assert stopped.run.trigger == "new_data"
    assert len(ws.stores.models.list_model_versions("toy")) == len(trained) + 1
    assert ws.stores.pipeline.find_lease(lease_name(spec)) is None

    resumed = run_cycle(ws, spec)
    assert resumed.run.evidence["resumed_from"] == stopped.run.id
    assert resumed.run.trigger == "new_data"
    assert resumed.steps["train"]["cached"] is True
    assert resumed.steps["train"]["version"] == stopped.steps["train"]["version"]
    assert resumed.steps["gate"]["cached"] is False and "decision" in resumed.steps["gate"]
    assert len(ws.stores.models.list_model_versions("toy")) == len(trained) + 1
    first = ws.stores.pipeline.list_pipeline_runs("toy")[-2]
    assert first.id == stopped.run.id and first.steps["resumed_by"] == resumed.run.id
    assert run_cycle(ws, spec).run.status is PipelineStatus.SKIPPED  # resumed only once


def test_a_crashed_cycle_left_running_is_taken_over_after_its_lease_expires(
    ws: Workspace, spec
) -> None:
    run_cycle(ws, spec, sources=[make_batch(0), make_batch(1)])
    stop = {"now": False}
    crashed = run_cycle(
        ws,
        spec,
        sources=[make_batch(2)],
        progress=lambda m: stop.update(now=stop["now"] or m.startswith("registered")),
        should_stop=lambda: stop["now"],
    )
    # Make the record look like the process died mid-cycle holding the lease.
    ws.stores.pipeline.finish_pipeline_run(
        crashed.run.id, PipelineStatus.RUNNING, steps={"train": crashed.steps["train"]}
    )
    assert ws.stores.pipeline.acquire_lease(lease_name(spec), "dead-controller", 0.3)
    with pytest.raises(ConflictError, match="lease"):
        run_cycle(ws, spec)
    time.sleep(0.4)
    taken = run_cycle(ws, spec)
    assert taken.run.evidence["resumed_from"] == crashed.run.id
    assert taken.steps["train"]["cached"] is True and "gate" in taken.steps
    old = next(r for r in ws.stores.pipeline.list_pipeline_runs("toy") if r.id == crashed.run.id)
    assert old.status is PipelineStatus.FAILED and old.steps["aborted"] == "the controller died"


def test_the_lease_is_renewed_while_a_long_cycle_runs(ws: Workspace, spec) -> None:
    seen: list[bool] = []

    def progress(msg: str) -> None:
        if msg.startswith("training on"):
            time.sleep(0.5)  # longer than the lease's time to live
            seen.append(ws.stores.pipeline.acquire_lease(lease_name(spec), "intruder", 60))

    run_cycle(ws, spec, sources=[make_batch(0)], progress=progress, lease_ttl_s=0.3)
    assert seen == [False]
    assert ws.stores.pipeline.find_lease(lease_name(spec)) is None


def test_a_missed_schedule_catches_up_once(ws: Workspace) -> None:
    spec = parse_spec({**SPEC, "triggers": {"new_data_rows": None, "schedule_cron": "0 2 * * *"}})
    first = run_cycle(ws, spec, sources=[make_batch(0), make_batch(1)], now=T0)
    assert first.run.trigger == "bootstrap"
    assert run_cycle(ws, spec, now=T0 + timedelta(hours=3)).run.trigger == "none"
    late = T0 + timedelta(days=5, hours=1)  # the controller was down for five nightly ticks
    caught = run_cycle(ws, spec, now=late)
    assert caught.run.trigger == "schedule" and caught.promoted is not None
    assert caught.run.evidence["schedule"]["missed"] == 4
    assert caught.run.evidence["schedule"]["tick"] == "2030-01-12T02:00:00+00:00"
    assert run_cycle(ws, spec, now=late + timedelta(minutes=5)).run.trigger == "none"
    nxt = run_cycle(ws, spec, now=datetime(2030, 1, 13, 2, 1, tzinfo=UTC))
    assert nxt.run.trigger == "schedule" and nxt.run.evidence["schedule"]["missed"] == 0
    scheduled = [r for r in ws.stores.pipeline.list_pipeline_runs("toy") if "schedule" in r.trigger]
    assert len(scheduled) == 2


def test_held_triggers_are_recorded_with_the_reason(ws: Workspace) -> None:
    spec = parse_spec(
        {**SPEC, "triggers": {"new_data_batches": 1, "new_data_rows": None, "max_runs_per_day": 2}}
    )
    run_cycle(ws, spec, sources=[make_batch(0)], now=T0)
    assert run_cycle(
        ws, spec, sources=[make_batch(1)], now=T0 + timedelta(hours=1)
    ).run.trigger == ("new_data")
    held = run_cycle(ws, spec, sources=[make_batch(2)], now=T0 + timedelta(hours=2))
    assert held.run.status is PipelineStatus.SKIPPED and held.run.trigger == "none"
    assert held.run.evidence["held"]["new_data"]["batches"] == [3]
    assert "max 2" in held.run.evidence["held_because"]
    nxt = run_cycle(ws, spec, now=T0 + timedelta(hours=26))
    assert nxt.run.trigger == "new_data" and nxt.steps["train"]["cached"] is False


def test_the_agent_ingests_landed_files_trains_and_gates(ws: Workspace, spec, tmp_path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    for w in range(2):
        make_batch(w).to_parquet(landing / f"week-{w:02d}.parquet")
    (landing / "broken.csv").write_text("")
    agent = Agent(ws, spec, AgentConfig(landing=landing, interval_s=0.01, monitor_every_s=None))
    report = agent.tick()
    assert report.landed == ["broken.csv", "week-00.parquet", "week-01.parquet"]
    assert report.cycle is not None and report.cycle.run.trigger == "bootstrap"
    gate = report.cycle.steps["gate"]
    assert gate["challenger"] == 1 and report.cycle.steps["train"]["cached"] is False
    assert find_alias_version(ws, "toy", PRODUCTION) == (1 if gate["promoted"] else None)
    assert sorted(p.name for p in (landing / "processed").iterdir()) == [
        "week-00.parquet",
        "week-01.parquet",
    ]
    assert [p.name for p in (landing / "unreadable").iterdir()] == ["broken.csv"]
    assert agent.pending_files() == []
    assert agent.run(max_ticks=2) == 2
    runs = ws.stores.pipeline.list_pipeline_runs("toy")
    assert [r.status for r in runs[1:]] == [PipelineStatus.SKIPPED] * 2


def test_a_stop_request_ends_the_agent_between_steps(ws: Workspace, spec, tmp_path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    make_batch(0).to_csv(landing / "week-00.csv", index=False)
    agent = Agent(ws, spec, AgentConfig(landing=landing, interval_s=0.01, monitor_every_s=None))
    agent.say = lambda m: agent.request_stop() if m.startswith("training on") else None
    assert agent.run() == 1
    last = ws.stores.pipeline.list_pipeline_runs("toy")[-1]
    assert last.steps["aborted"] == "after train"
    assert ws.stores.pipeline.find_lease(lease_name(spec)) is None
