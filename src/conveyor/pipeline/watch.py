"""Post-release watch: re-score a new release's labelled traffic with the version it replaced.

Comparing the two versions on the very same served rows (paired) makes the decision immune to
week-to-week changes in how hard the traffic is; the release is rolled back only when it is
worse beyond the margin with the whole confidence interval below zero, or under the floor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from conveyor.core.clock import new_id, utcnow
from conveyor.core.entities import Alert, AlertId, AlertSeverity
from conveyor.core.signature import encode_frame
from conveyor.evaluation.gate import GatePolicy, compare_models
from conveyor.monitoring.alerts import notify
from conveyor.monitoring.links import alert_link
from conveyor.monitoring.service import served_inputs
from conveyor.registry.service import (
    PRODUCTION,
    find_alias_version,
    production_history,
    rollback,
)
from conveyor.serving.feedback import join_feedback
from conveyor.spec import ProjectSpec
from conveyor.training.service import load_version
from conveyor.workspace import Workspace


@dataclass(frozen=True, slots=True)
class WatchOutcome:
    """The watch's verdict on the current release."""

    status: str  # "no_release" | "waiting" | "healthy" | "rolled_back"
    version: int | None = None
    previous: int | None = None
    evidence: dict[str, Any] | None = None

    @property
    def rolled_back(self) -> bool:
        return self.status == "rolled_back"


def watch_release(ws: Workspace, spec: ProjectSpec) -> WatchOutcome:
    """Check the current production release against the one it replaced; roll back if worse."""
    model = spec.model_name
    current = find_alias_version(ws, model, PRODUCTION)
    moves = [e for e in production_history(ws, model) if e.to_version == current]
    if current is None or not moves or moves[-1].from_version is None or not spec.watch.enabled:
        return WatchOutcome("no_release", current)
    release, previous = moves[-1], moves[-1].from_version
    joined = join_feedback(
        ws.project_dir(spec.project, "predictions"),
        ws.project_dir(spec.project, "feedback"),
        since=release.at,
    )
    rows = joined
    if len(rows):
        rows = rows[(rows["model_version"] == current) & rows["label"].notna()]
    if len(rows) < spec.watch.min_labels:
        return WatchOutcome("waiting", current, previous, {"labels": len(rows)})
    y = pd.to_numeric(rows["label"], errors="coerce").to_numpy(dtype=np.float64)
    old = load_version(ws, model, previous)
    old_score = old.predict_encoded(encode_frame(served_inputs(rows), old.signature))
    decision = compare_models(
        y,
        rows["score"].to_numpy(dtype=np.float64),
        old_score,
        task=spec.task,
        policy=GatePolicy(
            margin=spec.watch.margin,
            min_rows=spec.watch.min_labels,
            floor=spec.watch.floor,
            n_bootstrap=spec.gate.n_bootstrap,
        ),
    )
    evidence = {"labels": len(rows), "decision": decision.to_dict()}
    worse = (
        decision.delta is not None
        and decision.ci_high is not None
        and decision.delta < -spec.watch.margin
        and decision.ci_high < 0
    )
    under_floor = spec.watch.floor is not None and decision.challenger < spec.watch.floor
    if not (worse or under_floor):
        return WatchOutcome("healthy", current, previous, evidence)
    reason = (
        f"post-release watch: v{current} {decision.metric} {decision.challenger:.3f} vs "
        f"v{previous} {decision.production:.3f} on the same {len(rows)} labelled requests"
    )
    rollback(ws, model, reason=reason, block=True, evidence=evidence)
    alert = Alert(
        id=AlertId(new_id("al_")),
        project=spec.project,
        kind="rollback",
        severity=AlertSeverity.CRITICAL,
        message=f"Rolled back v{current}: {reason}.",
        created_at=utcnow(),
        evidence=evidence,
        report=alert_link("rollback", evidence, model=model),
    )
    ws.stores.monitor.add_alert(alert)
    notify(ws, spec, alert)
    return WatchOutcome("rolled_back", current, previous, evidence)
