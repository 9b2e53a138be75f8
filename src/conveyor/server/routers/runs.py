"""``/api/v1/runs``: create, log (one batch per request), end, read and search tracked runs."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from conveyor.core.entities import RunId, RunStatus
from conveyor.core.errors import InvalidInputError
from conveyor.server.deps import WRITE, WorkspaceDep
from conveyor.server.schemas import (
    ArtifactRef,
    DatasetsIn,
    EndRun,
    LogBatch,
    MetricPointOut,
    RunCreate,
    RunOut,
    RunPageOut,
    SearchRuns,
    render,
)
from conveyor.store.wire import expr_from_json, order_from_json
from conveyor.tracking.search import search_runs

router = APIRouter(prefix="/runs", tags=["runs"])


@router.post("", response_model=RunOut, status_code=201, dependencies=WRITE)
def create_run(body: RunCreate, ws: WorkspaceDep) -> Response:
    """Start a run (status ``running``)."""
    run = ws.stores.runs.create_run(
        body.project,
        body.experiment,
        body.name,
        parent_id=RunId(body.parent_id) if body.parent_id else None,
        tags=body.tags,
    )
    return render(RunOut.from_entity(run), 201)


@router.get("", response_model=list[RunOut])
def list_runs(ws: WorkspaceDep, project: str, experiment: str | None = None) -> Response:
    """Every run of ``project`` (of ``experiment`` if given), oldest first."""
    runs = ws.stores.runs.list_runs(project, experiment=experiment)
    return render([RunOut.from_entity(r) for r in runs])


@router.post("/search", response_model=RunPageOut)
def search(body: SearchRuns, ws: WorkspaceDep) -> Response:
    """One page of the runs matching a filter; text (``filter``) or tree (``where``)."""
    if (body.filter or body.order_by) and (body.where is not None or body.order):
        raise InvalidInputError(
            "A run search takes either 'filter'/'order_by' (text) or 'where'/'order' (trees). "
            "Got both instead."
        )
    if body.where is not None or body.order:
        page = ws.stores.runs.search_runs(
            project=body.project,
            where=expr_from_json(body.where) if body.where is not None else None,
            order_by=tuple(order_from_json(o) for o in body.order),
            limit=body.limit,
            page_token=body.page_token,
        )
    else:
        page = search_runs(
            ws,
            body.filter or "",
            project=body.project,
            order_by=body.order_by,
            limit=body.limit,
            page_token=body.page_token,
        )
    runs = [RunOut.from_entity(r) for r in page.runs]
    return render(RunPageOut(runs=runs, next_page_token=page.next_page_token))


@router.get("/{run_id}", response_model=RunOut)
def get_run(run_id: str, ws: WorkspaceDep) -> Response:
    """The run with its params, latest metric values, tags, artifacts and datasets."""
    return render(RunOut.from_entity(ws.stores.runs.get_run(RunId(run_id))))


@router.post("/{run_id}/batch", status_code=204, dependencies=WRITE)
def log_batch(run_id: str, body: LogBatch, ws: WorkspaceDep) -> Response:
    """Params, tags and metric points in one transaction (409 for a changed param)."""
    ws.stores.runs.log_batch(
        RunId(run_id),
        params=body.params,
        tags=body.tags,
        metrics=[p.to_entity() for p in body.metrics],
    )
    return Response(status_code=204)


@router.post("/{run_id}/artifacts", status_code=204, dependencies=WRITE)
def log_artifact(run_id: str, body: ArtifactRef, ws: WorkspaceDep) -> Response:
    """Record an artifact of the run by name and digest (the blob is in the artifact store)."""
    ws.stores.runs.log_artifact(RunId(run_id), body.name, body.digest)
    return Response(status_code=204)


@router.post("/{run_id}/datasets", status_code=204, dependencies=WRITE)
def log_datasets(run_id: str, body: DatasetsIn, ws: WorkspaceDep) -> Response:
    """Record the dataset versions the run used."""
    ws.stores.runs.log_datasets(RunId(run_id), body.dataset_ids)
    return Response(status_code=204)


@router.post("/{run_id}/end", response_model=RunOut, dependencies=WRITE)
def end_run(run_id: str, body: EndRun, ws: WorkspaceDep) -> Response:
    """End the run ``finished`` or ``failed``."""
    run = ws.stores.runs.end_run(RunId(run_id), RunStatus(body.status))
    return render(RunOut.from_entity(run))


@router.post("/{run_id}/heartbeat", status_code=204, dependencies=WRITE)
def heartbeat(run_id: str, ws: WorkspaceDep) -> Response:
    """The run's client is alive (409 once the run has ended, e.g. after lost heartbeats)."""
    ws.stores.runs.heartbeat(RunId(run_id))
    return Response(status_code=204)


@router.get("/{run_id}/metric-history", response_model=list[MetricPointOut])
def metric_history(
    run_id: str, ws: WorkspaceDep, key: str = Query(min_length=1, description="Metric name.")
) -> Response:
    """Every point of one metric, by step then time."""
    points = ws.stores.runs.get_metric_history(RunId(run_id), key)
    return render([MetricPointOut.from_entity(p) for p in points])
