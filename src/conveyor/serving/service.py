"""Serving service: wire the online app to the registry, run it, score files, take feedback."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette

from conveyor.config import Settings
from conveyor.core.errors import NotFoundError
from conveyor.core.model import Predictor
from conveyor.registry.service import PRODUCTION, find_alias_version, get_version
from conveyor.serving.app import ModelSlot, create_serving_app
from conveyor.serving.batch import score_file
from conveyor.serving.feedback import FeedbackLog
from conveyor.serving.predlog import PredictionLogWriter
from conveyor.serving.validation import ServingLimits
from conveyor.spec import ProjectSpec, load_spec
from conveyor.training.service import load_version
from conveyor.workspace import Workspace

SPEC_ENV = "CONVEYOR_SPEC"


def production_loader(
    ws: Workspace, spec: ProjectSpec
) -> tuple[Callable[[], tuple[int, Predictor]], Callable[[], int | None]]:
    """A loader of the production model and a poll of its version, for :class:`ModelSlot`."""
    model = spec.model_name

    def current() -> int | None:
        return find_alias_version(ws, model, PRODUCTION)

    def load() -> tuple[int, Predictor]:
        version = current()
        if version is None:
            raise NotFoundError(f"Model '{model}' has no production version.")
        return version, load_version(ws, model, version)

    return load, current


def sample_requests(ws: Workspace, spec: ProjectSpec, version: int) -> list[dict[str, Any]]:
    """The stored sample requests of a version, replayed to warm it before it takes traffic."""
    digest = get_version(ws, spec.model_name, version).lineage.get("sample_requests")
    return list(orjson.loads(ws.stores.artifacts.get_bytes(digest))) if digest else []


def build_app(ws: Workspace, spec: ProjectSpec) -> Starlette:
    """The online app for the project's production alias."""
    load, current = production_loader(ws, spec)
    slot = ModelSlot(load, current)
    log = PredictionLogWriter(ws.project_dir(spec.project, "predictions"))
    return create_serving_app(
        slot=slot,
        log=log,
        project=spec.project,
        model_name=spec.model_name,
        limits=ServingLimits(max_rows=spec.serving.max_rows),
        threshold=spec.serving.threshold,
    )


def app_from_env() -> Starlette:
    """App factory for uvicorn workers: workspace from ``CONVEYOR_*``, spec ``CONVEYOR_SPEC``."""
    ws = Workspace.open(Settings())
    return build_app(ws, load_spec(Path(os.environ.get(SPEC_ENV, "conveyor.yaml"))))


def serve(ws: Workspace, spec_path: Path, *, host: str, port: int, workers: int = 1) -> None:
    """Run the online server until interrupted (127.0.0.1 unless told otherwise)."""
    os.environ.update({k: v for k, v in ws.env().items() if k.startswith("CONVEYOR_")})
    os.environ[SPEC_ENV] = str(spec_path.resolve())
    uvicorn.run(
        "conveyor.serving.service:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


def predict_batch(
    ws: Workspace,
    spec: ProjectSpec,
    source: Path,
    output: Path,
    *,
    progress: Callable[[int, int | None], None] | None = None,
) -> dict[str, Any]:
    """Score a CSV/Parquet file with the production model; the output is written atomically."""
    load, _ = production_loader(ws, spec)
    version, predictor = load()
    return score_file(
        predictor,
        source,
        output,
        threshold=spec.serving.threshold,
        version=version,
        progress=progress,
    )


def record_feedback(ws: Workspace, spec: ProjectSpec, items: Sequence[Mapping[str, Any]]) -> Any:
    """Record ground truth by request id or by entity + time (idempotent)."""
    return FeedbackLog(ws.project_dir(spec.project, "feedback")).record(list(items))
