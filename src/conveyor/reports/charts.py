"""Charts for reports: pure functions from data to an inline SVG string.

Each function checks its input, draws one matplotlib figure in Conveyor's style (see
:mod:`conveyor.reports.svg`) and returns one ``<svg>`` element. Empty input draws a chart that
says "No data"; malformed input raises :class:`~conveyor.core.errors.InvalidInputError`.

X values may be numbers, datetimes (aware ones are shown in UTC), dates, ``numpy.datetime64``
or strings (categories); one chart uses one kind.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from conveyor.core.errors import InvalidInputError
from conveyor.reports.drawing import (
    annotate_cells,
    draw_no_data,
    label_categories,
    set_titles,
    thin_labels,
    use_date_axis,
)
from conveyor.reports.events import EVENT_STYLES, timeline
from conveyor.reports.inputs import (
    as_floats,
    as_x,
    check_same_x_kind,
    finite_edges,
    is_dates,
    tick_label,
)
from conveyor.reports.svg import PALETTE, render_svg

__all__ = [
    "EVENT_STYLES",
    "VersionSeries",
    "bar_chart",
    "heatmap",
    "histogram_pair",
    "line_chart",
    "timeline",
    "version_chart",
]

_NEUTRAL = "#5f6670"
_REFERENCE_GREY = "#9aa0a6"
_WIDE = (7.2, 3.2)
#: Colours of model versions, in turn: versions next to each other in time never share one.
_VERSION_COLOURS = (*PALETTE[:6], "#332288", "#882255", "#117733", "#999933", "#44AA99")
_VERSION_PLOT_IN = (8.8, 3.6)  # about the page's chart width at 1:1; the plot never shrinks
_LEGEND_ROW_IN = 0.21
_LEGEND_COLUMNS = 10


def line_chart(
    series: Mapping[str, tuple[Sequence[Any], Sequence[Any]]],
    *,
    title: str,
    x_label: str = "",
    y_label: str = "",
    markers: Sequence[tuple[Any, ...]] = (),
    y_range: tuple[float | None, float | None] | None = None,
) -> str:
    """Draw one line per series, with optional labelled vertical markers.

    Parameters
    ----------
    series : mapping of str to (x values, y values)
        The lines, in legend order. Missing y values (``None``, NaN) leave gaps.
    title, x_label, y_label : str
        Chart title and axis labels.
    markers : sequence of (x, label) or (x, label, kind)
        Vertical lines at ``x``, each with its label, such as promotions and rollbacks. A
        ``kind`` of :data:`EVENT_STYLES` gives the line that kind's colour.
    y_range : (low, high), optional
        Fixed y limits; either end may be ``None`` to leave it automatic.

    Returns
    -------
    str
        The chart as an ``<svg>`` element.

    Raises
    ------
    InvalidInputError
        If a series has different numbers of x and y values, non-numeric y values, or x values
        of another kind than the rest, or if ``y_range`` is not (low, high) with low < high.

    Examples
    --------
    >>> svg = line_chart({"auc": ([1, 2, 3], [0.81, 0.83, 0.8])}, title="AUC",
    ...                  markers=[(2, "v2 promoted", "promotion")])
    >>> svg.startswith("<svg")
    True
    """
    lines: list[tuple[str, np.ndarray, np.ndarray]] = []
    for name, pair in series.items():
        if not isinstance(pair, Sequence) or len(pair) != 2:
            raise InvalidInputError(
                f"The series {name!r} of line_chart() must be a pair (x values, y values). "
                f"Got {type(pair).__name__} instead."
            )
        xs = as_x(pair[0], what=f"x values of the series {name!r}")
        ys = as_floats(pair[1], what=f"y values of the series {name!r}")
        if len(xs) != len(ys):
            raise InvalidInputError(
                f"The series {name!r} of line_chart() must have as many x values as y values. "
                f"Got {len(xs)} x values and {len(ys)} y values instead."
            )
        lines.append((str(name), xs, ys))
    check_same_x_kind([xs for _, xs, _ in lines], what="series of line_chart()")
    vlines = [_as_marker(marker) for marker in markers]
    low, high = _as_range(y_range)

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        set_titles(ax, title, x_label, y_label)
        if not any(len(xs) for _, xs, _ in lines):
            draw_no_data(ax)
            return
        for name, xs, ys in lines:
            ax.plot(xs, ys, label=name, marker="o" if len(xs) <= 40 else None)
        for x, label, colour in vlines:
            ax.axvline(x, color=colour, linestyle="--", linewidth=1.1, alpha=0.9)
            ax.text(
                x,
                0.98,
                f" {label}",
                transform=ax.get_xaxis_transform(),
                rotation=90,
                ha="right",
                va="top",
                fontsize=7.5,
                color=colour,
                in_layout=False,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5},
            )
        ax.set_ylim(low, high)
        if any(is_dates(xs) for _, xs, _ in lines):
            use_date_axis(ax)
        if len(lines) > 1:
            ax.legend(loc="best")

    return render_svg(draw, size_in=_WIDE)


@dataclass(frozen=True, slots=True)
class VersionSeries:
    """One model version's points for :func:`version_chart`.

    ``x`` are the points' positions (such as window starts); ``realised`` the metric measured
    on labels, ``estimated`` a label-free estimate and ``low``/``high`` its range, each one
    value per point (``None`` or NaN where there is none; an empty sequence for none at all).
    """

    label: str
    x: Sequence[Any]
    realised: Sequence[Any] = ()
    estimated: Sequence[Any] = ()
    low: Sequence[Any] = ()
    high: Sequence[Any] = ()


def version_chart(
    versions: Sequence[VersionSeries],
    *,
    title: str,
    x_label: str = "",
    y_label: str = "",
    markers: Sequence[tuple[Any, ...]] = (),
) -> str:
    """Draw a metric per model version over a shared x axis, readable with dozens of versions.

    Each version has its own colour (adjacent versions never share one) and its label written
    at the end of its line; realised values are solid lines with dots, estimates dashed lines
    over a shaded band (their range). The legend sits under the plot in up to ten columns and
    the figure grows by its rows, so the plot keeps its size however many versions there are.

    Parameters
    ----------
    versions : sequence of VersionSeries
        One entry per version, in legend order.
    title, x_label, y_label : str
        Chart title and axis labels.
    markers : sequence of (x, label) or (x, label, kind)
        Vertical lines, such as promotions and rollbacks (see :func:`line_chart`).

    Returns
    -------
    str
        The chart as an ``<svg>`` element.

    Raises
    ------
    InvalidInputError
        If a version's sequences are not as long as its x values (empty ones aside), a value
        is not a number, or x values are of different kinds.

    Examples
    --------
    >>> svg = version_chart([VersionSeries("v1", [1, 2], [0.8, 0.7], [0.79, 0.72],
    ...                                    [0.75, 0.68], [0.83, 0.76])], title="AUC")
    >>> svg.startswith("<svg") and ">v1<" in svg
    True
    """
    parsed = [_version_points(v) for v in versions]
    check_same_x_kind([xs for _, xs, _ in parsed], what="versions of version_chart()")
    vlines = [_as_marker(marker) for marker in markers]
    rows = math.ceil((len(parsed) + 3) / _LEGEND_COLUMNS)
    width, plot_height = _VERSION_PLOT_IN
    size = (width, plot_height + _LEGEND_ROW_IN * (rows + 1))

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        set_titles(ax, title, x_label, y_label)
        if not any(len(xs) for _, xs, _ in parsed):
            draw_no_data(ax)
            return
        for n, (label, xs, values) in enumerate(parsed):
            colour = _VERSION_COLOURS[n % len(_VERSION_COLOURS)]
            realised, estimated, low, high = values
            if np.isfinite(low).any():
                ax.fill_between(xs, low, high, color=colour, alpha=0.16, linewidth=0)
            if np.isfinite(estimated).any():
                ax.plot(xs, estimated, color=colour, linestyle="--", linewidth=1.2)
            if np.isfinite(realised).any():
                ax.plot(xs, realised, color=colour, marker="o", markersize=3, label=label)
            else:
                ax.plot([], [], color=colour, linestyle="--", label=label)
            _label_line_end(ax, label, xs, realised, estimated, colour)
        for x, text, colour in vlines:
            ax.axvline(x, color=colour, linestyle=":", linewidth=1.0, alpha=0.8)
            ax.text(
                x, 0.99, f" {text}", transform=ax.get_xaxis_transform(), rotation=90,
                ha="right", va="top", fontsize=7, color=colour, in_layout=False,
            )  # fmt: skip
        if any(is_dates(xs) for _, xs, _ in parsed):
            use_date_axis(ax)
        ax.margins(x=0.03)
        styles = [
            Line2D([], [], color=_NEUTRAL, marker="o", markersize=3, label="realised (labels)"),
            Line2D([], [], color=_NEUTRAL, linestyle="--", linewidth=1.2, label="estimated"),
            Patch(color=_NEUTRAL, alpha=0.25, linewidth=0, label="95% range of estimate"),
        ]
        handles, _ = ax.get_legend_handles_labels()
        fig.legend(
            handles=[*styles, *handles],
            loc="outside lower center",
            ncol=min(len(handles) + len(styles), _LEGEND_COLUMNS),
            fontsize=7.5,
            handlelength=1.6,
            columnspacing=1.2,
        )

    return render_svg(draw, size_in=size)


def _version_points(
    version: VersionSeries,
) -> tuple[str, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    what = f"version {version.label!r} of version_chart()"
    xs = as_x(version.x, what=f"x values of {what}")
    columns = []
    for name in ("realised", "estimated", "low", "high"):
        raw = getattr(version, name)
        values = (
            as_floats(raw, what=f"{name} values of {what}")
            if len(raw)
            else np.full(len(xs), np.nan)
        )
        if len(values) != len(xs):
            raise InvalidInputError(
                f"The {name} values of {what} must be one per x value ({len(xs)}) or none. "
                f"Got {len(values)} instead."
            )
        columns.append(values)
    realised, estimated, low, high = columns
    return str(version.label), xs, (realised, estimated, low, high)


def _label_line_end(
    ax: Any, label: str, xs: np.ndarray, realised: np.ndarray, estimated: np.ndarray, colour: str
) -> None:
    """Write ``label`` just right of the last point of its line (realised, else estimated)."""
    for ys in (realised, estimated):
        finite = np.flatnonzero(np.isfinite(ys))
        if finite.size:
            last = finite[-1]
            ax.annotate(
                label, (xs[last], ys[last]), xytext=(4, 0), textcoords="offset points",
                fontsize=7.5, fontweight="bold", color=colour, va="center",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.3},
            )  # fmt: skip
            return


def bar_chart(
    labels: Sequence[Any],
    values: Sequence[float],
    *,
    title: str,
    x_label: str = "",
    y_label: str = "",
    horizontal: bool = False,
    reference: float | None = None,
    value_format: str = ".3g",
) -> str:
    """Draw one bar per label, each with its value written on it.

    Parameters
    ----------
    labels : sequence
        Bar labels (shown as text), in order; with ``horizontal`` the first is on top.
    values : sequence of float
        Bar heights; negative bars are drawn in a warning colour, NaN bars read "n/a".
    title, x_label, y_label : str
        Chart title and the labels of the horizontal and vertical axes (with ``horizontal``,
        the values run along x).
    horizontal : bool, default False
        Draw horizontal bars, which suit many or long labels (feature importances).
    reference : float, optional
        A dashed line at this value, such as a threshold or the production model's score.
    value_format : str, default ".3g"
        Format spec for the value written on each bar.

    Returns
    -------
    str
        The chart as an ``<svg>`` element.

    Raises
    ------
    InvalidInputError
        If ``labels`` and ``values`` differ in length or a value is not a number.

    Examples
    --------
    >>> bar_chart(["a", "b"], [3, 5], title="Counts").startswith("<svg")
    True
    """
    names = [tick_label(label) for label in labels]
    heights = as_floats(values, what="values of bar_chart()")
    if len(names) != len(heights):
        raise InvalidInputError(
            f"bar_chart() must get as many labels as values. Got {len(names)} labels and "
            f"{len(heights)} values instead."
        )
    texts = ["n/a" if np.isnan(h) else format(h, value_format) for h in heights]
    heights = np.nan_to_num(heights, nan=0.0)
    colours = [PALETTE[3] if h < 0 else PALETTE[0] for h in heights]
    size = (7.2, min(9.0, 1.1 + 0.27 * len(names))) if horizontal else _WIDE

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        set_titles(ax, title, x_label, y_label)
        if not names:
            draw_no_data(ax)
            return
        positions = np.arange(len(names))
        if horizontal:
            bars = ax.barh(positions, heights, color=colours, height=0.7)
            ax.set_yticks(positions, names)
            ax.invert_yaxis()
            ax.grid(axis="y", visible=False)
            if reference is not None:
                ax.axvline(reference, color=_NEUTRAL, linestyle="--", linewidth=1)
        else:
            bars = ax.bar(positions, heights, color=colours, width=0.7)
            label_categories(ax, positions, names, limit=40)
            ax.grid(axis="x", visible=False)
            if reference is not None:
                ax.axhline(reference, color=_NEUTRAL, linestyle="--", linewidth=1)
        ax.bar_label(bars, labels=texts, padding=2, fontsize=7.5, color=_NEUTRAL)
        if horizontal:
            ax.margins(x=0.08)
        else:
            ax.margins(y=0.1)

    return render_svg(draw, size_in=size)


def heatmap(
    rows: Sequence[str],
    cols: Sequence[Any],
    values: Any,
    *,
    title: str,
    cmap: str = "Reds",
    vmax: float | None = None,
    vmin: float | None = None,
    value_label: str = "",
    annotate: bool | None = None,
) -> str:
    """Draw a grid of coloured cells, such as drift per feature (rows) per week (columns).

    Parameters
    ----------
    rows : sequence of str
        Row labels, top to bottom.
    cols : sequence
        Column labels, left to right (dates are shown as ``YYYY-MM-DD``).
    values : array-like of shape (len(rows), len(cols))
        Cell values; NaN cells are drawn light grey (no data).
    title : str
        Chart title.
    cmap : str, default "Reds"
        A matplotlib colormap name.
    vmax, vmin : float, optional
        Colour scale limits; by default the largest value, and 0 (or the smallest value if
        some are negative).
    value_label : str
        Label of the colour bar.
    annotate : bool, optional
        Write each value in its cell; by default only when the grid has at most 60
        cells.

    Returns
    -------
    str
        The chart as an ``<svg>`` element.

    Raises
    ------
    InvalidInputError
        If ``values`` is not numeric of shape (len(rows), len(cols)), ``cmap`` is unknown, or
        ``vmin`` is not below ``vmax``.

    Examples
    --------
    >>> heatmap(["age", "fare"], ["w1", "w2"], [[0.1, 0.3], [0.0, 0.2]],
    ...         title="PSI").startswith("<svg")
    True
    """
    row_names = [str(row) for row in rows]
    col_names = [tick_label(col) for col in cols]
    grid = as_floats(values, what="values of heatmap()", ndim=2)
    if grid.size == 0 and not (row_names and col_names):
        grid = np.empty((len(row_names), len(col_names)))
    if grid.shape != (len(row_names), len(col_names)):
        raise InvalidInputError(
            f"The values of heatmap() must have shape (rows, cols) = ({len(row_names)}, "
            f"{len(col_names)}). Got shape {grid.shape} instead."
        )
    try:
        colormap = mpl.colormaps[cmap].with_extremes(bad="#eef0f2")
    except KeyError as exc:
        raise InvalidInputError(
            f"The 'cmap' parameter of heatmap() must be a matplotlib colormap name such as "
            f"'Reds', 'Blues' or 'viridis'. Got {cmap!r} instead."
        ) from exc
    finite = grid[np.isfinite(grid)]
    low = vmin if vmin is not None else (min(0.0, float(finite.min())) if finite.size else 0.0)
    high = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    if high <= low:
        if vmax is not None or vmin is not None:
            raise InvalidInputError(
                f"The colour scale of heatmap() must have vmin < vmax. Got vmin={low} and "
                f"vmax={high} instead."
            )
        high = low + 1.0
    show_values = annotate if annotate is not None else grid.size <= 60
    width = min(7.6, max(4.2, 2.4 + 0.5 * len(col_names)))
    height = min(9.0, max(2.2, 1.3 + 0.3 * len(row_names)))

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        set_titles(ax, title, "", "")
        if grid.size == 0:
            draw_no_data(ax)
            return
        mesh = ax.pcolormesh(
            grid, cmap=colormap, vmin=low, vmax=high, edgecolors="white", linewidth=0.8
        )
        ax.set_xticks(
            np.arange(len(col_names)) + 0.5,
            thin_labels(col_names, 16),
            rotation=45 if len(col_names) > 6 else 0,
            ha="right" if len(col_names) > 6 else "center",
        )
        ax.set_yticks(np.arange(len(row_names)) + 0.5, row_names)
        ax.invert_yaxis()
        ax.grid(visible=False)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        colourbar = fig.colorbar(mesh, ax=ax, pad=0.02, fraction=0.05, aspect=18)
        colourbar.outline.set_visible(False)
        colourbar.ax.tick_params(labelsize=7.5, length=2)
        if value_label:
            colourbar.set_label(value_label, fontsize=8)
        if show_values:
            annotate_cells(ax, grid, low, high, colormap)

    return render_svg(draw, size_in=(width, height))


def histogram_pair(
    ref_edges: Sequence[Any],
    ref_counts: Sequence[float],
    cur_counts: Sequence[float],
    *,
    title: str,
    x_label: str = "",
    names: tuple[str, str] = ("reference", "current"),
) -> str:
    """Compare a reference and a current distribution over the same bins, as shares.

    Counts are divided by their totals, so windows of different sizes compare directly.

    Parameters
    ----------
    ref_edges : sequence
        Bin edges, one more than there are counts (numeric bins; infinite outer edges are
        drawn as wide as the mean finite bin); or one label per count (categories).
    ref_counts, cur_counts : sequence of float
        Counts per bin in the reference and the current data.
    title, x_label : str
        Chart title and x axis label.
    names : (str, str)
        Legend names of the two distributions.

    Returns
    -------
    str
        The chart as an ``<svg>`` element.

    Raises
    ------
    InvalidInputError
        If the counts differ in length, do not fit the edges, are negative or not numbers, or
        numeric edges are not increasing.

    Examples
    --------
    >>> histogram_pair([0, 1, 2, 3], [5, 3, 2], [2, 3, 5], title="age").startswith("<svg")
    True
    """
    ref = as_floats(ref_counts, what="ref_counts of histogram_pair()")
    cur = as_floats(cur_counts, what="cur_counts of histogram_pair()")
    if len(ref) != len(cur):
        raise InvalidInputError(
            f"histogram_pair() must get as many current counts as reference counts. Got "
            f"{len(cur)} and {len(ref)} instead."
        )
    if (
        np.any(ref < 0)
        or np.any(cur < 0)
        or not (np.isfinite(ref).all() and np.isfinite(cur).all())
    ):
        raise InvalidInputError(
            "The counts of histogram_pair() must be finite and non-negative. Got "
            f"{ref.tolist()} and {cur.tolist()} instead."
        )
    categorical = len(ref_edges) == len(ref)
    if not categorical and len(ref_edges) != len(ref) + 1:
        raise InvalidInputError(
            f"histogram_pair() must get len(counts) + 1 = {len(ref) + 1} bin edges, or one "
            f"category label per count ({len(ref)}). Got {len(ref_edges)} edges instead."
        )
    edges = np.empty(0) if categorical else finite_edges(ref_edges)
    ref_share = ref / ref.sum() if ref.sum() > 0 else ref
    cur_share = cur / cur.sum() if cur.sum() > 0 else cur
    ref_name = f"{names[0]} (n={ref.sum():,.0f})"
    cur_name = f"{names[1]} (n={cur.sum():,.0f})"

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        set_titles(ax, title, x_label, "share")
        if len(ref) == 0:
            draw_no_data(ax)
            return
        if categorical:
            positions = np.arange(len(ref))
            ax.bar(positions - 0.2, ref_share, width=0.4, color=_REFERENCE_GREY, label=ref_name)
            ax.bar(positions + 0.2, cur_share, width=0.4, color=PALETTE[0], label=cur_name)
            label_categories(ax, positions, [tick_label(e) for e in ref_edges], limit=24)
            ax.grid(axis="x", visible=False)
        else:
            ax.stairs(
                ref_share, edges, fill=True, color=_REFERENCE_GREY, alpha=0.55, label=ref_name
            )
            ax.stairs(cur_share, edges, color=PALETTE[0], linewidth=1.8, label=cur_name)
        ax.set_ylim(0, None)
        ax.margins(y=0.08)
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
        ax.legend(loc="best")

    return render_svg(draw, size_in=_WIDE)


def _as_marker(marker: tuple[Any, ...]) -> tuple[Any, str, str]:
    if not isinstance(marker, Sequence) or len(marker) not in (2, 3):
        raise InvalidInputError(
            "A marker of line_chart() must be (x, label) or (x, label, kind). Got "
            f"{marker!r} instead."
        )
    x = as_x([marker[0]], what="x of a marker")[0]
    kind = str(marker[2]) if len(marker) == 3 else ""
    colour = EVENT_STYLES[kind][0] if kind in EVENT_STYLES else _NEUTRAL
    return x, str(marker[1]), colour


def _as_range(y_range: tuple[float | None, float | None] | None) -> tuple[Any, Any]:
    if y_range is None:
        return None, None
    if not isinstance(y_range, Sequence) or len(y_range) != 2:
        raise InvalidInputError(
            f"The 'y_range' parameter of line_chart() must be (low, high). Got {y_range!r} instead."
        )
    low, high = y_range
    if low is not None and high is not None and not low < high:
        raise InvalidInputError(
            f"The 'y_range' parameter of line_chart() must have low < high. Got {y_range!r} "
            "instead."
        )
    return low, high
