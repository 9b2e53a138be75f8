"""Replay one data set through Conveyor's public API, prequentially, under one policy.

The user's path, step for step: the first batches are written to a CSV file and
``conveyor init --from FILE --label LABEL`` drafts ``conveyor.yaml`` from it (run as a
subprocess; the draft is used as written). The first cycle ingests those batches. Then, for
every further batch in time order:

1. the production model scores the batch through a running ``conveyor serve`` (the real
   online server, which logs every prediction) before its labels are used: this is the batch's
   live metric;
2. its labels come back as feedback (:meth:`conveyor.project.Project.feedback`) and, under the
   triggered policy, a monitoring job runs (:meth:`~conveyor.project.Project.monitor`);
3. the batch (with its labels) lands and a cycle runs:

   - ``triggered``: Conveyor's agent ticks (:class:`conveyor.pipeline.agent.Agent`: the
     post-release watch, ingest and validation, the default trigger policy, train, gate);
   - ``always``: a forced cycle (``conveyor run --force``) trains after every batch; the gate
     still decides what is served.

``static`` is the first model the triggered replay served, never replaced, scoring each batch
in process (:func:`conveyor.training.service.load_version`). Before any model is served a batch
scores as chance (AUC 0.5) or, for a regression, as the mean label of the first batches.

The clock the agent and cycles see is the batch's event time when the drafted spec has a
timestamp that the prediction log reads as a time (so monitoring windows and training times are
on one clock), else the wall clock.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from benchmarks.loop_data import LoopData, Truth
from benchmarks.loop_metrics import BatchScore, chance_score, live_value, score_batch
from conveyor.config import Settings
from conveyor.core.clock import utcnow
from conveyor.core.errors import ConveyorError
from conveyor.core.labels import LabelCodec, Task, label_key
from conveyor.core.model import Predictor
from conveyor.core.signature import Signature, encode_frame
from conveyor.demo.server import ServerProcess
from conveyor.monitoring.jobs import event_times
from conveyor.pipeline.agent import Agent, AgentConfig
from conveyor.pipeline.cycle import CycleOutcome
from conveyor.project import Project
from conveyor.registry.service import PRODUCTION, find_alias_version
from conveyor.spec import SPEC_FILENAME, load_spec
from conveyor.training.service import load_version
from conveyor.workspace import Workspace

Say = Callable[[str], None]
#: The drafted choices the report shows.
_DRAFTED = {
    "project",
    "task",
    "label",
    "timestamp",
    "entities",
    "features",
    "categorical",
    "ignore",
}


class Policy(StrEnum):
    """When a model is retrained."""

    STATIC = "static"
    TRIGGERED = "triggered"
    ALWAYS = "always"


@dataclass
class BatchRecord:
    """One replayed batch: who scored it, its live metric, and what its cycle did.

    ``events`` lists the steps in the order they ran (``score``, ``feedback``, ``monitor``,
    ``ingest``), so a test can check that the batch was scored before its labels were used;
    ``trained_through`` is the newest data set sequence number the scoring version was trained
    on and ``seq`` the one the batch got when ingested.
    """

    index: int
    rows: int
    score: BatchScore
    served: int | None = None
    trained_through: int | None = None
    seq: int | None = None
    trained: bool = False
    promoted: bool = False
    trigger: str = ""
    refused_better: bool = False
    events: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Trace:
    """One policy's replay of one data set."""

    dataset: str
    policy: Policy
    records: list[BatchRecord] = field(default_factory=list)
    #: Replayed batches scored before a model was served (0: the first cycle served one).
    first_served_batches: int | None = None
    first_served_s: float | None = None
    retrains: int = 0
    error: str | None = None
    seconds: float = 0.0
    #: What the first cycle did: its status, refused batches, errors and gate reasons.
    first_cycle: str = ""

    def live(self, truth: Truth, start: int = 0) -> float | None:
        """The live metric over the batches from index ``start`` on (see ``live_value``)."""
        return live_value(truth, [r.score for r in self.records if r.index >= start])

    def gate_stall(self) -> int:
        """The longest stretch of batches from a challenger the gate refused although its own
        interval shows it better (lower end above 0) to the next promotion."""
        longest = stall = 0
        for rec in self.records:
            if rec.promoted:
                stall = 0
            elif rec.refused_better or stall:
                stall += 1
            longest = max(longest, stall)
        return longest

    def delays(self, data: LoopData, *, promoted: bool = False) -> list[int | None]:
        """Batches from each drift point of ``data`` to the first cycle that trained (or
        promoted) after it; the drift point's own batch counts 1 (its labels are needed to
        see the change)."""
        out: list[int | None] = []
        points = data.drift_points
        for point, end in zip(points, (*points[1:], len(data.batches)), strict=False):
            hits = [
                r.index
                for r in self.records
                if point <= r.index < end and (r.promoted if promoted else r.trained)
            ]
            out.append(hits[0] - point + 1 if hits else None)
        return out


