"""Tracked runs in the metadata database: params, metric series, tags, artifacts, datasets."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from conveyor.core.clock import new_id, utcnow
from conveyor.core.entities import MetricPoint, Run, RunId, RunStatus
from conveyor.core.errors import ConflictError, InvalidInputError, NotFoundError
from conveyor.core.metric_batch import MetricBatch, MetricRow, datetime_of, micros_of
from conveyor.core.names import NameKind, check_name, check_run_artifact_name, name_key
from conveyor.core.run_query import (
    Expr,
    OrderBy,
    RunPage,
    check_page_size,
    decode_page_token,
    encode_page_token,
    query_fingerprint,
)
from conveyor.store.sql.database import Database, upsert
from conveyor.store.sql.run_search import compile_filter, compile_order
from conveyor.store.sql.tables import (
    RunArtifactRow,
    RunDatasetRow,
    RunMetricRow,
    RunParamRow,
    RunRow,
    RunTagRow,
)

END_REASON_TAG = "conveyor.end_reason"


class SqlRunStore:
    """:class:`~conveyor.store.base.RunStore` over SQLite or PostgreSQL.

    Every write locks the run's row, so concurrent writers to one run are serialised and
    the run's latest metric values stay consistent with its series.

    A client that dies (``SIGKILL``, a lost machine) cannot end its run. With
    ``stale_after_s``, every read first ends ``failed`` the ``running`` runs whose last
    heartbeat (:meth:`heartbeat`; a new run counts as one) is older than that, and tags them
    ``conveyor.end_reason``; a live client heartbeats well within it (see
    :mod:`conveyor.tracking.heartbeat`).

    Parameters
    ----------
    database : Database
        An upgraded metadata database.
    stale_after_s : float, optional
        Seconds without a heartbeat after which a running run is ended ``failed``; None
        (the default) never ends a run on its own.

    Examples
    --------
    >>> db = Database("sqlite://"); db.upgrade()
    >>> store = SqlRunStore(db)
    >>> run = store.create_run("churn", "baseline", "logreg")
    >>> store.log_params(run.id, {"C": "1.0"})
    >>> store.get_run(run.id).params
    {'C': '1.0'}
    """

    def __init__(self, database: Database, *, stale_after_s: float | None = None) -> None:
        if stale_after_s is not None and not stale_after_s > 0:
            raise InvalidInputError(
                "The 'stale_after_s' parameter of SqlRunStore() must be a number in (0, inf) or "
                f"None. Got {stale_after_s!r} instead."
            )
        self.database = database
        self.stale_after_s = stale_after_s

    def create_run(
        self,
        project: str,
        experiment: str,
        name: str,
        *,
        parent_id: RunId | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Run:
        """Start a run in status ``running``.

        The names follow :mod:`conveyor.core.names` and are stored in NFC. A project or an
        experiment is one name whatever its case: a spelling that differs only in case from
        an existing one is refused, as :class:`~conveyor.store.sql.model_store.SqlModelStore`
        does for models.

        Raises
        ------
        InvalidInputError
            If a name breaks the rule, or differs only in case from an existing one.
        NotFoundError
            If ``parent_id`` names no run.
        """
        project = check_name(project, NameKind.PROJECT)
        experiment = check_name(experiment, NameKind.EXPERIMENT)
        name = check_name(name, NameKind.RUN)
        run = Run(
            id=RunId(new_id()),
            project=project,
            experiment=experiment,
            name=name,
            status=RunStatus.RUNNING,
            started_at=utcnow(),
            parent_id=parent_id,
            tags=dict(tags or {}),
        )
        with self.database.session() as session:
            if parent_id is not None and session.get(RunRow, parent_id) is None:
                raise NotFoundError(f"Parent run {parent_id!r} of run {name!r} does not exist.")
            _check_spelling(session, RunRow.project, project, NameKind.PROJECT)
            _check_spelling(
                session,
                RunRow.experiment,
                experiment,
                NameKind.EXPERIMENT,
                RunRow.project == project,
            )
            row = RunRow.from_entity(run)
            session.add(row)
            session.flush()
            return row.to_entity()

    def log_params(self, run_id: RunId, params: Mapping[str, str]) -> None:
        """Record params; each is write-once (the same value again is accepted).

        Raises
        ------
        ConflictError
            If a key was logged before with a different value; nothing is written.
        """
        with self.database.session() as session:
            _write_params(session, _lock_run(session, run_id), params)

    def log_metrics(self, run_id: RunId, points: Sequence[MetricPoint]) -> None:
        """Append metric points in one transaction and update the run's latest values.

        The latest value of a key is the point with the highest ``(step, timestamp)``;
        on a tie the point logged last wins. NaN is kept as NaN. No ORM objects are made, so
        thousands of points cost milliseconds (see :meth:`log_batch`).
        """
        self.log_batch(run_id, metrics=points)

    def set_tags(self, run_id: RunId, tags: Mapping[str, str]) -> None:
        """Set tags, replacing the values of keys that exist."""
        self.log_batch(run_id, tags=tags)

    def log_batch(
        self,
        run_id: RunId,
        *,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        metrics: Sequence[MetricPoint] = (),
    ) -> None:
        """Record params, tags and metric points in one transaction: all or nothing.

        A :class:`~conveyor.core.metric_batch.MetricBatch` is written from its rows as they
        are; other points are checked and converted first. The points go in as multi-row
        ``INSERT`` statements of up to 512 rows, so 10,000 points cost a few tens of ms.

        Raises
        ------
        ConflictError
            If a param was logged before with a different value; nothing is written.
        InvalidInputError
            If a metric point is malformed; nothing is written.
        """
        rows = metrics.rows if isinstance(metrics, MetricBatch) else _rows_of(run_id, metrics)
        if not (params or tags or rows):
            self.get_run(run_id)  # an unknown run is still an error
            return
        with self.database.session() as session:
            latest: Mapping[str, Any]
            if params:
                row = _lock_run(session, run_id)
                _write_params(session, row, params)
                latest = row.latest_metrics
            else:
                latest = _lock_latest(session, run_id)
            for tag, text in (tags or {}).items():
                upsert(
                    session,
                    RunTagRow,
                    {"run_id": run_id, "key": tag, "value": str(text)},
                    keys=("run_id", "key"),
                    update=("value",),
                )
            if rows:
                connection = session.connection()
                _insert_rows(connection, run_id, rows)
                latest = _merge_latest(latest, rows)
                connection.execute(_SET_LATEST, {"run_id": run_id, "latest": latest})

    def log_artifact(self, run_id: RunId, name: str, digest: str) -> None:
        """Attach the blob ``digest`` to the run under ``name``; a later call replaces it.

        ``name`` is a relative path (:func:`conveyor.core.names.check_artifact_name`), kept in
        its normal form; a trailing ``/`` marks a directory and stays.

        Raises
        ------
        InvalidInputError
            If ``name`` is not a safe relative path (``..``, absolute, NUL, too long, ...).
        """
        name = check_run_artifact_name(name)
        with self.database.session() as session:
            _lock_run(session, run_id)
            upsert(
                session,
                RunArtifactRow,
                {"run_id": run_id, "name": name, "digest": digest},
                keys=("run_id", "name"),
                update=("digest",),
            )

    def log_datasets(self, run_id: RunId, dataset_ids: Sequence[str]) -> None:
        """Record the dataset versions the run used, in order; repeats are ignored."""
        with self.database.session() as session:
            row = _lock_run(session, run_id)
            seen = {d.dataset_id for d in row.datasets}
            position = len(row.datasets)
            for dataset_id in dataset_ids:
                if dataset_id in seen:
                    continue
                session.add(RunDatasetRow(run_id=run_id, dataset_id=dataset_id, position=position))
                seen.add(dataset_id)
                position += 1

    def end_run(self, run_id: RunId, status: RunStatus) -> Run:
        """Set the run's final status and end time and return the run."""
        with self.database.session() as session:
            row = _lock_run(session, run_id)
            row.status = str(status)
            row.ended_at = utcnow()
            session.flush()
            return row.to_entity()

    def heartbeat(self, run_id: RunId) -> None:
        """Record that the run's client is alive; see :meth:`RunStore.heartbeat`.

        Raises
        ------
        NotFoundError
            If there is no run ``run_id``.
        ConflictError
            If the run has ended (for instance ``failed`` after its heartbeats stopped).
        """
        statement = (
            sa.update(RunRow)
            .where(RunRow.id == run_id, RunRow.status == str(RunStatus.RUNNING))
            .values(heartbeat_at=utcnow())
        )
        with self.database.session() as session:
            if session.execute(statement).rowcount:  # type: ignore[attr-defined]
                return
            row = session.get(RunRow, run_id)
            if row is None:
                raise NotFoundError(f"Run {run_id!r} does not exist.")
            raise ConflictError(
                f"Run {run_id!r} is {row.status}, so it takes no heartbeat; only a running run "
                "does. Start a new run."
            )

    def end_stale_runs(self) -> list[RunId]:
        """End ``failed`` every running run not heard from for ``stale_after_s``; return them.

        Reads call this first; it reads only, unless a run is stale. Without
        ``stale_after_s`` it does nothing.
        """
        if self.stale_after_s is None:
            return []
        now = utcnow()
        cutoff = now - timedelta(seconds=self.stale_after_s)
        # Runs of databases older than heartbeats have none: their start time stands in.
        heard_at = sa.func.coalesce(RunRow.heartbeat_at, RunRow.started_at)
        stale = (RunRow.status == str(RunStatus.RUNNING)) & (heard_at < cutoff)
        with self.database.session(write=False) as session:
            if session.scalar(sa.select(RunRow.id).where(stale).limit(1)) is None:
                return []
        ended: list[RunId] = []
        with self.database.session() as session:
            query = sa.select(RunRow).where(stale).with_for_update()
            for row in session.scalars(query):
                row.status = str(RunStatus.FAILED)
                row.ended_at = now
                heard = (row.heartbeat_at or row.started_at).isoformat()
                reason = (
                    f"client lost: no heartbeat since {heard}, more than "
                    f"{self.stale_after_s:g} s before {now.isoformat()}"
                )
                upsert(
                    session,
                    RunTagRow,
                    {"run_id": row.id, "key": END_REASON_TAG, "value": reason},
                    keys=("run_id", "key"),
                    update=("value",),
                )
                ended.append(RunId(row.id))
        return ended

    def get_run(self, run_id: RunId) -> Run:
        """Return the run with its params, latest metrics, tags, artifacts and datasets."""
        self.end_stale_runs()
        with self.database.session(write=False) as session:
            row = session.get(RunRow, run_id)
            if row is None:
                raise NotFoundError(f"Run {run_id!r} does not exist.")
            return row.to_entity()

    def list_runs(self, project: str, *, experiment: str | None = None) -> list[Run]:
        """Runs of ``project`` (and ``experiment``), oldest first."""
        self.end_stale_runs()
        query = sa.select(RunRow).where(RunRow.project == project)
        if experiment is not None:
            query = query.where(RunRow.experiment == experiment)
        query = query.order_by(RunRow.started_at, RunRow.id)
        with self.database.session(write=False) as session:
            return [row.to_entity() for row in session.scalars(query)]

    def get_metric_history(self, run_id: RunId, key: str) -> list[MetricPoint]:
        """The series ordered by step, then timestamp, then logging order."""
        query = (
            sa.select(RunMetricRow)
            .where(RunMetricRow.run_id == run_id, RunMetricRow.key == key)
            .order_by(RunMetricRow.step, RunMetricRow.ts, RunMetricRow.id)
        )
        with self.database.session(write=False) as session:
            if session.get(RunRow, run_id) is None:
                raise NotFoundError(f"Run {run_id!r} does not exist.")
            return [row.to_entity() for row in session.scalars(query)]

    def search_runs(
        self,
        *,
        project: str | None = None,
        where: Expr | None = None,
        order_by: Sequence[OrderBy] = (),
        limit: int = 100,
        page_token: str | None = None,
    ) -> RunPage:
        """One page of the matching runs; see :meth:`conveyor.store.base.RunStore.search_runs`.

        The filter and the sort compile to one SELECT with bound parameters (see
        :mod:`conveyor.store.sql.run_search`); the page token is an offset into that order.
        """
        check_page_size(limit)
        self.end_stale_runs()
        fingerprint = query_fingerprint(project, where, order_by)
        offset = decode_page_token(page_token, fingerprint) if page_token else 0
        query = sa.select(RunRow)
        if project is not None:
            query = query.where(RunRow.project == project)
        if where is not None:
            query = query.where(compile_filter(where, self.database.dialect))
        # One row past the page says whether another page follows.
        query = query.order_by(*compile_order(order_by)).offset(offset).limit(limit + 1)
        with self.database.session(write=False) as session:
            rows = list(session.scalars(query))
            runs = tuple(row.to_entity() for row in rows[:limit])
        more = len(rows) > limit
        token = encode_page_token(offset + limit, fingerprint) if more else None
        return RunPage(runs=runs, next_page_token=token)


