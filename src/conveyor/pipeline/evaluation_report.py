"""The evaluation report of a gated model version: one self-contained HTML page.

It is drawn from the gate's evidence (see :func:`conveyor.pipeline.gate.gate_version`): the
decision and its reasons, the challenger-vs-production comparison with its intervals, ROC and
precision-recall curves of both models, the reliability curve, the confusion matrix, errors by
label, the slice table, behavioural tests, latency and size, and the infra check. The page is
stored as an artifact of the version; :func:`read_evaluation_report` gets it back.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from conveyor.core.errors import NotFoundError
from conveyor.registry.service import get_version
from conveyor.reports import Report, bar_chart, heatmap, line_chart
from conveyor.workspace import Workspace

#: Key of the report's artifact digest in the version's ``gate`` metrics.
REPORT_KEY = "report"


def build_evaluation_report(evidence: Mapping[str, Any]) -> Report:
    """Lay out the gate's evidence of one version as a :class:`~conveyor.reports.Report`."""
    model, version = evidence["model"], evidence["challenger"]
    decision = evidence["decision"]
    verdict = "passed" if evidence["passed"] else "rejected"
    report = Report(
        f"Evaluation of {model} v{version}",
        subtitle=f"gate {verdict}; production was "
        + (f"v{evidence['production']}" if evidence.get("production") else "empty"),
        generated_at=datetime.fromisoformat(evidence["at"]) if "at" in evidence else None,
    )
    report.add_metrics(
        {
            "decision": verdict,
            decision["metric"]: decision["challenger"],
            "difference": decision.get("delta"),
            "CI low": decision.get("ci_low"),
            "CI high": decision.get("ci_high"),
            "test rows": decision["n"],
        }
    )
    report.add_heading("Decision")
    report.add_text("\n\n".join([*decision["reasons"], *evidence.get("problems", [])]))
    _comparison(report, evidence)
    challenger = evidence["evaluation"]["challenger"]
    production = evidence["evaluation"].get("production")
    if challenger["task"] in ("binary", "multiclass"):
        _binary(report, challenger, production, version, evidence.get("production"))
    else:
        _regression(report, challenger)
    _slices(report, challenger, evidence.get("slices", []))
    _checks(report, evidence)
    report.add_json("All evidence", evidence)
    return report


def read_evaluation_report(ws: Workspace, model: str, version: int) -> bytes:
    """The stored HTML evaluation report of ``version``.

    Raises
    ------
    NotFoundError
        If the version was never gated, so it has no report.
    """
    digest = get_version(ws, model, version).metrics.get("gate", {}).get(REPORT_KEY)
    if not digest:
        raise NotFoundError(
            f"Model '{model}' version {version} has no evaluation report: it has not been "
            "through the gate. Run `conveyor gate VERSION` first."
        )
    return ws.stores.artifacts.get_bytes(digest)


def write_evaluation_report(ws: Workspace, model: str, version: int, out: Path) -> Path:
    """Write the stored evaluation report of ``version`` to ``out`` atomically; return ``out``.

    Raises
    ------
    NotFoundError
        If the version has no report (see :func:`read_evaluation_report`).
    """
    data = read_evaluation_report(ws, model, version)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def render_report_bytes(evidence: Mapping[str, Any]) -> bytes:
    """The report of ``evidence`` as UTF-8 HTML."""
    return build_evaluation_report(evidence).render().encode("utf-8")


def _comparison(report: Report, evidence: Mapping[str, Any]) -> None:
    rows = evidence.get("comparison", [])
    if not rows:
        return
    report.add_heading("Challenger vs production")
    report.add_table(
        rows,
        ["metric", "challenger", "production", "difference", "ci_low", "ci_high", "margin"],
        caption="Paired bootstrap on the same test rows; a positive difference means the "
        "challenger is better.",
    )
    finite = [r for r in rows if r.get("ci_low") is not None and r.get("ci_high") is not None]
    if finite:
        report.add_chart(
            line_chart(
                {
                    str(r["metric"]): ([r["ci_low"], r["difference"], r["ci_high"]], [i, i, i])
                    for i, r in enumerate(finite)
                },
                title="Difference and its interval per metric (right of 0: challenger better)",
                x_label="challenger - production (oriented)",
                markers=[(0.0, "no difference")],
            )
        )


