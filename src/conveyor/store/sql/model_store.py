"""The model registry in the metadata database: versions, alias pointers and the audit log."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from conveyor.core.alias import check_alias_move, check_status_change, parse_alias
from conveyor.core.approval import Approval, ApprovalStatus
from conveyor.core.clock import utcnow
from conveyor.core.entities import (
    AliasPointer,
    AuditEvent,
    ModelVersion,
    RunId,
    VersionStatus,
)
from conveyor.core.errors import ConflictError, InvalidInputError, NotFoundError, StoreError
from conveyor.core.names import NameKind, check_name, name_key
from conveyor.store.sql.database import Database, upsert
from conveyor.store.sql.tables import (
    AliasRow,
    AuditEventRow,
    DatasetVersionRow,
    ModelApprovalRow,
    ModelVersionRow,
    RegisteredModelRow,
    RunArtifactRow,
)

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class SqlModelStore:
    """:class:`~conveyor.store.base.ModelStore` over SQLite or PostgreSQL.

    Version numbers come from a counter row per model, locked for the registering
    transaction, so they are gapless under concurrency. Alias moves compare-and-swap on the
    pointer's ``revision`` and write their audit event in the same transaction.

    Parameters
    ----------
    database : Database
        An upgraded metadata database.

    Examples
    --------
    >>> db = Database("sqlite://"); db.upgrade()
    >>> store = SqlModelStore(db)
    >>> v1 = store.create_model_version("churn", artifact="sha256:" + "0" * 64, run_id=None,
    ...     signature={}, lineage={}, metrics={"auc": 0.8}, actor="ci")
    >>> store.move_alias("churn", "production", v1.version, expected_revision=None,
    ...     action="promote", actor="ci", reason="first model").revision
    1
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    def create_model_version(
        self,
        model: str,
        *,
        artifact: str,
        run_id: RunId | None,
        signature: Mapping[str, Any],
        lineage: Mapping[str, Any],
        metrics: Mapping[str, Any],
        tags: Mapping[str, str] | None = None,
        actor: str,
    ) -> ModelVersion:
        """Register the next version of ``model`` and audit it as ``register``."""
        model = check_name(model, NameKind.MODEL)
        now = utcnow()
        with self.database.session() as session:
            counter = _lock_counter(session, model, now)
            counter.last_version += 1
            version = ModelVersion(
                model=model,
                version=counter.last_version,
                artifact=artifact,
                run_id=run_id,
                created_at=now,
                signature=dict(signature),
                lineage=dict(lineage),
                metrics=dict(metrics),
                tags=dict(tags or {}),
            )
            row = ModelVersionRow.from_entity(version)
            session.add(row)
            _audit(
                session, model, "register", actor, "registered", at=now, to_version=version.version
            )
            session.flush()
            return row.to_entity()

    def get_model_version(self, model: str, version: int) -> ModelVersion:
        """Return the version; raise NotFoundError if the model has no such version."""
        with self.database.session(write=False) as session:
            return _get_version(session, model, version).to_entity()

    def list_model_versions(self, model: str) -> list[ModelVersion]:
        """Versions of ``model`` by version number."""
        query = (
            sa.select(ModelVersionRow)
            .where(ModelVersionRow.model == model)
            .order_by(ModelVersionRow.version)
        )
        with self.database.session(write=False) as session:
            return [row.to_entity() for row in session.scalars(query)]

    def set_version_status(
        self, model: str, version: int, status: VersionStatus, *, actor: str, reason: str
    ) -> ModelVersion:
        """Set the version's status and audit it as ``set_status`` with from/to as evidence.

        Raises
        ------
        ConflictError
            If ``status`` is ``archived`` and an alias points at the version (checked under
            the version's row lock, which alias moves take too); nothing is changed.
        """
        with self.database.session() as session:
            row = _get_version(session, model, version, for_update=True)
            check_status_change(model, version, status, _aliases_of(session, model, version))
            evidence = {"from": row.status, "to": str(status)}
            row.status = str(status)
            _audit(
                session, model, "set_status", actor, reason, to_version=version, evidence=evidence
            )
            session.flush()
            return row.to_entity()

    def update_version_metrics(
        self, model: str, version: int, metrics: Mapping[str, Any]
    ) -> ModelVersion:
        """Merge ``metrics`` into the version's recorded evaluation (new keys win)."""
        with self.database.session() as session:
            row = _get_version(session, model, version, for_update=True)
            row.metrics = {**row.metrics, **metrics}
            session.flush()
            return row.to_entity()

    def find_alias(self, model: str, alias: str) -> AliasPointer | None:
        """The pointer, or None if ``alias`` was never set on ``model``."""
        with self.database.session(write=False) as session:
            row = _find_alias(session, model, alias)
            return None if row is None else row.to_entity()

    def list_aliases(self, model: str) -> list[AliasPointer]:
        """Pointers of ``model`` in the order the aliases were first set."""
        query = sa.select(AliasRow).where(AliasRow.model == model).order_by(AliasRow.id)
        with self.database.session(write=False) as session:
            return [row.to_entity() for row in session.scalars(query)]

    def move_alias(
        self,
        model: str,
        alias: str,
        version: int,
        *,
        expected_revision: int | None,
        action: str,
        actor: str,
        reason: str,
        evidence: Mapping[str, Any] | None = None,
        require_approval: bool = False,
    ) -> AliasPointer:
        """Point ``alias`` at ``version`` and write the audit event, in one transaction.

        The rules of :func:`~conveyor.core.alias.check_alias_move` are checked on the version
        and approval rows locked by this transaction, so an archive, block or revoked approval
        cannot slip in between the check and the move.

        Raises
        ------
        InvalidInputError
            If the alias is unknown, the version archived, or not ready for production.
        BlockedError
            If production needs an approval the version does not have.
        NotFoundError
            If ``model`` has no version ``version``.
        ConflictError
            If the alias's revision is not ``expected_revision`` (None: the alias must not
            exist yet); nothing is changed.
        """
        parse_alias(alias)
        now = utcnow()
        with self.database.session() as session:
            # Locked so that a concurrent delete, archive or block of the version cannot slip
            # in between the rules below and the move.
            target = _get_version(session, model, version, for_update=True).to_entity()
            approval = _find_approval(session, model, version, for_update=True)
            granted = check_alias_move(
                alias,
                target,
                None if approval is None else approval.to_entity(),
                require_approval=require_approval,
            )
            if granted:
                evidence = {**(evidence or {}), **granted}
            row = _find_alias(session, model, alias, for_update=True)
            found = None if row is None else row.revision
            if found != expected_revision:
                raise ConflictError(
                    f"Alias {alias!r} of model {model!r} is at revision {found} but the move "
                    f"expected revision {expected_revision}; another writer moved it. "
                    f"Read it again and retry."
                )
            from_version = None if row is None else row.version
            if row is None:
                row = AliasRow(
                    model=model, alias=alias, version=version, revision=1, updated_at=now
                )
                session.add(row)
            else:
                row.version, row.revision, row.updated_at = version, row.revision + 1, now
            _audit(
                session,
                model,
                action,
                actor,
                reason,
                at=now,
                alias=alias,
                from_version=from_version,
                to_version=version,
                evidence=evidence,
            )
            try:
                session.flush()
            except IntegrityError as exc:
                raise ConflictError(
                    f"Alias {alias!r} of model {model!r} was created by another writer "
                    f"at the same time; read it again and retry."
                ) from exc
            return row.to_entity()

    def list_audit_events(self, model: str, *, alias: str | None = None) -> list[AuditEvent]:
        """Audit events of ``model`` (only those of ``alias`` if given), oldest first."""
        query = sa.select(AuditEventRow).where(AuditEventRow.model == model)
        if alias is not None:
            query = query.where(AuditEventRow.alias == alias)
        with self.database.session(write=False) as session:
            return [row.to_entity() for row in session.scalars(query.order_by(AuditEventRow.id))]

    def request_approval(self, model: str, version: int, *, actor: str, reason: str) -> Approval:
        """Open the version's approval as ``pending``; audited as ``request_approval``.

        Raises
        ------
        NotFoundError
            If ``model`` has no version ``version``.
        ConflictError
            If the approval is already pending or approved.
        """
        now = utcnow()
        with self.database.session() as session:
            _get_version(session, model, version, for_update=True)
            row = _find_approval(session, model, version, for_update=True)
            if row is not None and row.status != ApprovalStatus.REJECTED:
                raise ConflictError(
                    f"Version {version} of model {model!r} already has an approval that is "
                    f"{row.status} (requested by {row.requested_by!r}); only a rejected "
                    f"version can be requested again."
                )
            if row is None:
                row = ModelApprovalRow(model=model, version=version)
                session.add(row)
            row.status = str(ApprovalStatus.PENDING)
            row.requested_by, row.requested_at, row.request_reason = actor, now, reason
            row.decided_by = row.decided_at = row.decision_reason = None
            _audit(
                session,
                model,
                "request_approval",
                actor,
                reason,
                at=now,
                to_version=version,
                evidence={"status": str(ApprovalStatus.PENDING)},
            )
            session.flush()
            return row.to_entity()

    def decide_approval(
        self, model: str, version: int, status: ApprovalStatus, *, actor: str, reason: str
    ) -> Approval:
        """Approve or reject a pending approval; audited as ``approve`` or ``reject``.

        Raises
        ------
        InvalidInputError
            If ``status`` is not ``approved`` or ``rejected``.
        NotFoundError
            If the version has no approval.
        ConflictError
            If the approval is not pending.
        """
        status = ApprovalStatus(status)
        if status is ApprovalStatus.PENDING:
            raise InvalidInputError(
                f"A decision on an approval must be 'approved' or 'rejected'. Got {status!r}."
            )
        now = utcnow()
        with self.database.session() as session:
            row = _find_approval(session, model, version, for_update=True)
            if row is None:
                raise NotFoundError(
                    f"Version {version} of model {model!r} has no approval request to decide."
                )
            if row.status != ApprovalStatus.PENDING:
                raise ConflictError(
                    f"The approval of version {version} of model {model!r} is {row.status} "
                    f"(by {row.decided_by!r}), not pending; request it again to reopen it."
                )
            row.status = str(status)
            row.decided_by, row.decided_at, row.decision_reason = actor, now, reason
            action = "approve" if status is ApprovalStatus.APPROVED else "reject"
            evidence = {"status": str(status), "requested_by": row.requested_by}
            _audit(
                session, model, action, actor, reason, at=now, to_version=version, evidence=evidence
            )
            session.flush()
            return row.to_entity()

    def find_approval(self, model: str, version: int) -> Approval | None:
        """The version's approval, or None if none was ever requested."""
        with self.database.session(write=False) as session:
            row = _find_approval(session, model, version)
            return None if row is None else row.to_entity()

    def list_approvals(self, model: str, *, status: ApprovalStatus | None = None) -> list[Approval]:
        """Approvals of ``model`` (only those in ``status`` if given) by version."""
        query = sa.select(ModelApprovalRow).where(ModelApprovalRow.model == model)
        if status is not None:
            query = query.where(ModelApprovalRow.status == str(status))
        with self.database.session(write=False) as session:
            rows = session.scalars(query.order_by(ModelApprovalRow.version))
            return [row.to_entity() for row in rows]

    def delete_model_version(
        self, model: str, version: int, *, actor: str, reason: str
    ) -> ModelVersion:
        """Remove the version and its approval; the ``delete`` audit event keeps its facts.

        Raises
        ------
        NotFoundError
            If ``model`` has no version ``version``.
        ConflictError
            If an alias points at the version; nothing is changed.
        """
        with self.database.session() as session:
            row = _get_version(session, model, version, for_update=True)
            aliases = _aliases_of(session, model, version)
            if aliases:
                raise ConflictError(
                    f"Version {version} of model {model!r} cannot be deleted: the alias(es) "
                    f"{', '.join(sorted(aliases))} point at it. Move them first."
                )
            removed = row.to_entity()
            session.execute(
                sa.delete(ModelApprovalRow).where(
                    ModelApprovalRow.model == model, ModelApprovalRow.version == version
                )
            )
            session.delete(row)
            evidence = {
                "artifact": removed.artifact,
                "run_id": removed.run_id,
                "created_at": removed.created_at.isoformat(),
                "status": str(removed.status),
                "lineage": dict(removed.lineage),
                "tags": dict(removed.tags),
            }
            _audit(session, model, "delete", actor, reason, to_version=version, evidence=evidence)
            session.flush()
            return removed

    def list_referenced_digests(self) -> set[str]:
        """Digests referred to by model versions, run artifacts and dataset versions."""
        found: set[str] = set()
        with self.database.session(write=False) as session:
            for artifact, lineage in session.execute(
                sa.select(ModelVersionRow.artifact, ModelVersionRow.lineage)
            ):
                found.add(artifact)
                found.update(_digests_in(lineage))
            found.update(session.scalars(sa.select(RunArtifactRow.digest)))
            found.update(session.scalars(sa.select(DatasetVersionRow.digest)))
        return found


