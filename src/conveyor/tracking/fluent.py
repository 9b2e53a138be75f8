"""The familiar tracking API: ``with cv.start_run(): cv.log_param(...); cv.log_metric(...)``.

The active runs form a stack per thread (a context variable), so a run started with
``nested=True`` records the run above it as its parent. Metric points, params and tags are
buffered (see :mod:`conveyor.tracking.buffer`) and written in batches: when 1,000 points are
pending, every second from a background thread, when the run ends (also when its ``with`` block
raises) and at interpreter exit. A normal exit or an exception loses nothing; a hard kill loses
at most the last second of logging. Runs still active at exit end ``finished``, or ``failed``
if the interpreter is exiting because of an uncaught exception. An active run heartbeats
(:mod:`conveyor.tracking.heartbeat`), so after a hard kill the store ends it ``failed``.

The workspace is the one given to :func:`set_workspace`, else one opened on first use from
``Settings()`` (``CONVEYOR_HOME``, ``CONVEYOR_DB_URL``, ...). The project is the ``project``
argument, else ``CONVEYOR_PROJECT``, else ``"default"``.
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import os
import sys
import threading
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType

from conveyor.core.clock import utcnow
from conveyor.core.entities import Run, RunId, RunStatus
from conveyor.core.errors import ConveyorError, InvalidInputError
from conveyor.core.metric_batch import metric_row
from conveyor.tracking.buffer import DEFAULT_MAX_POINTS, Flusher, RunBuffer
from conveyor.tracking.heartbeat import RunHeartbeat
from conveyor.tracking.service import log_artifact_path
from conveyor.workspace import Workspace

_log = logging.getLogger(__name__)

DEFAULT_PROJECT = "default"
DEFAULT_EXPERIMENT = "default"
_END_STATUSES = (RunStatus.FINISHED, RunStatus.FAILED)

_stack: contextvars.ContextVar[tuple[TrackedRun, ...]] = contextvars.ContextVar(
    "conveyor_active_runs", default=()
)
_state_lock = threading.Lock()
_workspace: Workspace | None = None
_live: dict[RunId, TrackedRun] = {}
_flusher = Flusher()


class TrackedRun:
    """A run started by :func:`start_run`: log to it, use it as a context manager, end it.

    Leaving the ``with`` block ends the run ``finished``, or ``failed`` if the block raised;
    everything logged is written first either way.
    """

    def __init__(self, ws: Workspace, run: Run, *, max_points: int = DEFAULT_MAX_POINTS) -> None:
        self.ws = ws
        self.run = run
        self.buffer = RunBuffer(ws.stores.runs, run.id, max_points=max_points)
        self.status: RunStatus = RunStatus.RUNNING
        self.heartbeat = RunHeartbeat(ws.stores.runs, run.id, ws.settings.run_heartbeat_s)

    def __repr__(self) -> str:
        return f"TrackedRun(id={self.id!r}, name={self.run.name!r}, status={self.status!s})"

    @property
    def id(self) -> RunId:
        return self.run.id

    @property
    def parent_id(self) -> RunId | None:
        return self.run.parent_id

    def __enter__(self) -> TrackedRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.end(RunStatus.FINISHED)
            return
        try:
            self.end(RunStatus.FAILED)
        except Exception as flush_error:  # the block's own exception is the one to raise
            exc.add_note(f"Conveyor could not end run {self.id!r} cleanly: {flush_error}")  # type: ignore[union-attr]

    def log_param(self, key: str, value: object) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, object]) -> None:
        """Queue params (write-once: another value for a logged key raises ConflictError)."""
        self.buffer.add_params({_key(k, "param"): str(v) for k, v in params.items()})

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: datetime | None = None
    ) -> None:
        """Queue one point; ``step`` defaults to 0, ``timestamp`` to now (aware UTC)."""
        self.buffer.add_row(metric_row(key, value, step, timestamp))

    def log_metrics(
        self,
        metrics: Mapping[str, float],
        step: int | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        ts = utcnow() if timestamp is None else timestamp
        self.buffer.add_rows([metric_row(k, v, step, ts) for k, v in metrics.items()])

    def set_tag(self, key: str, value: object) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, object]) -> None:
        self.buffer.add_tags({_key(k, "tag"): str(v) for k, v in tags.items()})

    def log_artifact(self, local_path: str | Path, name: str | None = None) -> str:
        """Store a file or a directory (as a manifest of blobs) now; return its digest."""
        return log_artifact_path(self.ws, self.id, Path(local_path), name)

    def log_dataset(self, dataset_version_id: str) -> None:
        """Record that the run used a dataset version; NotFoundError if there is no such one."""
        self.ws.stores.datasets.get_dataset_version(dataset_version_id)  # type: ignore[arg-type]
        self.ws.stores.runs.log_datasets(self.id, [dataset_version_id])

    def flush(self) -> None:
        """Write everything logged so far (one transaction)."""
        self.buffer.flush()

    def fetch(self) -> Run:
        """Flush, then return the run as stored: params, latest metrics, tags, artifacts."""
        self.flush()
        return self.ws.stores.runs.get_run(self.id)

    def end(self, status: RunStatus | str = RunStatus.FINISHED) -> Run:
        """Write everything pending and end the run with ``status``; idempotent."""
        status = _status(status)
        _forget(self)
        self.heartbeat.stop()
        if self.status is not RunStatus.RUNNING:
            return self.ws.stores.runs.get_run(self.id)
        try:
            self.buffer.close()
        finally:
            self.status = status
            self.run = self.ws.stores.runs.end_run(self.id, status)
        return self.run


def set_workspace(ws: Workspace | None) -> None:
    """Make ``ws`` the workspace of the module-level API (None: open from Settings on use)."""
    global _workspace
    with _state_lock:
        _workspace = ws


def start_run(
    name: str | None = None,
    *,
    experiment: str | None = None,
    nested: bool = False,
    tags: Mapping[str, object] | None = None,
    project: str | None = None,
) -> TrackedRun:
    """Start a run and make it the active one; use it as a context manager or end it.

    Parameters
    ----------
    name : str, optional
        The run's name; default: the experiment's name.
    experiment : str, optional
        Default: the parent's for a nested run, else ``"default"``.
    nested : bool, default False
        Start a child of the active run. Without it, starting while a run is active raises.
    tags : mapping, optional
        Tags set at creation.
    project : str, optional
        Default: the parent's, else ``CONVEYOR_PROJECT``, else ``"default"``.

    Returns
    -------
    TrackedRun

    Raises
    ------
    InvalidInputError
        If a run is active and ``nested`` is False.

    Examples
    --------
    >>> import tempfile
    >>> from conveyor.config import Settings
    >>> set_workspace(Workspace.open(Settings(home=Path(tempfile.mkdtemp()))))
    >>> with start_run("try") as run:
    ...     log_param("lr", 0.1)
    ...     log_metric("loss", 0.25, step=1)
    >>> stored = run.fetch()
    >>> stored.status.value, stored.params, stored.metrics
    ('finished', {'lr': '0.1'}, {'loss': 0.25})
    """
    stack = _stack.get()
    parent = stack[-1] if stack else None
    if parent is not None and not nested:
        raise InvalidInputError(
            f"Run {parent.id!r} is active, so start_run() needs nested=True to start a child "
            "run. Got nested=False instead; end the active run first or pass nested=True."
        )
    ws = parent.ws if parent is not None else _current_workspace()
    if parent is not None:
        project = project or parent.run.project
        experiment = experiment or parent.run.experiment
    project = project or os.environ.get("CONVEYOR_PROJECT") or DEFAULT_PROJECT
    experiment = experiment or DEFAULT_EXPERIMENT
    run = ws.stores.runs.create_run(
        project,
        experiment,
        name or experiment,
        parent_id=parent.id if parent is not None else None,
        tags={_key(k, "tag"): str(v) for k, v in (tags or {}).items()},
    )
    tracked = TrackedRun(ws, run)
    _stack.set((*stack, tracked))
    with _state_lock:
        _live[run.id] = tracked
    _flusher.register(tracked.buffer)
    tracked.heartbeat.start()
    return tracked


def active_run() -> TrackedRun | None:
    """The innermost active run of this thread, or None."""
    stack = _stack.get()
    return stack[-1] if stack else None


def end_run(status: RunStatus | str = RunStatus.FINISHED) -> Run | None:
    """End the active run (writing everything pending); None when no run is active."""
    run = active_run()
    return run.end(status) if run is not None else None


def log_param(key: str, value: object) -> None:
    """Log a param of the active run, starting a run if none is active."""
    _ensure_run().log_param(key, value)


def log_params(params: Mapping[str, object]) -> None:
    _ensure_run().log_params(params)


def log_metric(
    key: str, value: float, step: int | None = None, timestamp: datetime | None = None
) -> None:
    """Log one metric point to the active run (buffered), starting a run if none is active."""
    stack = _stack.get()
    run = stack[-1] if stack else _ensure_run()
    run.buffer.add_row(metric_row(key, value, step, timestamp))


def log_metrics(
    metrics: Mapping[str, float], step: int | None = None, timestamp: datetime | None = None
) -> None:
    _ensure_run().log_metrics(metrics, step, timestamp)


def set_tag(key: str, value: object) -> None:
    _ensure_run().set_tag(key, value)


def set_tags(tags: Mapping[str, object]) -> None:
    _ensure_run().set_tags(tags)


def log_artifact(local_path: str | Path, name: str | None = None) -> str:
    """Store a file or directory as an artifact of the active run; return its digest."""
    return _ensure_run().log_artifact(local_path, name)


def log_dataset(dataset_version_id: str) -> None:
    """Record that the active run used the dataset version ``dataset_version_id``."""
    _ensure_run().log_dataset(dataset_version_id)


def _current_workspace() -> Workspace:
    global _workspace
    with _state_lock:
        if _workspace is None:
            _workspace = Workspace.open()
        return _workspace


def _ensure_run() -> TrackedRun:
    return active_run() or start_run()


def _forget(run: TrackedRun) -> None:
    _stack.set(tuple(r for r in _stack.get() if r is not run))
    with _state_lock:
        _live.pop(run.id, None)
    _flusher.unregister(run.buffer)


def _key(key: object, kind: str) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidInputError(f"A {kind} key must be a non-empty string. Got {key!r} instead.")
    return key


def _status(status: RunStatus | str) -> RunStatus:
    if status in _END_STATUSES:
        return RunStatus(status)
    allowed = ", ".join(s.value for s in _END_STATUSES)
    raise InvalidInputError(
        f"The status of end_run() must be one of {allowed}. Got {status!r} instead."
    )


def _end_live_runs() -> None:
    """At exit: write what every still-active run logged and end it, innermost first."""
    status = RunStatus.FAILED if getattr(sys, "last_type", None) else RunStatus.FINISHED
    with _state_lock:
        runs = sorted(_live.values(), key=lambda r: r.run.started_at, reverse=True)
    for run in runs:
        try:
            run.end(status)
        except ConveyorError as exc:
            _log.error("Ending run %s at exit failed: %s", run.id, exc)


atexit.register(_end_live_runs)
