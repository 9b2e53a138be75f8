"""The public API of `import conveyor as cv` is pinned: a change here is a deliberate one."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import conveyor as cv


def test_public_api_is_pinned():
    assert sorted(cv.__all__) == [
        "ConveyorError",
        "Project",
        "ProjectSpec",
        "Settings",
        "SqlQuery",
        "Workspace",
        "__version__",
        "active_run",
        "autolog",
        "end_run",
        "load_spec",
        "log_artifact",
        "log_dataset",
        "log_metric",
        "log_metrics",
        "log_param",
        "log_params",
        "set_tag",
        "set_tags",
        "set_workspace",
        "start_run",
    ]
    for name in cv.__all__:
        assert getattr(cv, name) is not None


def test_version_is_the_installed_distributions():
    assert cv.__version__ == version("conveyor-ml")


def test_import_conveyor_loads_only_the_package_itself():
    """The public names load on first use: `import conveyor` must stay cheap for the CLI."""
    probe = "import sys, conveyor; print(' '.join(m for m in sys.modules if 'conveyor' in m))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["conveyor"]
