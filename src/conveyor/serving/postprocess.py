"""Post-processing: the declared chain of ``conveyor.yaml`` ``postprocess:`` turned into arrays.

The chain runs in the order declared, on a whole batch of rows at once (vectorised with numpy
and pandas), and is the same object online, in batch scoring and for offline predictions:

``clip``
    Clip scores into ``[min, max]``.
``threshold``
    Labels from scores: each row takes the label of the highest cutoff at or below its score,
    or ``default``.
``rule``
    A business rule: where all conditions hold, set the score and/or the label.
``filter``
    Withhold the output of rows where all conditions hold; the reason is reported instead.
``rerank``
    Rank rows by score plus boosts, per ``group`` field (or across the request); rows past
    ``top_k`` are withheld.

A condition names a field (an input field, or ``score`` / ``label``: the outputs so far), an
operator (``eq ne lt le gt ge in not_in is_null not_null``) and a value. Nothing is evaluated as
code. A field missing from a row is null: it fails every comparison and passes ``is_null``.

Before the chain a binary task's label is its positive class where ``score >= threshold`` (the
serving threshold) and its other class elsewhere, a multiclass task's is its most probable
class (and ``score`` that class's probability), and a regression's is null; the raw score and
label are kept beside the processed ones. ``clip`` and ``threshold`` act on one score per row
and are refused for a multiclass task (a rule or filter on ``label`` or ``score`` works).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa

from conveyor.core.errors import ConfigError, InvalidInputError
from conveyor.core.labels import LabelCodec, Task
from conveyor.serving.outputs import ModelOutputs, label_array, label_arrow_type, read_outputs
from conveyor.spec import (
    ClipStep,
    ConditionSpec,
    FilterStep,
    PostprocessSpec,
    PostprocessStep,
    RerankStep,
    RuleStep,
    ThresholdStep,
)

__all__ = ["PostprocessResult", "PostProcessor"]

Rows: TypeAlias = Sequence[Mapping[str, Any]] | pd.DataFrame | pa.Table | pa.RecordBatch
"""Rows a chain reads fields from: records (online), a DataFrame or an Arrow table (batch)."""

_NUMERIC_OPS = {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal}


@dataclass(frozen=True, slots=True)
class PostprocessResult:
    """Raw and processed outputs of one batch, one entry per row.

    Attributes
    ----------
    raw_scores, raw_labels : numpy.ndarray
        The model's scores and the labels before the chain.
    scores, labels : numpy.ndarray
        After the chain (``labels`` is an object array: ints, strings or ``None``).
    withheld : numpy.ndarray of bool
        Rows whose output must not be returned.
    reasons : numpy.ndarray of object
        Why a row was withheld, else ``None``.
    ranks : numpy.ndarray of int or None
        1-based rank within the row's group when the chain re-ranks.
    """

    raw_scores: np.ndarray
    raw_labels: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    withheld: np.ndarray
    reasons: np.ndarray
    ranks: np.ndarray | None

    def output(self, i: int) -> dict[str, Any]:
        """Row ``i``'s processed output as JSON-ready values."""
        out: dict[str, Any] = {
            "score": None if self.withheld[i] else float(self.scores[i]),
            "label": None if self.withheld[i] else _plain(self.labels[i]),
            "withheld": bool(self.withheld[i]),
        }
        if self.withheld[i]:
            out["reason"] = self.reasons[i]
        if self.ranks is not None:
            out["rank"] = int(self.ranks[i])
        return out

    def outputs(self) -> list[dict[str, Any]]:
        """Every row's processed output (see :meth:`output`)."""
        return [self.output(i) for i in range(len(self.scores))]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class _Columns:
    """Field access over any :data:`Rows` form; each field is converted once per batch."""

    def __init__(self, rows: Rows, n: int) -> None:
        self.rows, self.n = rows, n
        self.cache: dict[str, np.ndarray] = {}

    def get(self, name: str) -> np.ndarray:
        found = self.cache.get(name)
        if found is not None:
            return found
        rows = self.rows
        if isinstance(rows, pd.DataFrame):
            col = rows[name].to_numpy(dtype=object) if name in rows.columns else None
        elif isinstance(rows, pa.Table | pa.RecordBatch):
            names = rows.schema.names
            col = np.asarray(rows.column(name).to_pylist(), dtype=object) if name in names else None
        else:
            col = np.empty(self.n, dtype=object)
            col[:] = [r.get(name) for r in rows]
        if col is None:
            col = np.full(self.n, None, dtype=object)
        self.cache[name] = col
        return col


def _null_mask(values: np.ndarray) -> np.ndarray:
    return np.asarray(pd.isna(pd.Series(values, dtype=object)).to_numpy(), dtype=bool)