@dataclass(frozen=True, slots=True)
class Drafted:
    """What ``conveyor init`` wrote (``drafted``: the spec's main choices), and how long it took."""

    spec_path: Path
    files: tuple[Path, ...]
    seconds: float
    output: str
    drafted: dict[str, Any]


def write_batches(data: LoopData, root: Path) -> tuple[Path, ...]:
    """Each batch as a CSV file, named so that name order is time order."""
    folder = root / "batches"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, batch in enumerate(data.batches):
        path = folder / f"{data.name}-{i:04d}.csv"
        batch.to_csv(path, index=False)
        files.append(path)
    return tuple(files)


def draft(data: LoopData, root: Path) -> Drafted:
    """Run ``conveyor init`` on the first batches; raises ConveyorError when it fails."""
    files = write_batches(data, root)
    sample = root / f"{data.name}.csv"
    pd.concat(data.batches[: data.history], ignore_index=True).to_csv(sample, index=False)
    spec_path = root / SPEC_FILENAME
    cmd = [sys.executable, "-m", "conveyor.cli.main", "--spec", str(spec_path)]
    cmd += ["init", "--from", str(sample), "--label", data.label]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=root)
    seconds = time.perf_counter() - started
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        raise ConveyorError(f"conveyor init exited {done.returncode}: {output[-600:]}")
    spec = load_spec(spec_path)
    choices = spec.model_dump(mode="json", include=_DRAFTED)
    return Drafted(spec_path, files, seconds, output, choices)


