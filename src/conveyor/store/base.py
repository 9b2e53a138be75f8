"""Ports: one small protocol per store. Adapters live in ``store.sql`` and ``store.fs``.

Every method is atomic: it either happens completely or raises and changes nothing. Backend
failures surface as :class:`~conveyor.core.errors.StoreError`; lookups by identity raise
:class:`~conveyor.core.errors.NotFoundError` (``get_*``) or return ``None`` (``find_*``).
Lists are ordered oldest first unless a method says otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from conveyor.core.approval import Approval, ApprovalStatus
from conveyor.core.entities import (
    Alert,
    AliasPointer,
    AuditEvent,
    BatchStatus,
    DatasetVersion,
    DatasetVersionId,
    Lease,
    MetricPoint,
    ModelVersion,
    MonitorReport,
    PipelineRun,
    PipelineRunId,
    PipelineStatus,
    Run,
    RunId,
    RunStatus,
    VersionStatus,
)
from conveyor.core.run_query import Expr, OrderBy, RunPage
from conveyor.core.schema import Schema, SchemaRecord


class ArtifactStore(Protocol):
    """Content-addressed blobs. A digest is ``sha256:<hex>``; reads verify it."""

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` atomically (temp + rename) and return its digest; idempotent."""
        ...

    def put_file(self, path: Path) -> str:
        """Store a local file atomically and return its digest; idempotent."""
        ...

    def get_bytes(self, digest: str) -> bytes:
        """Return the blob; raise NotFoundError, or StoreError if its content is corrupt."""
        ...

    def local_path(self, digest: str) -> Path:
        """Return a verified local file with the blob's content (a cache copy for remote stores)."""
        ...

    def exists(self, digest: str) -> bool: ...

    def delete(self, digest: str) -> None:
        """Remove the blob if present."""
        ...

    def list_blobs(self) -> Iterator[tuple[str, int, datetime | None]]:
        """Every stored blob as ``(digest, size in bytes, last modified or None)``, unordered.

        Temporary files of writes in progress are not blobs and are never listed.
        """
        ...


class DatasetStore(Protocol):
    """Dataset versions (batches) and the project's schema versions."""

    def add_dataset_version(self, version: DatasetVersion) -> DatasetVersion:
        """Insert ``version`` with the next ``seq`` of its project and return it as stored.

        Idempotent by ``(project, digest)``: re-adding the same content returns the existing row.
        """
        ...

    def get_dataset_version(self, version_id: DatasetVersionId) -> DatasetVersion: ...

    def list_dataset_versions(
        self,
        project: str,
        *,
        status: BatchStatus | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
    ) -> list[DatasetVersion]:
        """Versions of ``project`` ordered by ``seq``; ``limit`` keeps the newest."""
        ...

    def set_dataset_status(
        self,
        version_id: DatasetVersionId,
        status: BatchStatus,
        *,
        note: str,
        profile: Mapping[str, Any] | None = None,
    ) -> DatasetVersion:
        """Set the status, append the change and ``note`` to ``report["status_changes"]`` and,
        when ``profile`` is given, replace the stored profile; one transaction."""
        ...

    def save_schema(
        self, project: str, schema: Schema, *, author: str | None = None, reason: str | None = None
    ) -> Schema:
        """Store ``schema`` as the project's next version and return it with that version."""
        ...

    def find_schema(self, project: str, version: int | None = None) -> Schema | None:
        """The given schema version, or the newest when ``version`` is None."""
        ...

    def list_schemas(self, project: str) -> list[SchemaRecord]:
        """Every schema version of ``project`` with its author and reason, oldest first."""
        ...


