"""The JSON form of tracking and registry entities, as the REST API speaks it.

``conveyor.server`` renders entities with the pydantic models of ``conveyor.server.schemas``;
the HTTP adapters of :mod:`conveyor.store.http` turn those documents back into entities with
the ``*_from_json`` functions here. Times are ISO-8601 strings with an offset; a float that JSON
cannot hold (NaN, +/-infinity) travels as the string ``"NaN"``, ``"Infinity"`` or
``"-Infinity"``. A run-search filter travels as a tree (:func:`expr_to_json`), so the client
needs no printer of the filter language and the server rebuilds exactly the query it was given.

Examples
--------
>>> from conveyor.core.run_query import Condition, Key, KeyKind, Operator
>>> tree = Condition(Key(KeyKind.METRIC, "auc"), Operator.GT, 0.8)
>>> expr_from_json(expr_to_json(tree)) == tree
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from conveyor.core.approval import Approval, ApprovalStatus
from conveyor.core.entities import (
    AliasPointer,
    AuditEvent,
    MetricPoint,
    ModelVersion,
    Run,
    RunId,
    RunStatus,
    VersionStatus,
)
from conveyor.core.errors import InvalidInputError
from conveyor.core.run_query import And, Condition, Expr, Key, KeyKind, Operator, Or, OrderBy

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def float_to_json(value: float) -> float | str:
    """``value`` itself, or its string name when JSON cannot hold it."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def float_from_json(value: float | int | str) -> float:
    if isinstance(value, str):
        return _NON_FINITE[value]
    return float(value)


def point_to_json(point: MetricPoint) -> dict[str, Any]:
    return {
        "key": point.key,
        "value": float_to_json(point.value),
        "step": point.step,
        "timestamp": point.timestamp.isoformat(),
    }


def point_from_json(doc: Mapping[str, Any]) -> MetricPoint:
    return MetricPoint(
        doc["key"],
        float_from_json(doc["value"]),
        int(doc["step"]),
        datetime.fromisoformat(doc["timestamp"]),
    )


def run_from_json(doc: Mapping[str, Any]) -> Run:
    return Run(
        id=RunId(doc["id"]),
        project=doc["project"],
        experiment=doc["experiment"],
        name=doc["name"],
        status=RunStatus(doc["status"]),
        started_at=datetime.fromisoformat(doc["started_at"]),
        ended_at=_time(doc.get("ended_at")),
        parent_id=RunId(doc["parent_id"]) if doc.get("parent_id") else None,
        params=dict(doc.get("params") or {}),
        metrics={k: float_from_json(v) for k, v in (doc.get("metrics") or {}).items()},
        tags=dict(doc.get("tags") or {}),
        artifacts=dict(doc.get("artifacts") or {}),
        datasets=tuple(doc.get("datasets") or ()),
        heartbeat_at=_time(doc.get("heartbeat_at")),
    )


def model_version_from_json(doc: Mapping[str, Any]) -> ModelVersion:
    return ModelVersion(
        model=doc["model"],
        version=int(doc["version"]),
        artifact=doc["artifact"],
        run_id=RunId(doc["run_id"]) if doc.get("run_id") else None,
        created_at=datetime.fromisoformat(doc["created_at"]),
        status=VersionStatus(doc["status"]),
        signature=dict(doc.get("signature") or {}),
        lineage=dict(doc.get("lineage") or {}),
        metrics=dict(doc.get("metrics") or {}),
        tags=dict(doc.get("tags") or {}),
    )


def alias_from_json(doc: Mapping[str, Any]) -> AliasPointer:
    return AliasPointer(
        model=doc["model"],
        alias=doc["alias"],
        version=int(doc["version"]),
        revision=int(doc["revision"]),
        updated_at=datetime.fromisoformat(doc["updated_at"]),
    )


