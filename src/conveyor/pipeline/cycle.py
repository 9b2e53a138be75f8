"""The continuous-training controller: one gated cycle at a time per project, each with a reason."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from conveyor.core.clock import new_id, utcnow
from conveyor.core.entities import PipelineRun, PipelineRunId, PipelineStatus
from conveyor.core.errors import ConflictError, InvalidInputError
from conveyor.data.service import Source, ingest_batch
from conveyor.pipeline.gate import gate_version
from conveyor.pipeline.triggers import Trigger, evaluate_triggers
from conveyor.spec import ProjectSpec
from conveyor.training.service import train_model
from conveyor.workspace import Workspace

Progress = Callable[[str], None]
LEASE_TTL_S = 3600.0


@dataclass(frozen=True, slots=True)
class CycleOutcome:
    """One cycle: the run record and what each step produced."""

    run: PipelineRun
    triggers: tuple[Trigger, ...] = ()
    steps: dict[str, Any] = field(default_factory=dict)

    @property
    def promoted(self) -> bool:
        return bool(self.steps.get("gate", {}).get("promoted"))


def run_cycle(
    ws: Workspace,
    spec: ProjectSpec,
    *,
    sources: Sequence[Source] = (),
    manual: bool = False,
    progress: Progress | None = None,
) -> CycleOutcome:
    """Ingest pending batches, evaluate the triggers and, if one fires, train, gate and promote.

    Only one cycle runs per project at a time: the cycle holds an expiring lease in the metadata
    store, so a crashed controller never wedges the project. Raises ConflictError if another
    cycle holds the lease.
    """
    say = progress or (lambda _msg: None)
    lease, holder = f"ct:{spec.project}", f"{socket.gethostname()}:{os.getpid()}:{new_id()}"
    if not ws.stores.pipeline.acquire_lease(lease, holder, LEASE_TTL_S):
        raise ConflictError(f"Another continuous-training cycle of '{spec.project}' is running.")
    try:
        return _cycle(ws, spec, sources, manual, say)
    finally:
        ws.stores.pipeline.release_lease(lease, holder)


def _cycle(
    ws: Workspace, spec: ProjectSpec, sources: Sequence[Source], manual: bool, say: Progress
) -> CycleOutcome:
    now = utcnow()
    steps: dict[str, Any] = {}
    ingested = [ingest_batch(ws, spec, s, progress=say) for s in sources]
    if ingested:
        steps["ingest"] = [
            {
                "seq": r.version.seq,
                "status": str(r.version.status),
                "rows": r.version.row_count,
                "summary": r.report.summary(),
            }
            for r in ingested
        ]
    triggers = evaluate_triggers(ws, spec, manual=manual, now=now)
    if triggers and not manual and _cooling_down(ws, spec, now):
        steps["cooldown"] = {"hours": spec.triggers.cooldown_hours}
        triggers = []
    run = PipelineRun(
        id=PipelineRunId(new_id("pr_")),
        project=spec.project,
        trigger=",".join(t.name for t in triggers) or "none",
        status=PipelineStatus.RUNNING,
        started_at=now,
        evidence={t.name: t.evidence for t in triggers},
    )
    ws.stores.pipeline.add_pipeline_run(run)
    if not triggers:
        say("no trigger fired; nothing to train")
        done = ws.stores.pipeline.finish_pipeline_run(run.id, PipelineStatus.SKIPPED, steps=steps)
        return CycleOutcome(run=done, steps=steps)
    say(f"triggered by {run.trigger}")
    try:
        trained = train_model(ws, spec, reason=run.trigger, progress=say)
        steps["train"] = {
            "version": trained.version.version,
            "test": trained.metrics["test"],
            "beats_baseline": trained.beats_baseline,
        }
        gate = gate_version(ws, spec, trained.version.version)
        steps["gate"] = gate.to_dict()
        status = PipelineStatus.SUCCEEDED if gate.passed else PipelineStatus.BLOCKED
        say(
            ("promoted" if gate.promoted else "kept production; rejected")
            + f" v{trained.version.version}"
        )
    except InvalidInputError as exc:
        steps["error"] = str(exc)
        status = PipelineStatus.FAILED
        say(f"cycle failed: {exc}")
    except BaseException as exc:
        steps["error"] = f"{type(exc).__name__}: {exc}"
        ws.stores.pipeline.finish_pipeline_run(run.id, PipelineStatus.FAILED, steps=steps)
        raise
    done = ws.stores.pipeline.finish_pipeline_run(run.id, status, steps=steps)
    return CycleOutcome(run=done, triggers=tuple(triggers), steps=steps)


def _cooling_down(ws: Workspace, spec: ProjectSpec, now: Any) -> bool:
    hours = spec.triggers.cooldown_hours
    if hours <= 0:
        return False
    trained = [r for r in ws.stores.pipeline.list_pipeline_runs(spec.project) if "train" in r.steps]
    return bool(trained) and trained[-1].started_at + timedelta(hours=hours) > now