class RunStore(Protocol):
    """Tracked runs: params, metric series, tags, artifacts and the datasets they used."""

    def create_run(
        self,
        project: str,
        experiment: str,
        name: str,
        *,
        parent_id: RunId | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Run: ...

    def log_params(self, run_id: RunId, params: Mapping[str, str]) -> None:
        """Params are write-once: logging a different value for a key raises ConflictError."""
        ...

    def log_metrics(self, run_id: RunId, points: Sequence[MetricPoint]) -> None:
        """Append metric points in one transaction."""
        ...

    def set_tags(self, run_id: RunId, tags: Mapping[str, str]) -> None: ...

    def log_batch(
        self,
        run_id: RunId,
        *,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        metrics: Sequence[MetricPoint] = (),
    ) -> None:
        """Record params, tags and metric points in one transaction: all or nothing.

        Raise ConflictError for a param logged before with another value, InvalidInputError
        for a malformed point and NotFoundError for an unknown run; nothing is written then.
        """
        ...

    def log_artifact(self, run_id: RunId, name: str, digest: str) -> None: ...

    def log_datasets(self, run_id: RunId, dataset_ids: Sequence[str]) -> None: ...

    def end_run(self, run_id: RunId, status: RunStatus) -> Run: ...

    def heartbeat(self, run_id: RunId) -> None:
        """Record that the run's client is alive (``Run.heartbeat_at`` becomes now).

        A store configured with a stale timeout ends a ``running`` run whose client was not
        heard from for longer ``failed`` when runs are read. Raise NotFoundError for an
        unknown run and ConflictError for a run that has ended.
        """
        ...

    def get_run(self, run_id: RunId) -> Run: ...

    def list_runs(self, project: str, *, experiment: str | None = None) -> list[Run]: ...

    def get_metric_history(self, run_id: RunId, key: str) -> list[MetricPoint]:
        """The series ordered by step, then timestamp."""
        ...

    def search_runs(
        self,
        *,
        project: str | None = None,
        where: Expr | None = None,
        order_by: Sequence[OrderBy] = (),
        limit: int = 100,
        page_token: str | None = None,
    ) -> RunPage:
        """One page of the runs (of ``project``, or all) for which ``where`` holds.

        Metrics compare on each key's latest value (highest step, then timestamp); params and
        tags compare as strings; a run lacking a key never matches. Runs come in ``order_by``
        order (runs lacking a sort key last), then newest first by start time and id.
        ``page_token`` is the previous page's ``next_page_token``; it only fits the same query.
        Raise InvalidInputError for a bad ``limit`` (see ``MAX_PAGE_SIZE``) or token.
        """
        ...


class ModelStore(Protocol):
    """Registered model versions, alias pointers and the registry's audit log."""

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
        """Register the next version of ``model`` (allocated by the database, gapless)."""
        ...

    def get_model_version(self, model: str, version: int) -> ModelVersion: ...

    def list_model_versions(self, model: str) -> list[ModelVersion]: ...

    def set_version_status(
        self, model: str, version: int, status: VersionStatus, *, actor: str, reason: str
    ) -> ModelVersion: ...

    def update_version_metrics(
        self, model: str, version: int, metrics: Mapping[str, Any]
    ) -> ModelVersion:
        """Merge ``metrics`` into the version's recorded evaluation."""
        ...

    def find_alias(self, model: str, alias: str) -> AliasPointer | None: ...

    def list_aliases(self, model: str) -> list[AliasPointer]: ...

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

        ``expected_revision`` is the revision the caller read (None: the alias must not exist);
        if another writer moved it since, raise ConflictError and change nothing. The move obeys
        :func:`conveyor.core.alias.check_alias_move` on the version and approval as read in the
        same transaction (InvalidInputError or BlockedError, changing nothing); with
        ``require_approval`` the approval is added to the audit event's evidence.
        """
        ...

    def list_audit_events(self, model: str, *, alias: str | None = None) -> list[AuditEvent]: ...

    def request_approval(self, model: str, version: int, *, actor: str, reason: str) -> Approval:
        """Open the version's approval as ``pending`` and audit it as ``request_approval``.

        A rejected version may be requested again (the record reopens). Raise NotFoundError
        for an unknown version and ConflictError if the approval is already pending or
        approved; nothing is changed then.
        """
        ...

    def decide_approval(
        self, model: str, version: int, status: ApprovalStatus, *, actor: str, reason: str
    ) -> Approval:
        """Record the decision (``approved`` or ``rejected``) on a pending approval, audited as
        ``approve`` or ``reject``, in one transaction.

        Raise NotFoundError if the version has no approval and ConflictError if it is not
        pending (decided already, or by a concurrent writer).
        """
        ...

    def find_approval(self, model: str, version: int) -> Approval | None: ...

    def list_approvals(self, model: str, *, status: ApprovalStatus | None = None) -> list[Approval]:
        """Approvals of ``model`` (only those in ``status`` if given) by version."""
        ...

    def delete_model_version(
        self, model: str, version: int, *, actor: str, reason: str
    ) -> ModelVersion:
        """Remove the version and its approval, and audit it as ``delete`` with the removed
        version's facts as evidence (the audit log keeps the tombstone); return it as it was.

        Version numbers are never reused. Raise NotFoundError for an unknown version and
        ConflictError, changing nothing, if an alias points at it.
        """
        ...

    def list_referenced_digests(self) -> set[str]:
        """Every artifact digest the metadata database refers to, read in one snapshot.

        This spans the stores sharing the database: model versions (the artifact and any
        digest in their lineage), run artifacts and dataset versions. Garbage collection keeps
        exactly these blobs.
        """
        ...


class MonitorStore(Protocol):
    """Monitoring reports and alerts."""

    def add_monitor_report(self, report: MonitorReport) -> None: ...

    def list_monitor_reports(
        self, project: str, *, since: datetime | None = None
    ) -> list[MonitorReport]: ...

    def add_alert(self, alert: Alert) -> None: ...

    def list_alerts(self, project: str, *, kind: str | None = None) -> list[Alert]: ...


class PipelineStore(Protocol):
    """Continuous-training cycles, step cache and leases."""

    def add_pipeline_run(self, run: PipelineRun) -> None: ...

    def finish_pipeline_run(
        self,
        run_id: PipelineRunId,
        status: PipelineStatus,
        *,
        steps: Mapping[str, Any],
        evidence: Mapping[str, Any] | None = None,
    ) -> PipelineRun: ...

    def list_pipeline_runs(self, project: str) -> list[PipelineRun]: ...

    def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take or renew the lease; True if ``holder`` now holds it (an expired one is taken)."""
        ...

    def release_lease(self, name: str, holder: str) -> None: ...

    def find_lease(self, name: str) -> Lease | None:
        """The lease named ``name`` (possibly expired), or None if nobody holds it."""
        ...

    def get_cached_step(self, key: str) -> Mapping[str, Any] | None: ...

    def put_cached_step(self, key: str, result: Mapping[str, Any]) -> None: ...