class Replay:
    """One policy's replay of one data set in its own workspace under ``root``."""

    def __init__(self, data: LoopData, drafted: Drafted, root: Path, policy: Policy, say: Say):
        self.data, self.drafted, self.policy, self.say = data, drafted, policy, say
        self.home = root / f"ws-{policy}"
        shutil.rmtree(self.home, ignore_errors=True)
        self.ws = Workspace.open(Settings(home=self.home, db_url=None, artifacts=None))
        self.project = Project.load(self.ws, drafted.spec_path)
        self.spec = self.project.spec
        self.landing = root / f"landing-{policy}"
        shutil.rmtree(self.landing, ignore_errors=True)
        self.landing.mkdir(parents=True)
        self.clock_now = utcnow()
        self.agent = Agent(
            self.ws,
            self.spec,
            AgentConfig(landing=self.landing, monitor_every_s=None),
            clock=lambda: self.clock_now,
        )
        self.server: ServerProcess | None = None
        self.trace = Trace(data.name, policy)
        self.static = Trace(data.name, Policy.STATIC)
        self.static_version: int | None = None
        self.static_model: Predictor | None = None
        history = pd.concat(data.batches[: data.history])[data.label]
        self.mean_label = float(history.mean()) if data.truth is Truth.REGRESSION else float("nan")

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> tuple[Trace, Trace]:
        """Replay every batch; the policy's trace and (triggered) the static one."""
        started = time.perf_counter()
        try:
            self._first_cycle(started)
            for t in range(self.data.history, len(self.data.batches)):
                self._batch(t, started)
        except Exception as exc:  # noqa: BLE001 - one data set's failure is recorded, not fatal
            self.trace.error = f"{type(exc).__name__}: {exc}"
            self.say(f"{self.data.name}/{self.policy}: stopped: {self.trace.error}")
        finally:
            if self.server is not None:
                self.server.__exit__(None, None, None)
        self.trace.seconds = time.perf_counter() - started
        self.trace.retrains = sum(r.trained for r in self.trace.records)
        self.static.first_served_batches = self.trace.first_served_batches
        self.static.first_served_s = self.trace.first_served_s
        self.static.first_cycle = self.trace.first_cycle
        self.static.error = self.trace.error if self.static_version is None else None
        return self.trace, self.static

    def _first_cycle(self, started: float) -> None:
        files = self.drafted.files[: self.data.history]
        self._set_clock(pd.concat([pd.read_csv(f) for f in files]))
        outcome, errors = self._cycle(files)
        if self._production() is not None:
            self.trace.first_served_batches = 0
            self.trace.first_served_s = self.drafted.seconds + time.perf_counter() - started
        self.trace.first_cycle = first_cycle_summary(outcome, errors)
        self.say(
            f"{self.data.name}/{self.policy}: first cycle {self.trace.first_cycle}; production "
            f"{self._production() or 'none'}"
        )

    def _batch(self, t: int, started: float) -> None:
        tick = time.perf_counter()
        frame = pd.read_csv(self.drafted.files[t])
        y = frame[self.data.label].tolist()
        rec = BatchRecord(t, len(frame), chance_score(self.data.truth, y, self.mean_label))
        production = self._production()
        if production is not None:
            if self.trace.first_served_batches is None:
                self.trace.first_served_batches = t - self.data.history
                self.trace.first_served_s = self.drafted.seconds + time.perf_counter() - started
            rec.served = production
            rec.trained_through = self._trained_through(production)
            try:
                rec.score = self._serve(frame, y, t, production, rec)
            except ConveyorError as exc:  # scored as if nothing were served; said in the notes
                rec.notes.append(f"serve: {exc}")
        if self.policy is Policy.TRIGGERED:
            self._score_static(frame, y, t, production)
        self._set_clock(frame)
        outcome, errors = self._cycle([self.drafted.files[t]])
        rec.events.append("ingest")
        rec.notes += errors
        self._read_cycle(outcome, rec)
        rec.seconds = time.perf_counter() - tick
        self.trace.records.append(rec)
        self.say(self._line(rec))

    # -- serving and labels -------------------------------------------------------------------

    def _serve(
        self, frame: pd.DataFrame, y: list[Any], t: int, version: int, rec: BatchRecord
    ) -> BatchScore:
        server = self._server()
        server.wait_version(version, timeout_s=60.0)
        signature = self._signature(version)
        keep = set(signature.names) | set(self.spec.entities) | set(self.spec.ignore)
        keep |= {self.spec.timestamp} if self.spec.timestamp else set()
        keep.discard(self.spec.label)
        records = request_records(frame[[c for c in frame.columns if c in keep]])
        ids = [f"{self.policy}-{t}-{i}" for i in range(len(records))]
        answers = server.predict(
            [{**r, "request_id": i} for r, i in zip(records, ids, strict=True)]
        )
        rec.events.append("score")
        codec = signature.labels
        score = score_batch(self.data.truth, y, served_output(answers, codec), codec)
        try:
            self.project.feedback(
                [{"request_id": i, "label": v} for i, v in zip(ids, y, strict=True)]
            )
            rec.events.append("feedback")
        except ConveyorError as exc:
            rec.notes.append(f"feedback: {exc}")
        if self.policy is Policy.TRIGGERED:
            try:
                self.project.monitor(write_html=False)
                rec.events.append("monitor")
            except ConveyorError as exc:
                rec.notes.append(f"monitor: {exc}")
        return score

    def _score_static(
        self, frame: pd.DataFrame, y: list[Any], t: int, production: int | None
    ) -> None:
        if self.static_version is None:
            self.static_version = production
        rec = BatchRecord(t, len(frame), chance_score(self.data.truth, y, self.mean_label))
        if self.static_version is not None:
            if self.static_model is None:
                self.static_model = load_version(self.ws, self.spec.model_name, self.static_version)
            model = self.static_model
            output = model.predict_encoded(encode_frame(frame, model.signature))
            rec.score = score_batch(self.data.truth, y, output, model.signature.labels)
            rec.served = self.static_version
            rec.trained_through = self._trained_through(self.static_version)
            rec.events.append("score")
        self.static.records.append(rec)

    def _server(self) -> ServerProcess:
        if self.server is None:
            log = self.home.parent / f"server-{self.policy}.log"
            server = ServerProcess(
                spec=self.drafted.spec_path, home=self.home, env=self.ws.env(), log=log
            )
            self.server = server.__enter__()
        return self.server

    # -- cycles --------------------------------------------------------------------------------

    def _cycle(self, files: Sequence[Path]) -> tuple[CycleOutcome, list[str]]:
        """Land ``files`` and let the policy run one cycle on them."""
        if self.policy is Policy.ALWAYS:
            outcome = self.project.run_cycle(sources=list(files), manual=True, now=self.clock_now)
            return outcome, [str(outcome.steps["error"])] if "error" in outcome.steps else []
        for path in files:
            partial = self.landing / f".{path.name}.tmp"
            shutil.copyfile(path, partial)
            partial.replace(self.landing / path.name)  # the agent never sees half a file
        report = self.agent.tick()
        if report.cycle is None:
            raise ConveyorError(f"the agent ran no cycle: {'; '.join(report.errors)}")
        errors = list(report.errors)
        if "error" in report.cycle.steps:
            errors.append(str(report.cycle.steps["error"]))
        return report.cycle, errors

    def _read_cycle(self, outcome: CycleOutcome, rec: BatchRecord) -> None:
        ingested = outcome.steps.get("ingest") or []
        if ingested:
            rec.seq = ingested[-1].get("seq")
            if ingested[-1].get("status") != "accepted":
                why = str(ingested[-1].get("summary") or "")[:200]
                rec.notes.append(f"batch {ingested[-1].get('status')}: {why}")
        rec.trigger = outcome.run.trigger
        # a cached training step (the same window as before) trains no new model
        rec.trained = "train" in outcome.steps and not outcome.steps["train"].get("cached")
        gate = outcome.steps.get("gate") or {}
        rec.promoted = bool(gate.get("promoted"))
        low = (gate.get("decision") or {}).get("ci_low")
        rec.refused_better = bool(gate) and not rec.promoted and low is not None and low > 0
        if rec.refused_better:
            said = gate.get("problems") or (gate.get("decision") or {}).get("reasons") or []
            rec.notes.append(f"gate refused a better challenger: {'; '.join(map(str, said))}")

    def _set_clock(self, frame: pd.DataFrame) -> None:
        """The batch's newest event time, when the prediction log reads it as one."""
        column = self.spec.timestamp
        if column is None or column not in frame.columns:
            self.clock_now = utcnow()
            return
        inputs = [orjson.dumps({column: v}, default=str).decode() for v in frame[column].tolist()]
        times = event_times(pd.DataFrame({"inputs": inputs}), column).dropna()
        if times.empty:
            self.clock_now = utcnow()
            return
        newest: datetime = times.max().to_pydatetime()
        self.clock_now = newest + timedelta(microseconds=1)

    # -- the registry --------------------------------------------------------------------------

    def _production(self) -> int | None:
        return find_alias_version(self.ws, self.spec.model_name, PRODUCTION)

    def _version(self, version: int) -> Any:
        return self.ws.stores.models.get_model_version(self.spec.model_name, version)

    def _signature(self, version: int) -> Signature:
        return Signature.from_dict(self._version(version).signature)

    def _trained_through(self, version: int) -> int | None:
        seqs = self._version(version).lineage.get("dataset_seqs") or []
        return max(seqs) if seqs else None

    def _line(self, rec: BatchRecord) -> str:
        value = "-" if rec.score.value is None else f"{rec.score.value:.4f}"
        served = f"v{rec.served}" if rec.served else "nothing"
        did = "trained" if rec.trained else "no training"
        if rec.trained:
            did += ", promoted" if rec.promoted else ", kept production"
        notes = f" [{'; '.join(rec.notes)[:160]}]" if rec.notes else ""
        return (
            f"{self.data.name}/{self.policy} batch {rec.index + 1}/{len(self.data.batches)}: "
            f"{value} by {served}; {rec.trigger}: {did} ({rec.seconds:.1f}s){notes}"
        )


