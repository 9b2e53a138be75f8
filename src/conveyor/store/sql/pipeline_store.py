"""Continuous-training cycles, the step cache and leases in the metadata database."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from conveyor.core.clock import utcnow
from conveyor.core.entities import Lease, PipelineRun, PipelineRunId, PipelineStatus
from conveyor.core.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from conveyor.store.sql.database import Database, upsert
from conveyor.store.sql.tables import LeaseRow, PipelineRunRow, StepCacheRow


class SqlPipelineStore:
    """:class:`~conveyor.store.base.PipelineStore` over SQLite or PostgreSQL.

    A lease is one row taken or renewed by a single ``INSERT ... ON CONFLICT DO UPDATE ...
    WHERE`` that only overwrites a row held by the same holder or already expired, so two
    agents can never both hold a live lease.

    Parameters
    ----------
    database : Database
        An upgraded metadata database.

    Examples
    --------
    >>> db = Database("sqlite://"); db.upgrade()
    >>> store = SqlPipelineStore(db)
    >>> store.acquire_lease("ct:churn", "agent-1", ttl_s=60)
    True
    >>> store.acquire_lease("ct:churn", "agent-2", ttl_s=60)
    False
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    def add_pipeline_run(self, run: PipelineRun) -> None:
        """Insert ``run``; raise AlreadyExistsError if its id is taken."""
        message = f"Pipeline run {run.id!r} exists already; ids must be unique."
        with self.database.session() as session:
            if session.get(PipelineRunRow, run.id) is not None:
                raise AlreadyExistsError(message)
            session.add(PipelineRunRow.from_entity(run))
            try:
                session.flush()
            except IntegrityError as exc:
                raise AlreadyExistsError(message) from exc

    def finish_pipeline_run(
        self,
        run_id: PipelineRunId,
        status: PipelineStatus,
        *,
        steps: Mapping[str, Any],
        evidence: Mapping[str, Any] | None = None,
    ) -> PipelineRun:
        """Record the end: status, end time, the steps (replaced) and evidence (merged)."""
        with self.database.session() as session:
            row = session.get(PipelineRunRow, run_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"Pipeline run {run_id!r} does not exist.")
            row.status = str(status)
            row.ended_at = utcnow()
            row.steps = dict(steps)
            if evidence:
                row.evidence = {**row.evidence, **evidence}
            session.flush()
            return row.to_entity()

    def list_pipeline_runs(self, project: str) -> list[PipelineRun]:
        """Cycles of ``project``, oldest first."""
        query = (
            sa.select(PipelineRunRow)
            .where(PipelineRunRow.project == project)
            .order_by(PipelineRunRow.started_at, PipelineRunRow.id)
        )
        with self.database.session(write=False) as session:
            return [row.to_entity() for row in session.scalars(query)]

    def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take or renew the lease for ``ttl_s`` seconds; True if ``holder`` now holds it.

        An expired lease is taken over; a live lease of another holder is left alone.
        """
        if not ttl_s > 0:
            raise InvalidInputError(
                f"The 'ttl_s' parameter of acquire_lease() must be a number in (0, inf). "
                f"Got {ttl_s!r} instead."
            )
        now = utcnow()
        with self.database.session() as session:
            upsert(
                session,
                LeaseRow,
                {"name": name, "holder": holder, "expires_at": now + timedelta(seconds=ttl_s)},
                keys=("name",),
                update=("holder", "expires_at"),
                where=sa.or_(LeaseRow.holder == holder, LeaseRow.expires_at <= now),
            )
            current = session.scalar(sa.select(LeaseRow.holder).where(LeaseRow.name == name))
            return current == holder

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if ``holder`` holds it; otherwise do nothing."""
        with self.database.session() as session:
            session.execute(
                sa.delete(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == holder)
            )

    def find_lease(self, name: str) -> Lease | None:
        """The lease named ``name`` (possibly expired), or None if nobody holds it."""
        with self.database.session(write=False) as session:
            row = session.get(LeaseRow, name)
            return None if row is None else row.to_entity()

    def get_cached_step(self, key: str) -> Mapping[str, Any] | None:
        """The cached result of the step run keyed ``key``, or None."""
        with self.database.session(write=False) as session:
            row = session.get(StepCacheRow, key)
            return None if row is None else dict(row.result)

    def put_cached_step(self, key: str, result: Mapping[str, Any]) -> None:
        """Cache ``result`` under ``key``, replacing an earlier result."""
        with self.database.session() as session:
            upsert(
                session,
                StepCacheRow,
                {"key": key, "result": dict(result), "created_at": utcnow()},
                keys=("key",),
                update=("result", "created_at"),
            )
