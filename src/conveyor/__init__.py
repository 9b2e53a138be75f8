"""Conveyor: an assembly line that keeps a good tabular model in production by itself.

>>> import conveyor as cv
>>> sorted(cv.__all__)[:3]
['ConveyorError', 'Project', 'ProjectSpec']

Names are imported on first use, so ``import conveyor`` and the command line start quickly;
``__version__`` is the installed distribution's version (``importlib.metadata``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_DISTRIBUTION = "conveyor-ml"

_EXPORTS = {
    "ConveyorError": "conveyor.core.errors",
    "Project": "conveyor.project",
    "ProjectSpec": "conveyor.spec",
    "Settings": "conveyor.config",
    "SqlQuery": "conveyor.data.sources",
    "Workspace": "conveyor.workspace",
    "load_spec": "conveyor.spec",
    "active_run": "conveyor.tracking.fluent",
    "autolog": "conveyor.tracking.autolog",
    "end_run": "conveyor.tracking.fluent",
    "log_artifact": "conveyor.tracking.fluent",
    "log_dataset": "conveyor.tracking.fluent",
    "log_metric": "conveyor.tracking.fluent",
    "log_metrics": "conveyor.tracking.fluent",
    "log_param": "conveyor.tracking.fluent",
    "log_params": "conveyor.tracking.fluent",
    "set_tag": "conveyor.tracking.fluent",
    "set_tags": "conveyor.tracking.fluent",
    "set_workspace": "conveyor.tracking.fluent",
    "start_run": "conveyor.tracking.fluent",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    __version__: str
    from conveyor.config import Settings as Settings
    from conveyor.core.errors import ConveyorError as ConveyorError
    from conveyor.data.sources import SqlQuery as SqlQuery
    from conveyor.project import Project as Project
    from conveyor.spec import ProjectSpec as ProjectSpec
    from conveyor.spec import load_spec as load_spec
    from conveyor.tracking.autolog import autolog as autolog
    from conveyor.tracking.fluent import active_run as active_run
    from conveyor.tracking.fluent import end_run as end_run
    from conveyor.tracking.fluent import log_artifact as log_artifact
    from conveyor.tracking.fluent import log_dataset as log_dataset
    from conveyor.tracking.fluent import log_metric as log_metric
    from conveyor.tracking.fluent import log_metrics as log_metrics
    from conveyor.tracking.fluent import log_param as log_param
    from conveyor.tracking.fluent import log_params as log_params
    from conveyor.tracking.fluent import set_tag as set_tag
    from conveyor.tracking.fluent import set_tags as set_tags
    from conveyor.tracking.fluent import set_workspace as set_workspace
    from conveyor.tracking.fluent import start_run as start_run
    from conveyor.workspace import Workspace as Workspace


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version(_DISTRIBUTION)
        except PackageNotFoundError:  # a source tree on sys.path, not installed
            found = "0+unknown"
        globals()[name] = found
        return found
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'conveyor' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
