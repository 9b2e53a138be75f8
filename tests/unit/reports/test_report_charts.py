from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import matplotlib as mpl
import numpy as np
import pytest

from conveyor.core.errors import InvalidInputError
from conveyor.reports import (
    EVENT_STYLES,
    bar_chart,
    heatmap,
    histogram_pair,
    line_chart,
    sanitize_svg,
    timeline,
)
from conveyor.reports.inputs import finite_edges, tick_label

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2024, 3, 1, tzinfo=UTC)


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def texts(svg: str) -> list[str]:
    return [node.text or "" for node in parse(svg).iter(f"{SVG}text")]


def make_line() -> str:
    days = [START + timedelta(days=i) for i in range(30)]
    return line_chart(
        {"production": (days, np.linspace(0.8, 0.85, 30)), "challenger": (days, [0.82] * 30)},
        title="Live AUC",
        y_label="AUC",
        markers=[(days[10], "v2 promoted", "promotion"), (days[20], "rolled back", "rollback")],
    )


def make_bar() -> str:
    return bar_chart(["age", "fare", "class"], [0.4, 0.25, -0.05], title="Importance")


def make_heatmap() -> str:
    weeks = [date(2024, 1, 1) + timedelta(weeks=i) for i in range(6)]
    values = np.arange(24, dtype=float).reshape(4, 6) / 40
    return heatmap(["age", "fare", "class", "port"], weeks, values, title="PSI per week")


def make_timeline() -> str:
    return timeline(
        [
            {"at": START, "kind": "promotion", "label": "v1"},
            {"at": START + timedelta(days=3), "kind": "alert", "label": "drift"},
            {"at": START + timedelta(days=4), "kind": "rollback", "label": "to v1"},
            {"at": START + timedelta(days=5), "kind": "quarantine", "label": "batch 9"},
            {"at": START + timedelta(days=6), "kind": "rejection", "label": "v3"},
        ],
        title="Releases",
    )


def make_histogram() -> str:
    return histogram_pair(
        [-np.inf, 0, 10, 20, np.inf], [10, 50, 30, 10], [5, 20, 45, 30], title="fare"
    )


CHARTS: dict[str, Callable[[], str]] = {
    "line": make_line,
    "bar": make_bar,
    "heatmap": make_heatmap,
    "timeline": make_timeline,
    "histogram": make_histogram,
}
TITLES = {
    "line": "Live AUC",
    "bar": "Importance",
    "heatmap": "PSI per week",
    "timeline": "Releases",
    "histogram": "fare",
}


@pytest.mark.parametrize("name", CHARTS)
def test_chart_is_one_parseable_svg_element_with_text_kept_as_text(name: str) -> None:
    svg = CHARTS[name]()
    assert svg.startswith("<svg")
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg
    root = parse(svg)
    assert root.get("viewBox")
    assert TITLES[name] in texts(svg)
    assert "<metadata>" not in svg
    assert "system-ui" in svg and "Bitstream Vera Sans" not in svg  # the page's fonts
    assert sanitize_svg(svg) == svg


@pytest.mark.parametrize("name", CHARTS)
def test_chart_references_resolve_inside_the_chart(name: str) -> None:
    svg = CHARTS[name]()
    ids = set(re.findall(r' id="([^"]+)"', svg))
    refs = set(re.findall(r'(?:url\(#|href="#)([^)"]+)', svg))
    assert refs <= ids
    assert all(i.startswith("cv") for i in ids)


def test_charts_in_one_page_share_no_ids() -> None:
    seen: set[str] = set()
    for make in CHARTS.values():
        ids = set(re.findall(r' id="([^"]+)"', make()))
        assert not ids & seen
        seen |= ids


@pytest.mark.parametrize("name", CHARTS)
def test_chart_renders_to_the_same_bytes_each_time(name: str) -> None:
    assert CHARTS[name]() == CHARTS[name]()


