"""Experiment tracking: the familiar fluent API (``start_run``, ``log_metric``, ...) and the
service API (``record_run(ws, project)``) that the pipeline uses."""

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
    start_run,
)
from conveyor.tracking.service import ActiveRun, log_artifact_path, record_run, restore_artifact

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
    "record_run",
    "restore_artifact",
    "set_tag",
    "set_tags",
    "set_workspace",
    "start_run",
]
