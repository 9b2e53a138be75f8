"""The prediction log: append-only JSON-lines segments, compacted into dated Parquet.

Layout of a log directory::

    seg-<UTC start>-<pid>-<n>.jsonl      segments, one writer process each, appended to
    date=YYYY-MM-DD/part-<segment>.parquet   compacted segments, partitioned by day (UTC)

Durability: a writer sends all lines of one request (with those of the requests grouped with
it) in a single ``os.write`` on a file opened with ``O_APPEND``, before the response leaves
the server, so a ``kill -9`` of the worker never
tears an acknowledged record (with ``fsync=True`` neither does a power cut). A trailing partial
line (a torn write on a full disk or a crash mid-write) is ignored by every reader.

A writer holds an exclusive ``flock`` on the segment it appends to. A segment whose lock can be
taken is closed (its writer rotated away, exited or was killed), and only closed segments are
compacted. Compaction writes each day's Parquet part to a temporary file, renames it into place,
then deletes the segment; the part names derive from the segment name, so a compaction
interrupted between rename and delete redoes the same parts and never duplicates rows.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from conveyor.core.clock import as_utc
from conveyor.core.errors import StoreError
from conveyor.serving.temporaries import held_lock, locked_temporary, remove_stale_temporaries

log = logging.getLogger(__name__)

SEGMENT_GLOB = "seg-*.jsonl"
_IDLE_EXIT_S = 1.0
DEFAULT_MAX_PENDING_BYTES = 8 * 1024 * 1024
"""Bytes a writer buffers for its thread by default before it refuses writes (back-pressure)."""
INPUT_PREFIX = "in_"

LOG_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("model_version", pa.int64()),
        ("inputs", pa.string()),
        ("score", pa.float64()),
        ("label", pa.int64()),
        ("latency_ms", pa.float64()),
        ("post", pa.string()),
        ("proba", pa.list_(pa.float64())),
    ]
)
"""Columns of the prediction log; ``inputs`` is the raw record as a JSON string, ``score`` and
``label`` the model's raw output, ``post`` the post-processed output as a JSON string (null
when the project declares no post-processing) and ``proba`` a multiclass model's class
probabilities (null for other tasks). ``label`` is the class CODE of the model's signature
(:class:`~conveyor.core.labels.LabelCodec`: 1 for the positive class of a binary label, the
class's index for multiclass, null for regression), so it is the label itself for 0/1 labels;
``score`` is P(positive), the value, or the probability of the predicted class."""


class PredictionLogError(StoreError):
    """A prediction could not be logged; the caller must not acknowledge it (answer 503)."""


class PredictionLogWriter:
    """Append prediction entries to this process's current segment.

    Sink policy: a prediction is acknowledged only once its entry is in the log. Writes are
    group-committed by one writer thread per writer: callers :meth:`submit` their bytes to a
    bounded buffer and wait on the returned future; the thread takes everything buffered while
    its previous write ran and writes it (and with ``fsync`` syncs it) in one ``os.write``, so
    a slow disk is paid once per group and no caller's thread, nor a server's event loop, ever
    blocks on the disk. The buffer is bounded by ``max_pending_bytes``; past it a write fails
    at once with :class:`PredictionLogError` (counted in ``rejected_writes``) instead of
    waiting (a single larger write is let through when nothing else waits). A write the disk
    refuses (full disk, I/O error) fails with :class:`PredictionLogError` (counted in
    ``failed_writes``); whatever part of it reached the segment is truncated away and the next
    write starts a fresh segment, so no torn line is followed by acknowledged ones. The online
    server answers a failed or refused write with 503 and a ``Retry-After``, never with a
    prediction.

    Parameters
    ----------
    directory : Path
        The log directory; created when missing.
    fsync : bool
        Flush every write to stable storage before returning (survives power loss, slower).
    segment_max_bytes : int
        Start a new segment once the current one reaches this size.
    segment_max_age_s : float
        Start a new segment after a write to one opened this long ago, so that closed
        segments reach compaction steadily even under light traffic.
    max_pending_bytes : int
        Bytes that may wait for the writer at once; more are refused (back-pressure).
    write_delay_s : float
        Fault injection: the writer thread sleeps this long before each group write, as a
        disk that takes this long per write would. For drills and tests of a slow disk; keep
        it 0 in service.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> w = PredictionLogWriter(d)
    >>> w.write([{"request_id": "a", "ts": "2024-01-01T00:00:00+00:00", "model_version": 1,
    ...           "inputs": {"x": 1.0}, "score": 0.7, "label": 1, "latency_ms": 0.4}])
    >>> read_predictions(d)["in_x"].tolist()
    [1.0]
    """

    def __init__(
        self,
        directory: Path,
        *,
        fsync: bool = False,
        segment_max_bytes: int = 16 * 1024 * 1024,
        segment_max_age_s: float = 60.0,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        write_delay_s: float = 0.0,
    ) -> None:
        for name, value in (
            ("segment_max_bytes", segment_max_bytes),
            ("max_pending_bytes", max_pending_bytes),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"The '{name}' parameter of PredictionLogWriter must be an int in "
                    f"[1, inf). Got {value!r} instead."
                )
        if not 0.0 <= write_delay_s < float("inf"):
            raise ValueError(
                "The 'write_delay_s' parameter of PredictionLogWriter must be a float in "
                f"[0, inf). Got {write_delay_s!r} instead."
            )
        self.directory = Path(directory)
        self.fsync = fsync
        self.segment_max_bytes = segment_max_bytes
        self.segment_max_age_s = segment_max_age_s
        self.max_pending_bytes = max_pending_bytes
        self.write_delay_s = write_delay_s
        self._opened = 0.0
        self._lock = threading.Lock()
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[tuple[bytes, Future[None]]] = []
        self._queued_bytes = 0
        self._thread: threading.Thread | None = None
        self._thread_pid = 0
        self._last: Future[None] | None = None
        self._fd: int | None = None
        self._pid = 0
        self._size = 0
        self._count = 0
        self.path: Path | None = None
        self.written_writes = 0
        self.failed_writes = 0
        self.rejected_writes = 0
        self.group_commits = 0

    def write(self, entries: Sequence[Mapping[str, Any]]) -> None:
        """Append ``entries`` (one JSON line each) to the log in one ``os.write``.

        Each entry has ``request_id``, ``ts`` (ISO UTC), ``model_version``, ``inputs`` (the raw
        record), ``score``, ``label`` and ``latency_ms``, and optionally ``post`` (the
        post-processed output).

        Raises
        ------
        PredictionLogError
            When the entries could not be logged; nothing of this call is acknowledged then.
        """
        data = b"".join([orjson.dumps(e, option=orjson.OPT_APPEND_NEWLINE) for e in entries])
        self.write_bytes(data)

    def write_bytes(self, data: bytes) -> None:
        """Append pre-serialised JSON lines (each ending in a newline) and wait until written.

        Raises
        ------
        PredictionLogError
            When the buffer is full or the disk refused the write.
        """
        self.submit(data).result()

    def submit(self, data: bytes) -> Future[None]:
        """Hand pre-serialised JSON lines to the writer thread without waiting for the disk.

        The returned future completes once the lines are in the segment (synced with
        ``fsync``), or fails with :class:`PredictionLogError`; acknowledge nothing before.
        A server awaits it with ``asyncio.wrap_future``.

        Raises
        ------
        PredictionLogError
            At once, when the buffer already holds ``max_pending_bytes`` (nothing is queued).
        """
        future: Future[None] = Future()
        with self._cond:
            if self._queue and self._queued_bytes + len(data) > self.max_pending_bytes:
                self.rejected_writes += 1
                raise PredictionLogError(
                    f"The prediction log at '{self.directory}' has {self._queued_bytes} bytes "
                    f"waiting, past its {self.max_pending_bytes}-byte limit; retry later."
                )
            self._queue.append((data, future))
            self._queued_bytes += len(data)
            self._last = future
            self._start_locked()
            self._cond.notify()
        return future

    def stats(self) -> dict[str, int]:
        """Counters of the sink: writes done, failed, refused (buffer full) and queued bytes."""
        return {
            "written_writes": self.written_writes,
            "failed_writes": self.failed_writes,
            "rejected_writes": self.rejected_writes,
            "group_commits": self.group_commits,
            "queued_bytes": self._queued_bytes,
        }

    def _start_locked(self) -> None:
        pid = os.getpid()
        if self._thread is not None and self._thread_pid == pid and self._thread.is_alive():
            return
        self._thread_pid = pid  # after a fork the parent's thread does not exist here
        self._thread = threading.Thread(
            target=self._drain, name=f"predlog-{self.directory.name}", daemon=True
        )
        self._thread.start()

    def _drain(self) -> None:
        """The writer thread: write whatever is buffered, one group at a time, until idle."""
        while True:
            with self._cond:
                if not self._queue:
                    self._cond.wait(_IDLE_EXIT_S)
                if not self._queue:  # idle: end; the next submit starts a new thread
                    self._thread = None
                    return
                group, self._queue, self._queued_bytes = self._queue, [], 0
            if self.write_delay_s:
                time.sleep(self.write_delay_s)
            error: Exception | None
            try:
                error = self._write_group(b"".join(data for data, _ in group))
            except Exception as exc:  # a caller must never wait forever on its future
                log.exception("writing to the prediction log at %s failed", self.directory)
                error = exc
            with self._cond:
                if error is None:
                    self.written_writes += len(group)
                    self.group_commits += 1
                else:
                    self.failed_writes += len(group)
            for _, future in group:
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(
                        PredictionLogError(
                            f"The prediction log at '{self.directory}' could not be written: "
                            f"{error}; the predictions were not acknowledged."
                        )
                    )

    def flush(self) -> None:
        """Wait until everything submitted so far is written (or has failed)."""
        last = self._last
        if last is not None and self._thread_pid == os.getpid():
            with contextlib.suppress(PredictionLogError):
                last.result()

    def _write_group(self, data: bytes) -> OSError | None:
        with self._lock:
            try:
                fd = self._fd if self._pid == os.getpid() and self._fd is not None else self._open()
            except OSError as exc:
                return exc
            start = self._size
            try:
                written = os.write(fd, data)
                while written < len(data):  # only on a full disk; keep the line whole if we can
                    written += os.write(fd, data[written:])
                if self.fsync:
                    os.fsync(fd)
            except OSError as exc:
                self._discard_torn(fd, start)
                return exc
            self._size += written
            age = time.monotonic() - self._opened
            if self._size >= self.segment_max_bytes or age >= self.segment_max_age_s:
                self._close_locked()
            return None

    def _discard_torn(self, fd: int, start: int) -> None:
        """Cut a failed write's partial bytes and move on to a fresh segment."""
        try:
            os.ftruncate(fd, start)
        except OSError:
            log.exception("could not truncate a failed write in %s; readers skip it", self.path)
        self._close_locked()

    def close(self) -> None:
        """Write what is buffered, then close the current segment (it can be compacted).

        Blocking: a server calls it from a worker thread. A later write opens a new segment.
        """
        self.flush()
        with self._lock:
            self._close_locked()

    def _open(self) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._pid != os.getpid():  # forked: the parent's descriptor and lock are not ours
            self._fd = None
            self._count = 0
        self._close_locked()
        pid = os.getpid()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        self._count += 1
        path = self.directory / f"seg-{stamp}-{pid}-{self._count}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._fd, self._pid, self._size, self.path = fd, pid, os.fstat(fd).st_size, path
        self._opened = time.monotonic()
        return fd

    def _close_locked(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None
        self.path = None


def parse_json_lines(data: bytes, source: Path) -> list[dict[str, Any]]:
    """Parse complete JSON lines of ``data``; a trailing partial line is ignored."""
    end = data.rfind(b"\n")
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(data[: end + 1].splitlines(), start=1):
        if not line:
            continue
        try:
            rows.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            log.warning("skipping unreadable line %d of %s", number, source)
    return rows


_SEGMENT_COLUMNS = (
    "{'request_id': 'VARCHAR', 'ts': 'TIMESTAMPTZ', 'model_version': 'BIGINT', "
    "'inputs': 'JSON', 'score': 'DOUBLE', 'label': 'BIGINT', 'latency_ms': 'DOUBLE', "
    "'post': 'JSON', 'proba': 'DOUBLE[]'}"
)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def read_segment(path: Path, *, con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """Read one segment as a table of :data:`LOG_SCHEMA`, ignoring a trailing partial line.

    DuckDB's JSON reader parses the lines; a line that is not a complete record (a torn write)
    is skipped.
    """
    own = con is None
    con = con or duckdb.connect()
    try:
        if Path(path).stat().st_size == 0:
            return LOG_SCHEMA.empty_table()
        table = con.sql(
            "SELECT request_id, ts, model_version, CAST(inputs AS VARCHAR) AS inputs, score, "
            "label, latency_ms, CAST(post AS VARCHAR) AS post, proba "
            f"FROM read_json('{_sql_path(Path(path))}', "
            f"format='newline_delimited', columns={_SEGMENT_COLUMNS}, ignore_errors=true) "
            "WHERE request_id IS NOT NULL AND ts IS NOT NULL"
        ).to_arrow_table()
    finally:
        if own:
            con.close()
    return table.cast(LOG_SCHEMA)


def _segments_in_window(directory: Path, since: datetime | None) -> list[Path]:
    """Segments that may hold entries logged at or after ``since``.

    An entry's ``ts`` is never later than the write that logged it, and a segment's
    modification time is its last write; so a segment last written before ``since`` holds
    nothing newer.
    """
    found = []
    for path in sorted(directory.glob(SEGMENT_GLOB)):
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            continue
        if since is not None and mtime < as_utc(since).timestamp() - 1.0:
            continue
        found.append(path)
    return found


def _parts_in_window(directory: Path, since: datetime | None, until: datetime | None) -> list[Path]:
    """Parquet parts whose day partition can overlap [since, until)."""
    lo = as_utc(since).strftime("%Y-%m-%d") if since is not None else None
    hi = as_utc(until).strftime("%Y-%m-%d") if until is not None else None
    parts = []
    for day_dir in sorted(directory.glob("date=*")):
        day = day_dir.name.removeprefix("date=")
        if (lo is not None and day < lo) or (hi is not None and day > hi):
            continue
        parts.extend(sorted(day_dir.glob("part-*.parquet")))
    return parts


@contextlib.contextmanager
def _closed_segment(path: Path) -> Iterator[bool]:
    """Yield whether ``path`` is closed, holding its lock meanwhile so no writer adopts it."""
    with held_lock(path, create=False) as closed:
        yield closed


def compact_predictions(directory: Path) -> int:
    """Move closed segments into ``date=YYYY-MM-DD/part-*.parquet``; return rows moved.

    Segments still held by a live writer are left alone. Each part is written to a temporary
    file and renamed into place before its segment is deleted.
    """
    directory = Path(directory)
    moved = 0
    for segment in sorted(directory.glob(SEGMENT_GLOB)):
        with _closed_segment(segment) as closed:
            if not closed:
                continue
            table = read_segment(segment)
            if table.num_rows:
                days = pc.strftime(table["ts"], format="%Y-%m-%d")
                for day in sorted(set(days.to_pylist())):
                    part = table.filter(pc.equal(days, day))
                    target = directory / f"date={day}" / f"part-{segment.stem}.parquet"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    remove_stale_temporaries(target.parent)  # of compactions that were killed
                    with locked_temporary(target) as tmp:
                        pq.write_table(part, tmp)
                        os.replace(tmp, target)
                moved += table.num_rows
            segment.unlink()
    return moved


def find_logged_ids(directory: Path, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` are in the prediction log; reads only the ``request_id`` column."""
    directory = Path(directory)
    wanted = pa.table({"request_id": pa.array(sorted(set(ids)), pa.string())})
    found: set[str] = set()
    if not wanted.num_rows:
        return found
    con = duckdb.connect()
    try:
        con.register("wanted", wanted)
        parts = _parts_in_window(directory, None, None)
        if parts:
            files = ", ".join(f"'{_sql_path(p)}'" for p in parts)
            found.update(
                r[0]
                for r in con.sql(
                    f"SELECT DISTINCT request_id FROM read_parquet([{files}], "
                    "hive_partitioning=false, union_by_name=true) "
                    "WHERE request_id IN (SELECT request_id FROM wanted)"
                ).fetchall()
            )
        for segment in _segments_in_window(directory, None):
            with contextlib.suppress(FileNotFoundError):
                if segment.stat().st_size == 0:
                    continue
                found.update(
                    r[0]
                    for r in con.sql(
                        f"SELECT DISTINCT request_id FROM read_json('{_sql_path(segment)}', "
                        "format='newline_delimited', columns={'request_id': 'VARCHAR'}, "
                        "ignore_errors=true) WHERE request_id IN (SELECT request_id FROM wanted)"
                    ).fetchall()
                )
    finally:
        con.close()
    return found


def _time_literal(value: datetime) -> str:
    return as_utc(value).isoformat()


def read_predictions(
    directory: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    model_version: int | None = None,
    raw_inputs: bool = False,
) -> pd.DataFrame:
    """Read the prediction log (Parquet parts and open segments) through DuckDB.

    Parameters
    ----------
    directory : Path
        The log directory.
    since, until : datetime, optional
        Keep predictions logged at or after ``since`` and before ``until``.
    model_version : int, optional
        Keep only this model version's predictions.
    raw_inputs : bool
        Keep ``inputs`` as one JSON string column (see :func:`expand_inputs`) instead of one
        column ``in_<name>`` per input field.

    Returns
    -------
    pandas.DataFrame
        ``request_id, ts, model_version, score, label, latency_ms, post, proba`` and the inputs,
        ordered by ``ts``. A row caught in both a segment and its Parquet part during a concurrent
        compaction appears once.
    """
    directory = Path(directory)
    con = duckdb.connect()
    try:
        sources: list[str] = []
        segments = [
            read_segment(p, con=con) for p in _segments_in_window(directory, since) if p.exists()
        ]
        if segments:
            con.register("segments", pa.concat_tables(segments))
            sources.append("SELECT * FROM segments")
        parts = _parts_in_window(directory, since, until)
        if parts:
            files = ", ".join(f"'{_sql_path(p)}'" for p in parts)
            # parts compacted before the log had a ``post`` (or ``proba``) column lack it
            found = {n for p in parts for n in pq.read_schema(p).names}
            missing = {"post": "CAST(NULL AS VARCHAR) AS post",
                       "proba": "CAST(NULL AS DOUBLE[]) AS proba"}  # fmt: skip
            names = ", ".join(
                n if n in found or n not in missing else missing[n] for n in LOG_SCHEMA.names
            )
            sources.append(
                f"SELECT {names} FROM read_parquet([{files}], hive_partitioning=false, "
                "union_by_name=true)"
            )
        if not sources:
            con.register("segments", LOG_SCHEMA.empty_table())
            sources.append("SELECT * FROM segments")
        where: list[str] = []
        params: list[str | int] = []
        if since is not None:
            where.append("ts >= CAST(? AS TIMESTAMPTZ)")
            params.append(_time_literal(since))
        if until is not None:
            where.append("ts < CAST(? AS TIMESTAMPTZ)")
            params.append(_time_literal(until))
        if model_version is not None:
            where.append("model_version = ?")
            params.append(int(model_version))
        query = "SELECT DISTINCT * FROM (" + " UNION ALL ".join(sources) + ")"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY ts, request_id"
        frame = con.sql(query, params=params).to_arrow_table().to_pandas()
    finally:
        con.close()
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame if raw_inputs else expand_inputs(frame)


def expand_inputs(frame: pd.DataFrame, *, column: str = "inputs") -> pd.DataFrame:
    """Replace the JSON ``inputs`` column of ``frame`` by one ``in_<name>`` column per field."""
    parsed = [orjson.loads(text) if text else {} for text in frame[column]]
    inputs = pd.DataFrame.from_records(parsed, index=frame.index) if parsed else pd.DataFrame()
    inputs.columns = [f"{INPUT_PREFIX}{c}" for c in inputs.columns]
    return pd.concat([frame.drop(columns=[column]), inputs], axis=1)


def prediction_entry(
    *,
    request_id: str,
    ts: str,
    model_version: int,
    inputs: Mapping[str, Any],
    score: float,
    label: int | None,
    latency_ms: float,
    post: Mapping[str, Any] | None = None,
    proba: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Build one log entry in the shape :meth:`PredictionLogWriter.write` expects (``label``
    is the class code, ``proba`` a multiclass model's probabilities; see :data:`LOG_SCHEMA`)."""
    entry: dict[str, Any] = {
        "request_id": request_id,
        "ts": ts,
        "model_version": model_version,
        "inputs": inputs,
        "score": score,
        "label": label,
        "latency_ms": latency_ms,
    }
    if post is not None:
        entry["post"] = post
    if proba is not None:
        entry["proba"] = list(proba)
    return entry


class _IsoClock:
    """ISO-8601 UTC times with microseconds; the part up to seconds is formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        return f"{self._prefix}.{min(int((now - second) * 1e6), 999_999):06d}+00:00"


iso_now = _IsoClock()
"""Return the current time as an ISO-8601 UTC string with microseconds."""