def test_charts_leave_global_matplotlib_settings_alone() -> None:
    before = dict(mpl.rcParams)
    make_line()
    make_heatmap()
    assert dict(mpl.rcParams) == before
    assert mpl.rcParams["svg.fonttype"] == before["svg.fonttype"]


def test_line_chart_draws_markers_in_their_kind_colour() -> None:
    svg = make_line()
    assert {"v2 promoted", "rolled back"} <= {t.strip() for t in texts(svg)}
    assert EVENT_STYLES["promotion"][0].lower() in svg.lower()
    assert EVENT_STYLES["rollback"][0].lower() in svg.lower()
    assert {"production", "challenger"} <= set(texts(svg))


def test_line_chart_accepts_gaps_numbers_and_y_range() -> None:
    svg = line_chart(
        {"loss": ([1, 2, 3, 4], [0.5, None, float("nan"), 0.2])},
        title="Loss",
        markers=[(2, "epoch 2")],
        y_range=(0, 1),
    )
    parse(svg)
    assert "epoch 2" in {t.strip() for t in texts(svg)}
    assert "1.0" in texts(svg)  # the fixed upper limit is a tick


def test_line_chart_rejects_series_of_unequal_length_naming_it() -> None:
    with pytest.raises(InvalidInputError, match=r"'auc'.*3 x values and 2 y values"):
        line_chart({"auc": ([1, 2, 3], [0.1, 0.2])}, title="t")


def test_line_chart_rejects_non_numeric_y_values() -> None:
    with pytest.raises(InvalidInputError, match="'auc'"):
        line_chart({"auc": ([1, 2], ["high", "low"])}, title="t")


def test_line_chart_rejects_mixed_kinds_of_x_values() -> None:
    with pytest.raises(InvalidInputError, match="one kind"):
        line_chart({"a": ([1, 2], [1, 2]), "b": ([START, START], [1, 2])}, title="t")


@pytest.mark.parametrize("y_range", [(1, 0), (0.5, 0.5), (1, 2, 3)])
def test_line_chart_rejects_bad_y_range(y_range: tuple[float, ...]) -> None:
    with pytest.raises(InvalidInputError, match="y_range"):
        line_chart({"a": ([1], [1])}, title="t", y_range=y_range)  # type: ignore[arg-type]


def test_line_chart_rejects_malformed_marker() -> None:
    with pytest.raises(InvalidInputError, match="marker"):
        line_chart({"a": ([1], [1])}, title="t", markers=[(1,)])


def test_bar_chart_writes_each_value_and_marks_negative_bars() -> None:
    svg = bar_chart(
        ["a", "b", "c"],
        [3, float("nan"), -1.5],
        title="Bars",
        reference=2,
        horizontal=True,
        x_label="gain",
    )
    words = set(texts(svg))
    assert {"3", "n/a", "-1.5", "a", "b", "c", "gain"} <= words
    assert "#d55e00" in svg.lower()


def test_bar_chart_rejects_labels_and_values_of_unequal_length() -> None:
    with pytest.raises(InvalidInputError, match="2 labels and 3 values"):
        bar_chart(["a", "b"], [1, 2, 3], title="t")


def test_heatmap_labels_dates_and_annotates_small_grids() -> None:
    svg = make_heatmap()
    words = set(texts(svg))
    assert {"2024-01-01", "2024-02-05", "age", "port"} <= words
    assert "0.57" in words  # the largest cell, 23 / 40, written in its cell


def test_heatmap_draws_missing_cells_and_skips_numbers_on_large_grids() -> None:
    values = np.full((10, 20), 0.1)
    values[2, 3] = np.nan
    svg = heatmap([f"f{i}" for i in range(10)], list(range(20)), values, title="big")
    assert "0.1" not in texts(svg)
    assert "#eef0f2" in svg  # the no-data colour


def test_heatmap_rejects_values_of_the_wrong_shape() -> None:
    with pytest.raises(InvalidInputError, match=r"\(2, 3\).*\(3, 2\)"):
        heatmap(["a", "b"], [1, 2, 3], np.zeros((3, 2)), title="t")


