"""Registry fixtures: a workspace per actor on one home, and a project with a trained version."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor.config import Settings
from conveyor.core.entities import ModelVersion
from conveyor.data.service import ingest_batch
from conveyor.registry.service import register_version
from conveyor.spec import ProjectSpec, parse_spec
from conveyor.training.service import train_model
from conveyor.workspace import Workspace

from ..conftest import SPEC, make_batch


@pytest.fixture
def as_actor(tmp_path: Path) -> Callable[[str], Workspace]:
    """Open the same workspace as a given person (the actor recorded in audit events)."""

    def open_as(actor: str) -> Workspace:
        return Workspace.open(Settings(home=tmp_path / "ws", actor=actor))

    return open_as


@pytest.fixture
def strict_spec() -> ProjectSpec:
    """The toy project, with production gated on an approval."""
    return parse_spec({**SPEC, "registry": {"require_approval": True}})


@pytest.fixture
def register(ws: Workspace) -> Callable[..., ModelVersion]:
    """Register a version of 'toy' whose artifact is a real blob."""

    def add(content: bytes = b"model", **lineage: object) -> ModelVersion:
        digest = ws.stores.artifacts.put_bytes(content)
        return register_version(
            ws, "toy", artifact=digest, run_id=None, signature={}, lineage=lineage, metrics={}
        )

    return add


@pytest.fixture
def trained(ws: Workspace, spec: ProjectSpec) -> ModelVersion:
    """Four accepted weekly batches and one trained version of 'toy'."""
    for week in range(4):
        ingest_batch(ws, spec, make_batch(week))
    return train_model(ws, spec).version
