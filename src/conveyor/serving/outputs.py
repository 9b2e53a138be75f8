"""A model's raw output read for its task: scores, class labels and class probabilities.

Every path that scores (online REST and V2, batch and offline scoring, live lookups, the
warm-up of a new version) reads a model's ``predict_encoded`` output through
:func:`read_outputs`, so a label is derived one way:

- binary: the output is P(positive) per row; the label is the positive class (``classes[1]``)
  at or above the serving threshold, else the negative one; ``score`` is P(positive);
- multiclass: the output is ``(n, k)`` class probabilities in the signature's class order;
  the label is the most probable class and ``score`` its probability;
- regression: the output is the value; ``score`` is the value and there is no label.

Labels are class VALUES (``"yes"``, ``"setosa"``, ``0``/``1`` for 0/1 labels); the prediction
log stores their codes (see :class:`~conveyor.core.labels.LabelCodec`) and, for multiclass, the
probability vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from conveyor.core.labels import LabelCodec, LabelValue, Task, label_key

__all__ = [
    "ModelOutputs",
    "label_array",
    "label_arrow_type",
    "label_text",
    "read_outputs",
    "with_probabilities",
]


def label_arrow_type(codec: LabelCodec) -> pa.DataType:
    """Arrow type of class values: int64 when every class is an integer (or a boolean),
    string otherwise (and for regression, whose label column is all null, int64)."""
    if all(isinstance(c, int) for c in codec.classes):
        return pa.int64()
    return pa.string()


def label_text(value: LabelValue) -> str:
    """A class value as text: itself when it is text, else its canonical text."""
    return value if isinstance(value, str) else label_key(value)


def label_array(values: list[Any], kind: pa.DataType, mask: np.ndarray | None = None) -> pa.Array:
    """Class values as an Arrow array of ``kind`` (:func:`label_arrow_type`); masked rows and
    ``None`` are null."""
    hidden = mask.tolist() if mask is not None else [False] * len(values)
    cast = int if kind == pa.int64() else label_text
    return pa.array(
        [None if h or v is None else cast(v) for v, h in zip(values, hidden, strict=True)], kind
    )


@dataclass(frozen=True, slots=True)
class ModelOutputs:
    """One batch of model outputs read for its task (see the module docstring).

    Attributes
    ----------
    codec : LabelCodec
        The model's classes.
    scores : numpy.ndarray
        ``(n,)``: P(positive), the probability of the label (multiclass), or the value.
    codes : numpy.ndarray or None
        ``(n,)`` int64 class codes of the labels; ``None`` for regression.
    probabilities : numpy.ndarray or None
        ``(n, k)`` class probabilities of a multiclass model, else ``None``.
    """

    codec: LabelCodec
    scores: np.ndarray
    codes: np.ndarray | None
    probabilities: np.ndarray | None

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def is_multiclass(self) -> bool:
        return self.probabilities is not None

    @property
    def labels(self) -> list[LabelValue | None]:
        """The class value of each row (``None`` for regression)."""
        if self.codes is None:
            return [None] * len(self.scores)
        classes = self.codec.classes
        return [classes[c] for c in self.codes.tolist()]

    @property
    def class_names(self) -> list[str]:
        """The classes as text, in code order: the keys of ``probabilities`` answers."""
        return [label_text(c) for c in self.codec.classes]

    def slice(self, start: int, end: int) -> ModelOutputs:
        """Rows ``start:end``."""
        return ModelOutputs(
            self.codec,
            self.scores[start:end],
            None if self.codes is None else self.codes[start:end],
            None if self.probabilities is None else self.probabilities[start:end],
        )

    def answers(self) -> list[dict[str, Any]]:
        """Per row ``{"score", "label"}`` and, for multiclass, ``"probabilities"``."""
        scores, labels = self.scores.tolist(), self.labels
        if self.probabilities is None:
            return [{"score": s, "label": lab} for s, lab in zip(scores, labels, strict=True)]
        names = self.class_names
        return [
            {"score": s, "label": lab, "probabilities": dict(zip(names, p, strict=True))}
            for s, lab, p in zip(scores, labels, self.probabilities.tolist(), strict=True)
        ]

    def log_fields(self) -> list[dict[str, Any]]:
        """Per row what the prediction log stores: ``score``, ``label`` (the class code) and,
        for multiclass, ``proba`` (the probability vector in class order)."""
        scores = self.scores.tolist()
        codes = [None] * len(scores) if self.codes is None else self.codes.tolist()
        if self.probabilities is None:
            return [{"score": s, "label": c} for s, c in zip(scores, codes, strict=True)]
        return [
            {"score": s, "label": c, "proba": p}
            for s, c, p in zip(scores, codes, self.probabilities.tolist(), strict=True)
        ]

    def arrow_columns(self) -> tuple[list[str], list[pa.Array]]:
        """Batch-scoring columns: ``score``, ``label`` and one ``proba_<class>`` per class."""
        names = ["score", "label"]
        arrays = [
            pa.array(self.scores, pa.float64()),
            label_array(self.labels, label_arrow_type(self.codec)),
        ]
        if self.probabilities is not None:
            for j, name in enumerate(self.class_names):
                names.append(f"proba_{name}")
                arrays.append(pa.array(self.probabilities[:, j], pa.float64()))
        return names, arrays


def with_probabilities(post: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """A post-processed answer with the raw answer's class probabilities (multiclass only);
    a withheld row shows none."""
    if "probabilities" not in answer:
        return post
    return {**post, "probabilities": None if post.get("withheld") else answer["probabilities"]}


def read_outputs(raw: Any, codec: LabelCodec, *, threshold: float = 0.5) -> ModelOutputs:
    """Read a model's ``predict_encoded`` output for ``codec``'s task.

    Parameters
    ----------
    raw : array
        ``(n,)`` for binary (P(positive)) and regression, ``(n, k)`` for multiclass.
    codec : LabelCodec
        The model's classes (``signature.labels``).
    threshold : float
        A binary row is labelled the positive class when its score is at or above this.

    Returns
    -------
    ModelOutputs

    Raises
    ------
    ValueError
        If the output's shape does not fit the task (a multiclass model must give one column
        per class, the others one value per row).

    Examples
    --------
    >>> out = read_outputs([[0.2, 0.7, 0.1]], LabelCodec(Task.MULTICLASS, ("a", "b", "c")))
    >>> out.answers()
    [{'score': 0.7, 'label': 'b', 'probabilities': {'a': 0.2, 'b': 0.7, 'c': 0.1}}]
    >>> read_outputs([0.8, 0.3], LabelCodec(Task.BINARY, ("no", "yes"))).labels
    ['yes', 'no']
    """
    values = np.asarray(raw, dtype=np.float64)
    if codec.task is Task.MULTICLASS:
        k = codec.n_classes
        if values.ndim != 2 or values.shape[1] != k:
            raise ValueError(
                f"A multiclass model must output one probability per class, shape (n, {k}) "
                f"for classes {list(codec.classes)}. Got shape {values.shape} instead."
            )
        codes = np.argmax(values, axis=1).astype(np.int64) if len(values) else np.empty(0, int)
        scores = values[np.arange(len(values)), codes]
        return ModelOutputs(codec, scores, codes, values)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ValueError(
            f"A {codec.task} model must output one value per row, shape (n,). "
            f"Got shape {values.shape} instead."
        )
    if codec.task is Task.BINARY:
        return ModelOutputs(codec, values, (values >= threshold).astype(np.int64), None)
    return ModelOutputs(codec, values, None, None)
