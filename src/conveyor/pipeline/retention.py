"""Retention: delete old batches, quarantined data and prediction logs, never lineage.

``conveyor.yaml``'s ``retention`` section says how much to keep (see
:class:`~conveyor.spec.RetentionSpec`). :func:`enforce_retention` finds what falls outside it
and deletes it item by item:

- a batch (accepted or quarantined) first becomes ``expired`` in the metadata database, with a
  note in its status history, then its Parquet content is deleted. Its row, validation report
  and profile stay, so data cards, drift history and lineage still read. A crash between the
  two steps leaves an expired batch whose content the next run deletes;
- a day of the prediction log (``date=YYYY-MM-DD``) is renamed out of the readers' sight in one
  step, then removed. Closed log segments are compacted into days first.

A batch that a registered model version's lineage names (its training, validation and test
window) is never deleted, whatever its age. Each run that deletes something records an
``retention`` alert with every item and its size, by the workspace's actor, and sends it to
the project's alert sinks.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from conveyor.alerting.service import raise_alert
from conveyor.core.clock import as_utc, utcnow
from conveyor.core.entities import AlertSeverity, BatchStatus, DatasetVersion
from conveyor.core.errors import ConveyorError
from conveyor.serving.predlog import compact_predictions
from conveyor.spec import ProjectSpec, RetentionSpec
from conveyor.workspace import Workspace

ItemKind = Literal["batch", "quarantined", "predictions"]
Progress = Callable[[str], None]

PREDICTION_KINDS = ("predictions", "shadow_predictions")
"""Project directories holding prediction logs that retention prunes by day."""


@dataclass(frozen=True, slots=True)
class RetentionItem:
    """One thing retention deletes (or would, in a dry run), with its size and why."""

    kind: ItemKind
    name: str
    size_bytes: int
    reason: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "size_bytes": self.size_bytes,
            "reason": self.reason,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What a retention run deleted, what lineage kept, and the bytes freed."""

    dry_run: bool
    items: tuple[RetentionItem, ...]
    protected: Mapping[str, str] = field(default_factory=dict)

    @property
    def deleted(self) -> tuple[RetentionItem, ...]:
        return tuple(i for i in self.items if i.error is None)

    @property
    def bytes_freed(self) -> int:
        return sum(i.size_bytes for i in self.deleted)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "items": [i.to_dict() for i in self.items],
            "protected": dict(self.protected),
            "bytes_freed": self.bytes_freed,
        }


