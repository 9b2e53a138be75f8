"""Scoring service: batch files, offline tables and feedback against a project's workspace.

These functions resolve what the lower-level pieces need from a workspace and a spec: the
production model, the post-processing chain, the offline table URL, the prediction log and
feedback directories. The CLI (``conveyor predict | offline | feedback``) and the online server
call them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from conveyor.core.errors import InvalidInputError, NotFoundError
from conveyor.core.labels import LabelCodec
from conveyor.core.model import Predictor
from conveyor.core.signature import Signature
from conveyor.data.service import load_versions, training_window
from conveyor.registry.service import PRODUCTION, find_alias_version, get_version
from conveyor.serving.batch import score_file
from conveyor.serving.feedback import (
    FeedbackLog,
    FeedbackResult,
    LabelsOf,
    default_labels,
    feedback_routes,
)
from conveyor.serving.offline import OfflineStore, build_offline, lookup_routes, open_offline_store
from conveyor.serving.postprocess import PostProcessor
from conveyor.serving.predlog import PredictionLogWriter
from conveyor.serving.slot import ModelSlot
from conveyor.spec import ProjectSpec
from conveyor.training.service import load_version
from conveyor.workspace import Workspace

Progress = Callable[[int, int | None], None]


def postprocessor_for(spec: ProjectSpec) -> PostProcessor:
    """The project's post-processing chain (``postprocess:``), with the serving threshold."""
    return PostProcessor(spec.postprocess, task=spec.task, threshold=spec.serving.threshold)


def production_model(
    ws: Workspace, spec: ProjectSpec, version: int | None = None
) -> tuple[int, Predictor]:
    """``version`` of the project's model, or the production one.

    Raises
    ------
    NotFoundError
        If no version is given and none is in production.
    """
    if version is None:
        version = find_alias_version(ws, spec.model_name, PRODUCTION)
        if version is None:
            raise NotFoundError(
                f"Model '{spec.model_name}' has no production version; promote one first or "
                "pass a version."
            )
    return version, load_version(ws, spec.model_name, version)