def first_cycle_summary(outcome: CycleOutcome, errors: Sequence[str]) -> str:
    """What a first cycle did: status and trigger, refused batches, errors, gate reasons."""
    said = [f"{outcome.run.status} (trigger {outcome.run.trigger})"]
    ingested = outcome.steps.get("ingest") or []
    refused = [i for i in ingested if i.get("status") != "accepted"]
    if refused:
        said.append(
            f"{len(refused)} of {len(ingested)} batches {refused[0].get('status')}: "
            f"{str(refused[0].get('summary'))[:200]}"
        )
    said += errors
    if not outcome.promoted:
        said += map(str, (outcome.steps.get("gate") or {}).get("decision", {}).get("reasons") or [])
    return "; ".join(said)


def request_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as JSON records (missing values as null), as a client would send them."""
    records: list[dict[str, Any]] = json.loads(
        frame.to_json(orient="records", double_precision=15, date_format="iso")
    )
    return records


def served_output(answers: Sequence[dict[str, Any]], codec: LabelCodec) -> np.ndarray:
    """The server's answers as the encoded output :func:`score_batch` takes."""
    if codec.task is Task.MULTICLASS:
        column = {label_key(c): j for j, c in enumerate(codec.classes)}
        out = np.zeros((len(answers), len(column)))
        for i, answer in enumerate(answers):
            for cls, p in (answer.get("probabilities") or {}).items():
                out[i, column[label_key(cls)]] = float(p)
        return out
    return np.asarray([float(a["score"]) for a in answers], np.float64)


def replay(data: LoopData, root: Path, say: Say) -> tuple[Drafted | None, list[Trace]]:
    """Draft the spec once, then replay ``data`` under every policy (in its own workspace).

    ``root`` must not exist yet: the spec, the batch files and the workspaces are made in it.
    """
    root.mkdir(parents=True, exist_ok=False)
    try:
        drafted = draft(data, root)
    except (ConveyorError, OSError) as exc:
        say(f"{data.name}: conveyor init failed: {exc}")
        return None, [Trace(data.name, p, error=f"init: {exc}") for p in Policy]
    say(f"{data.name}: conveyor init ({drafted.seconds:.1f}s): {drafted.output.splitlines()[-1:]}")
    triggered, static = Replay(data, drafted, root, Policy.TRIGGERED, say).run()
    always, _ = Replay(data, drafted, root, Policy.ALWAYS, say).run()
    return drafted, [static, triggered, always]
