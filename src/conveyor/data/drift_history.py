"""Drift of dataset versions against their history: the previous accepted batch, the reference,
or the batch of the same season, judged against the spread between past accepted batches.

Every accepted batch's profile is stored with its version, so these comparisons read profiles
only, never the batches' data. :func:`batch_drift` is what ingestion stores under the new
profile's ``"drift"`` key; :func:`dataset_drift` and :func:`dataset_profile` serve
``conveyor data drift`` and ``conveyor data profile``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from conveyor.core.entities import BatchStatus, DatasetVersion, DatasetVersionId
from conveyor.core.errors import InvalidInputError, NotFoundError
from conveyor.data.drift import EFFECT_OF, Yardstick, compute_drift
from conveyor.spec import DriftSeason, DriftSpec, ProjectSpec
from conveyor.workspace import Workspace

_PERIODS: dict[DriftSeason, pd.DateOffset] = {
    "day": pd.DateOffset(days=1),
    "week": pd.DateOffset(weeks=1),
    "year": pd.DateOffset(years=1),
}
Span = tuple[datetime | None, datetime | None]


def reference_spread(profiles: Sequence[Mapping[str, Any]], spec: DriftSpec) -> Yardstick:
    """The largest drift statistic of each feature between consecutive profiles.

    How much a feature moves between windows that were all accepted is the yardstick of a
    new window's change: a batch that differs from the last one by no more than the past
    batches differed from each other is not drifting. Features with too few values in a pair
    (``spec.min_rows``) and pairs that cannot be compared are left out.

    Parameters
    ----------
    profiles : sequence of mapping
        Profiles of accepted windows, oldest first.
    spec : DriftSpec
        The statistics and ``min_rows``.

    Returns
    -------
    dict
        ``{feature: {test: largest value}}`` over the tests of ``spec`` with an effect
        (wasserstein as ``wasserstein_norm``, chi2 as Cramér's V); empty with fewer than two
        profiles.

    Examples
    --------
    >>> from conveyor.data.profiles import profile_frame
    >>> from conveyor.data.schemas import infer_schema
    >>> frames = [pd.DataFrame({"x": [float(i + k) for i in range(200)], "y": 0})
    ...           for k in (0, 5, 20)]
    >>> schema = infer_schema(frames[0], label="y")
    >>> first = profile_frame(frames[0], schema)
    >>> profiles = [first] + [profile_frame(f, schema, reference=first) for f in frames[1:]]
    >>> spec = DriftSpec(tests=["psi"])
    >>> spread = reference_spread(profiles, spec)  # the larger move, 5 -> 20, not 0 -> 5
    >>> spread["x"]["psi"] == compute_drift(profiles[1], profiles[2], spec=spec)["features"][
    ...     "x"]["psi"] > compute_drift(profiles[0], profiles[1], spec=spec)["features"]["x"]["psi"]
    True
    """
    spread: dict[str, dict[str, float]] = {}
    for before, after in zip(profiles, profiles[1:], strict=False):
        try:
            pair = compute_drift(before, after, spec=spec)
        except InvalidInputError:
            continue
        for name, result in pair["features"].items():
            if result.get("reason") is not None:
                continue
            tops = spread.setdefault(name, {})
            for test in spec.tests:
                value = result.get(EFFECT_OF.get(test, test))
                if value is not None:
                    tops[test] = max(float(value), tops.get(test, float("-inf")))
    return {name: tops for name, tops in spread.items() if tops}


def _utc(moment: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)


def same_season(
    versions: Sequence[DatasetVersion], span: Span, season: DriftSeason
) -> DatasetVersion | None:
    """The version covering the time of ``span`` one ``season`` period earlier, if any.

    ``span`` moved back by the period (a day, a week, or a calendar year) is matched with each
    version's ``[min_time, max_time]``; the one overlapping it longest wins, ties going to the
    one whose middle is nearest.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> from conveyor.core.entities import BatchStatus, DatasetVersion, DatasetVersionId
    >>> def week(seq, day):
    ...     start = datetime(2011, 1, day, tzinfo=UTC)
    ...     return DatasetVersion(DatasetVersionId(f"ds_{seq}"), "p", seq, BatchStatus.ACCEPTED,
    ...         "d", 168, 1, "f", start, min_time=start, max_time=start.replace(hour=23))
    >>> history = [week(1, 3), week(2, 10), week(3, 17)]
    >>> span = (datetime(2012, 1, 10, tzinfo=UTC), datetime(2012, 1, 10, 23, tzinfo=UTC))
    >>> same_season(history, span, "year").seq
    2
    >>> same_season(history, span, "none") is None
    True
    """
    start, end = span
    if season == "none" or start is None or end is None:
        return None
    low, high = _utc(start) - _PERIODS[season], _utc(end) - _PERIODS[season]
    middle = low + (high - low) / 2
    best: tuple[pd.Timedelta, pd.Timedelta] | None = None
    found: DatasetVersion | None = None
    for version in versions:
        if version.min_time is None or version.max_time is None:
            continue
        first, last = _utc(version.min_time), _utc(version.max_time)
        if first > high or last < low:
            continue
        overlap = min(last, high) - max(first, low)
        distance = abs(first + (last - first) / 2 - middle)
        if best is None or (overlap, -distance) > best:
            best, found = (overlap, -distance), version
    return found


def batch_drift(
    current: Mapping[str, Any],
    accepted: Sequence[DatasetVersion],
    spec: DriftSpec,
    *,
    span: Span = (None, None),
) -> dict[str, Any] | None:
    """Drift of a new batch's profile against the accepted batches before it.

    The baseline is the accepted batch of the same season when ``spec.season`` names a
    period and the history covers ``span`` one period earlier, else the newest
    (``spec.against == "previous"``) or the oldest (``"reference"``) accepted batch. The
    largest change between consecutive ones of the newest ``spec.spread_windows + 1``
    accepted batches is the yardstick (:func:`reference_spread`).

    Parameters
    ----------
    current : mapping
        The new batch's profile.
    accepted : sequence of DatasetVersion
        The project's accepted versions, oldest first (the new batch not among them).
    spec : DriftSpec
        Baseline, statistics and judgement.
    span : tuple of datetime or None
        The new batch's first and last event time, for ``spec.season``.

    Returns
    -------
    dict or None
        ``compute_drift`` output plus ``"against"`` (``"season"``, ``"previous"`` or
        ``"reference"``), ``"version"`` and ``"seq"`` (the baseline's id and number), and
        ``"spread_windows"`` (the pairs behind the yardstick); or ``{"against", "version",
        "seq", "error"}`` when the profiles cannot be compared; ``None`` when there is no
        accepted batch yet. Never raises for bad profiles, so ingestion always completes.
    """
    baselines = [v for v in accepted if v.profile]
    if not baselines or not current:
        return None
    base = same_season(baselines, span, spec.season)
    against = "season" if base is not None else spec.against
    if base is None:
        base = baselines[-1] if spec.against == "previous" else baselines[0]
    head = {"against": against, "version": str(base.id), "seq": base.seq}
    window = baselines[-(spec.spread_windows + 1) :] if spec.spread_windows else []
    try:
        yardstick = reference_spread([v.profile for v in window], spec)
        drift = compute_drift(base.profile, current, spec=spec, yardstick=yardstick)
    except InvalidInputError as exc:
        return {**head, "error": str(exc)}
    return {**head, "spread_windows": max(len(window) - 1, 0), **drift}


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
        first accepted batch (the reference). Defaults to ``spec.drift.against``; the same
        season's batch comes first when ``spec.drift.season`` names a period, and the
        accepted batches before ``version`` give the yardstick, as at ingestion
        (:func:`batch_drift`).

    Returns
    -------
    dict
        ``compute_drift`` output plus ``"baseline"`` and ``"current"``:
        ``{"id", "seq"}`` of each version (and, without ``other``, ``"against"`` and
        ``"spread_windows"``).

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
        found = batch_drift(
            _profiled(current),
            accepted,
            spec.drift.model_copy(update={"against": mode}),
            span=(current.min_time, current.max_time),
        )
        if found is None:
            raise InvalidInputError(
                f"Dataset version {current.seq} has no accepted batch before it to compare "
                "with; name two versions instead."
            )
        if "error" in found:
            raise InvalidInputError(found["error"])
        return {
            "baseline": {"id": found.pop("version"), "seq": found.pop("seq")},
            "current": {"id": str(current.id), "seq": current.seq},
            **found,
        }
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
