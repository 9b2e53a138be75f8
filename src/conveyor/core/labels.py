"""The task of a project and the one mapping between its label values and model codes.

A binary label may be any two values (``0``/``1``, ``True``/``False``, ``"yes"``/``"no"``,
``"bad"``/``"good"``); a multiclass label any set of values. Training, evaluation, serving,
feedback and monitoring all go through a :class:`LabelCodec`, so a label is encoded one way:

- binary: code ``1.0`` for the positive class, ``0.0`` for the other; a model scores the
  positive class's probability;
- multiclass: code ``i`` for ``classes[i]`` (classes sorted by their text); a model scores one
  probability per class, in that order;
- regression: the numeric value itself.

Values are matched by their canonical text (:func:`label_key`), so ``1``, ``1.0``, ``"1"`` and
``True`` are one class, as they are once they have gone through a CSV file or JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from conveyor.core.errors import InvalidInputError

#: A label value as it is stored and returned: a JSON scalar.
LabelValue = str | int | float | bool


class Task(StrEnum):
    """What a model predicts."""

    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"

    @property
    def is_classification(self) -> bool:
        return self is not Task.REGRESSION


#: Values read as the positive class of a binary label, compared on :func:`label_key`, lowered.
POSITIVE_NAMES = ("1", "yes", "y", "true", "t", "positive", "pos")


def label_key(value: Any) -> str:
    """The canonical text of a label value: one class, however it was written.

    >>> [label_key(v) for v in (1, 1.0, "1", True, " yes ", np.int64(0), False)]
    ['1', '1', '1', '1', 'yes', '0', '0']
    """
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    return str(value).strip()


def _plain(value: Any) -> LabelValue:
    """A numpy scalar as the Python scalar JSON can hold."""
    if isinstance(value, np.generic):
        plain = value.item()
        return plain if isinstance(plain, str | int | float | bool) else str(plain)
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _sort_key(value: LabelValue) -> tuple[int, float, str]:
    """Numbers in numeric order before text in text order."""
    if isinstance(value, bool):
        return (0, float(value), "")
    if isinstance(value, int | float):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


@dataclass(frozen=True, slots=True)
class LabelCodec:
    """The classes of a classification label and their codes; empty for regression.

    ``classes`` is ``(negative, positive)`` for a binary task and sorted for a multiclass one.
    """

    task: Task
    classes: tuple[LabelValue, ...] = ()

    def __post_init__(self) -> None:
        if self.task is Task.BINARY and len(self.classes) != 2:
            raise InvalidInputError(
                f"A binary label needs exactly two classes (negative, positive). "
                f"Got {list(self.classes)} instead."
            )
        if self.task is Task.MULTICLASS and len(self.classes) < 2:
            raise InvalidInputError(
                f"A multiclass label needs at least two classes. Got {list(self.classes)} instead."
            )
        if self.task is Task.REGRESSION and self.classes:
            raise InvalidInputError(
                f"A regression label has no classes. Got {list(self.classes)} instead."
            )
        keys = [label_key(c) for c in self.classes]
        if len(set(keys)) != len(keys):
            raise InvalidInputError(
                f"The classes of a label must differ. Got {list(self.classes)}."
            )

    @property
    def positive(self) -> LabelValue:
        """The positive class of a binary label.

        Raises
        ------
        InvalidInputError
            If the task is not binary.
        """
        if self.task is not Task.BINARY:
            raise InvalidInputError(
                f"Only a binary label has a positive class; this is {self.task}."
            )
        return self.classes[1]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def _index(self) -> dict[str, int]:
        return {label_key(c): i for i, c in enumerate(self.classes)}

    def encode(self, values: Iterable[Any], *, what: str = "label") -> np.ndarray:
        """Codes of ``values`` as float64 (see the module docstring).

        Raises
        ------
        InvalidInputError
            If a value is missing, not one of the classes, or (regression) not a finite number.
            The message names ``what`` and the first bad value.
        """
        items = list(values)
        for v in items:
            if _is_missing(v):
                raise InvalidInputError(f"The {what} must not be missing. Got a missing value.")
        if self.task is Task.REGRESSION:
            try:
                out = np.asarray([float(v) for v in items], dtype=np.float64)
            except (TypeError, ValueError) as exc:
                bad = next(v for v in items if not _is_number(v))
                raise InvalidInputError(
                    f"The {what} of a regression must be a number. Got {bad!r} instead."
                ) from exc
            if not np.isfinite(out).all():
                raise InvalidInputError(f"The {what} must be finite. Got an infinite value.")
            return out
        index = self._index()
        codes = np.empty(len(items), dtype=np.float64)
        for i, v in enumerate(items):
            code = index.get(label_key(v))
            if code is None:
                raise InvalidInputError(
                    f"The {what} {v!r} is not a class of this {self.task} label; "
                    f"classes: {list(self.classes)}."
                )
            codes[i] = code
        return codes

    def decode(self, codes: Iterable[Any]) -> list[LabelValue]:
        """The class values of integer codes (the values themselves for regression)."""
        if self.task is Task.REGRESSION:
            return [float(c) for c in codes]
        return [self.classes[int(c)] for c in codes]

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task.value, "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelCodec:
        return cls(task=Task(str(data["task"])), classes=tuple(data.get("classes") or ()))

    @classmethod
    def fit(
        cls, task: Task | str, values: Iterable[Any], *, positive: LabelValue | None = None
    ) -> LabelCodec:
        """The codec of the label ``values`` (missing values skipped).

        For a binary label the positive class is ``positive`` when given, else the value named
        like one (:data:`POSITIVE_NAMES`: ``1``, ``True``, ``"yes"``...), else the rarer value
        (the event a model is usually asked to find; ties go to the later value in sort order).

        Raises
        ------
        InvalidInputError
            If a binary label does not have exactly two values, ``positive`` is not one of
            them, or a multiclass label has fewer than two.
        """
        task = Task(task)
        if task is Task.REGRESSION:
            return cls(task)
        present = [_plain(v) for v in values if not _is_missing(v)]
        counts: dict[str, int] = {}
        first: dict[str, LabelValue] = {}
        for v in present:
            key = label_key(v)
            counts[key] = counts.get(key, 0) + 1
            first.setdefault(key, v)
        classes = sorted(first.values(), key=_sort_key)
        if task is Task.MULTICLASS:
            return cls(task, tuple(classes))
        if positive is not None and len(classes) <= 2:
            wanted = label_key(positive)
            if wanted not in first and len(classes) == 2:
                raise InvalidInputError(
                    f"The positive class {positive!r} is not a value of the label; "
                    f"values: {classes}."
                )
            others = [c for c in classes if label_key(c) != wanted]
            if len(others) == 1:
                return cls(task, (others[0], first.get(wanted, positive)))
        if len(classes) != 2:
            raise InvalidInputError(
                f"A binary label must take exactly two values. Got {len(classes)}: {classes[:10]}."
            )
        return cls(task, tuple(_binary_order(classes, counts)))


def _binary_order(classes: Sequence[LabelValue], counts: Mapping[str, int]) -> list[LabelValue]:
    """``[negative, positive]`` by the rules of :meth:`LabelCodec.fit`."""
    named = [c for c in classes if label_key(c).lower() in POSITIVE_NAMES]
    if len(named) == 1:
        pos = named[0]
    else:
        pos = min(reversed(classes), key=lambda c: counts[label_key(c)])
    neg = next(c for c in classes if c is not pos)
    return [neg, pos]


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
