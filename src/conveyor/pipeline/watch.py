"""Post-release watch: re-score a new release's labelled traffic with the version it replaced.

Comparing the two versions on the very same served rows (paired) makes the decision immune to
week-to-week changes in how hard the traffic is; the release is rolled back only when it is
worse beyond the margin with the whole confidence interval below zero, or under the floor.

The watch judges releases only. Which version is "the release" is read from the registry's
audit log each time, so the watch keeps no state of its own and a restarted watch decides as
the first one would: when the latest move of the production alias is a rollback (the watch's
own, or an operator's), there is no release to watch until the next promotion. A rollback goes
to the version the evidence was measured against (the release's predecessor), never to an
older, unrelated one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from conveyor.alerting.service import raise_alert
from conveyor.core.entities import AlertSeverity, AuditEvent, VersionStatus
from conveyor.core.errors import ConflictError
from conveyor.evaluation.gate import GatePolicy, compare_models
from conveyor.monitoring.service import served_inputs
from conveyor.registry.service import (
    PRODUCTION,
    find_alias_version,
    get_version,
    production_history,
    set_alias,
)
from conveyor.serving.feedback import join_feedback, labelled_arrays
from conveyor.serving.scoring import version_labels
from conveyor.spec import ProjectSpec
from conveyor.training.service import load_version, scores_in
from conveyor.workspace import Workspace

#: The audit action of a move of the production alias that undoes a release.
ROLLBACK_ACTION = "rollback"
#: The alert kind raised once per release that is worse but cannot be rolled back.
REFUSED_ALERT = "rollback_refused"
#: An adapted watch judges a release within this share of a usual release's labels.
RELEASE_LIFE_SHARE = 0.5
#: How many recent stays in production the label rate is read from.
HISTORY_RELEASES = 5


class WatchStatus(StrEnum):
    """The watch's verdict on the current production version."""

    NO_RELEASE = "no_release"
    """Nothing to judge: no production, a first release, the watch is off, or production was
    last moved by a rollback."""
    WAITING = "waiting"
    """Not enough labelled requests served by the release yet."""
    HEALTHY = "healthy"
    """The release is not worse than the version it replaced."""
    ROLLED_BACK = "rolled_back"
    """The release was worse; production went back to the version it replaced."""
    SUPERSEDED = "superseded"
    """Production moved while the watch judged; nothing was changed."""
    CANNOT_ROLL_BACK = "cannot_roll_back"
    """The release is worse, but the version it replaced can no longer take production; an
    alert asks for a person and production stays."""


@dataclass(frozen=True, slots=True)
class WatchOutcome:
    """The watch's verdict on the current release.

    ``version`` is the release judged, ``previous`` the version it replaced (the one the
    evidence compares it with) and, after a rollback, ``moved_to`` the version production
    actually went to.
    """

    status: WatchStatus
    version: int | None = None
    previous: int | None = None
    evidence: dict[str, Any] | None = None
    moved_to: int | None = None

    @property
    def rolled_back(self) -> bool:
        return self.status is WatchStatus.ROLLED_BACK


def is_rollback(event: AuditEvent) -> bool:
    """True if the audited move undid a release (a rollback), not a release of its own."""
    return event.action == ROLLBACK_ACTION


def find_release(ws: Workspace, model: str) -> AuditEvent | None:
    """The move that released the current production version, or None if there is none to watch.

    None when ``model`` has no production version, or when the latest move of the production
    alias is a rollback: a rollback returns to a version already judged, it is not a release.

    Parameters
    ----------
    ws : Workspace
        The workspace whose registry audit log is read.
    model : str
        The registered model's name.

    Returns
    -------
    AuditEvent or None
        The latest production move, when it is a release of the current production version.
    """
    current = find_alias_version(ws, model, PRODUCTION)
    moves = production_history(ws, model)
    if current is None or not moves:
        return None
    latest = moves[-1]
    if latest.to_version != current or is_rollback(latest):
        return None
    return latest


