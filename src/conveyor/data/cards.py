"""Data cards: what one dataset version is, where it came from and who used it.

A card is built from what ingest stored (the version's row, report and profile), the project's
schema history and the registry: nothing re-reads the batch's data, so the card of a batch
whose content retention deleted still renders. The JSON card round-trips through
``json.dumps``/``json.loads``; :func:`data_card_report` draws it as an HTML page with a
histogram per feature.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from conveyor.core.entities import DatasetVersion, DatasetVersionId
from conveyor.core.errors import InvalidInputError, NotFoundError
from conveyor.reports.charts import bar_chart, histogram_pair
from conveyor.reports.html import Report
from conveyor.spec import ProjectSpec
from conveyor.workspace import Workspace

CARD_FORMAT = 1
"""Version of the card's JSON layout."""

_MAX_CHARTS = 60


def find_dataset_version(ws: Workspace, spec: ProjectSpec, version: str | int) -> DatasetVersion:
    """A version of the project by id (``ds_...``) or by batch number.

    Raises
    ------
    NotFoundError
        If the project has no such version.
    """
    text = str(version).strip()
    if text.isdigit():
        for v in ws.stores.datasets.list_dataset_versions(spec.project):
            if v.seq == int(text):
                return v
        raise NotFoundError(f"Project '{spec.project}' has no batch {text}.")
    found = ws.stores.datasets.get_dataset_version(DatasetVersionId(text))
    if found.project != spec.project:
        raise NotFoundError(
            f"Dataset version {text!r} belongs to project {found.project!r}, not {spec.project!r}."
        )
    return found


def build_data_card(ws: Workspace, spec: ProjectSpec, version: str | int) -> dict[str, Any]:
    """The JSON data card of a dataset version.

    Parameters
    ----------
    ws : Workspace
        The workspace holding the version.
    spec : ProjectSpec
        The version's project.
    version : str or int
        A dataset version id or a batch number.

    Returns
    -------
    dict
        ``format``, ``dataset`` (id, batch, status, rows, digest, times), ``source``,
        ``lineage`` (``batches``: the batches this version holds; ``runs`` and ``models``
        that trained on it), ``schema`` (the version it was validated against),
        ``reference`` (the batch whose profile is the drift reference), ``profile`` and
        ``validation`` (passed, anomalies with severity, status changes).

    Raises
    ------
    NotFoundError
        If there is no such version.
    """
    v = find_dataset_version(ws, spec, version)
    schema = ws.stores.datasets.find_schema(spec.project, v.schema_version)
    runs = [r for r in ws.stores.runs.list_runs(spec.project) if v.id in r.datasets]
    models = [
        {"model": mv.model, "version": mv.version, "run_id": mv.run_id, "status": mv.status}
        for mv in ws.stores.models.list_model_versions(spec.model_name)
        if v.id in (mv.lineage.get("datasets") or [])
    ]
    accepted = [
        d
        for d in ws.stores.datasets.list_dataset_versions(spec.project)
        if d.profile and d.status != "quarantined"
    ]
    reference = accepted[0] if accepted else None
    report = dict(v.report)
    anomalies = list(report.get("anomalies") or [])
    card: dict[str, Any] = _jsonable(
        {
            "format": CARD_FORMAT,
            "dataset": {
                "id": v.id,
                "project": v.project,
                "batch": v.seq,
                "status": str(v.status),
                "rows": v.row_count,
                "digest": v.digest,
                "content_available": ws.stores.artifacts.exists(v.digest),
                "created_at": v.created_at,
                "min_time": v.min_time,
                "max_time": v.max_time,
            },
            "source": v.source,
            "lineage": {
                "batches": [{"batch": v.seq, "id": v.id, "source": v.source}],
                "runs": [{"id": r.id, "name": r.name, "status": str(r.status)} for r in runs],
                "models": models,
            },
            "schema": schema.to_dict() if schema is not None else None,
            "reference": (
                {"batch": reference.seq, "id": reference.id} if reference is not None else None
            ),
            "profile": dict(v.profile),
            "reference_profile": dict(reference.profile) if reference is not None else None,
            "labels": _label_counts(v, spec.label, anomalies),
            "validation": {
                "passed": not any(a.get("severity") == "error" for a in anomalies),
                "anomalies": anomalies,
                "status_changes": list(report.get("status_changes") or []),
            },
        }
    )
    return card


