"""The continuous-training controller: one gated cycle at a time per project, each with a reason.

A cycle is: ingest pending batches (each validated; a failing batch is quarantined) → evaluate
the trigger policy → train on the window (with the project's training budget) → gate → promote
or alert. Every cycle is recorded as a PipelineRun with the triggers that started it and their
evidence, or, when nothing fired, as a skipped run saying what was held back and why.

One cycle runs per project at a time: the cycle holds a lease in the metadata store, renewed in
the background while it runs and left to expire if the process dies, so a crashed controller
never wedges the project. Train and gate are cached by the hash of their inputs
(:mod:`conveyor.pipeline.cache`); a cycle that was stopped or crashed after training is resumed
by the next cycle with its original triggers, and its training step is a cache hit.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any

from conveyor.core.clock import new_id, utcnow
from conveyor.core.entities import PipelineRun, PipelineRunId, PipelineStatus, VersionStatus
from conveyor.core.errors import ConflictError, InvalidInputError, NotFoundError
from conveyor.data.service import (
    ChangePoint,
    Source,
    WindowRule,
    choose_training_window,
    ingest_batch,
)
from conveyor.pipeline.cache import cached_step, step_key
from conveyor.pipeline.gate import BeforePromote, gate_version
from conveyor.pipeline.triggers import Trigger, collect_signals, decide
from conveyor.registry.service import PRODUCTION, find_alias_version
from conveyor.spec import ProjectSpec
from conveyor.training.service import train_model
from conveyor.workspace import Workspace

Progress = Callable[[str], None]
StopCheck = Callable[[], bool]
LEASE_TTL_S = 120.0
_SPEC_FOR_TRAINING = {
    "task",
    "label",
    "timestamp",
    "entities",
    "features",
    "categorical",
    "ignore",
    "training",
}
_RESERVED_EVIDENCE = {"held", "held_because", "resumed_from"}
#: Triggers that report a change in the data or in the model's quality: after one, the
#: training window shortens to the rows since the change.
CHANGE_TRIGGERS = ("drift", "decay")


@dataclass(frozen=True, slots=True)
class CycleOutcome:
    """One cycle: the run record and what each step produced."""

    run: PipelineRun
    triggers: tuple[Trigger, ...] = ()
    steps: dict[str, Any] = field(default_factory=dict)

    @property
    def promoted(self) -> bool:
        return bool(self.steps.get("gate", {}).get("promoted"))

    @property
    def aborted(self) -> bool:
        return "aborted" in self.steps


@dataclass(frozen=True, slots=True)
class CycleVerdict:
    """Why a cycle did not leave a served model behind: ``blocked`` (by the gate, validation
    or a conflict; the command exits 3) or failed (exit 1)."""

    blocked: bool
    reason: str


def cycle_verdict(ws: Workspace, spec: ProjectSpec, outcome: CycleOutcome) -> CycleVerdict | None:
    """What a cycle's end means for its caller; None when nothing is in the way.

    Parameters
    ----------
    ws : Workspace
        Where the project's production alias is read.
    spec : ProjectSpec
        The project.
    outcome : CycleOutcome
        The cycle, as :func:`run_cycle` returned it.

    Returns
    -------
    CycleVerdict or None
        Blocked when the cycle ended ``blocked`` (the gate refused the challenger, or
        production moved meanwhile), or when the project still serves no model and this
        cycle did not release one (every batch quarantined, no trigger, no data); failed when
        a step raised. None for a cycle that was stopped (the next one resumes it), that
        promoted, kept a production that still serves, or awaits a person's approval.
    """
    run = outcome.run
    if outcome.aborted:
        return None
    if run.status is PipelineStatus.FAILED:
        return CycleVerdict(False, f"cycle {run.id} failed: {outcome.steps.get('error')}")
    gate = outcome.steps.get("gate") or {}
    if run.status is PipelineStatus.BLOCKED:
        reasons = gate.get("conflict") or "; ".join(
            [*(gate.get("decision") or {}).get("reasons", []), *gate.get("problems", [])]
        )
        return CycleVerdict(True, f"cycle {run.id} blocked: {reasons or 'the gate refused'}")
    if find_alias_version(ws, spec.model_name, PRODUCTION) is not None or gate.get(
        "awaiting_approval"
    ):
        return None
    ingest = outcome.steps.get("ingest") or []
    quarantined = [b["seq"] for b in ingest if b.get("status") == "quarantined"]
    why = (
        f"batches {quarantined} were quarantined"
        if quarantined
        else "no accepted batch started a training cycle"
    )
    return CycleVerdict(True, f"No model of project '{spec.project}' is served yet: {why}.")


def lease_name(spec: ProjectSpec) -> str:
    return f"ct:{spec.project}"


class LeaseKeeper:
    """Hold the project's lease for a block, renewing it every third of its time to live.

    Raises ConflictError on entry if another live holder has it; ``lost`` turns true if a
    renewal finds the lease taken over (the block should then stop at the next step).
    """

    def __init__(self, ws: Workspace, name: str, ttl_s: float = LEASE_TTL_S) -> None:
        self.ws, self.name, self.ttl_s = ws, name, ttl_s
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{new_id()}"
        self.lost = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease {name}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        if not self.ws.stores.pipeline.acquire_lease(self.name, self.holder, self.ttl_s):
            lease = self.ws.stores.pipeline.find_lease(self.name)
            until = f" until {lease.expires_at.isoformat()}" if lease else ""
            raise ConflictError(
                f"Another continuous-training cycle holds the lease '{self.name}'{until}; "
                "it is running, or it crashed and the lease expires by itself."
            )
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._done.wait(self.ttl_s / 3):
            try:
                if not self.ws.stores.pipeline.acquire_lease(self.name, self.holder, self.ttl_s):
                    self.lost = True
                    return
            except Exception:  # noqa: BLE001 - a failed renewal is retried; expiry is the backstop
                continue

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join(timeout=5)
        self.ws.stores.pipeline.release_lease(self.name, self.holder)


def run_cycle(
    ws: Workspace,
    spec: ProjectSpec,
    *,
    sources: Sequence[Source] = (),
    manual: bool = False,
    progress: Progress | None = None,
    now: datetime | None = None,
    should_stop: StopCheck | None = None,
    lease_ttl_s: float = LEASE_TTL_S,
    skip_unreadable: bool = False,
    before_promote: BeforePromote | None = None,
) -> CycleOutcome:
    """Ingest pending batches, evaluate the triggers and, if one fires, train, gate and promote.

    ``now`` is the time the trigger policy sees (default: the clock). ``should_stop`` is asked
    between steps; when it turns true the cycle stops cleanly, is recorded as failed with
    ``aborted`` in its steps, and the next cycle resumes it. A source that cannot be read raises
    its error, or with ``skip_unreadable`` is recorded in the ingest step (``error``) and the
    cycle goes on. Raises ConflictError if another cycle holds the project's lease.

    The gate promotes by compare-and-swap against the production it validated against: if
    production moved meanwhile (an operator's rollback), the challenger is not promoted, the
    gate step records ``conflict``, the cycle ends ``blocked`` and an alert is raised.
    ``before_promote`` is the gate's hook between its checks and its promotion.
    """
    say = progress or (lambda _msg: None)
    with LeaseKeeper(ws, lease_name(spec), lease_ttl_s) as lease:

        def stop() -> bool:
            return lease.lost or (should_stop is not None and should_stop())

        return _cycle(
            ws, spec, sources, manual, say, now or utcnow(), stop, skip_unreadable, before_promote
        )


def _cycle(
    ws: Workspace,
    spec: ProjectSpec,
    sources: Sequence[Source],
    manual: bool,
    say: Progress,
    now: datetime,
    stop: StopCheck,
    skip_unreadable: bool,
    before_promote: BeforePromote | None = None,
) -> CycleOutcome:
    steps: dict[str, Any] = {}
    ingested: list[dict[str, Any]] = []
    for source in sources:
        if stop():
            break
        try:
            r = ingest_batch(ws, spec, source, progress=say)
        except (InvalidInputError, NotFoundError) as exc:
            if not skip_unreadable:
                raise
            say(f"could not read {source}: {exc}")
            ingested.append({"status": "unreadable", "source": str(source), "error": str(exc)})
            continue
        ingested.append(
            {
                "seq": r.version.seq,
                "status": str(r.version.status),
                "rows": r.version.row_count,
                "created": r.created,
                "summary": r.report.summary(),
            }
        )
    if ingested:
        steps["ingest"] = ingested
    run_id = PipelineRunId(new_id("pr_"))
    resumed = _resume(ws, spec, run_id, take_over=not manual)
    evidence: dict[str, Any]
    if resumed is not None:
        fired = resumed.fired
        evidence = {t.name: t.evidence for t in fired} | {"resumed_from": resumed.run}
        say(f"resuming cycle {resumed.run} ({','.join(t.name for t in fired)})")
    else:
        decision = decide(spec.triggers, collect_signals(ws, spec, now=now, manual=manual))
        fired = decision.fired
        evidence = {t.name: t.evidence for t in fired}
        if decision.held:
            evidence["held"] = {t.name: t.evidence for t in decision.held}
            evidence["held_because"] = decision.held_because
            steps["held"] = {"triggers": [t.name for t in decision.held]}
            steps["held"]["because"] = decision.held_because
    run = PipelineRun(
        id=run_id,
        project=spec.project,
        trigger=",".join(t.name for t in fired) or "none",
        status=PipelineStatus.RUNNING,
        started_at=now,
        evidence=evidence,
    )
    ws.stores.pipeline.add_pipeline_run(run)
    if not fired:
        held = steps.get("held")
        say(f"held back: {held['because']}" if held else "no trigger fired; nothing to train")
        done = ws.stores.pipeline.finish_pipeline_run(run.id, PipelineStatus.SKIPPED, steps=steps)
        return CycleOutcome(run=done, steps=steps)
    say(f"triggered by {run.trigger}")
    try:
        status = _train_and_gate(ws, spec, run, steps, say, stop, before_promote)
    except (InvalidInputError, NotFoundError) as exc:
        steps["error"] = str(exc)
        status = PipelineStatus.FAILED
        say(f"cycle failed: {exc}")
    except BaseException as exc:
        steps["error"] = f"{type(exc).__name__}: {exc}"
        steps["aborted"] = "interrupted"
        ws.stores.pipeline.finish_pipeline_run(run.id, PipelineStatus.FAILED, steps=steps)
        raise
    done = ws.stores.pipeline.finish_pipeline_run(run.id, status, steps=steps)
    return CycleOutcome(run=done, triggers=tuple(fired), steps=steps)


def _train_and_gate(
    ws: Workspace,
    spec: ProjectSpec,
    run: PipelineRun,
    steps: dict[str, Any],
    say: Progress,
    stop: StopCheck,
    before_promote: BeforePromote | None = None,
) -> PipelineStatus:
    if stop():
        steps["aborted"] = "before train"
        say("stopping before training; the next cycle resumes this one")
        return PipelineStatus.FAILED
    change = change_point(ws, spec, run.trigger.split(","), run.evidence)
    chosen = choose_training_window(ws, spec, since=change)
    window = list(chosen.versions)
    if not window:
        raise InvalidInputError(f"Project '{spec.project}' has no accepted batch to train on.")
    steps["window"] = chosen.to_dict()
    say(
        f"window: {chosen.rows:,} rows in {len(window)} batches ({chosen.rule}"
        + (f", since {change.at.isoformat()}" if change else "")
        + ")"
    )
    if chosen.rule is WindowRule.ALL:
        say(
            f"only {chosen.rows:,} accepted rows: the test split holds about "
            f"{chosen.expected_test_rows} rows, the gate needs {spec.gate.min_rows}"
        )
    started = time.perf_counter()
    inputs = {
        "datasets": [v.id for v in window],
        "spec": spec.model_dump(mode="json", include=_SPEC_FOR_TRAINING),
    }

    def train() -> dict[str, Any]:
        trained = train_model(ws, spec, versions=window, reason=run.trigger, progress=say)
        return {
            "version": trained.version.version,
            "test": trained.metrics["test"],
            "beats_baseline": trained.beats_baseline,
        }

    def usable(result: Any) -> bool:
        try:
            version = ws.stores.models.get_model_version(spec.model_name, result["version"])
        except NotFoundError:
            return False
        return version.status is not VersionStatus.BLOCKED

    result, hit = cached_step(ws.stores.pipeline, step_key("train", inputs), train, valid=usable)
    steps["train"] = {**result, "cached": hit, "seconds": round(time.perf_counter() - started, 3)}
    if hit:
        say(f"training step cached: v{result['version']} was trained on the same inputs")
    if stop():
        steps["aborted"] = "after train"
        say("stopping after training; the next cycle resumes at the gate")
        return PipelineStatus.FAILED
    version = int(result["version"])
    production = find_alias_version(ws, spec.model_name, PRODUCTION)
    gate_inputs = {
        "challenger": version,
        "production": production,
        "gate": spec.gate.model_dump(mode="json"),
        "registry": spec.registry.model_dump(mode="json"),
    }
    started = time.perf_counter()
    gate, hit = cached_step(
        ws.stores.pipeline,
        step_key("gate", gate_inputs),
        lambda: gate_version(ws, spec, version, before_promote=before_promote).to_dict(),
        valid=lambda found: not found.get("conflict"),
    )
    steps["gate"] = {**gate, "cached": hit, "seconds": round(time.perf_counter() - started, 3)}
    if gate.get("conflict"):
        say(f"not promoted v{version}: {gate['conflict']}")
        return PipelineStatus.BLOCKED
    passed = gate["decision"].get("passed", False) and not gate["problems"]
    say(("promoted" if gate["promoted"] else "kept production; rejected") + f" v{version}")
    return PipelineStatus.SUCCEEDED if passed else PipelineStatus.BLOCKED


def change_point(
    ws: Workspace, spec: ProjectSpec, triggers: Sequence[str], evidence: Mapping[str, Any]
) -> ChangePoint | None:
    """When the change that started a cycle began: the start of the earliest monitoring window
    in the evidence of its drift or decay trigger, or None when neither started it.

    The point is on the clock the windows were keyed by (event time, or arrival time when the
    predictions carried no event time); the training window then shortens to the batches
    after it (see :func:`conveyor.data.service.choose_training_window`).
    """
    ids = {
        report
        for name in CHANGE_TRIGGERS
        if name in triggers
        for report in (evidence.get(name) or {}).get("reports") or ()
    }
    if not ids:
        return None
    reports = [r for r in ws.stores.monitor.list_monitor_reports(spec.project) if r.id in ids]
    if not reports:
        return None
    first = min(reports, key=lambda r: r.window_start)
    arrival = (first.stats.get("time") or {}).get("key") == "arrival"
    return ChangePoint(first.window_start, arrival=arrival)


@dataclass(frozen=True, slots=True)
class _Resumed:
    run: str
    fired: tuple[Trigger, ...]


def _resume(
    ws: Workspace, spec: ProjectSpec, new_id_: PipelineRunId, *, take_over: bool = True
) -> _Resumed | None:
    """The last cycle if it was stopped or crashed after its triggers fired; marks it resumed.

    Called while holding the lease, so a cycle still ``running`` is one whose process died.
    Without ``take_over`` (a manual cycle) a dead cycle is only closed, not resumed.
    """
    runs = ws.stores.pipeline.list_pipeline_runs(spec.project)
    if not runs:
        return None
    last = runs[-1]
    crashed = last.status is PipelineStatus.RUNNING
    stopped = last.status is PipelineStatus.FAILED and "aborted" in last.steps
    if not (crashed or stopped) or "resumed_by" in last.steps or last.trigger == "none":
        return None
    fired = tuple(
        Trigger(name, dict(ev))
        for name, ev in last.evidence.items()
        if name not in _RESERVED_EVIDENCE and isinstance(ev, dict)
    )
    for name in last.trigger.split(","):
        if name and name not in {t.name for t in fired}:
            fired = (*fired, Trigger(name))
    steps = {**last.steps, "resumed_by": new_id_} if take_over else dict(last.steps)
    if crashed:
        steps["aborted"] = "the controller died"
    if crashed or take_over:
        ws.stores.pipeline.finish_pipeline_run(last.id, PipelineStatus.FAILED, steps=steps)
    return _Resumed(run=last.id, fired=fired) if take_over else None
