"""Drift of dataset versions against their history: the previous accepted batch or the reference.

Every accepted batch's profile is stored with its version, so these comparisons read profiles
only, never the batches' data. :func:`batch_drift` is what ingestion stores under the new
profile's ``"drift"`` key; :func:`dataset_drift` and :func:`dataset_profile` serve
``conveyor data drift`` and ``conveyor data profile``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from conveyor.core.entities import BatchStatus, DatasetVersion, DatasetVersionId
from conveyor.core.errors import InvalidInputError, NotFoundError
from conveyor.data.drift import compute_drift
from conveyor.spec import DriftSpec, ProjectSpec
from conveyor.workspace import Workspace


def batch_drift(
    current: Mapping[str, Any], accepted: Sequence[DatasetVersion], spec: DriftSpec
) -> dict[str, Any] | None:
    """Drift of a new batch's profile against the accepted batches before it.

    Parameters
    ----------
    current : mapping
        The new batch's profile.
    accepted : sequence of DatasetVersion
        The project's accepted versions, oldest first (the new batch not among them).
    spec : DriftSpec
        ``spec.against`` picks the newest (``"previous"``) or the oldest (``"reference"``).

    Returns
    -------
    dict or None
        ``compute_drift`` output plus ``"against"`` and ``"version"`` (the baseline's id and
        ``"seq"``), or ``{"against", "version", "seq", "error"}`` when the profiles cannot be
        compared; ``None`` when there is no accepted batch yet. Never raises for bad profiles,
        so ingestion always completes.
    """
    baselines = [v for v in accepted if v.profile]
    if not baselines or not current:
        return None
    base = baselines[-1] if spec.against == "previous" else baselines[0]
    head = {"against": spec.against, "version": str(base.id), "seq": base.seq}
    try:
        return {**head, **compute_drift(base.profile, current, spec=spec)}
    except InvalidInputError as exc:
        return {**head, "error": str(exc)}


def find_dataset_version(ws: Workspace, project: str, ref: str) -> DatasetVersion:
    """A dataset version of ``project`` by id (``ds_...``) or by sequence number.

    Raises
    ------
    NotFoundError
        If no version of ``project`` has that id or number.
    """
    text = ref.strip()
    if text.isdigit():
        seq = int(text)
        for version in ws.stores.datasets.list_dataset_versions(project):
            if version.seq == seq:
                return version
        raise NotFoundError(f"Project {project!r} has no dataset version number {seq}.")
    version = ws.stores.datasets.get_dataset_version(DatasetVersionId(text))
    if version.project != project:
        raise NotFoundError(f"Dataset version {text!r} is not in project {project!r}.")
    return version


def _profiled(version: DatasetVersion) -> Mapping[str, Any]:
    if not version.profile or not version.profile.get("columns"):
        raise InvalidInputError(
            f"Dataset version {version.seq} ({version.id}) has no profile: it is "
            f"{version.status}, and only accepted batches are profiled."
        )
    return version.profile


def dataset_drift(
    ws: Workspace,
    spec: ProjectSpec,
    version: str,
    other: str | None = None,
    *,
    against: str | None = None,
) -> dict[str, Any]:
    """Drift between two dataset versions' stored profiles.

    Parameters
    ----------
    version : str
        With ``other``: the baseline; alone: the batch to check. An id or a number.
    other : str, optional
        The batch compared with ``version``.
    against : {"previous", "reference"}, optional
        Without ``other``, the baseline of ``version``: the accepted batch before it, or the
        first accepted batch (the reference). Defaults to ``spec.drift.against``.

    Returns
    -------
    dict
        ``compute_drift`` output plus ``"baseline"`` and ``"current"``:
        ``{"id", "seq"}`` of each version.

    Raises
    ------
    NotFoundError
        If a version does not exist.
    InvalidInputError
        If a version has no profile, or there is no earlier accepted batch to compare with.
    """
    current = find_dataset_version(ws, spec.project, other if other is not None else version)
    if against not in (None, "previous", "reference"):
        raise InvalidInputError(
            f"'against' must be 'previous' or 'reference'. Got {against!r} instead."
        )
    if other is not None:
        baseline = find_dataset_version(ws, spec.project, version)
    else:
        mode = against or spec.drift.against
        accepted = [
            v
            for v in ws.stores.datasets.list_dataset_versions(
                spec.project, status=BatchStatus.ACCEPTED
            )
            if v.seq < current.seq and v.profile
        ]
        if not accepted:
            raise InvalidInputError(
                f"Dataset version {current.seq} has no accepted batch before it to compare "
                "with; name two versions instead."
            )
        baseline = accepted[-1] if mode == "previous" else accepted[0]
    drift = compute_drift(_profiled(baseline), _profiled(current), spec=spec.drift)
    return {
        "baseline": {"id": str(baseline.id), "seq": baseline.seq},
        "current": {"id": str(current.id), "seq": current.seq},
        **drift,
    }


def dataset_profile(ws: Workspace, spec: ProjectSpec, version: str) -> DatasetVersion:
    """The dataset version whose stored profile ``conveyor data profile`` shows.

    Raises
    ------
    NotFoundError
        If the version does not exist.
    InvalidInputError
        If it has no profile (a quarantined batch).
    """
    found = find_dataset_version(ws, spec.project, version)
    _profiled(found)
    return found