def _label_counts(
    v: DatasetVersion, label: str, anomalies: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Rows with and without a label; those without stay stored and out of training."""
    column = (v.profile.get("columns") or {}).get(label) or {}
    if "null_count" in column:
        missing = int(column["null_count"])
    else:
        found = [a for a in anomalies if a.get("kind") == "missing_labels"]
        missing = sum(int((a.get("details") or {}).get("count", 0)) for a in found)
    return {
        "column": label,
        "missing": missing,
        "labelled": v.row_count - missing,
        "note": "rows without a label are stored with the batch and left out of training",
    }


def data_card_report(card: Mapping[str, Any]) -> Report:
    """The card as an HTML report: summary, lineage, schema, validation, a chart per column."""
    ds = card["dataset"]
    anomalies = card["validation"]["anomalies"]
    report = Report(
        f"Data card: {ds['project']} batch {ds['batch']}",
        subtitle=f"{ds['id']} from {card['source']}",
    )
    report.add_metrics(
        {
            "status": ds["status"],
            "rows": ds["rows"],
            "columns": len((card.get("schema") or {}).get("columns") or []),
            "errors": sum(1 for a in anomalies if a.get("severity") == "error"),
            "warnings": sum(1 for a in anomalies if a.get("severity") == "warning"),
            "rows without a label": (card.get("labels") or {}).get("missing", 0),
        }
    )
    report.add_heading("Source and lineage")
    report.add_table(
        [
            {"field": "source", "value": card["source"]},
            {"field": "content digest", "value": ds["digest"]},
            {"field": "content available", "value": ds["content_available"]},
            {"field": "created", "value": ds["created_at"]},
            {"field": "time range", "value": f"{ds['min_time']} .. {ds['max_time']}"},
        ],
        caption="Where this version came from.",
    )
    lineage = card["lineage"]
    report.add_table(lineage["models"], caption="Model versions trained on this batch.")
    report.add_table(lineage["runs"], caption="Runs that used this batch.")
    report.add_heading("Validation")
    report.add_table(
        [
            {
                "severity": a.get("severity"),
                "kind": a.get("kind"),
                "column": a.get("column"),
                "message": a.get("message"),
            }
            for a in anomalies
        ],
        caption="Anomalies found at ingest ("
        + ("passed" if card["validation"]["passed"] else "quarantined")
        + ").",
    )
    if card["validation"]["status_changes"]:
        report.add_table(card["validation"]["status_changes"], caption="Status history.")
    report.add_heading("Schema")
    schema = card.get("schema") or {}
    report.add_table(
        [
            {k: c.get(k) for k in ("name", "kind", "role", "nullable", "min", "max")}
            for c in schema.get("columns") or []
        ],
        caption=f"Schema version {schema.get('version')} the batch was validated against.",
    )
    _add_profile(report, card)
    report.add_json("card", card)
    return report


def write_data_card_html(card: Mapping[str, Any], path: Path) -> Path:
    """Write the card's HTML page to ``path`` atomically."""
    return data_card_report(card).write(path)


def _add_profile(report: Report, card: Mapping[str, Any]) -> None:
    report.add_heading("Profile")
    columns = (card.get("profile") or {}).get("columns") or {}
    if not columns:
        report.add_text(
            "This batch has no profile: a quarantined batch is profiled when it is released."
        )
        return
    ref_columns = (card.get("reference_profile") or {}).get("columns") or {}
    ref = card.get("reference") or {}
    rows = []
    for name, col in columns.items():
        rows.append(
            {
                "column": name,
                "kind": col.get("kind"),
                "nulls": col.get("null_count"),
                "mean": col.get("mean"),
                "std": col.get("std"),
                "min": col.get("min"),
                "max": col.get("max"),
                "distinct": col.get("distinct"),
            }
        )
    report.add_table(rows, caption="Column statistics.")
    for name, col in list(columns.items())[:_MAX_CHARTS]:
        svg = _column_chart(name, col, ref_columns.get(name), ref.get("batch"))
        if svg is not None:
            report.add_chart(svg, caption=f"Distribution of '{name}'.")


def _column_chart(
    name: str, col: Mapping[str, Any], ref: Mapping[str, Any] | None, ref_batch: Any
) -> str | None:
    hist = col.get("histogram")
    if isinstance(hist, Mapping) and hist.get("counts"):
        edges = [_edge(e, i, len(hist["edges"])) for i, e in enumerate(hist["edges"])]
        ref_hist = (ref or {}).get("histogram") or {}
        if ref_hist.get("edges") == hist.get("edges") and ref_hist.get("counts"):
            return histogram_pair(
                edges,
                ref_hist["counts"],
                hist["counts"],
                title=name,
                x_label=name,
                names=(f"reference (batch {ref_batch})", "this batch"),
            )
        labels = [f"[{_fmt(a)}, {_fmt(b)})" for a, b in zip(edges[:-1], edges[1:], strict=True)]
        return bar_chart(labels, hist["counts"], title=name, y_label="rows")
    values = col.get("values")
    if isinstance(values, Mapping) and values:
        return bar_chart(list(values), list(values.values()), title=name, y_label="rows")
    return None


def _edge(value: Any, index: int, count: int) -> float:
    if value is None:
        return -math.inf if index == 0 else math.inf
    return float(value)


def _fmt(value: float) -> str:
    return "-inf" if value == -math.inf else "inf" if value == math.inf else f"{value:.4g}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "item"):
        return _jsonable(value.item())
    raise InvalidInputError(f"A data card value of type {type(value).__name__} is not JSON.")
