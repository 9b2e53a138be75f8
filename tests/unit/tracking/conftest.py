"""A workspace on tmp_path made the fluent API's workspace; runs left active are ended."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import conveyor as cv
from conveyor.config import Settings
from conveyor.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace.open(Settings(home=tmp_path / "ws"))
    cv.set_workspace(workspace)
    yield workspace
    while cv.active_run() is not None:
        cv.end_run()
    cv.set_workspace(None)
