"""The history page's performance chart stays readable with 30 model versions."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from conveyor.core.entities import AuditEvent, MonitorReport
from conveyor.core.errors import InvalidInputError
from conveyor.monitoring.report import write_overview_report
from conveyor.reports.charts import VersionSeries, version_chart

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2013, 1, 7, tzinfo=UTC)  # event time: a replay of 2013


def history(versions: int, *, weeks_each: int = 3) -> tuple[list[MonitorReport], list[AuditEvent]]:
    """Weekly production windows from 2013 on, each version serving ``weeks_each`` of them."""
    rng = np.random.default_rng(versions)
    reports, events = [], []
    production, week = 1, 0
    for v in range(1, versions + 1):
        if v > 1:
            events.append(
                AuditEvent(len(events) + 1, "toy", "promote", "gate", "better", datetime.now(UTC),
                           "production", production, v)
            )  # fmt: skip
        production = v
        for _ in range(weeks_each):
            live = 0.72 + 0.05 * np.sin(v) + rng.normal(0, 0.01)
            estimate = live + rng.normal(0, 0.01)
            reports.append(
                MonitorReport(
                    f"mr{v}-{week}",
                    "toy",
                    v,
                    START + timedelta(weeks=week),
                    START + timedelta(weeks=week + 1),
                    datetime.now(UTC),
                    {
                        "production": production,
                        "live": {"metric_name": "roc_auc", "metric": live, "labels": 900},
                        "estimated": {
                            "metric_name": "roc_auc",
                            "metric": estimate,
                            "low": estimate - 0.03,
                            "high": estimate + 0.03,
                        },
                    },
                )  # fmt: skip
            )
            week += 1
    return reports, events


def performance_svg(path: Path) -> ET.Element:
    html = path.read_text()
    start = html.index("<svg", html.index("Performance over time"))
    return ET.fromstring(html[start : html.index("</svg>", start) + len("</svg>")])


def plot_height(svg: ET.Element) -> float:
    """Height of the plot area: the clip rectangle the lines are drawn in (the tallest one)."""
    return max(float(r.get("height", 0)) for r in svg.findall(f".//{SVG}clipPath/{SVG}rect"))


def texts(svg: ET.Element) -> list[str]:
    return ["".join(t.itertext()).strip() for t in svg.iter(f"{SVG}text")]


def test_thirty_versions_each_have_a_labelled_line_and_the_plot_keeps_its_height(tmp_path):
    few = performance_svg(write_overview_report(
        tmp_path / "few.html", project="toy", reports=history(3)[0], alerts=(), history=[]
    ))  # fmt: skip
    reports, events = history(30)
    page = write_overview_report(
        tmp_path / "many.html", project="toy", reports=reports, alerts=(), history=events
    )
    svg = performance_svg(page)
    words = texts(svg)
    for v in range(1, 31):  # a direct label at the line's end and a legend entry, each
        assert words.count(f"v{v}") >= 2, (v, words.count(f"v{v}"))
    strokes = set()
    for path in svg.iter(f"{SVG}path"):
        found = re.search(r"stroke: (#[0-9a-fA-F]{6})", path.get("style", ""))
        if found and "stroke-width: 1.7" in path.get("style", ""):
            strokes.add(found.group(1).lower())
    assert len(strokes) >= 10  # neighbours in time never share a colour
    assert plot_height(svg) >= 0.95 * plot_height(few) > 150  # not squeezed by the legend
    assert float(svg.get("height", "0pt").removesuffix("pt")) > 250
    assert "95% range" in " ".join(words)
    assert "2013" in " ".join(words)  # windows on their event-time axis


def test_version_chart_names_a_version_whose_values_do_not_match_its_x_values():
    with pytest.raises(InvalidInputError, match=r"estimated values of version 'v7'.*\(3\)"):
        version_chart([VersionSeries("v7", [1, 2, 3], [0.7, 0.8, 0.7], [0.7])], title="AUC")
    with pytest.raises(InvalidInputError, match="realised values of version 'v8'"):
        version_chart([VersionSeries("v8", [1], ["high"])], title="AUC")
    assert "No data" in version_chart([], title="AUC")
