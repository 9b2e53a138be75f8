"""The public API of `import conveyor as cv` is pinned: a change here is a deliberate one."""

from __future__ import annotations

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
