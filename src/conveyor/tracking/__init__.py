"""Experiment tracking."""

from conveyor.tracking.service import ActiveRun, start_run

__all__ = ["ActiveRun", "start_run"]
