from __future__ import annotations

import enum
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from conveyor.core.errors import InvalidInputError
from conveyor.reports import Report, bar_chart, line_chart

EVIL = "<script>alert('x')</script>"


class Tags(HTMLParser):
    """Collects start tags and their attributes, and checks that every element closes."""

    VOID = {"meta", "br", "hr", "img", "input", "link", "path", "use", "stop", "rect"}

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, (tag, self.open[-5:])
        self.open.pop()


def parse(html: str) -> Tags:
    parser = Tags()
    parser.feed(html)
    parser.close()
    assert parser.open == []
    return parser


def full_report() -> Report:
    report = Report(
        "Model report", subtitle="churn v3", generated_at=datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
    )
    report.add_heading("Summary")
    report.add_metrics({"auc": 0.91234, "rows": 1234567, "passed": True, "missing": None})
    report.add_text("First paragraph.\n\nSecond paragraph.")
    report.add_heading("Charts")
    report.add_chart(
        line_chart({"auc": ([1, 2, 3], [0.8, 0.82, 0.81])}, title="AUC"), caption="AUC per day"
    )
    report.add_chart(bar_chart(["a", "b"], [1, 2], title="Counts"))
    report.add_heading("Details")
    report.add_table([{"feature": "age", "psi": 0.3}, {"feature": "fare", "psi": 0.01}])
    report.add_json("Evidence", {"decision": "promote"})
    return report


def test_report_renders_a_complete_self_contained_page() -> None:
    html = full_report().render()
    tags = parse(html)
    names = [tag for tag, _ in tags.tags]
    assert html.startswith("<!DOCTYPE html>")
    assert names.count("svg") == 2 and names.count("h2") == 3
    assert "script" not in names and "link" not in names and "img" not in names
    for tag, attrs in tags.tags:
        for key in ("src", "href"):
            value = attrs.get(key) or attrs.get(f"xlink:{key}")
            assert value is None or value.startswith(("#", "data:")), (tag, attrs)
    assert "<style>" in html and "system-ui" in html
    assert "churn v3" in html and "2024-05-01 08:30 UTC" in html


def test_report_lists_sections_and_links_to_them() -> None:
    html = full_report().render()
    anchors = re.findall(r'<h2 id="([^"]+)"', html)
    assert anchors == ["summary", "charts", "details"]
    for anchor in anchors:
        assert f'href="#{anchor}"' in html


def test_repeated_headings_get_distinct_anchors() -> None:
    report = Report("r")
    for _ in range(3):
        report.add_heading("Drift!")
    assert re.findall(r'<h2 id="([^"]+)"', report.render()) == ["drift", "drift-2", "drift-3"]


def test_every_piece_of_text_is_escaped() -> None:
    report = Report(EVIL, subtitle=EVIL)
    report.add_heading(EVIL)
    report.add_text(EVIL)
    report.add_metrics({EVIL: EVIL})
    report.add_table([{EVIL: EVIL}], caption=EVIL)
    report.add_chart(bar_chart([EVIL], [1], title=EVIL), caption=EVIL)
    report.add_json(EVIL, {EVIL: EVIL})
    html = report.render()
    assert "<script" not in html
    assert html.count("&lt;script&gt;") >= 9
    assert "script" not in [tag for tag, _ in parse(html).tags]


def test_metrics_become_cards_with_readable_values() -> None:
    report = Report("r")
    report.add_metrics(
        {
            "auc": 0.912345,
            "rows": 1234567,
            "ok": False,
            "gap": float("nan"),
            "at": datetime(2024, 5, 1, tzinfo=UTC),
            "tiny": 0.0000123,
        }
    )
    values = re.findall(r'<div class="value">([^<]*)</div>', report.render())
    assert values == ["0.9123", "1,234,567", "no", "—", "2024-05-01", "1.23e-05"]


def test_table_takes_columns_in_order_of_appearance_and_aligns_numbers() -> None:
    report = Report("r")
    report.add_table([{"name": "a", "n": 1}, {"name": "b", "extra": "x", "n": 2.5}])
    html = report.render()
    headers = re.findall(r"<th(?: class=\"num\")?>([^<]*)</th>", html)
    assert headers == ["name", "n", "extra"]
    assert '<th class="num">n</th>' in html and '<td class="num">2.5</td>' in html
    rows = re.findall(r"<tr>(.*?)</tr>", html.split("<tbody>")[1])
    assert rows[0].count("<td") == 3 and "<td></td>" in rows[0]  # "extra" missing in row 0