def watch_release(ws: Workspace, spec: ProjectSpec) -> WatchOutcome:
    """Judge the current release against the version it replaced; roll back if it is worse.

    Parameters
    ----------
    ws : Workspace
        The project's workspace (registry, prediction and feedback logs, alerts).
    spec : ProjectSpec
        The project; ``spec.watch`` holds the margin, floor and labels needed.

    Returns
    -------
    WatchOutcome
        The verdict. After a rollback, ``moved_to`` is the release's predecessor, the version
        the evidence was measured against; the rolled-back release is blocked and an alert is
        raised. A rollback is never itself judged: with production last moved by one, the
        status is ``no_release``.
    """
    model = spec.model_name
    release = find_release(ws, model) if spec.watch.enabled else None
    if release is None or release.from_version is None or release.to_version is None:
        return WatchOutcome(WatchStatus.NO_RELEASE, find_alias_version(ws, model, PRODUCTION))
    current, previous = release.to_version, release.from_version
    spells = _spells(ws, model, release)
    joined = join_feedback(
        ws.project_dir(spec.project, "predictions"),
        ws.project_dir(spec.project, "feedback"),
        since=min([release.at, *(start for _, start, _ in spells)]),
    )
    if len(joined):
        joined = joined[joined["label"].notna()]
    need = label_need(spec, [len(_labels_in(joined, *spell)) for spell in spells])
    rows = _labels_in(joined, current, release.at)
    labels = version_labels(ws, spec)(current)
    if len(rows):  # labels read with the release's classes; one no class of it is left out
        y, new_score, usable = labelled_arrays(labels, rows)
        rows, y, new_score = rows[usable], y[usable], new_score[usable]
    if len(rows) < need.labels:
        waiting = {"labels": len(rows), "need": need.to_dict()}
        return WatchOutcome(WatchStatus.WAITING, current, previous, waiting)
    old = load_version(ws, model, previous)
    old_score = scores_in(old, served_inputs(rows), labels)
    decision = compare_models(
        y,
        new_score,
        old_score,
        task=spec.task,
        policy=GatePolicy(
            margin=spec.watch.margin,
            min_rows=need.labels,
            floor=spec.watch.floor,
            n_bootstrap=spec.gate.n_bootstrap,
        ),
    )
    evidence: dict[str, Any] = {
        "labels": len(rows),
        "need": need.to_dict(),
        "interval": [decision.ci_low, decision.ci_high],
        "release": {"audit_id": release.id, "from_version": previous, "to_version": current},
        "decision": decision.to_dict(),
    }
    # The margin in the metric's units: points of a score, a share of production's error.
    margin = decision.margin if decision.margin is not None else spec.watch.margin
    worse = (
        decision.delta is not None
        and decision.ci_high is not None
        and decision.delta < -margin
        and decision.ci_high < 0
    )
    under_floor = spec.watch.floor is not None and decision.challenger < spec.watch.floor
    if not (worse or under_floor):
        return WatchOutcome(WatchStatus.HEALTHY, current, previous, evidence)
    reason = (
        f"post-release watch: v{current} {decision.metric} {decision.challenger:.3f} vs "
        f"v{previous} {decision.production:.3f} on the same {len(rows)} labelled requests"
    )
    return _roll_back(ws, spec, release, reason=reason, evidence=evidence)


@dataclass(frozen=True, slots=True)
class LabelNeed:
    """How many labelled requests the watch judges a release on, and where that comes from.

    ``per_release`` holds the labels each recent release received while it was production
    (newest last); empty when ``watch.min_labels`` fixes the need.
    """

    labels: int
    adaptive: bool
    per_release: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "adaptive": self.adaptive,
            "per_release": list(self.per_release),
        }


