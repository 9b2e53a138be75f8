"""Trigger policy: decide from recorded state whether a continuous-training cycle should run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from conveyor.core.entities import BatchStatus, PipelineStatus
from conveyor.spec import ProjectSpec
from conveyor.workspace import Workspace


@dataclass(frozen=True, slots=True)
class Trigger:
    """A reason to run a cycle, with the evidence that fired it."""

    name: str
    evidence: dict[str, Any] = field(default_factory=dict)


def last_trained_seq(ws: Workspace, spec: ProjectSpec) -> int:
    """The newest batch any registered version of the project was trained on (0 if none)."""
    versions = ws.stores.models.list_model_versions(spec.model_name)
    seqs = [max(v.lineage.get("dataset_seqs") or [0]) for v in versions]
    return max(seqs, default=0)


def evaluate_triggers(
    ws: Workspace, spec: ProjectSpec, *, manual: bool = False, now: datetime
) -> list[Trigger]:
    """Every trigger that fires now: manual, new data, drift, decay and schedule."""
    t = spec.triggers
    fired: list[Trigger] = [Trigger("manual")] if manual else []
    since = last_trained_seq(ws, spec)
    new = ws.stores.datasets.list_dataset_versions(
        spec.project, status=BatchStatus.ACCEPTED, after_seq=since
    )
    new_rows = sum(v.row_count for v in new)
    has_model = since > 0
    if not has_model and new:
        fired.append(Trigger("bootstrap", {"batches": len(new), "rows": new_rows}))
    if t.new_data_rows is not None and has_model and new_rows >= t.new_data_rows:
        fired.append(
            Trigger(
                "new_data",
                {"rows": new_rows, "threshold": t.new_data_rows, "batches": [v.seq for v in new]},
            )
        )
    reports = ws.stores.monitor.list_monitor_reports(spec.project)
    if reports and has_model and new:
        stats = reports[-1].stats
        share = (stats.get("drift") or {}).get("summary", {}).get("share_drifted")
        if t.drift_share is not None and share is not None and share >= t.drift_share:
            fired.append(
                Trigger(
                    "drift",
                    {"share_drifted": share, "threshold": t.drift_share, "report": reports[-1].id},
                )
            )
        live = (stats.get("live") or {}).get("metric")
        if t.metric_floor is not None and live is not None and live < t.metric_floor:
            fired.append(
                Trigger(
                    "decay",
                    {"live_metric": live, "floor": t.metric_floor, "report": reports[-1].id},
                )
            )
    if t.schedule_every_hours is not None:
        runs = [
            r
            for r in ws.stores.pipeline.list_pipeline_runs(spec.project)
            if r.status is not PipelineStatus.SKIPPED
        ]
        due = not runs or runs[-1].started_at + timedelta(hours=t.schedule_every_hours) <= now
        if due:
            fired.append(Trigger("schedule", {"every_hours": t.schedule_every_hours}))
    return fired
