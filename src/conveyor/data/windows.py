"""The training window: which accepted batches a model trains on, sized in rows.

A count of batches says nothing about rows: eight batches of thirty rows give a test split of
thirty-six rows, too few for the gate to decide on. The window is therefore chosen in rows, as
whole batches taken newest first, until the test split is expected to hold the rows the gate
needs (``gate.min_rows``), or ``training.window_rows`` when the project sets it. After a
detected change (drift or decay), the window shortens to the batches since the change, but
never below what the gate needs: older rows then only make up the difference, and since the
newest rows are the ones tested, the gate compares the models on rows after the change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from conveyor.core.entities import DatasetVersion
from conveyor.spec import ProjectSpec

#: Headroom on the rows the gate needs: rows sharing a timestamp move a time split's cut, and
#: rows without a label are dropped before splitting.
ROW_SLACK = 1.1


class WindowRule(StrEnum):
    """What decided the window's size."""

    GATE = "gate"
    """Enough rows for the gate's test split (``window_rows`` unset)."""
    BATCHES = "batches"
    """``training.window_batches`` batches, which already hold the rows the gate needs."""
    ROWS = "rows"
    """``training.window_rows`` rows, as the project sets."""
    SINCE_CHANGE = "since_change"
    """The batches since a detected drift or decay, made up to what the gate needs."""
    ALL = "all"
    """Every accepted batch, fewer rows than wanted: the gate may have too few test rows."""


@dataclass(frozen=True, slots=True)
class ChangePoint:
    """When a detected change began, on the clock its monitoring windows were keyed by.

    ``arrival`` is true when the windows were keyed by arrival time: a batch is then after the
    change when it was ingested after it; otherwise by event time, when its newest row is.
    """

    at: datetime
    arrival: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "clock": "arrival" if self.arrival else "event"}


@dataclass(frozen=True, slots=True)
class TrainingWindow:
    """The batches chosen to train on (oldest first) and why.

    ``want_rows`` is the row count the choice aimed for; ``gate_rows`` the rows a window needs
    for its test split to hold ``gate.min_rows`` rows. With a change point, ``since`` is its
    time and ``rows_since`` the rows of the batches after it.
    """

    versions: tuple[DatasetVersion, ...]
    rule: WindowRule
    want_rows: int
    gate_rows: int
    test_share: float
    since: ChangePoint | None = None
    rows_since: int | None = None

    @property
    def rows(self) -> int:
        return _rows(self.versions)

    @property
    def expected_test_rows(self) -> int:
        return int(self.rows * self.test_share)

    def to_dict(self) -> dict[str, Any]:
        """The choice as JSON-ready values, as a cycle records it."""
        return {
            "rule": str(self.rule),
            "batches": [v.seq for v in self.versions],
            "rows": self.rows,
            "want_rows": self.want_rows,
            "gate_rows": self.gate_rows,
            "expected_test_rows": self.expected_test_rows,
            "since": self.since.to_dict() if self.since else None,
            "rows_since": self.rows_since,
        }


def gate_rows(spec: ProjectSpec) -> int:
    """Rows a window needs for its test split to hold the gate's ``min_rows`` rows.

    Examples
    --------
    >>> from conveyor.spec import parse_spec
    >>> gate_rows(parse_spec({"project": "p", "task": "binary", "label": "y"}))
    1467
    """
    return rows_for_test(spec.gate.min_rows, spec.training.split[2])


def rows_for_test(min_rows: int, test_share: float) -> int:
    """Rows a window needs for a test part of ``test_share`` to hold ``min_rows`` rows, with
    :data:`ROW_SLACK` headroom."""
    return math.ceil(min_rows * ROW_SLACK / test_share)


def is_after(version: DatasetVersion, since: ChangePoint) -> bool:
    """Whether batch ``version`` holds rows from after the change point ``since``."""
    if since.arrival or version.max_time is None:
        return version.created_at >= since.at
    return version.max_time >= since.at


def choose_window(
    spec: ProjectSpec, newest: Sequence[DatasetVersion], *, since: ChangePoint | None = None
) -> TrainingWindow:
    """Choose the training window among accepted batches ``newest`` (ordered by ``seq``).

    Parameters
    ----------
    spec : ProjectSpec
        ``training.window_rows``, ``training.window_batches``, ``training.split`` and
        ``gate.min_rows`` size the window.
    newest : sequence of DatasetVersion
        The newest accepted batches, oldest first; the caller passes enough of them (all, or a
        tail long enough that the choice stops before its start).
    since : ChangePoint, optional
        A detected change: the window shortens to the batches after it, made up with
        older batches to the rows the gate needs, if that is shorter than the usual window.

    Returns
    -------
    TrainingWindow
        Whole batches, newest first until the rows are met, returned oldest first.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from conveyor.spec import parse_spec
    >>> spec = parse_spec({"project": "p", "task": "binary", "label": "y",
    ...                    "training": {"window_rows": 100}})
    >>> now = datetime(2024, 1, 1, tzinfo=UTC)
    >>> batches = [DatasetVersion(f"d{i}", "p", i, "accepted", "x", 60, 1, "s", now)
    ...            for i in (1, 2, 3)]
    >>> [v.seq for v in choose_window(spec, batches).versions]
    [2, 3]
    """
    need = gate_rows(spec)
    training = spec.training
    if training.window_rows is not None:
        want, min_batches, rule = training.window_rows, 1, WindowRule.ROWS
    else:
        want, min_batches = need, training.window_batches
        rule = WindowRule.GATE if _rows(newest[-min_batches:]) < need else WindowRule.BATCHES
    chosen = _newest(newest, want, min_batches)
    rows_since = None
    if since is not None:
        rows_since = _rows([v for v in newest if is_after(v, since)])
        short_want = max(rows_since, need)
        short = _newest(newest, short_want, 1)
        if len(short) < len(chosen):
            chosen, rule, want = short, WindowRule.SINCE_CHANGE, short_want
    if _rows(chosen) < want:
        rule = WindowRule.ALL
    return TrainingWindow(
        versions=tuple(chosen),
        rule=rule,
        want_rows=want,
        gate_rows=need,
        test_share=training.split[2],
        since=since,
        rows_since=rows_since,
    )


def _rows(versions: Sequence[DatasetVersion]) -> int:
    return sum(v.row_count for v in versions)


def _newest(
    versions: Sequence[DatasetVersion], want_rows: int, min_batches: int
) -> list[DatasetVersion]:
    """Whole batches newest first until ``want_rows`` rows and ``min_batches`` batches."""
    chosen: list[DatasetVersion] = []
    rows = 0
    for version in reversed(versions):
        if rows >= want_rows and len(chosen) >= min_batches:
            break
        chosen.append(version)
        rows += version.row_count
    return chosen[::-1]
