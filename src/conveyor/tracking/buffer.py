"""Buffered run writes: metric points, params and tags collected in memory, written in batches.

A :class:`RunBuffer` holds what one run logged since its last flush and writes it with one
``RunStore.log_batch`` call, that is one transaction. Metric points wait as plain tuples
(:data:`~conveyor.core.metric_batch.MetricRow`, their time in integer microseconds) and reach
the store as one :class:`~conveyor.core.metric_batch.MetricBatch`, so queueing a point costs a
tuple and an append, not a dataclass and a datetime.

A buffer is flushed when ``max_points`` points are pending (in the logging thread), by a
:class:`Flusher` thread every ``interval_s``, when the run ends (also when its ``with`` block
raises) and at interpreter exit. Durability follows:

* a normal exit, an uncaught exception or ``sys.exit`` loses nothing;
* a hard kill of the process (``SIGKILL``, ``os._exit``, the OOM killer) loses at most what was
  logged in the last ``interval_s``;
* a crash of the machine itself can, on SQLite, also undo the last committed flushes: the
  database runs in WAL mode with ``synchronous=NORMAL``, which keeps it consistent but syncs
  the log to disk at checkpoints rather than at every commit.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping

from conveyor.core.entities import MetricPoint, RunId
from conveyor.core.errors import ConflictError, StoreError
from conveyor.core.metric_batch import MetricBatch, MetricRow
from conveyor.store.base import RunStore

_log = logging.getLogger(__name__)

DEFAULT_MAX_POINTS = 1000
DEFAULT_INTERVAL_S = 1.0


class RunBuffer:
    """What one run logged and has not yet written; thread-safe.

    Parameters
    ----------
    store : RunStore
        Where the run lives.
    run_id : RunId
        The run written to.
    max_points : int, default 1000
        Pending points that trigger a flush in the logging thread.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from conveyor.store.sql.database import Database
    >>> from conveyor.store.sql.run_store import SqlRunStore
    >>> db = Database("sqlite://"); db.upgrade(); store = SqlRunStore(db)
    >>> run = store.create_run("demo", "default", "try")
    >>> buffer = RunBuffer(store, run.id)
    >>> buffer.add_metric(MetricPoint("loss", 0.5, 0, datetime.now(UTC)))
    >>> buffer.pending, store.get_run(run.id).metrics
    (1, {})
    >>> buffer.flush(); store.get_run(run.id).metrics
    {'loss': 0.5}
    """

    def __init__(
        self,
        store: RunStore,
        run_id: RunId,
        *,
        max_points: int = DEFAULT_MAX_POINTS,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.max_points = max_points
        self._lock = threading.Lock()
        # Held for a whole write, so batches reach the store in the order they were logged.
        self._flush_lock = threading.Lock()
        self._rows: list[MetricRow] = []
        self._params: dict[str, str] = {}
        self._tags: dict[str, str] = {}
        self._logged_params: dict[str, str] = {}
        self._conflict: ConflictError | None = None

    @property
    def pending(self) -> int:
        """Points, params and tags not yet written."""
        with self._lock:
            return len(self._rows) + len(self._params) + len(self._tags)

    def add_row(self, row: MetricRow) -> None:
        """Queue a point built by :func:`~conveyor.core.metric_batch.metric_row`.

        Flushes in this thread once ``max_points`` points are pending.
        """
        with self._lock:
            rows = self._rows
            rows.append(row)
            full = len(rows) >= self.max_points
        if full:
            self.flush()

    def add_rows(self, rows: list[MetricRow]) -> None:
        with self._lock:
            self._rows.extend(rows)
            full = len(self._rows) >= self.max_points
        if full:
            self.flush()

    def add_metric(self, point: MetricPoint) -> None:
        """Queue a point; InvalidInputError if it is malformed."""
        self.add_rows(MetricBatch.from_points([point]).rows)

    def add_metrics(self, points: list[MetricPoint]) -> None:
        self.add_rows(MetricBatch.from_points(points).rows)

    def add_params(self, params: Mapping[str, str]) -> None:
        """Queue params; a value other than one this buffer saw before raises at once.

        Raises
        ------
        ConflictError
            If a key was given another value earlier in this run; nothing is queued.
        """
        with self._lock:
            for key, value in params.items():
                old = self._logged_params.get(key)
                if old is not None and old != value:
                    raise ConflictError(
                        f"Param {key!r} of run {self.run_id!r} is write-once: it is "
                        f"{old!r} and cannot become {value!r}."
                    )
            self._logged_params.update(params)
            self._params.update(params)

    def add_tags(self, tags: Mapping[str, str]) -> None:
        with self._lock:
            self._tags.update(tags)

    def flush(self) -> None:
        """Write everything pending in one transaction.

        Raises
        ------
        StoreError
            If the store failed; the batch stays pending and the next flush retries it.
        ConflictError
            If a param conflicts with a value another process logged; the params of the batch
            are dropped, its points and tags stay pending, and :meth:`close` raises it again.
        """
        with self._flush_lock:
            with self._lock:
                rows, params, tags = self._rows, self._params, self._tags
                self._rows, self._params, self._tags = [], {}, {}
            if not (rows or params or tags):
                return
            try:
                self.store.log_batch(
                    self.run_id, params=params, tags=tags, metrics=MetricBatch(rows)
                )
            except (StoreError, ConflictError) as exc:
                with self._lock:
                    self._rows[:0] = rows
                    self._tags = {**tags, **self._tags}
                    if isinstance(exc, ConflictError):
                        self._conflict = exc
                    else:
                        self._params = {**params, **self._params}
                raise

    def close(self) -> None:
        """Flush, then raise a param conflict that an earlier (background) flush met."""
        self.flush()
        if self._conflict is not None:
            raise self._conflict


class Flusher:
    """A daemon thread that flushes every registered buffer each ``interval_s``.

    Buffers are held weakly, so a forgotten buffer does not keep its run alive. A failed
    background flush is logged and retried on the next tick; the run's final flush raises it.
    """

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._buffers: weakref.WeakSet[RunBuffer] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self, buffer: RunBuffer) -> None:
        with self._lock:
            self._buffers.add(buffer)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="conveyor-tracking-flusher", daemon=True
                )
                self._thread.start()

    def wake(self) -> None:
        """Flush soon, without waiting for the interval."""
        self._wake.set()

    def unregister(self, buffer: RunBuffer) -> None:
        with self._lock:
            self._buffers.discard(buffer)

    def flush_all(self) -> None:
        """Flush every registered buffer now, logging (not raising) failures."""
        with self._lock:
            buffers = list(self._buffers)
        for buffer in buffers:
            try:
                buffer.flush()
            except (StoreError, ConflictError) as exc:
                _log.warning("Flushing run %s failed, will retry: %s", buffer.run_id, exc)

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            self.flush_all()
