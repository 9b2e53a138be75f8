"""Monitoring reports and alerts in the metadata database."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from conveyor.core.entities import Alert, MonitorReport
from conveyor.core.errors import AlreadyExistsError
from conveyor.store.sql.database import Database
from conveyor.store.sql.tables import AlertRow, MonitorReportRow


class SqlMonitorStore:
    """:class:`~conveyor.store.base.MonitorStore` over SQLite or PostgreSQL.

    Parameters
    ----------
    database : Database
        An upgraded metadata database.

    Examples
    --------
    >>> db = Database("sqlite://"); db.upgrade()
    >>> SqlMonitorStore(db).list_alerts("churn")
    []
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    def add_monitor_report(self, report: MonitorReport) -> None:
        """Insert ``report``; raise AlreadyExistsError if its id is taken."""
        self._insert(MonitorReportRow.from_entity(report), f"Monitor report {report.id!r}")

    def list_monitor_reports(
        self, project: str, *, since: datetime | None = None
    ) -> list[MonitorReport]:
        """Reports of ``project`` by window start; ``since`` keeps windows ending at or after it."""
        query = sa.select(MonitorReportRow).where(MonitorReportRow.project == project)
        if since is not None:
            query = query.where(MonitorReportRow.window_end >= since)
        query = query.order_by(
            MonitorReportRow.window_start, MonitorReportRow.created_at, MonitorReportRow.id
        )
        with self.database.session(write=False) as session:
            return [row.to_entity() for row in session.scalars(query)]

    def add_alert(self, alert: Alert) -> None:
        """Insert ``alert``; raise AlreadyExistsError if its id is taken."""
        self._insert(AlertRow.from_entity(alert), f"Alert {alert.id!r}")

    def list_alerts(self, project: str, *, kind: str | None = None) -> list[Alert]:
        """Alerts of ``project`` (of ``kind`` if given), oldest first."""
        query = sa.select(AlertRow).where(AlertRow.project == project)
        if kind is not None:
            query = query.where(AlertRow.kind == kind)
        query = query.order_by(AlertRow.created_at, AlertRow.id)
        with self.database.session(write=False) as session:
            return [row.to_entity() for row in session.scalars(query)]

    def _insert(self, row: MonitorReportRow | AlertRow, what: str) -> None:
        with self.database.session() as session:
            if session.get(type(row), row.id) is not None:
                raise AlreadyExistsError(f"{what} exists already; ids must be unique.")
            session.add(row)
            try:
                session.flush()
            except IntegrityError as exc:
                raise AlreadyExistsError(f"{what} exists already; ids must be unique.") from exc