def _binary(
    report: Report,
    challenger: Mapping[str, Any],
    production: Mapping[str, Any] | None,
    version: int,
    production_version: int | None,
) -> None:
    ours, theirs = f"v{version}", f"production v{production_version}"
    for key, title, x_label, y_label in (
        ("roc", "ROC curve", "false positive rate", "true positive rate"),
        ("pr", "Precision-recall curve", "recall", "precision"),
    ):
        series = _curve_series(key, challenger, production, ours, theirs)
        if series:
            report.add_heading(title)
            report.add_chart(
                line_chart(series, title=title, x_label=x_label, y_label=y_label, y_range=(0, 1))
            )
    calibration = challenger.get("calibration")
    if calibration:
        report.add_heading("Calibration")
        report.add_metrics({"ECE": calibration["ece"]})
        series = {"perfectly calibrated": ([0.0, 1.0], [0.0, 1.0])}
        for name, ev in ((ours, challenger), (theirs, production)):
            if ev and ev.get("calibration"):
                filled = [b for b in ev["calibration"]["bins"] if b["rows"]]
                series[name] = ([b["mean_score"] for b in filled], [b["observed"] for b in filled])
        report.add_chart(
            line_chart(
                series,
                title="Reliability curve",
                x_label="mean predicted probability",
                y_label="observed positive rate",
                y_range=(0, 1),
            )
        )
        report.add_table(calibration["bins"], caption="Reliability bins")
    if challenger.get("confusion"):
        report.add_heading("Confusion matrix")
        codes = range(len(challenger["confusion"]))  # 2 for binary, k class codes for multiclass
        report.add_chart(
            heatmap(
                [f"true {c}" for c in codes],
                [f"predicted {c}" for c in codes],
                challenger["confusion"],
                title=f"Confusion matrix of {ours}",
                cmap="Blues",
                value_label="rows",
                annotate=True,
            )
        )
        report.add_table(challenger["errors"], caption="Errors by true label")


def _regression(report: Report, challenger: Mapping[str, Any]) -> None:
    report.add_heading("Residuals")
    hist = challenger.get("curves", {}).get("residuals")
    if hist:
        edges = hist["edges"]
        centres = [f"{(a + b) / 2:.3g}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
        report.add_chart(
            bar_chart(
                centres, hist["counts"], title="Residuals (truth - prediction)", y_label="rows"
            )
        )
    report.add_table(challenger["errors"], caption="Residual summary")


def _slices(
    report: Report, challenger: Mapping[str, Any], compared: Sequence[Mapping[str, Any]]
) -> None:
    if not challenger.get("slices") and not compared:
        return
    report.add_heading("Slices")
    if compared:
        report.add_table(
            compared,
            ["column", "value", "rows", "challenger", "production", "delta", "regressed"],
            caption="The gate metric per slice, challenger vs production",
        )
    if challenger.get("slices"):
        report.add_table(challenger["slices"], caption="All metrics of the challenger per slice")


def _checks(report: Report, evidence: Mapping[str, Any]) -> None:
    behaviour = evidence.get("behaviour") or []
    if behaviour:
        report.add_heading("Behavioural tests")
        report.add_table(
            [{k: v for k, v in b.items() if k != "figures"} for b in behaviour],
            ["name", "kind", "passed", "detail"],
        )
    report.add_heading("Latency and size")
    report.add_metrics(
        {
            **{k: v for k, v in (evidence.get("latency") or {}).items()},
            "model size (bytes)": evidence.get("size_bytes"),
        }
    )
    infra = evidence.get("infra")
    report.add_heading("Infra check")
    if infra is None:
        report.add_text("The infra check is turned off (gate.infra_check: false).")
    else:
        report.add_metrics(
            {
                "passed": "yes" if infra["passed"] else "no",
                "requests": infra["requests"],
                "max |served - offline|": infra["max_abs_diff"],
                "p50 ms": infra["p50_ms"],
                "p99 ms": infra["p99_ms"],
                "budget ms": infra["budget_ms"],
            }
        )
        if infra["problems"]:
            report.add_text("\n\n".join(infra["problems"]))


def _curve_series(
    key: str,
    challenger: Mapping[str, Any],
    production: Mapping[str, Any] | None,
    ours: str,
    theirs: str,
) -> dict[str, tuple[list[float], list[float]]]:
    series: dict[str, tuple[list[float], list[float]]] = {}
    for name, ev in ((ours, challenger), (theirs, production)):
        points = (ev or {}).get("curves", {}).get(key)
        if points:
            series[name] = ([p[0] for p in points], [p[1] for p in points])
    return series