def audit_event_from_json(doc: Mapping[str, Any]) -> AuditEvent:
    return AuditEvent(
        id=int(doc["id"]),
        model=doc["model"],
        action=doc["action"],
        actor=doc["actor"],
        reason=doc["reason"],
        at=datetime.fromisoformat(doc["at"]),
        alias=doc.get("alias"),
        from_version=doc.get("from_version"),
        to_version=doc.get("to_version"),
        evidence=dict(doc.get("evidence") or {}),
    )


def approval_from_json(doc: Mapping[str, Any]) -> Approval:
    return Approval(
        model=doc["model"],
        version=int(doc["version"]),
        status=ApprovalStatus(doc["status"]),
        requested_by=doc["requested_by"],
        requested_at=datetime.fromisoformat(doc["requested_at"]),
        request_reason=doc.get("request_reason") or "",
        decided_by=doc.get("decided_by"),
        decided_at=_time(doc.get("decided_at")),
        decision_reason=doc.get("decision_reason"),
    )


def expr_to_json(expr: Expr) -> dict[str, Any]:
    """A filter tree as JSON: ``{"and": [...]}``, ``{"or": [...]}`` or a condition."""
    if isinstance(expr, And):
        return {"and": [expr_to_json(e) for e in expr.operands]}
    if isinstance(expr, Or):
        return {"or": [expr_to_json(e) for e in expr.operands]}
    value = expr.value
    return {
        "key": _key_to_json(expr.key),
        "op": expr.op.value,
        "value": [_scalar_to_json(v) for v in value]
        if isinstance(value, tuple)
        else _scalar_to_json(value),
    }


def expr_from_json(doc: Any) -> Expr:
    """Rebuild a filter tree.

    Raises
    ------
    InvalidInputError
        If ``doc`` is not a tree :func:`expr_to_json` makes.
    """
    try:
        if "and" in doc:
            return And(tuple(expr_from_json(e) for e in doc["and"]))
        if "or" in doc:
            return Or(tuple(expr_from_json(e) for e in doc["or"]))
        key, op, value = _key_from_json(doc["key"]), Operator(doc["op"]), doc["value"]
        scalar = (
            tuple(_scalar_from_json(v) for v in value)
            if isinstance(value, list)
            else _scalar_from_json(value)
        )
        return Condition(key, op, scalar)
    except (TypeError, KeyError, ValueError) as exc:
        raise InvalidInputError(
            f"The 'where' field of a run search must be a filter tree of conditions "
            f'({{"key": {{"kind", "name"}}, "op", "value"}}) joined by "and"/"or". '
            f"Got {doc!r} instead."
        ) from exc


def order_to_json(order: OrderBy) -> dict[str, Any]:
    return {"key": _key_to_json(order.key), "descending": order.descending}


def order_from_json(doc: Any) -> OrderBy:
    try:
        return OrderBy(_key_from_json(doc["key"]), bool(doc.get("descending", False)))
    except (TypeError, KeyError, ValueError) as exc:
        raise InvalidInputError(
            f"An entry of the 'order' field of a run search must be "
            f'{{"key": {{"kind", "name"}}, "descending": bool}}. Got {doc!r} instead.'
        ) from exc


def _key_to_json(key: Key) -> dict[str, str]:
    return {"kind": key.kind.value, "name": key.name}


def _key_from_json(doc: Mapping[str, Any]) -> Key:
    return Key(KeyKind(doc["kind"]), str(doc["name"]))


def _scalar_to_json(value: str | float | datetime) -> Any:
    if isinstance(value, datetime):
        return {"time": value.isoformat()}
    if isinstance(value, float):
        return {"number": float_to_json(value)}
    return value


def _scalar_from_json(value: Any) -> str | float | datetime:
    if isinstance(value, dict):
        if "time" in value:
            return datetime.fromisoformat(value["time"])
        return float_from_json(value["number"])
    if not isinstance(value, str):
        raise TypeError(f"a literal is a string, {{'number': x}} or {{'time': iso}}: {value!r}")
    return value


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