def _holds(cond: ConditionSpec, values: np.ndarray) -> np.ndarray:
    """Where ``cond`` holds over one column of values (vectorised)."""
    op = cond.op
    if op == "is_null":
        return _null_mask(values)
    if op == "not_null":
        return ~_null_mask(values)
    if op in _NUMERIC_OPS:
        numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(float)
        with np.errstate(invalid="ignore"):
            return np.asarray(_NUMERIC_OPS[op](numbers, float(cond.value)), dtype=bool)
    series = pd.Series(values, dtype=object)
    if op in ("in", "not_in"):
        inside: np.ndarray = series.isin(list(cond.value)).to_numpy(dtype=bool)
        return inside if op == "in" else np.asarray(~inside & ~_null_mask(values))
    equal: np.ndarray = (series == cond.value).to_numpy(dtype=bool)
    return equal if op == "eq" else np.asarray(~equal & ~_null_mask(values))


def _check_condition(cond: ConditionSpec, where: str) -> None:
    if cond.op in _NUMERIC_OPS and not isinstance(cond.value, int | float):
        raise ConfigError(
            f"postprocess {where}: operator '{cond.op}' on field '{cond.field}' needs a number. "
            f"Got {cond.value!r} instead."
        )
    if cond.op in ("in", "not_in") and not isinstance(cond.value, list):
        raise ConfigError(
            f"postprocess {where}: operator '{cond.op}' on field '{cond.field}' needs a list. "
            f"Got {cond.value!r} instead."
        )


class PostProcessor:
    """The post-processing chain of a project, applied to whole batches.

    Parameters
    ----------
    spec : PostprocessSpec
        The declared chain (``conveyor.yaml`` ``postprocess:``).
    task : {"binary", "multiclass", "regression"}
        The project's task; a multiclass task refuses ``clip`` and ``threshold`` steps.
    threshold : float
        The binary label cut-off before the chain.

    Raises
    ------
    ConfigError
        If a step is inconsistent (a numeric operator with a non-number, ``min > max``...) or
        does not apply to the task (``clip`` or ``threshold`` of a multiclass model).

    Examples
    --------
    >>> import numpy as np
    >>> from conveyor.spec import PostprocessSpec
    >>> spec = PostprocessSpec.model_validate({"steps": [
    ...     {"kind": "threshold", "cutoffs": [[0.8, "high"], [0.5, "mid"]], "default": "low"},
    ...     {"kind": "filter", "when": [{"field": "carrier", "op": "eq", "value": "XX"}]}]})
    >>> result = PostProcessor(spec).apply(np.array([0.9, 0.6, 0.9]),
    ...     [{"carrier": "AA"}, {"carrier": "AA"}, {"carrier": "XX"}])
    >>> result.labels.tolist(), result.withheld.tolist()
    (['high', 'mid', 'high'], [False, False, True])
    """

    def __init__(
        self, spec: PostprocessSpec, *, task: str = "binary", threshold: float = 0.5
    ) -> None:
        self.spec = spec
        self.task = task
        self.threshold = threshold
        for position, step in enumerate(spec.steps):
            where = f"step {position} ({step.kind})"
            if task == Task.MULTICLASS and isinstance(step, ClipStep | ThresholdStep):
                raise ConfigError(
                    f"postprocess {where}: a '{step.kind}' step works on one score per row, but "
                    "a multiclass model scores every class. Allowed for multiclass: rule, "
                    "filter and rerank (conditions on 'label', the predicted class, or 'score', "
                    "its probability)."
                )
            if (
                isinstance(step, ClipStep)
                and step.min is not None
                and step.max is not None
                and step.min > step.max
            ):
                raise ConfigError(
                    f"postprocess {where}: 'min' must not exceed 'max'. "
                    f"Got min={step.min}, max={step.max} instead."
                )
            for cond in _conditions(step):
                _check_condition(cond, where)

    @property
    def is_identity(self) -> bool:
        """Whether the chain is empty (outputs are the raw ones)."""
        return not self.spec.steps

    @property
    def fields(self) -> list[str]:
        """Input fields the chain reads (beyond ``score`` and ``label``)."""
        names = {c.field for s in self.spec.steps for c in _conditions(s)}
        names.update(s.group for s in self.spec.steps if isinstance(s, RerankStep) and s.group)
        return sorted(names - {"score", "label"})

    @property
    def label_type(self) -> pa.DataType:
        """Arrow type of processed labels: int64 unless a step declares a string label."""
        declared: list[Any] = []
        for step in self.spec.steps:
            if isinstance(step, ThresholdStep):
                declared += [label for _, label in step.cutoffs] + [step.default]
            elif isinstance(step, RuleStep):
                declared.append(step.set_label)
        return pa.string() if any(isinstance(v, str) for v in declared) else pa.int64()

    def label_array(
        self, labels: np.ndarray, withheld: np.ndarray, codec: LabelCodec | None = None
    ) -> pa.Array:
        """Processed labels as an Arrow array of :attr:`label_type` (string when the model's
        classes in ``codec`` are text); withheld rows are null."""
        text = codec is not None and label_arrow_type(codec) == pa.string()
        return label_array(labels.tolist(), pa.string() if text else self.label_type, withheld)

    def apply(
        self, scores: ModelOutputs | np.ndarray | Sequence[float], rows: Rows
    ) -> PostprocessResult:
        """Run the chain over one batch.

        Parameters
        ----------
        scores : ModelOutputs or array of float
            The model's outputs (:func:`~conveyor.serving.outputs.read_outputs`), or its
            scores, one per row, of a binary model with labels 0 and 1 or of a regression.
        rows : records, DataFrame or Arrow table
            The inputs, for conditions on input fields.

        Returns
        -------
        PostprocessResult

        Raises
        ------
        InvalidInputError
            If ``rows`` and ``scores`` differ in length.
        """
        outputs = (
            scores
            if isinstance(scores, ModelOutputs)
            else read_outputs(scores, _plain_codec(self.task), threshold=self.threshold)
        )
        raw = outputs.scores
        n = len(raw)
        if len(rows) != n:
            raise InvalidInputError(
                f"PostProcessor.apply() got {n} scores for {len(rows)} rows; they must match."
            )
        raw_labels = np.empty(n, dtype=object)
        raw_labels[:] = outputs.labels
        state = _State(raw.copy(), raw_labels.copy(), _Columns(rows, n))
        for step in self.spec.steps:
            state.run(step)
        return PostprocessResult(
            raw_scores=raw,
            raw_labels=raw_labels,
            scores=state.scores,
            labels=state.labels,
            withheld=state.withheld,
            reasons=state.reasons,
            ranks=state.ranks,
        )


