"""HTML reports with charts: self-contained pages (inline CSS and SVG, no network).

Charts are pure functions from data to an ``<svg>`` string; :class:`Report` assembles headings,
text, KPI cards, tables, charts and JSON blocks into one HTML document.

Examples
--------
>>> from conveyor.reports import Report, bar_chart
>>> report = Report("Training run", subtitle="churn")
>>> report.add_metrics({"auc": 0.912, "rows": 12000})
>>> report.add_chart(bar_chart(["age", "fare"], [0.6, 0.4], title="Importance"))
>>> "<svg" in report.render()
True
"""

from __future__ import annotations

from conveyor.reports.charts import (
    EVENT_STYLES,
    bar_chart,
    heatmap,
    histogram_pair,
    line_chart,
    timeline,
)
from conveyor.reports.html import Report
from conveyor.reports.svg import sanitize_svg

__all__ = [
    "EVENT_STYLES",
    "Report",
    "bar_chart",
    "heatmap",
    "histogram_pair",
    "line_chart",
    "sanitize_svg",
    "timeline",
]