def _digests_in(value: Any) -> Iterable[str]:
    """Every artifact digest among the strings nested in a JSON value."""
    if isinstance(value, str):
        if _DIGEST.fullmatch(value):
            yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _digests_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _digests_in(item)


def _find_approval(
    session: Session, model: str, version: int, *, for_update: bool = False
) -> ModelApprovalRow | None:
    query = sa.select(ModelApprovalRow).where(
        ModelApprovalRow.model == model, ModelApprovalRow.version == version
    )
    return session.scalars(query.with_for_update() if for_update else query).first()


def _lock_counter(session: Session, model: str, now: datetime) -> RegisteredModelRow:
    counter = session.get(RegisteredModelRow, model, with_for_update=True)
    key = name_key(model)
    if counter is None:
        # Names are case-insensitive: the unique ``name_key`` refuses a second spelling even
        # under a race; this check names the existing spelling first.
        _check_spelling(session, model, key)
        # A concurrent first registration may insert the row too: do nothing on a conflict of
        # the name's key (the constraint the same name, in any case, meets), then lock
        # whichever row won.
        upsert(
            session,
            RegisteredModelRow,
            {"name": model, "name_key": key, "last_version": 0, "created_at": now},
            keys=("name_key",),
            update=(),
        )
        counter = session.get(RegisteredModelRow, model, with_for_update=True)
    if counter is None:
        _check_spelling(session, model, key)  # another spelling won the race
        raise StoreError(f"The version counter of model {model!r} could not be created.")
    return counter