def _plain_codec(task: str) -> LabelCodec:
    """The codec of bare scores: a binary label 0/1, or a regression."""
    if task == Task.MULTICLASS:
        raise InvalidInputError(
            "PostProcessor.apply() needs a multiclass model's outputs as ModelOutputs "
            "(read_outputs), not bare scores."
        )
    return LabelCodec(Task(task)) if task == Task.REGRESSION else LabelCodec(Task.BINARY, (0, 1))


def _conditions(step: PostprocessStep) -> list[ConditionSpec]:
    if isinstance(step, RuleStep | FilterStep):
        return list(step.when)
    if isinstance(step, RerankStep):
        return [c for _, conds in step.boosts for c in conds]
    return []


class _State:
    """The outputs as the chain transforms them."""

    def __init__(self, scores: np.ndarray, labels: np.ndarray, columns: _Columns) -> None:
        n = len(scores)
        self.scores, self.labels, self.columns = scores, labels, columns
        self.withheld = np.zeros(n, dtype=bool)
        self.reasons = np.full(n, None, dtype=object)
        self.ranks: np.ndarray | None = None

    def field(self, name: str) -> np.ndarray:
        if name == "score":
            return self.scores
        if name == "label":
            return self.labels
        return self.columns.get(name)

    def mask(self, conditions: Sequence[ConditionSpec]) -> np.ndarray:
        mask = np.ones(len(self.scores), dtype=bool)
        for cond in conditions:
            mask &= _holds(cond, self.field(cond.field))
        return mask

    def withhold(self, mask: np.ndarray, reason: str) -> None:
        new = mask & ~self.withheld
        self.reasons[new] = reason
        self.withheld |= mask

    def run(self, step: PostprocessStep) -> None:
        if isinstance(step, ClipStep):
            lo = -np.inf if step.min is None else step.min
            hi = np.inf if step.max is None else step.max
            self.scores = np.clip(self.scores, lo, hi)
        elif isinstance(step, ThresholdStep):
            labels = np.full(len(self.scores), step.default, dtype=object)
            for cutoff, label in sorted(step.cutoffs, key=lambda c: c[0]):
                labels[self.scores >= cutoff] = label
            self.labels = labels
        elif isinstance(step, RuleStep):
            mask = self.mask(step.when)
            if step.set_score is not None:
                self.scores = np.where(mask, step.set_score, self.scores)
            if step.set_label is not None:
                self.labels = self.labels.copy()
                self.labels[mask] = step.set_label
        elif isinstance(step, FilterStep):
            self.withhold(self.mask(step.when), step.reason)
        else:
            self._rerank(step)

    def _rerank(self, step: RerankStep) -> None:
        key = self.scores.astype(np.float64, copy=True)
        for boost, conditions in step.boosts:
            key += np.where(self.mask(conditions), boost, 0.0)
        n = len(key)
        groups = (
            pd.Series(self.columns.get(step.group), dtype=object).fillna("\0null")
            if step.group
            else pd.Series(np.zeros(n, dtype=np.int64))
        )
        # withheld rows rank after every returned one
        ordered = pd.DataFrame({"g": groups.to_numpy(), "k": key, "w": self.withheld})
        ranks = (
            ordered.sort_values(["w", "k"], ascending=[True, not step.descending], kind="stable")
            .groupby("g", sort=False)
            .cumcount()
            .add(1)
            .reindex(ordered.index)
            .to_numpy(dtype=np.int64)
        )
        self.ranks = ranks
        if step.top_k is not None:
            self.withhold(ranks > step.top_k, f"ranked below the top {step.top_k}")
