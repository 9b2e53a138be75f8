"""Conveyor: an assembly line that keeps a good tabular model in production by itself.

>>> import conveyor as cv
>>> sorted(cv.__all__)[:3]
['ConveyorError', 'Project', 'ProjectSpec']
"""

from __future__ import annotations

from conveyor.config import Settings
from conveyor.core.errors import ConveyorError
from conveyor.project import Project
from conveyor.spec import ProjectSpec, load_spec
from conveyor.tracking.service import start_run
from conveyor.workspace import Workspace

__version__ = "0.1.0"

__all__ = [
    "ConveyorError",
    "Project",
    "ProjectSpec",
    "Settings",
    "Workspace",
    "__version__",
    "load_spec",
    "start_run",
]