def _check_spelling(session: Session, model: str, key: str) -> None:
    known = session.scalar(
        sa.select(RegisteredModelRow.name).where(RegisteredModelRow.name_key == key)
    )
    if known is not None and known != model:
        raise InvalidInputError(
            f"The model name {model!r} differs only in case from the existing model "
            f"{known!r}; names are case-insensitive, so use {known!r}."
        )


def _get_version(
    session: Session, model: str, version: int, *, for_update: bool = False
) -> ModelVersionRow:
    query = sa.select(ModelVersionRow).where(
        ModelVersionRow.model == model, ModelVersionRow.version == version
    )
    row = session.scalars(query.with_for_update() if for_update else query).first()
    if row is None:
        raise NotFoundError(f"Model {model!r} has no version {version}.")
    return row


def _aliases_of(session: Session, model: str, version: int) -> list[str]:
    query = sa.select(AliasRow.alias).where(AliasRow.model == model, AliasRow.version == version)
    return list(session.scalars(query))


def _find_alias(
    session: Session, model: str, alias: str, *, for_update: bool = False
) -> AliasRow | None:
    query = sa.select(AliasRow).where(AliasRow.model == model, AliasRow.alias == alias)
    return session.scalars(query.with_for_update() if for_update else query).first()


def _audit(
    session: Session,
    model: str,
    action: str,
    actor: str,
    reason: str,
    *,
    at: datetime | None = None,
    alias: str | None = None,
    from_version: int | None = None,
    to_version: int | None = None,
    evidence: Mapping[str, Any] | None = None,
) -> None:
    session.add(
        AuditEventRow(
            model=model,
            action=action,
            actor=actor,
            reason=reason,
            at=at or utcnow(),
            alias=alias,
            from_version=from_version,
            to_version=to_version,
            evidence=dict(evidence or {}),
        )
    )