def _write_params(session: Session, row: RunRow, params: Mapping[str, str]) -> None:
    logged = {p.key: p.value for p in row.params}
    for key, value in params.items():
        value = str(value)
        if key in logged and logged[key] != value:
            raise ConflictError(
                f"Param {key!r} of run {row.id!r} is write-once: it is "
                f"{logged[key]!r} and cannot become {value!r}."
            )
        if key not in logged:
            session.add(RunParamRow(run_id=row.id, key=key, value=value))
            logged[key] = value


def _rows_of(run_id: str, points: Sequence[MetricPoint]) -> list[MetricRow]:
    rows: list[MetricRow] = []
    for point in points:
        _check_point(run_id, point)
        rows.append((point.key, float(point.value), point.step, micros_of(point.timestamp)))
    return rows


def _merge_latest(latest: Mapping[str, Any], rows: Sequence[MetricRow]) -> dict[str, Any]:
    """The run's latest values with ``rows`` applied: highest ``(step, time)``, last on a tie."""
    newest: dict[str, MetricRow] = {}
    for row in rows:
        best = newest.get(row[0])
        if best is None or row[2] > best[2] or (row[2] == best[2] and row[3] >= best[3]):
            newest[row[0]] = row
    merged = dict(latest)
    for key, (_, value, step, micros) in newest.items():
        order = [step, datetime_of(micros).isoformat(timespec="microseconds")]
        current = merged.get(key)
        if current is None or order >= current["order"]:
            # repr() round-trips every float, NaN and infinities included.
            merged[key] = {"value": repr(value), "order": order}
    return merged