def label_need(spec: ProjectSpec, per_release: Sequence[int]) -> LabelNeed:
    """The labels a release needs before the watch judges it.

    ``watch.min_labels`` when set. Otherwise it follows the label rate: half the median of
    the labels recent releases received while they were production (``per_release``), so a
    release is judged within the first half of a usual release's life, clamped to
    ``[watch.min_labels_floor, watch.max_labels]``: under the floor a paired comparison says
    too little, and past ``max_labels`` more labels change little. Without history, it is
    ``max_labels``.

    Examples
    --------
    >>> from conveyor.spec import parse_spec
    >>> spec = parse_spec({"project": "p", "task": "binary", "label": "y"})
    >>> label_need(spec, [300, 260]).labels, label_need(spec, [80]).labels
    (140, 100)
    >>> label_need(spec, [5000]).labels, label_need(spec, []).labels
    (500, 500)
    """
    w = spec.watch
    if w.min_labels is not None:
        return LabelNeed(w.min_labels, adaptive=False)
    if not per_release:
        return LabelNeed(w.max_labels, adaptive=True)
    expected = float(np.median(per_release)) * RELEASE_LIFE_SHARE
    labels = int(min(max(math.ceil(expected), w.min_labels_floor), w.max_labels))
    return LabelNeed(labels, adaptive=True, per_release=tuple(per_release))


def _spells(ws: Workspace, model: str, release: AuditEvent) -> list[tuple[int, datetime, datetime]]:
    """The recent completed stays in production before ``release``: (version, start, end)."""
    moves = [m for m in production_history(ws, model) if m.at <= release.at]
    spells = [
        (m.to_version, m.at, nxt.at)
        for m, nxt in zip(moves, moves[1:], strict=False)
        if m.to_version is not None
    ]
    return spells[-HISTORY_RELEASES:]


def _labels_in(
    joined: pd.DataFrame, version: int, start: datetime, end: datetime | None = None
) -> pd.DataFrame:
    """The labelled requests ``version`` served in ``[start, end)``."""
    if not len(joined):
        return joined
    ts = pd.to_datetime(joined["ts"], utc=True)
    keep = (joined["model_version"] == version) & (ts >= pd.Timestamp(start))
    if end is not None:
        keep &= ts < pd.Timestamp(end)
    return joined[keep]


def _roll_back(
    ws: Workspace,
    spec: ProjectSpec,
    release: AuditEvent,
    *,
    reason: str,
    evidence: dict[str, Any],
) -> WatchOutcome:
    """Move production from the release back to its predecessor, block the release, alert."""
    model = spec.model_name
    current, previous = release.to_version, release.from_version
    assert current is not None and previous is not None
    latest = find_release(ws, model)
    if latest is None or latest.id != release.id:
        return WatchOutcome(WatchStatus.SUPERSEDED, current, previous, evidence)
    status = get_version(ws, model, previous).status
    if status is not VersionStatus.READY:
        message = (
            f"v{current} is worse than v{previous}, the version it replaced, but v{previous} is "
            f"{status} and cannot take production back; production stays on v{current}. "
            f"Promote a good version by hand ({reason})."
        )
        known = ws.stores.monitor.list_alerts(spec.project, kind=REFUSED_ALERT)
        if not any(a.evidence.get("release", {}).get("audit_id") == release.id for a in known):
            _raise_alert(ws, spec, REFUSED_ALERT, message, {**evidence, "previous_status": status})
        return WatchOutcome(WatchStatus.CANNOT_ROLL_BACK, current, previous, evidence)
    # Compare-and-swap against the production the watch judged: a move made meanwhile wins.
    production = ws.stores.models.find_alias(model, PRODUCTION)
    if production is None or production.version != current:
        return WatchOutcome(WatchStatus.SUPERSEDED, current, previous, evidence)
    try:
        pointer = set_alias(
            ws,
            model,
            PRODUCTION,
            previous,
            action=ROLLBACK_ACTION,
            reason=reason,
            evidence={"from_version": current, **evidence},
            expected_revision=production.revision,
        )
    except ConflictError:
        return WatchOutcome(WatchStatus.SUPERSEDED, current, previous, evidence)
    ws.stores.models.set_version_status(
        model, current, VersionStatus.BLOCKED, actor=ws.actor, reason=reason
    )
    _raise_alert(
        ws, spec, "rollback", f"Rolled back v{current} to v{pointer.version}: {reason}.", evidence
    )
    return WatchOutcome(WatchStatus.ROLLED_BACK, current, previous, evidence, pointer.version)


def _raise_alert(
    ws: Workspace, spec: ProjectSpec, kind: str, message: str, evidence: dict[str, Any]
) -> None:
    raise_alert(
        ws, spec, kind=kind, message=message, evidence=evidence, severity=AlertSeverity.CRITICAL
    )
