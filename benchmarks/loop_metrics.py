"""The live metric of ``python -m benchmarks loop``: one batch, scored before its labels are used.

The metric follows what the label really is (:class:`benchmarks.loop_data.Truth`), not the task
``conveyor init`` drafted: ROC-AUC for a binary label, macro one-vs-rest ROC-AUC for a multiclass
one, RMSE for a regression. Classes are matched to the model's by their canonical text
(:func:`conveyor.core.labels.label_key`), as Conveyor matches them after a CSV or JSON trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from benchmarks.loop_data import Truth
from conveyor.core.labels import LabelCodec, Task, label_key

#: The live AUC of a batch no model scored (nothing served yet): a random ranking.
CHANCE_AUC = 0.5


@dataclass(frozen=True, slots=True)
class BatchScore:
    """The live metric of one batch; ``sse`` and ``rows`` pool RMSE over batches."""

    value: float | None
    rows: int
    sse: float = 0.0


def score_batch(
    truth: Truth, y: Sequence[Any], output: np.ndarray, codec: LabelCodec
) -> BatchScore:
    """The live metric of ``output`` (a model's encoded predictions) against the labels ``y``.

    ``output`` is P(positive) for a binary model, one column per ``codec.classes`` for a
    multiclass one, the value for a regression; ``codec`` is the scoring version's label codec.
    ``value`` is ``None`` when the metric is undefined on the batch (one class only).
    """
    n = len(y)
    if truth is Truth.REGRESSION:
        errors = np.asarray(output, np.float64).reshape(n) - np.asarray(y, np.float64)
        sse = float(np.sum(errors**2))
        return BatchScore(float(np.sqrt(sse / n)) if n else None, n, sse)
    keys = [label_key(v) for v in y]
    if truth is Truth.BINARY:
        positive = _positive_key(codec, keys)
        codes = np.asarray([k == positive for k in keys], np.float64)
        scores = np.asarray(output, np.float64).reshape(n)
        defined = 0 < codes.sum() < n
        return BatchScore(float(roc_auc_score(codes, scores)) if defined else None, n)
    return BatchScore(_macro_auc(keys, np.asarray(output, np.float64), codec), n)


def chance_score(truth: Truth, y: Sequence[Any], mean: float) -> BatchScore:
    """The live metric of a batch no model scored: chance AUC, or predicting ``mean``."""
    if truth is Truth.REGRESSION:
        errors = np.asarray(y, np.float64) - mean
        sse = float(np.sum(errors**2))
        return BatchScore(float(np.sqrt(sse / len(y))) if len(y) else None, len(y), sse)
    return BatchScore(CHANCE_AUC, len(y))


def _positive_key(codec: LabelCodec, keys: Sequence[str]) -> str:
    """The positive class's text: the model's, else ``1`` (a 0/1 label drafted otherwise)."""
    if codec.task is Task.BINARY:
        return label_key(codec.positive)
    return "1" if "1" in set(keys) else max(set(keys))


def _macro_auc(keys: Sequence[str], output: np.ndarray, codec: LabelCodec) -> float | None:
    """Mean one-vs-rest AUC over the classes present in the batch (a class the model does not
    know scores as a constant 0, AUC 0.5)."""
    if output.ndim != 2 or codec.task is not Task.MULTICLASS:
        return None
    column = {label_key(c): j for j, c in enumerate(codec.classes)}
    truth = np.asarray(keys)
    aucs = []
    for key in sorted(set(keys)):
        hit = truth == key
        if hit.all():
            continue
        j = column.get(key)
        scores = output[:, j] if j is not None else np.zeros(len(keys))
        aucs.append(float(roc_auc_score(hit, scores)))
    return float(np.mean(aucs)) if aucs else None


def live_value(truth: Truth, scores: Sequence[BatchScore]) -> float | None:
    """The live metric over batches: mean AUC of the batches where it is defined, pooled RMSE."""
    if truth is Truth.REGRESSION:
        rows = sum(s.rows for s in scores)
        return float(np.sqrt(sum(s.sse for s in scores) / rows)) if rows else None
    values = [s.value for s in scores if s.value is not None]
    return float(np.mean(values)) if values else None