_RUNS = cast(sa.Table, RunRow.__table__)
# Built once: a flush runs these every time, and a statement caches its own cache key.
_GET_LATEST = (
    sa.select(_RUNS.c.latest_metrics).where(_RUNS.c.id == sa.bindparam("run_id")).with_for_update()
)
_SET_LATEST = (
    sa.update(_RUNS)
    .where(_RUNS.c.id == sa.bindparam("run_id"))
    .values(latest_metrics=sa.bindparam("latest", type_=_RUNS.c.latest_metrics.type))
)
_METRICS_TABLE = cast(sa.Table, RunMetricRow.__table__).name
_METRIC_COLUMNS = ("run_id", "key", "step", "ts", "value")
_CHUNK_ROWS = 512


def _insert_rows(connection: sa.Connection, run_id: str, rows: Sequence[MetricRow]) -> None:
    """Insert ``rows`` with multi-row INSERTs whose sizes are powers of two up to 512.

    Few distinct statements, so the driver's statement cache keeps them all prepared. On
    SQLite a timestamp is bound as the text SQLAlchemy's DATETIME writes (UTC wall time,
    ``YYYY-MM-DD HH:MM:SS.ffffff``), built here from the row's microseconds; on PostgreSQL
    as an aware datetime. NaN is stored as NULL.
    """
    flat: list[Any] = []
    if connection.dialect.name == "sqlite":
        prefixes: dict[int, str] = {}
        for key, value, step, micros in rows:
            second, fraction = divmod(micros, 1_000_000)
            prefix = prefixes.get(second)
            if prefix is None:
                prefix = prefixes[second] = _sqlite_second(second)
            flat += (
                run_id,
                key,
                step,
                f"{prefix}{fraction:06d}",
                value if value == value else None,
            )
    else:
        for key, value, step, micros in rows:
            flat += (run_id, key, step, datetime_of(micros), value if value == value else None)
    placeholder = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    width = len(_METRIC_COLUMNS)
    start, total = 0, len(rows)
    while start < total:
        size = min(_CHUNK_ROWS, 1 << ((total - start).bit_length() - 1))
        values = tuple(flat[start * width : (start + size) * width])
        connection.exec_driver_sql(_insert_sql(size, placeholder), values)
        start += size


