"""Event timelines: promotions, rejections, rollbacks, quarantines and alerts over time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from conveyor.core.entities import AuditEvent
from conveyor.core.errors import InvalidInputError
from conveyor.reports.drawing import draw_no_data, set_titles, use_date_axis
from conveyor.reports.inputs import as_x, is_dates
from conveyor.reports.svg import render_svg

__all__ = ["EVENT_STYLES", "audit_record", "move_label", "timeline"]

#: Colour and marker of each known event kind, in the order timelines list them.
EVENT_STYLES: Mapping[str, tuple[str, str]] = {
    "promotion": ("#009E73", "^"),
    "rejection": ("#E69F00", "X"),
    "rollback": ("#D55E00", "v"),
    "quarantine": ("#CC79A7", "s"),
    "alert": ("#0072B2", "D"),
    "retrain": ("#56B4E9", "o"),
    "ingest": ("#7F7F7F", "."),
}
_OTHER_KIND_COLOURS = ("#332288", "#117733", "#882255", "#999933", "#44AA99", "#AA4499")
_LABEL_GREY = "#5f6670"


def move_label(from_version: int | None, to_version: int | None) -> str:
    """Where a move of an alias went: ``"v20→v19"``, or ``"→v1"`` for a first release.

    Parameters
    ----------
    from_version, to_version : int or None
        The version the alias pointed at before the move (None if it pointed nowhere) and
        the one it points at after.

    Returns
    -------
    str
        The label reports print for the move.

    Examples
    --------
    >>> move_label(20, 19), move_label(None, 1)
    ('v20→v19', '→v1')
    """
    before = "" if from_version is None else f"v{from_version}"
    after = "-" if to_version is None else f"v{to_version}"
    return f"{before}→{after}"


def audit_record(event: AuditEvent) -> dict[str, Any]:
    """One registry audit event as ``conveyor history --json`` prints it.

    Parameters
    ----------
    event : AuditEvent
        A move of an alias (or another audited change).

    Returns
    -------
    dict
        ``at`` (ISO 8601), ``action``, ``from``, ``to``, ``actor`` and ``reason``.
    """
    return {
        "at": event.at.isoformat(),
        "action": event.action,
        "from": event.from_version,
        "to": event.to_version,
        "actor": event.actor,
        "reason": event.reason,
    }


def timeline(
    events: Sequence[Mapping[str, Any]],
    *,
    title: str = "Events",
    x_label: str = "",
) -> str:
    """Draw events on a time axis, one lane per kind, each kind with its colour and marker.

    Parameters
    ----------
    events : sequence of mapping
        Each with ``"at"`` (the x value, usually a datetime), ``"kind"`` (such as
        ``"promotion"``, ``"rejection"``, ``"rollback"``, ``"quarantine"``, ``"alert"``; other
        kinds get colours of their own) and optionally ``"label"`` (short text by the marker).
    title, x_label : str
        Chart title and x axis label.

    Returns
    -------
    str
        The chart as an ``<svg>`` element.

    Raises
    ------
    InvalidInputError
        If an event is not a mapping with ``"at"`` and a non-empty string ``"kind"``, or the
        ``"at"`` values are of mixed kinds.

    Examples
    --------
    >>> timeline([{"at": 1, "kind": "promotion", "label": "v2"},
    ...           {"at": 3, "kind": "rollback", "label": "v1"}]).startswith("<svg")
    True
    """
    kinds: list[str] = []
    labels: list[str] = []
    for index, event in enumerate(events):
        if not isinstance(event, Mapping) or "at" not in event or "kind" not in event:
            raise InvalidInputError(
                f"Event {index} of timeline() must be a mapping with keys 'at' and 'kind'. "
                f"Got {event!r} instead."
            )
        kind = event["kind"]
        if not isinstance(kind, str) or not kind:
            raise InvalidInputError(
                f"The 'kind' of event {index} of timeline() must be a non-empty string such as "
                f"'promotion' or 'alert'. Got {kind!r} instead."
            )
        kinds.append(kind)
        labels.append(str(event.get("label", "") or ""))
    at = as_x([event["at"] for event in events], what="'at' values of timeline()")
    lanes = [k for k in EVENT_STYLES if k in kinds] + list(
        dict.fromkeys(k for k in kinds if k not in EVENT_STYLES)
    )
    styles = _kind_styles(lanes)
    height = min(8.0, 1.7 + 0.42 * max(len(lanes), 1))

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        set_titles(ax, title, x_label, "")
        if not lanes:
            draw_no_data(ax)
            return
        for lane, kind in enumerate(lanes):
            colour, marker = styles[kind]
            where = [i for i, k in enumerate(kinds) if k == kind]
            ax.scatter(
                at[where],
                np.full(len(where), lane),
                color=colour,
                marker=marker,
                s=46,
                zorder=3,
                label=kind,
                edgecolors="white",
                linewidths=0.6,
            )
            order = sorted(where, key=lambda i: at[i])
            for rank, i in enumerate(order):
                if labels[i]:
                    ax.annotate(
                        labels[i],
                        (at[i], lane),
                        xytext=(0, 7 if rank % 2 == 0 else -12),
                        textcoords="offset points",
                        ha="center",
                        fontsize=7,
                        color=_LABEL_GREY,
                        annotation_clip=False,
                        in_layout=False,
                    )
        ax.set_yticks(range(len(lanes)), lanes)
        for tick, kind in zip(ax.get_yticklabels(), lanes, strict=True):
            tick.set_color(styles[kind][0])
        ax.set_ylim(len(lanes) - 0.4, -0.6)
        ax.grid(axis="x", visible=False)
        ax.spines["left"].set_visible(False)
        ax.tick_params(axis="y", length=0)
        ax.margins(x=0.06)
        if is_dates(at):
            use_date_axis(ax)
        handles = [
            Line2D([], [], color=styles[k][0], marker=styles[k][1], linestyle="", markersize=6)
            for k in lanes
        ]
        fig.legend(
            handles,
            lanes,
            loc="outside lower center",
            ncols=min(len(lanes), 7),
            handletextpad=0.2,
            columnspacing=1.4,
        )

    return render_svg(draw, size_in=(7.2, height))


def _kind_styles(kinds: Sequence[str]) -> dict[str, tuple[str, str]]:
    styles: dict[str, tuple[str, str]] = {}
    others = 0
    for kind in kinds:
        if kind in EVENT_STYLES:
            styles[kind] = EVENT_STYLES[kind]
        else:
            styles[kind] = (_OTHER_KIND_COLOURS[others % len(_OTHER_KIND_COLOURS)], "o")
            others += 1
    return styles
