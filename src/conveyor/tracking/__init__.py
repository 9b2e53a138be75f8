"""Experiment tracking: the service API (``start_run(ws, project)``) and the familiar fluent one."""

from conveyor.tracking.buffer import Flusher, RunBuffer
from conveyor.tracking.fluent import (
    TrackedRun,
    active_run,
    end_run,
    log_artifact,
    log_dataset,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    set_tag,
    set_tags,
    set_workspace,
)
from conveyor.tracking.service import ActiveRun, log_artifact_path, restore_artifact, start_run

__all__ = [
    "ActiveRun",
    "Flusher",
    "RunBuffer",
    "TrackedRun",
    "active_run",
    "end_run",
    "log_artifact",
    "log_artifact_path",
    "log_dataset",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "restore_artifact",
    "set_tag",
    "set_tags",
    "set_workspace",
    "start_run",
]