def test_table_honours_explicit_columns_and_row_limit() -> None:
    report = Report("r")
    report.add_table([{"a": i, "b": -i} for i in range(10)], columns=["b"], max_rows=4)
    html = report.render()
    assert re.findall(r"<th[^>]*>([^<]*)</th>", html) == ["b"]
    assert html.count('<td class="num">') == 4
    assert "6 more rows not shown" in html


def test_empty_table_says_so() -> None:
    report = Report("r")
    report.add_table([], columns=["a", "b"])
    assert 'colspan="2">No rows</td>' in report.render()


def test_table_rejects_rows_that_are_not_mappings() -> None:
    with pytest.raises(InvalidInputError, match="Row 1"):
        Report("r").add_table([{"a": 1}, ["a", 1]])  # type: ignore[list-item]


def test_table_rejects_negative_row_limit() -> None:
    with pytest.raises(InvalidInputError, match="max_rows"):
        Report("r").add_table([{"a": 1}], max_rows=-1)


def test_chart_is_embedded_as_markup_with_its_caption() -> None:
    report = Report("r")
    svg = bar_chart(["a"], [1], title="Counts")
    report.add_chart(svg, caption="one bar")
    html = report.render()
    assert svg in html
    assert "<figcaption>one bar</figcaption>" in html


def test_chart_with_xml_prolog_is_accepted_without_it() -> None:
    report = Report("r")
    report.add_chart('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>')
    assert "<?xml" not in report.render()


@pytest.mark.parametrize(
    ("svg", "message"),
    [
        ("<div>no</div>", "<svg> root"),
        ('<svg xmlns="http://www.w3.org/2000/svg"><g></svg>', "well-formed"),
        ("<svg><g/></svg>", "namespace"),
        ('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "<script>"),
        ('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "onload"),
        (
            '<svg xmlns="http://www.w3.org/2000/svg"><a href="javascript:alert(1)"/></svg>',
            "script URLs",
        ),
        (
            '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
            '<image xlink:href="https://example.org/x.png"/></svg>',
            "self-contained",
        ),
        (
            '<svg xmlns="http://www.w3.org/2000/svg"><rect style="fill: url(https://e.org/p)"/>'
            "</svg>",
            "self-contained",
        ),
        (
            '<svg xmlns="http://www.w3.org/2000/svg"><style>@import "https://e.org/s.css";</style>'
            "</svg>",
            "external",
        ),
    ],
)
def test_chart_that_is_not_static_self_contained_svg_is_refused(svg: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        Report("r").add_chart(svg)


class Colour(enum.Enum):
    RED = "red"


@dataclass(frozen=True)
class Point:
    x: int
    y: int


def test_json_block_is_collapsed_and_converts_common_types() -> None:
    report = Report("r")
    report.add_json(
        "Evidence",
        {
            "at": datetime(2024, 5, 1, 12, tzinfo=UTC),
            "score": np.float64(0.5),
            "counts": np.array([1, 2]),
            "colour": Colour.RED,
            "point": Point(1, 2),
            "tags": {"b", "a"},
            "path": Path("/tmp/x"),
        },
    )
    html = report.render()
    block = re.search(r"<details class=\"card\">(.*?)</details>", html, re.DOTALL)
    assert block is not None and "<details open" not in html
    text = re.search(r"<pre>(.*?)</pre>", block.group(1), re.DOTALL)
    assert text is not None
    decoded = json.loads(text.group(1).replace("&#34;", '"').replace("&quot;", '"'))
    assert decoded == {
        "at": "2024-05-01T12:00:00+00:00",
        "score": 0.5,
        "counts": [1, 2],
        "colour": "red",
        "point": {"x": 1, "y": 2},
        "tags": ["a", "b"],
        "path": "/tmp/x",
    }


def test_render_is_deterministic() -> None:
    assert full_report().render() == full_report().render()


def test_write_replaces_the_file_atomically_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "run.html"
    report = full_report()
    assert report.write(target) == target
    assert target.read_text(encoding="utf-8") == report.render()
    replacement = Report("second")
    replacement.write(target)
    assert "<title>second</title>" in target.read_text(encoding="utf-8")
    assert os.listdir(target.parent) == ["run.html"]


def test_failed_write_keeps_the_old_content_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.mkdir()  # os.replace cannot put a file over a directory
    (target / "keep.txt").write_text("old")
    with pytest.raises(OSError):
        Report("r").write(target)
    assert sorted(os.listdir(tmp_path)) == ["report.html"]
    assert (target / "keep.txt").read_text() == "old"


def test_blocks_are_kept_in_order() -> None:
    report = Report("r")
    report.add_heading("h")
    report.add_text("t")
    report.add_metrics({"m": 1})
    assert [b.kind for b in report.blocks] == ["heading", "text", "metrics"]  # type: ignore[attr-defined]