def score_batch(
    ws: Workspace,
    spec: ProjectSpec,
    source: Path,
    output: Path,
    *,
    version: int | None = None,
    workers: int | None = None,
    chunk_rows: int = 100_000,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Score a CSV/Parquet file with the production model (or ``version``) and the project's
    post-processing chain; see :func:`conveyor.serving.batch.score_file`."""
    version, predictor = production_model(ws, spec, version)
    return score_file(
        predictor,
        source,
        output,
        chunk_rows=chunk_rows,
        threshold=spec.serving.threshold,
        version=version,
        progress=progress,
        workers=workers,
        postprocessor=postprocessor_for(spec),
        model_name=spec.model_name,
    )


def offline_url(ws: Workspace, spec: ProjectSpec) -> str:
    """The offline table URL: ``offline.url`` or a SQLite file in the project directory."""
    if spec.offline.url:
        return spec.offline.url
    return f"sqlite:///{ws.project_dir(spec.project, 'offline') / 'offline.db'}"


def offline_key(spec: ProjectSpec) -> str:
    """The entity column keying the offline table: ``offline.key`` or the first entity.

    Raises
    ------
    InvalidInputError
        If the spec names neither.
    """
    key = spec.offline.key or (spec.entities[0] if spec.entities else None)
    if key is None:
        raise InvalidInputError(
            "Offline predictions need an entity key: set 'offline.key' or 'entities' in "
            "conveyor.yaml."
        )
    return key


def open_project_offline(ws: Workspace, spec: ProjectSpec) -> OfflineStore:
    """The project's offline table."""
    return open_offline_store(offline_url(ws, spec), namespace=spec.project)


def build_offline_table(
    ws: Workspace,
    spec: ProjectSpec,
    *,
    source: Path | None = None,
    version: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Precompute predictions for every entity of ``source`` (default: the accepted batches of
    the training window) into the project's offline table."""
    version, predictor = production_model(ws, spec, version)
    data: Path | pd.DataFrame = (
        source if source is not None else load_versions(ws, training_window(ws, spec))
    )
    store = open_project_offline(ws, spec)
    try:
        result = build_offline(
            predictor,
            data,
            store,
            key=offline_key(spec),
            version=version,
            threshold=spec.serving.threshold,
            postprocessor=postprocessor_for(spec),
            progress=progress,
        )
    finally:
        store.close()
    return {**result, "url": offline_url(ws, spec)}


def lookup_keys(ws: Workspace, spec: ProjectSpec, keys: Sequence[str]) -> dict[str, Any]:
    """The stored entries of ``keys`` (JSON-ready; absent keys left out)."""
    store = open_project_offline(ws, spec)
    try:
        found = store.get_many(list(keys))
    finally:
        store.close()
    return {
        k: {"model_version": e.model_version, "age_s": round(e.age_s(), 3), **e.output}
        for k, e in found.items()
    }


def version_labels(ws: Workspace, spec: ProjectSpec) -> LabelsOf:
    """The codec of a version of the project's model, read from its registered signature
    (each version read once).

    A version the registry does not hold (deleted, or predictions logged by hand) reads labels
    as its task implies (binary 0/1, or regression); for a multiclass task it raises
    :class:`NotFoundError`, since its classes cannot be known.
    """
    found: dict[int, LabelCodec] = {}

    def labels_of(version: int) -> LabelCodec:
        if version not in found:
            try:
                signature = Signature.from_dict(get_version(ws, spec.model_name, version).signature)
            except NotFoundError:
                fallback = default_labels(spec.task)
                if fallback is None:
                    raise
                found[version] = fallback
            else:
                found[version] = signature.labels
        return found[version]

    return labels_of


def production_labels(ws: Workspace, spec: ProjectSpec) -> LabelCodec | None:
    """The codec of the project's production version, or ``None`` when there is none."""
    version = find_alias_version(ws, spec.model_name, PRODUCTION)
    return None if version is None else version_labels(ws, spec)(version)


def project_feedback_log(
    ws: Workspace, spec: ProjectSpec, *, slot: ModelSlot | None = None
) -> FeedbackLog:
    """The project's feedback log, checking ids against its prediction log and labels against
    the classes of the model ``slot`` serves (else of the production version)."""

    def labels() -> LabelCodec | None:
        model = slot.model if slot is not None else None
        return model.codec if model is not None else production_labels(ws, spec)

    return FeedbackLog(
        ws.project_dir(spec.project, "feedback"),
        predictions_dir=ws.project_dir(spec.project, "predictions"),
        task=spec.task,
        labels=labels,
    )


def record_project_feedback(
    ws: Workspace, spec: ProjectSpec, items: Sequence[Mapping[str, Any]]
) -> FeedbackResult:
    """Record ground truth by request id or by entity + time (idempotent); unknown ids are
    reported in the result."""
    return project_feedback_log(ws, spec).record(list(items))


def scoring_routes(
    ws: Workspace,
    spec: ProjectSpec,
    *,
    slot: ModelSlot | None,
    log: PredictionLogWriter | None,
) -> list[BaseRoute]:
    """The feedback, live-metrics and offline-lookup routes of the project's online server."""
    token = ws.settings.token.get_secret_value() if ws.settings.token else None
    routes: list[BaseRoute] = list(
        feedback_routes(
            project_feedback_log(ws, spec, slot=slot),
            task=spec.task,
            labels_of=version_labels(ws, spec),
            token=token,
        )
    )
    key = spec.offline.key or (spec.entities[0] if spec.entities else None)
    if key is not None:
        routes += lookup_routes(
            open_project_offline(ws, spec),
            key=key,
            max_age_s=spec.offline.max_age_s,
            slot=slot,
            log=log,
            postprocessor=postprocessor_for(spec),
            threshold=spec.serving.threshold,
        )
    return routes


def mount_scoring_routes(
    app: Starlette,
    ws: Workspace,
    spec: ProjectSpec,
    *,
    slot: ModelSlot | None,
    log: PredictionLogWriter | None,
) -> Starlette:
    """Add :func:`scoring_routes` to an online app built by ``create_serving_app``."""
    app.router.routes.extend(scoring_routes(ws, spec, slot=slot, log=log))
    return app
