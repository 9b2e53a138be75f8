"""A model's input signature and the one feature encoding shared by training and serving.

Training encodes a DataFrame and serving encodes parsed JSON with the same rules, so a feature
can never be computed two ways: numeric and boolean values become float64, a categorical value
becomes its index in the signature's category list, and anything missing or unseen becomes NaN
(the documented unseen-category policy: the model treats it as missing).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from conveyor.core.labels import LabelCodec, LabelValue, Task
from conveyor.core.schema import ColumnKind, ColumnSchema


@dataclass(frozen=True, slots=True)
class Signature:
    """The ordered features a model takes, with their kinds and categorical domains, and the
    classes it scores (``(negative, positive)`` for binary, every class for multiclass).

    A binary signature without classes (a model logged before classes were recorded, or one
    logged by hand) scores the label ``1`` against ``0``.
    """

    inputs: tuple[ColumnSchema, ...]
    task: str = "binary"
    classes: tuple[LabelValue, ...] = ()

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.inputs]

    @property
    def labels(self) -> LabelCodec:
        """The codec between this model's label values and its codes."""
        task = Task(self.task)
        if task is Task.BINARY and not self.classes:
            return LabelCodec(task, (0, 1))
        return LabelCodec(task, self.classes)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"task": self.task, "inputs": [c.to_dict() for c in self.inputs]}
        if self.classes:
            data["classes"] = list(self.classes)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        return cls(
            inputs=tuple(ColumnSchema.from_dict(c) for c in data["inputs"]),
            task=str(data.get("task", "binary")),
            classes=tuple(data.get("classes") or ()),
        )

    def category_index(self) -> list[dict[str, int] | None]:
        """Per input, a value -> code map for categoricals, ``None`` for other kinds."""
        return [
            {v: i for i, v in enumerate(c.categories or ())}
            if c.kind is ColumnKind.CATEGORICAL
            else None
            for c in self.inputs
        ]


def encode_frame(frame: pd.DataFrame, signature: Signature) -> np.ndarray:
    """Encode ``frame`` into a float64 matrix in signature order.

    Raises
    ------
    KeyError
        If a signature input is not a column of ``frame``.
    """
    out = np.empty((len(frame), len(signature.inputs)), dtype=np.float64)
    for j, col in enumerate(signature.inputs):
        values = frame[col.name]
        if col.kind is ColumnKind.CATEGORICAL:
            index = pd.Index(list(col.categories or ()), dtype="string")
            codes = index.get_indexer(values.astype("string"))
            out[:, j] = np.where(codes < 0, np.nan, codes)
        elif col.kind is ColumnKind.DATETIME:
            ts = pd.to_datetime(values, utc=True)
            out[:, j] = ts.dt.as_unit("ns").astype("int64").to_numpy() / 1e9
            out[ts.isna().to_numpy(), j] = np.nan
        else:
            out[:, j] = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
    return out


def encode_value(value: Any, kind: ColumnKind, index: Mapping[str, int] | None) -> float:
    """Encode one JSON value; raise ``TypeError`` when it is not of ``kind``."""
    if value is None:
        return math.nan
    if index is not None:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise TypeError("expected a string category")
        code = index.get(str(value))
        return math.nan if code is None else float(code)
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    raise TypeError("expected a number")


def encode_records(records: Sequence[Mapping[str, Any]], signature: Signature) -> np.ndarray:
    """Encode JSON records (already validated) into a float64 matrix in signature order."""
    index = signature.category_index()
    kinds = [c.kind for c in signature.inputs]
    names = signature.names
    out = np.empty((len(records), len(names)), dtype=np.float64)
    for i, rec in enumerate(records):
        for j, name in enumerate(names):
            out[i, j] = encode_value(rec.get(name), kinds[j], index[j])
    return out