def enforce_retention(
    ws: Workspace,
    spec: ProjectSpec,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> RetentionReport:
    """Delete what ``spec.retention`` no longer keeps; see the module docstring.

    Parameters
    ----------
    ws : Workspace
        The workspace whose stores hold the project's batches and logs.
    spec : ProjectSpec
        The project; its ``retention`` section gives the bounds (all off by default).
    dry_run : bool, default False
        List what would be deleted, with sizes, and delete nothing.
    now : datetime, optional
        The time ages are measured from (default: now, UTC).
    progress : callable, optional
        Receives one line per deleted item.

    Returns
    -------
    RetentionReport
        Every item with its size (an item that failed carries its error and was left intact),
        and the batches kept only because a model version's lineage needs them.
    """
    say = progress or (lambda _msg: None)
    policy = spec.retention
    at = as_utc(now) if now is not None else utcnow()
    protected = _lineage_protection(ws, spec)
    sizes = {digest: size for digest, size, _ in ws.stores.artifacts.list_blobs()}
    versions = ws.stores.datasets.list_dataset_versions(spec.project)
    doomed, kept = _doomed_batches(versions, policy, at, protected, set(sizes))
    items: list[RetentionItem] = []
    for version, kind, reason in doomed:
        item = RetentionItem(kind, version.id, sizes.get(version.digest, 0), reason)
        if not dry_run:
            item = _expire_batch(ws, version, item)
        items.append(item)
        say(_describe(item, dry_run))
    if policy.predictions_max_age_days is not None:
        cutoff = at - timedelta(days=policy.predictions_max_age_days)
        for log_kind in PREDICTION_KINDS:
            for item in _prune_prediction_days(
                ws.project_dir(spec.project, log_kind), cutoff, dry_run=dry_run
            ):
                items.append(item)
                say(_describe(item, dry_run))
    report = RetentionReport(dry_run=dry_run, items=tuple(items), protected=kept)
    if not dry_run and items:
        _record(ws, spec, report)
    return report


def _lineage_protection(ws: Workspace, spec: ProjectSpec) -> dict[str, str]:
    """Dataset version id -> the registered model versions whose lineage names it."""
    versions = ws.stores.datasets.list_dataset_versions(spec.project)
    by_seq = {v.seq: v.id for v in versions}
    needed: dict[str, list[str]] = {}
    for mv in ws.stores.models.list_model_versions(spec.model_name):
        lineage = mv.lineage or {}
        ids = {str(i) for i in lineage.get("datasets") or []}
        ids |= {by_seq[s] for s in lineage.get("dataset_seqs") or [] if s in by_seq}
        for dataset_id in ids:
            needed.setdefault(dataset_id, []).append(f"{mv.model} v{mv.version}")
    return {k: ", ".join(v) for k, v in needed.items()}


def _doomed_batches(
    versions: Sequence[DatasetVersion],
    policy: RetentionSpec,
    at: datetime,
    protected: Mapping[str, str],
    stored: set[str],
) -> tuple[list[tuple[DatasetVersion, ItemKind, str]], dict[str, str]]:
    doomed: list[tuple[DatasetVersion, ItemKind, str]] = []
    kept: dict[str, str] = {}
    bounds: tuple[tuple[BatchStatus, ItemKind, int | None, float | None], ...] = (
        (BatchStatus.ACCEPTED, "batch", policy.keep_batches, policy.max_age_days),
        (
            BatchStatus.QUARANTINED,
            "quarantined",
            policy.quarantine_keep,
            policy.quarantine_max_age_days,
        ),
    )
    for status, kind, keep, max_age_days in bounds:
        if keep is None and max_age_days is None:
            continue
        of_status = [v for v in versions if v.status is status]
        for index, version in enumerate(of_status):
            newer = len(of_status) - 1 - index
            reasons = []
            if keep is not None:
                if newer < keep:
                    continue
                reasons.append(f"beyond the newest {keep}")
            if max_age_days is not None:
                age_days = (at - as_utc(version.created_at)).total_seconds() / 86_400
                if age_days <= max_age_days:
                    continue
                reasons.append(f"{age_days:.1f} days old (limit {max_age_days:g})")
            if version.id in protected:
                kept[version.id] = f"lineage of {protected[version.id]}"
                continue
            doomed.append((version, kind, f"batch {version.seq}: " + " and ".join(reasons)))
    # An expired batch whose content survived an interrupted run loses it now.
    doomed += [
        (v, "batch", f"batch {v.seq}: expired, content left by an interrupted run")
        for v in versions
        if v.status is BatchStatus.EXPIRED and v.digest in stored and v.id not in protected
    ]
    return doomed, kept


def _expire_batch(ws: Workspace, version: DatasetVersion, item: RetentionItem) -> RetentionItem:
    try:
        if version.status is not BatchStatus.EXPIRED:
            ws.stores.datasets.set_dataset_status(
                version.id,
                BatchStatus.EXPIRED,
                note=f"content deleted by retention ({ws.actor}): {item.reason}",
            )
        ws.stores.artifacts.delete(version.digest)
    except (ConveyorError, OSError) as exc:
        return RetentionItem(item.kind, item.name, item.size_bytes, item.reason, str(exc))
    return item


def _prune_prediction_days(
    directory: Path, cutoff: datetime, *, dry_run: bool
) -> list[RetentionItem]:
    if not directory.is_dir():
        return []
    if not dry_run:
        compact_predictions(directory)
    last_day = as_utc(cutoff).strftime("%Y-%m-%d")
    items = []
    for day_dir in sorted(directory.glob("date=*")):
        day = day_dir.name.removeprefix("date=")
        if day >= last_day:
            continue
        size = sum(p.stat().st_size for p in day_dir.rglob("*") if p.is_file())
        item = RetentionItem(
            "predictions", f"{directory.name}/{day_dir.name}", size, f"log day {day} < {last_day}"
        )
        if not dry_run:
            try:
                doomed = day_dir.with_name(f".deleting-{day_dir.name}-{os.getpid()}")
                os.replace(day_dir, doomed)
                shutil.rmtree(doomed)
            except OSError as exc:
                item = RetentionItem(item.kind, item.name, size, item.reason, str(exc))
        items.append(item)
    return items


def _record(ws: Workspace, spec: ProjectSpec, report: RetentionReport) -> None:
    deleted = report.deleted
    raise_alert(
        ws,
        spec,
        kind="retention",
        message=f"Retention by {ws.actor} deleted {len(deleted)} item(s), "
        f"{report.bytes_freed:,} bytes; {len(report.items) - len(deleted)} failed.",
        evidence={"actor": ws.actor, **report.to_dict()},
        severity=AlertSeverity.INFO,
    )


def _describe(item: RetentionItem, dry_run: bool) -> str:
    verb = "would delete" if dry_run else ("FAILED to delete" if item.error else "deleted")
    return f"{verb} {item.kind} {item.name} ({item.size_bytes:,} bytes): {item.reason}"


__all__ = ["RetentionItem", "RetentionReport", "enforce_retention"]
