"""Dataset versions and schema versions in the metadata database."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from conveyor.core.clock import utcnow
from conveyor.core.entities import BatchStatus, DatasetVersion, DatasetVersionId
from conveyor.core.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from conveyor.core.schema import Schema, SchemaRecord
from conveyor.store.sql.database import Database
from conveyor.store.sql.tables import DatasetVersionRow, SchemaRow


class SqlDatasetStore:
    """:class:`~conveyor.store.base.DatasetStore` over SQLite or PostgreSQL.

    ``seq`` and schema versions are allocated per project under a lock, so concurrent
    ingests of one project get consecutive numbers.

    Parameters
    ----------
    database : Database
        An upgraded metadata database.

    Examples
    --------
    >>> db = Database("sqlite://"); db.upgrade()
    >>> SqlDatasetStore(db).list_dataset_versions("churn")
    []
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    def add_dataset_version(self, version: DatasetVersion) -> DatasetVersion:
        """Insert ``version`` with the next ``seq`` of its project (its own ``seq`` is ignored).

        Idempotent by ``(project, digest)``: re-adding the same content returns the stored row.

        Raises
        ------
        AlreadyExistsError
            If another version of different content already has this ``id``.
        """
        with self.database.session() as session:
            self.database.lock(session, f"dataset_versions:{version.project}")
            existing = session.scalars(
                sa.select(DatasetVersionRow).where(
                    DatasetVersionRow.project == version.project,
                    DatasetVersionRow.digest == version.digest,
                )
            ).first()
            if existing is not None:
                return existing.to_entity()
            clash = session.get(DatasetVersionRow, version.id)
            if clash is not None:
                raise AlreadyExistsError(
                    f"Dataset version id {version.id!r} is already used by project "
                    f"{clash.project!r} for content {clash.digest}; ids must be unique."
                )
            last = session.scalar(
                sa.select(sa.func.max(DatasetVersionRow.seq)).where(
                    DatasetVersionRow.project == version.project
                )
            )
            row = DatasetVersionRow.from_entity(dataclasses.replace(version, seq=(last or 0) + 1))
            session.add(row)
            session.flush()
            return row.to_entity()

    def get_dataset_version(self, version_id: DatasetVersionId) -> DatasetVersion:
        """Return the version with this id; raise NotFoundError if there is none."""
        with self.database.session(write=False) as session:
            return _get_row(session, version_id).to_entity()

    def list_dataset_versions(
        self,
        project: str,
        *,
        status: BatchStatus | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
    ) -> list[DatasetVersion]:
        """Versions of ``project`` ordered by ``seq``; ``limit`` keeps the newest ones."""
        if limit is not None and limit < 0:
            raise InvalidInputError(
                f"The 'limit' parameter of list_dataset_versions() must be None or an int in "
                f"[0, inf). Got {limit} instead."
            )
        query = sa.select(DatasetVersionRow).where(DatasetVersionRow.project == project)
        if status is not None:
            query = query.where(DatasetVersionRow.status == str(status))
        if after_seq is not None:
            query = query.where(DatasetVersionRow.seq > after_seq)
        query = query.order_by(DatasetVersionRow.seq.desc())
        if limit is not None:
            query = query.limit(limit)
        with self.database.session(write=False) as session:
            rows = session.scalars(query).all()
        return [row.to_entity() for row in reversed(rows)]

    def set_dataset_status(
        self,
        version_id: DatasetVersionId,
        status: BatchStatus,
        *,
        note: str,
        profile: Mapping[str, Any] | None = None,
    ) -> DatasetVersion:
        """Set the version's status; the change and ``note`` are appended to
        ``report["status_changes"]`` so the history stays visible. A given ``profile`` replaces
        the stored one in the same transaction."""
        with self.database.session() as session:
            row = _get_row(session, version_id, for_update=True)
            change = {
                "from": row.status,
                "to": str(status),
                "note": note,
                "at": utcnow().isoformat(),
            }
            changes = [*row.report.get("status_changes", []), change]
            row.report = {**row.report, "status_changes": changes}
            row.status = str(status)
            if profile is not None:
                row.profile = dict(profile)
            session.flush()
            return row.to_entity()

    def save_schema(
        self, project: str, schema: Schema, *, author: str | None = None, reason: str | None = None
    ) -> Schema:
        """Store ``schema`` as the project's next version and return it with that version.

        ``author`` and ``reason`` travel in the row's JSON document beside the columns.
        """
        with self.database.session() as session:
            self.database.lock(session, f"schemas:{project}")
            last = session.scalar(
                sa.select(sa.func.max(SchemaRow.version)).where(SchemaRow.project == project)
            )
            stored = dataclasses.replace(schema, version=(last or 0) + 1)
            record = SchemaRecord(stored, utcnow(), author=author, reason=reason)
            session.add(SchemaRow.from_record(project, record))
            return stored

    def list_schemas(self, project: str) -> list[SchemaRecord]:
        """Every schema version of ``project`` with its author and reason, oldest first."""
        query = sa.select(SchemaRow).where(SchemaRow.project == project).order_by(SchemaRow.version)
        with self.database.session(write=False) as session:
            return [row.to_record() for row in session.scalars(query).all()]

    def find_schema(self, project: str, version: int | None = None) -> Schema | None:
        """The given schema version, or the newest when ``version`` is None."""
        query = sa.select(SchemaRow).where(SchemaRow.project == project)
        if version is None:
            query = query.order_by(SchemaRow.version.desc()).limit(1)
        else:
            query = query.where(SchemaRow.version == version)
        with self.database.session(write=False) as session:
            row = session.scalars(query).first()
            return None if row is None else row.to_entity()


def _get_row(session: Session, version_id: str, *, for_update: bool = False) -> DatasetVersionRow:
    row = session.get(DatasetVersionRow, version_id, with_for_update=for_update)
    if row is None:
        raise NotFoundError(f"Dataset version {version_id!r} does not exist.")
    return row