def test_heatmap_rejects_unknown_colormap_by_name() -> None:
    with pytest.raises(InvalidInputError, match="'Redz'"):
        heatmap(["a"], [1], [[0.1]], title="t", cmap="Redz")


def test_heatmap_rejects_inverted_colour_scale() -> None:
    with pytest.raises(InvalidInputError, match="vmin < vmax"):
        heatmap(["a"], [1], [[0.1]], title="t", vmin=1, vmax=0.5)


def test_timeline_gives_each_kind_its_colour_and_a_legend() -> None:
    svg = make_timeline()
    words = [t.strip() for t in texts(svg)]
    for kind in ("promotion", "alert", "rollback", "quarantine", "rejection"):
        assert words.count(kind) == 2  # lane label and legend entry
        assert EVENT_STYLES[kind][0].lower() in svg.lower()
    assert {"v1", "drift", "to v1", "batch 9"} <= set(words)


def test_timeline_colours_unknown_kinds_too() -> None:
    svg = timeline([{"at": 1, "kind": "canary"}, {"at": 2, "kind": "backfill", "label": "b"}])
    words = set(texts(svg))
    assert {"canary", "backfill", "b"} <= words


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"kind": "alert"}, "'at' and 'kind'"),
        ({"at": 1, "kind": ""}, "non-empty string"),
        ("alert", "'at' and 'kind'"),
    ],
)
def test_timeline_rejects_malformed_events(event: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        timeline([event])  # type: ignore[list-item]


def test_histogram_pair_shows_shares_and_sizes() -> None:
    svg = make_histogram()
    words = set(texts(svg))
    assert {"reference (n=100)", "current (n=100)"} <= words
    assert any(w.endswith("%") for w in words)


def test_histogram_pair_compares_categories() -> None:
    svg = histogram_pair(
        ["red", "green", "blue"], [5, 3, 2], [1, 1, 8], title="colour", names=("train", "live")
    )
    assert {"red", "green", "blue", "train (n=10)", "live (n=10)"} <= set(texts(svg))


@pytest.mark.parametrize(
    ("edges", "ref", "cur", "message"),
    [
        ([0, 1, 2], [1, 2], [1, 2, 3], "as many current counts"),
        ([0, 1, 2, 3, 4], [1, 2], [1, 2], "bin edges"),
        ([0, 2, 1], [1, 2], [1, 2], "strictly increasing"),
        ([0, 1, 2], [1, -2], [1, 2], "non-negative"),
    ],
)
def test_histogram_pair_rejects_inconsistent_bins(
    edges: list[float], ref: list[float], cur: list[float], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        histogram_pair(edges, ref, cur, title="t")


@pytest.mark.parametrize(
    "make",
    [
        lambda: line_chart({}, title="empty"),
        lambda: line_chart({"a": ([], [])}, title="empty"),
        lambda: bar_chart([], [], title="empty"),
        lambda: heatmap([], [], [], title="empty"),
        lambda: timeline([], title="empty"),
        lambda: histogram_pair([0], [], [], title="empty"),
    ],
)
def test_empty_input_draws_a_chart_that_says_so(make: Callable[[], str]) -> None:
    svg = make()
    assert "No data" in texts(svg)
    assert "empty" in texts(svg)


def test_infinite_outer_bin_edges_are_cut_to_the_mean_bin_width() -> None:
    edges = finite_edges([-np.inf, 0, 10, 30, np.inf])
    assert edges.tolist() == [-15.0, 0.0, 10.0, 30.0, 45.0]


def test_tick_labels_are_short() -> None:
    assert tick_label(datetime(2024, 1, 8, tzinfo=UTC)) == "2024-01-08"
    assert tick_label(datetime(2024, 1, 8, 13, 5, tzinfo=UTC)) == "2024-01-08 13:05"
    assert tick_label(np.datetime64("2024-01-08")) == "2024-01-08"
    assert tick_label(0.123456) == "0.1235"
