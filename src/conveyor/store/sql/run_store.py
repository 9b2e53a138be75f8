"""Tracked runs in the metadata database: params, metric series, tags, artifacts, datasets."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from conveyor.core.clock import as_utc, new_id, utcnow
from conveyor.core.entities import MetricPoint, Run, RunId, RunStatus
from conveyor.core.errors import ConflictError, InvalidInputError, NotFoundError
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


class SqlRunStore:
    """:class:`~conveyor.store.base.RunStore` over SQLite or PostgreSQL.

    Every write locks the run's row, so concurrent writers to one run are serialised and
    the run's latest metric values stay consistent with its series.

    Parameters
    ----------
    database : Database
        An upgraded metadata database.

    Examples
    --------
    >>> db = Database("sqlite://"); db.upgrade()
    >>> store = SqlRunStore(db)
    >>> run = store.create_run("churn", "baseline", "logreg")
    >>> store.log_params(run.id, {"C": "1.0"})
    >>> store.get_run(run.id).params
    {'C': '1.0'}
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    def create_run(
        self,
        project: str,
        experiment: str,
        name: str,
        *,
        parent_id: RunId | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Run:
        """Start a run in status ``running``; raise NotFoundError for an unknown parent."""
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
        on a tie the point logged last wins. NaN is kept as NaN. The points go in as one
        driver-level ``executemany`` (no ORM objects), so thousands cost milliseconds.
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

        Raises
        ------
        ConflictError
            If a param was logged before with a different value; nothing is written.
        InvalidInputError
            If a metric point is malformed; nothing is written.
        """
        newest = _newest_points(run_id, metrics)
        if not (params or tags or metrics):
            self.get_run(run_id)  # an unknown run is still an error
            return
        with self.database.session() as session:
            row = _lock_run(session, run_id)
            if params:
                _write_params(session, row, params)
            for tag, text in (tags or {}).items():
                upsert(
                    session,
                    RunTagRow,
                    {"run_id": run_id, "key": tag, "value": str(text)},
                    keys=("run_id", "key"),
                    update=("value",),
                )
            if metrics:
                _insert_points(session, run_id, metrics)
                latest: dict[str, Any] = dict(row.latest_metrics)
                for key, (step, ts, value) in newest.items():
                    order = [step, ts.isoformat(timespec="microseconds")]
                    current = latest.get(key)
                    if current is None or order >= current["order"]:
                        # repr() round-trips every float, NaN and infinities included.
                        latest[key] = {"value": repr(value), "order": order}
                row.latest_metrics = latest

    def log_artifact(self, run_id: RunId, name: str, digest: str) -> None:
        """Attach the blob ``digest`` to the run under ``name``; a later call replaces it."""
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

    def get_run(self, run_id: RunId) -> Run:
        """Return the run with its params, latest metrics, tags, artifacts and datasets."""
        with self.database.session(write=False) as session:
            row = session.get(RunRow, run_id)
            if row is None:
                raise NotFoundError(f"Run {run_id!r} does not exist.")
            return row.to_entity()

    def list_runs(self, project: str, *, experiment: str | None = None) -> list[Run]:
        """Runs of ``project`` (and ``experiment``), oldest first."""
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


def _newest_points(
    run_id: str, points: Sequence[MetricPoint]
) -> dict[str, tuple[int, datetime, float]]:
    """Check every point; return each key's newest ``(step, timestamp, value)``, last on a tie."""
    newest: dict[str, tuple[int, datetime, float]] = {}
    for point in points:
        _check_point(run_id, point)
        ts = point.timestamp
        order = (point.step, ts if ts.tzinfo is UTC else as_utc(ts))
        current = newest.get(point.key)
        if current is None or order >= current[:2]:
            newest[point.key] = (*order, float(point.value))
    return newest


_METRIC_COLUMNS = ("run_id", "key", "step", "ts", "value")


def _insert_points(session: Session, run_id: str, points: Sequence[MetricPoint]) -> None:
    """Insert the points with the driver's ``executemany``, binding values as the ORM would."""
    connection = session.connection()
    dialect = connection.dialect
    table = cast(sa.Table, RunMetricRow.__table__)
    compiled = sa.insert(table).compile(dialect=dialect, column_keys=list(_METRIC_COLUMNS))
    bind_ts: Callable[[Any], Any] = table.c.ts.type.bind_processor(dialect) or (lambda v: v)
    rows = [
        (
            run_id,
            point.key,
            point.step,
            bind_ts(point.timestamp),
            None if math.isnan(point.value) else float(point.value),
        )
        for point in points
    ]
    if compiled.positional:
        order = [_METRIC_COLUMNS.index(name) for name in compiled.positiontup or ()]
        reorder = operator.itemgetter(*order)
        params: list[Any] = rows if order == [0, 1, 2, 3, 4] else [reorder(r) for r in rows]
    else:
        params = [dict(zip(_METRIC_COLUMNS, row, strict=True)) for row in rows]
    connection.exec_driver_sql(str(compiled), params)


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
