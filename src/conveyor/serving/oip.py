"""The V2 Open Inference Protocol, minimal: model metadata and 1-D named input tensors.

An inference request carries one 1-D tensor per feature, named after it: ``BYTES`` for a
categorical feature, ``FP64``, ``FP32`` or ``INT64`` (also ``INT32``, and ``BOOL`` for a
boolean feature) for a number. An optional ``request_id`` ``BYTES`` tensor supplies per-row
request ids. The tensors are turned into records and validated by the same
:class:`~conveyor.serving.validation.RecordValidator` as ``/v1/predict``.
"""

from __future__ import annotations

from typing import Any

from conveyor.core.schema import ColumnKind
from conveyor.serving.slot import LoadedModel
from conveyor.serving.validation import REQUEST_ID_FIELD, columns_to_records

_NUMBER_TYPES = frozenset({"FP64", "FP32", "INT64", "INT32"})


def _allowed_datatypes(kind: ColumnKind | None) -> frozenset[str]:
    if kind is None or kind is ColumnKind.CATEGORICAL or kind is ColumnKind.TEXT:
        return frozenset({"BYTES"})
    if kind is ColumnKind.BOOLEAN:
        return _NUMBER_TYPES | {"BOOL"}
    if kind is ColumnKind.DATETIME:
        return _NUMBER_TYPES | {"BYTES"}
    return _NUMBER_TYPES


def model_metadata(model: LoadedModel, name: str) -> dict[str, Any]:
    """The ``GET /v2/models/{name}`` answer: inputs with their datatypes, and outputs."""
    inputs = [
        {
            "name": col.name,
            "datatype": "BYTES" if col.kind is ColumnKind.CATEGORICAL else "FP64",
            "shape": [-1],
        }
        for col in model.predictor.signature.inputs
    ]
    outputs = [{"name": "score", "datatype": "FP64", "shape": [-1]}]
    if model.is_binary:
        outputs.append({"name": "label", "datatype": "INT64", "shape": [-1]})
    outputs.append({"name": "request_id", "datatype": "BYTES", "shape": [-1]})
    return {
        "name": name,
        "versions": [str(model.version)],
        "platform": f"conveyor-{model.predictor.kind}",
        "inputs": inputs,
        "outputs": outputs,
    }


def tensors_to_records(
    payload: Any, model: LoadedModel
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Turn an inference request's input tensors into records, or report what is wrong.

    Returns
    -------
    records, errors
        ``errors`` use the ``{"row", "field", "error"}`` shape of the validator.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        return [], [
            {"row": None, "field": None, "error": 'expected an object with "inputs": [...]'}
        ]
    kinds: dict[str, ColumnKind | None] = {
        col.name: col.kind for col in model.predictor.signature.inputs
    }
    kinds.setdefault(REQUEST_ID_FIELD, None)
    columns: dict[str, list[Any]] = {}
    errors: list[dict[str, Any]] = []
    for position, tensor in enumerate(payload["inputs"]):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            errors.append(
                {"row": None, "field": None, "error": f"input {position} has no string 'name'"}
            )
            continue
        name, datatype, shape, data = (
            tensor["name"],
            tensor.get("datatype"),
            tensor.get("shape"),
            tensor.get("data"),
        )
        if name not in kinds and not model.validator.limits.allow_extra_fields:
            errors.append(
                {
                    "row": None,
                    "field": name,
                    "error": "unexpected input tensor; the model takes: "
                    + ", ".join(sorted(kinds)),
                }
            )
            continue
        allowed = _allowed_datatypes(kinds.get(name))
        if datatype not in allowed:
            errors.append(
                {
                    "row": None,
                    "field": name,
                    "error": f"datatype {datatype!r} is not allowed; use one of "
                    + ", ".join(sorted(allowed)),
                }
            )
            continue
        if not isinstance(data, list):
            errors.append({"row": None, "field": name, "error": "'data' must be a list"})
            continue
        if not (
            isinstance(shape, list)
            and all(isinstance(s, int) and not isinstance(s, bool) for s in shape)
            and (shape == [len(data)] or shape == [len(data), 1])
        ):
            errors.append(
                {
                    "row": None,
                    "field": name,
                    "error": f"shape must be [{len(data)}] for {len(data)} values, got {shape!r}",
                }
            )
            continue
        columns[name] = data
    if errors:
        return [], errors
    return columns_to_records(columns)
