"""The V2 Open Inference Protocol, minimal: model metadata, 1-D named input tensors and the
output tensors of a model's task (see :func:`v2_output_tensors`).

An inference request carries one 1-D tensor per feature, named after it: ``BYTES`` for a
categorical feature, ``FP64``, ``FP32`` or ``INT64`` (also ``INT32``, and ``BOOL`` for a
boolean feature) for a number. An optional ``request_id`` ``BYTES`` tensor supplies per-row
request ids. The tensors are turned into records and validated by the same
:class:`~conveyor.serving.validation.RecordValidator` as ``/v1/predict``.
"""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa

from conveyor.core.labels import LabelCodec, Task
from conveyor.core.schema import ColumnKind
from conveyor.serving.outputs import ModelOutputs, label_arrow_type, label_text
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


def _label_datatype(codec: LabelCodec) -> str:
    """``INT64`` for integer classes (``0``/``1``), ``BYTES`` for text ones."""
    return "INT64" if label_arrow_type(codec) == pa.int64() else "BYTES"


def _class_parameters(codec: LabelCodec) -> dict[str, str]:
    """The ``probabilities`` tensor's parameters: its column classes as JSON text (a parameter
    value is a scalar in the protocol)."""
    return {"classes": orjson.dumps([label_text(c) for c in codec.classes]).decode()}


def v2_output_tensors(
    outputs: ModelOutputs, posts: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The output tensors of an inference answer.

    ``score`` (FP64); for a classifier ``label`` (INT64 for integer classes, BYTES for text
    ones); for a multiclass model ``probabilities`` (FP64, shape ``[n, k]``, row-major, its
    classes in ``parameters.classes``). With post-processing, ``score`` and ``label`` are the
    processed ones (``label`` BYTES), a withheld row answers score 0, an empty label and zero
    probabilities, and ``withheld`` (BOOL) flags it.
    """
    n = len(outputs)
    codec = outputs.codec

    def tensor(name: str, datatype: str, data: list[Any]) -> dict[str, Any]:
        return {"name": name, "datatype": datatype, "shape": [n], "data": data}

    withheld = [bool(p["withheld"]) for p in posts] if posts is not None else [False] * n
    if posts is None:
        found = [tensor("score", "FP64", outputs.scores.tolist())]
        if codec.task.is_classification:
            datatype = _label_datatype(codec)
            labels = outputs.labels
            data = [
                None if v is None else int(v) if datatype == "INT64" else label_text(v)
                for v in labels
            ]
            found.append(tensor("label", datatype, data))
    else:
        found = [
            tensor("score", "FP64", [p["score"] or 0.0 for p in posts]),
            tensor(
                "label",
                "BYTES",
                ["" if p["label"] is None else label_text(p["label"]) for p in posts],
            ),
            tensor("withheld", "BOOL", withheld),
        ]
    if outputs.probabilities is not None:
        probabilities = outputs.probabilities.copy()
        probabilities[withheld] = 0.0
        found.append(
            {
                "name": "probabilities",
                "datatype": "FP64",
                "shape": [n, codec.n_classes],
                "data": probabilities.ravel().tolist(),
                "parameters": _class_parameters(codec),
            }
        )
    return found


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
    codec = model.codec
    outputs: list[dict[str, Any]] = [{"name": "score", "datatype": "FP64", "shape": [-1]}]
    if codec.task.is_classification:
        outputs.append({"name": "label", "datatype": _label_datatype(codec), "shape": [-1]})
    if codec.task is Task.MULTICLASS:
        outputs.append(
            {
                "name": "probabilities",
                "datatype": "FP64",
                "shape": [-1, codec.n_classes],
                "parameters": _class_parameters(codec),
            }
        )
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
