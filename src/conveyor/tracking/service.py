"""Run tracking: params, metric series, tags and artifacts of a run, kept in the run store."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import orjson

from conveyor.core.clock import utcnow
from conveyor.core.entities import MetricPoint, Run, RunId, RunStatus
from conveyor.workspace import Workspace


@dataclass(frozen=True, slots=True)
class ActiveRun:
    """A run being recorded; every call writes through to the run store in one transaction."""

    ws: Workspace
    run: Run

    @property
    def id(self) -> RunId:
        return self.run.id

    def log_params(self, params: Mapping[str, object]) -> None:
        self.ws.stores.runs.log_params(self.run.id, {k: str(v) for k, v in params.items()})

    def log_metrics(self, metrics: Mapping[str, float], *, step: int = 0) -> None:
        now = utcnow()
        points = [
            MetricPoint(key=k, value=float(v), step=step, timestamp=now) for k, v in metrics.items()
        ]
        self.ws.stores.runs.log_metrics(self.run.id, points)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.ws.stores.runs.set_tags(self.run.id, dict(tags))

    def log_bytes(self, name: str, data: bytes) -> str:
        digest = self.ws.stores.artifacts.put_bytes(data)
        self.ws.stores.runs.log_artifact(self.run.id, name, digest)
        return digest

    def log_json(self, name: str, obj: object) -> str:
        return self.log_bytes(name, orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY))

    def log_datasets(self, dataset_ids: Sequence[str]) -> None:
        self.ws.stores.runs.log_datasets(self.run.id, list(dataset_ids))


@contextlib.contextmanager
def start_run(
    ws: Workspace,
    project: str,
    *,
    experiment: str = "default",
    name: str = "",
    parent_id: RunId | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[ActiveRun]:
    """Record a run; it ends ``finished``, or ``failed`` if the block raises.

    Examples
    --------
    >>> with start_run(ws, "flights", name="try") as run:  # doctest: +SKIP
    ...     run.log_params({"lr": 0.1}); run.log_metrics({"auc": 0.7})
    """
    run = ws.stores.runs.create_run(
        project, experiment, name or experiment, parent_id=parent_id, tags=tags
    )
    active = ActiveRun(ws=ws, run=run)
    try:
        yield active
    except BaseException:
        ws.stores.runs.end_run(run.id, RunStatus.FAILED)
        raise
    ws.stores.runs.end_run(run.id, RunStatus.FINISHED)