@functools.lru_cache(maxsize=32)
def _insert_sql(rows: int, placeholder: str) -> str:
    one = "(" + ", ".join([placeholder] * len(_METRIC_COLUMNS)) + ")"
    columns = ", ".join(_METRIC_COLUMNS)
    return f"INSERT INTO {_METRICS_TABLE} ({columns}) VALUES " + ", ".join([one] * rows)


def _sqlite_second(second: int) -> str:
    t = datetime_of(second * 1_000_000)
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d} {t.hour:02d}:{t.minute:02d}:{t.second:02d}."


def _lock_latest(session: Session, run_id: str) -> Mapping[str, Any]:
    """Lock the run's row (PostgreSQL; SQLite holds the write lock) and read its latest values."""
    latest = session.connection().execute(_GET_LATEST, {"run_id": run_id}).scalar_one_or_none()
    if latest is None:
        raise NotFoundError(f"Run {run_id!r} does not exist.")
    return cast(Mapping[str, Any], latest)


def _check_spelling(
    session: Session,
    column: sa.orm.InstrumentedAttribute[str],
    value: str,
    kind: NameKind,
    *where: sa.ColumnElement[bool],
) -> None:
    """Refuse ``value`` when a stored name differs from it only in case."""
    if session.scalar(sa.select(column).where(column == value, *where).limit(1)) is not None:
        return  # a known spelling was checked when it first came: skip the scan
    key = name_key(value)
    for known in session.scalars(sa.select(column).where(*where).distinct()):
        if known != value and name_key(known) == key:
            raise InvalidInputError(
                f"The {kind} name {value!r} differs only in case from the existing {kind} "
                f"{known!r}; names are case-insensitive, so use {known!r}."
            )


def _lock_run(session: Session, run_id: str) -> RunRow:
    row = session.get(RunRow, run_id, with_for_update=True)
    if row is None:
        raise NotFoundError(f"Run {run_id!r} does not exist.")
    return row


def _check_point(run_id: str, point: MetricPoint) -> None:
    if not point.key:
        raise InvalidInputError(
            f"A metric key of run {run_id!r} must be a non-empty string. Got {point.key!r} instead."
        )
    if isinstance(point.step, bool) or not isinstance(point.step, int):
        raise InvalidInputError(
            f"The step of metric {point.key!r} of run {run_id!r} must be an int. "
            f"Got {point.step!r} instead."
        )
