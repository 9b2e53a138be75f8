"""Drawing helpers shared by the chart functions: titles, axes, labels, placeholders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes

__all__ = [
    "annotate_cells",
    "draw_no_data",
    "label_categories",
    "set_titles",
    "thin_labels",
    "use_date_axis",
]

_PLACEHOLDER_GREY = "#9aa0a6"
_INK = "#2b2f36"


def set_titles(ax: Axes, title: str, x_label: str, y_label: str) -> None:
    """Set the chart title (left-aligned by the chart style) and both axis labels."""
    ax.set_title(title)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)


def draw_no_data(ax: Axes) -> None:
    """Replace the plot area with a centred "No data" note and no ticks."""
    ax.text(
        0.5,
        0.5,
        "No data",
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=11,
        color=_PLACEHOLDER_GREY,
    )
    ax.set_xticks([])
    ax.set_yticks([])


def use_date_axis(ax: Axes) -> None:
    """Put a few concise date ticks on x ("Feb", "Mar", with the year where it changes)."""
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def label_categories(ax: Axes, positions: np.ndarray, names: Sequence[str], *, limit: int) -> None:
    """Label categories along x, slanted when they would not fit side by side."""
    shown = thin_labels(names, limit)
    slant = sum(len(name) for name in shown) > 70 or max(len(name) for name in shown) > 18
    ax.set_xticks(
        positions,
        shown,
        rotation=35 if slant else 0,
        ha="right" if slant else "center",
        rotation_mode="anchor" if slant else "default",
    )


def thin_labels(names: Sequence[str], limit: int) -> list[str]:
    """Blank all but every k-th label so that at most ``limit`` show."""
    step = max(1, -(-len(names) // limit))
    return [name if i % step == 0 else "" for i, name in enumerate(names)]


def annotate_cells(ax: Axes, grid: np.ndarray, low: float, high: float, colormap: Any) -> None:
    """Write each finite value in its heatmap cell, light on dark cells and dark on light."""
    for (i, j), value in np.ndenumerate(grid):
        if not np.isfinite(value):
            continue
        shade = colormap((value - low) / (high - low))
        luminance = 0.2126 * shade[0] + 0.7152 * shade[1] + 0.0722 * shade[2]
        ax.text(
            j + 0.5,
            i + 0.5,
            format(value, ".2g"),
            ha="center",
            va="center",
            fontsize=7,
            color="white" if luminance < 0.5 else _INK,
            in_layout=False,
        )
