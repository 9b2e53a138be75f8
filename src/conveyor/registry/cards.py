"""Model cards: what a version is for, what it learnt from, how good it is and who let it out.

A card is built from what the registry already recorded (lineage, metrics, the gate decision,
approvals, audit events) and the version's artifact meta; nothing is recomputed. The JSON card is
the dict :func:`build_model_card` returns; :func:`write_model_card_html` renders it as a page.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from conveyor.core.approval import Approval
from conveyor.core.entities import AuditEvent, DatasetVersion, ModelVersion
from conveyor.core.errors import ConveyorError, NotFoundError
from conveyor.registry.service import get_version
from conveyor.reports import Report, bar_chart
from conveyor.spec import ProjectSpec
from conveyor.workspace import Workspace

CARD_FORMAT = "conveyor.model-card/v1"
_TOP_FEATURES = 20


def build_model_card(
    ws: Workspace, model: str, version: int, *, spec: ProjectSpec | None = None
) -> dict[str, Any]:
    """Assemble the model card of ``version`` as JSON-ready data.

    Parameters
    ----------
    ws : Workspace
        The workspace holding the registry, datasets and artifacts.
    model, version : str, int
        The model version.
    spec : ProjectSpec, optional
        The project's spec; adds the label, timestamp and entity columns to the purpose.

    Returns
    -------
    dict
        Keys ``format``, ``model``, ``version``, ``status``, ``created_at``, ``tags``,
        ``aliases``, ``purpose`` (with the label's ``classes`` and a binary model's
        ``positive_class``, from its signature), ``training_data``, ``evaluation``, ``gate``,
        ``feature_importance``, ``approval``, ``audit``, ``lineage`` and ``signature``;
        datetimes are ISO 8601 strings and missing facts are ``None``.

    Raises
    ------
    NotFoundError
        If the version does not exist.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from conveyor.config import Settings
    >>> from conveyor.registry.service import register_version
    >>> ws = Workspace.open(Settings(home=Path(tempfile.mkdtemp())))
    >>> v = register_version(ws, "churn", artifact="sha256:" + "0" * 64, run_id=None,
    ...     signature={"task": "binary", "inputs": []}, lineage={},
    ...     metrics={"test": {"roc_auc": 0.8}})
    >>> card = build_model_card(ws, "churn", v.version)
    >>> card["purpose"]["task"], card["evaluation"]["test"]
    ('binary', {'roc_auc': 0.8})
    """
    mv = get_version(ws, model, version)
    lineage = dict(mv.lineage)
    metrics = dict(mv.metrics)
    card: dict[str, Any] = {
        "format": CARD_FORMAT,
        "model": model,
        "version": version,
        "status": str(mv.status),
        "created_at": _iso(mv.created_at),
        "tags": dict(mv.tags),
        "aliases": [p.alias for p in ws.stores.models.list_aliases(model) if p.version == version],
        "purpose": _purpose(mv, spec),
        "training_data": _training_data(ws, lineage),
        "evaluation": {
            "test": metrics.get("test"),
            "baseline_test": metrics.get("baseline_test"),
            "valid": metrics.get("valid"),
            "slices": metrics.get("slices"),
        },
        "gate": _gate(ws, model, metrics.get("gate")),
        "feature_importance": _feature_importance(ws, mv),
        "approval": _approval(ws.stores.models.find_approval(model, version)),
        "audit": [_event(e) for e in _events_of(ws, model, version)],
        "lineage": {
            "run_id": mv.run_id,
            "artifact": mv.artifact,
            "code_revision": lineage.get("code_revision"),
            "packages": lineage.get("packages") or {},
            "schema_version": lineage.get("schema_version"),
            "reference_profile": lineage.get("reference_profile"),
        },
        "signature": dict(mv.signature),
    }
    cleaned: dict[str, Any] = _clean(card)
    return cleaned


def write_model_card_html(card: Mapping[str, Any], path: Path | str) -> Path:
    """Render a card from :func:`build_model_card` as a self-contained HTML page.

    The page is written atomically; it carries the whole card as JSON at the end.

    Returns
    -------
    Path
        ``path``.
    """
    return model_card_report(card).write(path)


def model_card_report(card: Mapping[str, Any]) -> Report:
    """The card as a :class:`~conveyor.reports.Report`, ready to render or extend."""
    purpose = card.get("purpose") or {}
    report = Report(
        f"Model card: {card.get('model')} v{card.get('version')}",
        subtitle=f"{purpose.get('task', '')} model of project {purpose.get('project', '')}",
    )
    report.add_heading("Purpose")
    report.add_metrics(
        {
            "status": card.get("status"),
            "aliases": ", ".join(card.get("aliases") or []) or "none",
            "label": purpose.get("label"),
            "features": len(purpose.get("features") or []),
            "created": _when(card.get("created_at")),
        }
    )
    report.add_text(_purpose_text(card))
    _add_training_data(report, card.get("training_data") or {})
    _add_evaluation(report, card.get("evaluation") or {}, card.get("gate"))
    importance = card.get("feature_importance") or {}
    if importance:
        ranked = sorted(importance.items(), key=lambda kv: -float(kv[1] or 0.0))[:_TOP_FEATURES]
        report.add_chart(
            bar_chart(
                [name for name, _ in ranked],
                [float(value or 0.0) for _, value in ranked],
                title="Feature importance (total split gain)",
                horizontal=True,
            ),
            caption=f"The {len(ranked)} most important of {len(importance)} features.",
        )
    _add_governance(report, card)
    report.add_json("The whole card (JSON)", dict(card))
    return report


def _purpose(mv: ModelVersion, spec: ProjectSpec | None) -> dict[str, Any]:
    inputs = mv.signature.get("inputs") or []
    task = (spec.task if spec else None) or mv.signature.get("task")
    classes = list(mv.signature.get("classes") or [])
    if task == "binary" and not classes:
        classes = [0, 1]  # a binary signature without classes scores 1 against 0
    return {
        "project": spec.project if spec else mv.model,
        "task": task,
        "label": spec.label if spec else None,
        "classes": classes,
        "positive_class": classes[1] if task == "binary" else None,
        "timestamp": spec.timestamp if spec else None,
        "entities": list(spec.entities) if spec else [],
        "features": [c.get("name") for c in inputs if isinstance(c, Mapping)],
    }


def _training_data(ws: Workspace, lineage: Mapping[str, Any]) -> dict[str, Any]:
    datasets = []
    for dataset_id in lineage.get("datasets") or []:
        try:
            datasets.append(_dataset(ws.stores.datasets.get_dataset_version(dataset_id)))
        except NotFoundError:
            datasets.append({"id": dataset_id, "missing": True})
    found = [d for d in datasets if not d.get("missing")]
    starts = [d["min_time"] for d in found if d.get("min_time")]
    ends = [d["max_time"] for d in found if d.get("max_time")]
    return {
        "datasets": datasets,
        "total_rows": sum(int(d.get("row_count") or 0) for d in found),
        "time_range": [min(starts), max(ends)] if starts and ends else None,
        "split_rows": lineage.get("rows"),
        "test_start": lineage.get("test_start"),
    }


def _dataset(version: DatasetVersion) -> dict[str, Any]:
    anomalies = version.report.get("anomalies") or []
    severities = [str(a.get("severity")) for a in anomalies if isinstance(a, Mapping)]
    return {
        "id": str(version.id),
        "seq": version.seq,
        "status": str(version.status),
        "row_count": version.row_count,
        "min_time": _iso(version.min_time),
        "max_time": _iso(version.max_time),
        "source": version.source,
        "schema_version": version.schema_version,
        "validation": {
            "passed": bool(version.report.get("passed", "error" not in severities)),
            "errors": severities.count("error"),
            "warnings": severities.count("warning"),
            "anomalies": [a.get("message") for a in anomalies if isinstance(a, Mapping)],
        },
    }


def _gate(ws: Workspace, model: str, gate: Any) -> dict[str, Any] | None:
    if not isinstance(gate, Mapping):
        return None
    champion = gate.get("production")
    champion_test = None
    if champion is not None and champion != gate.get("challenger"):
        try:
            champion_test = get_version(ws, model, int(champion)).metrics.get("test")
        except NotFoundError:
            champion_test = None
    return {
        "passed": not gate.get("problems") and bool((gate.get("decision") or {}).get("passed")),
        "promoted": bool(gate.get("promoted")),
        "champion": {"version": champion, "test": champion_test},
        "decision": gate.get("decision"),
        "problems": list(gate.get("problems") or []),
    }


def _feature_importance(ws: Workspace, mv: ModelVersion) -> dict[str, float]:
    """The artifact's ``meta.feature_importance``; empty if the artifact has none or is gone.

    Model artifacts are JSON documents with a ``meta`` object (see
    ``conveyor.training.models.read_model_meta``); reading it runs no model code.
    """
    try:
        document = json.loads(ws.stores.artifacts.get_bytes(mv.artifact))
    except (ConveyorError, ValueError, UnicodeDecodeError):
        return {}
    meta = document.get("meta") if isinstance(document, Mapping) else None
    importance = meta.get("feature_importance") if isinstance(meta, Mapping) else None
    if not isinstance(importance, Mapping):
        return {}
    return {
        str(k): float(v) for k, v in importance.items() if isinstance(v, int | float) and v == v
    }


def _approval(approval: Approval | None) -> dict[str, Any] | None:
    if approval is None:
        return None
    return {
        "status": str(approval.status),
        "requested_by": approval.requested_by,
        "requested_at": _iso(approval.requested_at),
        "request_reason": approval.request_reason,
        "decided_by": approval.decided_by,
        "decided_at": _iso(approval.decided_at),
        "decision_reason": approval.decision_reason,
    }


def _events_of(ws: Workspace, model: str, version: int) -> list[AuditEvent]:
    return [
        e
        for e in ws.stores.models.list_audit_events(model)
        if version in (e.to_version, e.from_version)
    ]


def _event(event: AuditEvent) -> dict[str, Any]:
    return {
        "at": _iso(event.at),
        "action": event.action,
        "actor": event.actor,
        "reason": event.reason,
        "alias": event.alias,
        "from_version": event.from_version,
        "to_version": event.to_version,
    }


def _purpose_text(card: Mapping[str, Any]) -> str:
    purpose = card.get("purpose") or {}
    features = purpose.get("features") or []
    label = purpose.get("label") or "the label"
    shown = ", ".join(str(f) for f in features[:12]) + (", ..." if len(features) > 12 else "")
    lineage = card.get("lineage") or {}
    classes = purpose.get("classes") or []
    scored = ""
    if purpose.get("task") == "binary" and classes:
        scored = f" It scores the probability of the positive class {classes[-1]!r}."
    elif classes:
        scored = f" It scores one probability per class: {', '.join(map(repr, classes))}."
    return (
        f"Predicts {label} ({purpose.get('task')}) from {len(features)} features: {shown}."
        f"{scored}\n\n"
        f"Trained in run {lineage.get('run_id') or '-'} at code revision "
        f"{lineage.get('code_revision') or 'unknown'}; artifact {lineage.get('artifact')}."
    )


def _add_training_data(report: Report, data: Mapping[str, Any]) -> None:
    report.add_heading("Training data")
    span = data.get("time_range") or [None, None]
    report.add_metrics(
        {
            "batches": len(data.get("datasets") or []),
            "rows": data.get("total_rows"),
            "from": _when(span[0]),
            "to": _when(span[1]),
        }
    )
    rows = [
        {
            "seq": d.get("seq"),
            "id": d.get("id"),
            "rows": d.get("row_count"),
            "from": _when(d.get("min_time")),
            "to": _when(d.get("max_time")),
            "validation": _validation_text(d),
        }
        for d in data.get("datasets") or []
    ]
    report.add_table(rows, caption="Dataset versions in the training window.")
    if data.get("split_rows"):
        report.add_table([dict(data["split_rows"])], caption="Rows per split.")


def _validation_text(dataset: Mapping[str, Any]) -> str:
    if dataset.get("missing"):
        return "dataset version missing"
    validation = dataset.get("validation") or {}
    verdict = "passed" if validation.get("passed") else "failed"
    return f"{verdict}, {validation.get('errors', 0)} errors, {validation.get('warnings', 0)} warn."


def _add_evaluation(report: Report, evaluation: Mapping[str, Any], gate: Any) -> None:
    report.add_heading("Evaluation")
    test = evaluation.get("test") or {}
    baseline = evaluation.get("baseline_test") or {}
    champion = ((gate or {}).get("champion") or {}).get("test") or {}
    rows = [
        {
            "metric": key,
            "this version": test.get(key),
            "baseline": baseline.get(key),
            "champion": champion.get(key),
        }
        for key in dict.fromkeys([*test, *baseline])
    ]
    if rows:
        report.add_table(
            rows,
            caption="Held-out test metrics of this version, the baseline "
            "and the production model it was compared with.",
        )
    slices = evaluation.get("slices")
    if isinstance(slices, Mapping) and slices:
        report.add_table(
            [
                {"slice": name, **dict(values)}
                for name, values in slices.items()
                if isinstance(values, Mapping)
            ],
            caption="Test metrics by slice.",
        )
    elif isinstance(slices, Sequence) and not isinstance(slices, str) and slices:
        report.add_table(
            [dict(s) for s in slices if isinstance(s, Mapping)], caption="Test metrics by slice."
        )
    if gate:
        decision = gate.get("decision") or {}
        report.add_text(
            f"Gate: {'passed' if gate.get('passed') else 'rejected'}"
            f"{' and promoted' if gate.get('promoted') else ''} against production "
            f"v{(gate.get('champion') or {}).get('version') or '-'} on {decision.get('n')} rows; "
            f"{decision.get('metric')} delta {decision.get('delta')} "
            f"(interval {decision.get('ci_low')} to {decision.get('ci_high')}). "
            + " ".join([*(decision.get("reasons") or []), *(gate.get("problems") or [])])
        )


def _add_governance(report: Report, card: Mapping[str, Any]) -> None:
    report.add_heading("Approvals and audit")
    approval = card.get("approval")
    if approval:
        report.add_table([approval], caption="Approval.")
    else:
        report.add_text("No approval was requested for this version.")
    report.add_table(card.get("audit") or [], caption="Every registry event of this version.")
    lineage = card.get("lineage") or {}
    packages = lineage.get("packages") or {}
    report.add_table(
        [{"package": k, "version": v} for k, v in packages.items()],
        caption="Package versions at training time.",
    )


def _when(value: Any) -> Any:
    """An ISO 8601 string of the card back as a datetime, so the page formats it in UTC."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _clean(value: Any) -> Any:
    """JSON-ready: non-finite floats become None, datetimes ISO strings, tuples lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value
