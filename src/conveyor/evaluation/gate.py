"""The champion/challenger gate: is the new model not worse than production on the same rows?

The gate scores both models on one fresh test set and bootstraps the *paired* difference of
their metric: each resample draws the same rows for both models, so the noise the two share
(an easy or a hard sample) cancels and the interval is as tight as the data allows. The
difference is oriented so that ``delta > 0`` always means the challenger is better, whatever the
metric's direction. The challenger passes when two things hold:

* **not worse by more than the margin**: the one-sided lower bound of the difference, at the
  policy's ``confidence``, is above ``-margin``. The margin is relative to the metric (see
  :func:`margin_in_units`): in points of a score (``roc_auc``, ``accuracy``, ``r2``: 0.01 is one
  AUC point) and a share of production's value for an error (``rmse``, ``mae``, ``log_loss``,
  ``brier``: 0.01 is 1% of production's RMSE), so it means the same on a price or a count;
* **better on these rows**: the observed difference is at least zero. Without it, two
  near-identical models (whose interval is tight around zero) would always pass on noise; with
  it, a retrain no better than production is promoted about half the time, and a challenger its
  own interval shows better is always promoted.

At the defaults the rule is calibrated by simulation (:mod:`conveyor.evaluation.calibration`,
``docs/gate.md``): on 1,000 test rows a challenger truly better by 0.02 AUC (or 5% RMSE) is
promoted at least 80% of the time, one truly worse by as much at most 5% of the time. With no
production model yet, a challenger is judged on its own, and a test set under ``min_rows`` is a
recorded warning instead of a refusal, so a first model is served. For a binary task
McNemar's test of the two accuracies at threshold 0.5 is recorded with the decision, and stated
among its reasons when the gate compares accuracy (see :mod:`conveyor.evaluation.paired` for
both computations).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from conveyor.core.errors import InvalidInputError
from conveyor.evaluation.analysis import slice_rows
from conveyor.evaluation.metrics import (
    check_predictions,
    check_task,
    comparable_metrics,
    evaluate,
    higher_is_better,
    is_better,
    primary_metric,
)
from conveyor.evaluation.paired import mcnemar_test, paired_bootstrap

#: Scores at or above these are more often a leak of the label than a great model. Not the
#: multiclass macro AUC: ordinary multiclass tables (wine, iris, penguins) reach 0.999 with
#: honest features; a leaked feature is caught at ingestion by the label-leak check.
_TOO_GOOD = {"roc_auc": 0.999, "r2": 0.999}

#: The AUC of a random ranking, and the z of a one-sided 95% bound above it.
_CHANCE_AUC = 0.5
_ONE_SIDED_95 = 1.6449


class MarginKind(StrEnum):
    """How a margin or tolerance of the gate is read for a metric (see :func:`margin_kind`)."""

    #: Points of a score bounded above (``roc_auc``, ``accuracy``, ``r2``): 0.01 is one point.
    POINTS = "points"
    #: A share of production's value of an error (``rmse``, ``mae``, ``log_loss``): 0.01 is 1%.
    RELATIVE = "relative"


def margin_kind(metric: str) -> MarginKind:
    """How a margin on ``metric`` is read: points of a higher-is-better score, a share of
    production's value for a lower-is-better error, whose units are the label's.

    Raises
    ------
    InvalidInputError
        If ``metric`` does not rank models.

    Examples
    --------
    >>> margin_kind("roc_auc").value, margin_kind("rmse").value
    ('points', 'relative')
    """
    return MarginKind.POINTS if higher_is_better(metric) else MarginKind.RELATIVE


def margin_in_units(metric: str, margin: float, production: float) -> float:
    """A margin (or tolerance) of the gate in the units of ``metric``, given production's value.

    Parameters
    ----------
    metric : str
        The compared metric.
    margin : float
        The margin as the policy states it: points of a score, or a share of production's
        value for an error (see :class:`MarginKind`).
    production : float
        Production's value of ``metric`` on the same rows.

    Returns
    -------
    float
        How far below production, in the metric's units, the challenger may fall; ``nan`` when
        a relative margin meets an undefined production value.

    Examples
    --------
    >>> margin_in_units("roc_auc", 0.01, 0.8), margin_in_units("rmse", 0.01, 150.0)
    (0.01, 1.5)
    """
    if margin_kind(metric) is MarginKind.POINTS:
        return margin
    return margin * abs(production)


@dataclass(frozen=True, slots=True)
class GatePolicy:
    """What a challenger must show to replace production.

    Parameters
    ----------
    metric : str or None
        The metric compared; ``None`` means the task's primary metric (``roc_auc``, ``rmse``).
    margin : float
        How much worse the challenger may be, relative to the metric (see
        :func:`margin_in_units`): points of a score (``roc_auc``, ``accuracy``, ``r2``) or a
        share of production's value of an error (``rmse``, ``mae``, ``log_loss``, ``brier``).
        The challenger passes when the one-sided lower bound of ``delta`` is above the margin
        (negated) and ``delta`` itself is at least zero.
    min_rows : int
        Fewest test rows on which a challenger is compared with production. A first model (no
        production) on fewer rows is judged on its own, with a warning.
    floor : float or None
        Worst acceptable value of the metric on its own: a minimum for higher-is-better
        metrics, a maximum for lower-is-better ones (``rmse``). ``None`` means no floor.
    n_bootstrap : int
        Number of paired bootstrap resamples.
    confidence : float
        Confidence of the one-sided lower bound, in (0, 1); the recorded interval
        ``[ci_low, ci_high]`` is the two-sided ``2 * confidence - 1`` percentile interval, whose
        lower end is that bound.
    seed : int
        Seed of the resampling, so a decision can be reproduced.
    """

    metric: str | None = None
    margin: float = 0.015
    min_rows: int = 200
    floor: float | None = None
    n_bootstrap: int = 500
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if self.metric is not None:
            higher_is_better(self.metric)
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise InvalidInputError(
                f"The 'margin' of GatePolicy must be a finite float >= 0. Got {self.margin!r} "
                "instead."
            )
        if self.min_rows < 1:
            raise InvalidInputError(
                f"The 'min_rows' of GatePolicy must be an int in [1, inf). Got {self.min_rows!r} "
                "instead."
            )
        if self.n_bootstrap < 10:
            raise InvalidInputError(
                "The 'n_bootstrap' of GatePolicy must be an int in [10, inf). "
                f"Got {self.n_bootstrap!r} instead."
            )
        if not 0 < self.confidence < 1:
            raise InvalidInputError(
                "The 'confidence' of GatePolicy must be a float in (0, 1). "
                f"Got {self.confidence!r} instead."
            )
        if self.floor is not None and not math.isfinite(self.floor):
            raise InvalidInputError(
                f"The 'floor' of GatePolicy must be a finite float or None. Got {self.floor!r} "
                "instead."
            )

    def metric_for(self, task: str) -> str:
        """The metric this policy compares for ``task``.

        Raises
        ------
        InvalidInputError
            If the policy's metric does not rank models of ``task``.
        """
        allowed = comparable_metrics(task)
        metric = self.metric or allowed[0]
        if metric not in allowed:
            raise InvalidInputError(
                f"The gate metric for a {task} task must be one of {list(allowed)}. "
                f"Got {metric!r} instead."
            )
        return metric


@dataclass(frozen=True, slots=True)
class GateDecision:
    """The gate's verdict and its evidence.

    ``delta`` is oriented so that a positive value means the challenger is better;
    ``production``, ``delta``, the interval and ``margin`` are ``None`` when there was no
    production model; ``margin`` is the policy's margin in the metric's units (see
    :func:`margin_in_units`); ``mcnemar`` holds McNemar's test of the accuracies (challenger
    as A) for a binary task; ``warnings`` are the doubts recorded with a decision that passed
    anyway (a first model judged on fewer rows than ``min_rows``), also among ``reasons``.
    """

    passed: bool
    metric: str
    challenger: float
    production: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    reasons: tuple[str, ...]
    mcnemar: dict[str, Any] | None = None
    margin: float | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The decision as JSON-ready values (``nan`` becomes ``None``)."""
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        data["warnings"] = list(self.warnings)
        for key, value in data.items():
            if isinstance(value, float) and not math.isfinite(value):
                data[key] = None
        return data


def compare_models(
    y_true: Any,
    challenger_pred: Any,
    production_pred: Any | None,
    *,
    task: str,
    policy: GatePolicy | None = None,
) -> GateDecision:
    """Decide whether the challenger may replace production, from predictions on the same rows.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        The truth of the test rows.
    challenger_pred, production_pred : array-like of shape (n,)
        Both models' predictions for those rows; ``production_pred=None`` when nothing is in
        production yet, in which case only the floor and a defined metric are checked, and
        fewer rows than ``policy.min_rows`` are a warning rather than a refusal.
    task : {"binary", "regression"}
    policy : GatePolicy, optional
        Defaults to ``GatePolicy()``.

    Returns
    -------
    GateDecision
        ``passed`` with the reasons as readable sentences.

    Raises
    ------
    InvalidInputError
        If the task, the metric or the arrays are invalid (see
        :func:`conveyor.evaluation.evaluate`).

    Examples
    --------
    >>> import numpy as np
    >>> y = np.tile([0, 1], 200)
    >>> p = np.where(y == 1, 0.7, 0.3)
    >>> compare_models(y, p, p, task="binary").passed
    True
    """
    policy = policy or GatePolicy()
    check_task(task)
    metric = policy.metric_for(task)
    y, challenger = check_predictions(task, y_true, challenger_pred)
    n = len(y)
    challenger_value = evaluate(task, y, challenger)[metric]
    first = production_pred is None
    failures = _threshold_failures(metric, challenger_value, n, policy, first=first)
    warnings = _first_model_warnings(n, policy) if first else []

    if production_pred is None:
        if failures:
            note = "There is no production model yet to compare with."
        else:
            floor = f" (floor {policy.floor:.3f})" if policy.floor is not None else ""
            note = (
                f"There is no production model yet: the challenger's {metric} "
                f"{challenger_value:.3f} on {n} rows is accepted on its own{floor}."
            )
        return GateDecision(
            passed=not failures,
            metric=metric,
            challenger=challenger_value,
            production=None,
            delta=None,
            ci_low=None,
            ci_high=None,
            n=n,
            reasons=(*failures, *warnings, note),
            warnings=tuple(warnings),
        )

    _, production = check_predictions(task, y, production_pred)
    production_value = evaluate(task, y, production)[metric]
    sign = 1.0 if higher_is_better(metric) else -1.0
    delta = sign * (challenger_value - production_value)
    deltas = sign * paired_bootstrap(
        metric, y, challenger, production, n_resamples=policy.n_bootstrap, seed=policy.seed
    )
    deltas = deltas[np.isfinite(deltas)]
    tail = (1 - policy.confidence) * 100
    if len(deltas) == 0:
        ci_low = ci_high = math.nan
    else:
        ci_low, ci_high = (float(v) for v in np.percentile(deltas, [tail, 100 - tail]))
    margin = margin_in_units(metric, policy.margin, production_value)
    small = n < policy.min_rows
    # Under min_rows a non-inferiority call is not trusted: only a challenger better beyond
    # doubt (its one-sided bound above zero) passes, so a clearly better model is not held
    # back for weeks on a small data set, and a truly worse one still passes at most
    # 1 - confidence of the time.
    not_worse = math.isfinite(ci_low) and ci_low > (0.0 if small else -margin)
    better = delta >= 0
    mcnemar = None
    reasons = list(failures)
    if small and not failures:
        reasons.append(
            f"The test set has {n} rows, fewer than the {policy.min_rows} the gate needs to call "
            "a challenger not worse: it passes only if better beyond doubt (its one-sided "
            f"{policy.confidence:.0%} bound above zero)."
        )
    if task == "binary":
        truth = y == 1
        test = mcnemar_test((challenger >= 0.5) == truth, (production >= 0.5) == truth)
        mcnemar = test.to_dict()
        if metric == "accuracy":
            reasons.append(_mcnemar_sentence(test.only_a, test.only_b, test.p_value, test.exact))
    reasons.append(
        _comparison_sentence(
            metric, (challenger_value, production_value), delta, (ci_low, ci_high), margin, policy
        )
    )
    return GateDecision(
        passed=not failures and not_worse and better,
        metric=metric,
        challenger=challenger_value,
        production=production_value,
        delta=delta,
        ci_low=ci_low,
        ci_high=ci_high,
        n=n,
        reasons=tuple(reasons),
        mcnemar=mcnemar,
        margin=margin,
    )


#: Metrics a floor can bound, and whether larger is better (a floor is then a minimum).
FLOOR_METRICS: dict[str, bool] = {
    "roc_auc": True,
    "roc_auc_macro": True,
    "macro_f1": True,
    "accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "pr_auc": True,
    "r2": True,
    "log_loss": False,
    "brier": False,
    "ece": False,
    "mae": False,
    "rmse": False,
    "mape": False,
}


def check_floors(metrics: Mapping[str, Any], floors: Mapping[str, float]) -> list[str]:
    """Sentences for every metric of ``metrics`` on the wrong side of its absolute floor.

    A floor is a minimum for a higher-is-better metric and a maximum for the others (see
    :data:`FLOOR_METRICS`); an undefined (``nan`` or missing) value fails its floor.

    Raises
    ------
    InvalidInputError
        If a floor names a metric that cannot be bounded.

    Examples
    --------
    >>> check_floors({"recall": 0.4, "ece": 0.01}, {"recall": 0.5, "ece": 0.05})
    ["The challenger's test recall 0.4000 is below its floor 0.5."]
    """
    reasons: list[str] = []
    for name, floor in floors.items():
        if name not in FLOOR_METRICS:
            raise InvalidInputError(
                f"A gate floor must name one of {sorted(FLOOR_METRICS)}. Got {name!r} instead."
            )
        value = _stored(metrics, name)
        higher = FLOOR_METRICS[name]
        if math.isnan(value):
            reasons.append(f"The challenger's test {name} is undefined, so its floor fails.")
        elif (value < floor) if higher else (value > floor):
            word = "below its floor" if higher else "above its ceiling"
            reasons.append(f"The challenger's test {name} {value:.4f} is {word} {floor:g}.")
    return reasons


def compare_slices(
    task: str,
    y_true: Any,
    challenger_pred: Any,
    production_pred: Any,
    groups: Mapping[str, Any],
    *,
    metric: str,
    min_rows: int,
    tolerance: float,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Compare both models slice by slice; a slice may be worse by at most ``tolerance``.

    The tolerance is read like the gate's margin (see :func:`margin_in_units`): points of a
    score, or a share of production's value on the slice for an error, so a regression's
    slices are judged in proportion to its label's spread.

    Parameters
    ----------
    task : {"binary", "regression"}
    y_true, challenger_pred, production_pred : array-like of shape (n,)
    groups : mapping of str to array-like of shape (n,)
        Slice columns and each row's value.
    metric : str
        Compared oriented like ``GateDecision.delta``.
    min_rows : int
        Slices with fewer rows are not compared (too noisy to blame).
    tolerance : float
        Largest allowed ``production - challenger`` gap (oriented) on a slice: points of a
        score, or a share of production's slice value for an error.

    Returns
    -------
    (list of dict, list of str)
        One row per compared slice (``column, value, rows, challenger, production, delta,
        regressed``), and one sentence per slice that regressed beyond the tolerance.

    Examples
    --------
    >>> y = np.array([0.0, 1.0] * 100)
    >>> good = np.where(y == 1, 0.8, 0.2)
    >>> rows, bad = compare_slices("binary", y, good, good, {"g": ["a"] * 200},
    ...                            metric="roc_auc", min_rows=50, tolerance=0.01)
    >>> rows[0]["delta"], bad
    (0.0, [])
    """
    check_task(task)
    higher_is_better(metric)
    y, challenger = check_predictions(task, y_true, challenger_pred)
    _, production = check_predictions(task, y, production_pred)
    sign = 1.0 if higher_is_better(metric) else -1.0
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    for column, values in groups.items():
        for value, where in slice_rows(column, values, len(y)):
            if len(where) < min_rows:
                continue
            ours = evaluate(task, y[where], challenger[where])[metric]
            theirs = evaluate(task, y[where], production[where])[metric]
            if math.isnan(ours) or math.isnan(theirs):
                continue
            delta = sign * (ours - theirs)
            allowed = margin_in_units(metric, tolerance, theirs)
            regressed = delta < -allowed
            rows.append(
                {
                    "column": column,
                    "value": value,
                    "rows": len(where),
                    "challenger": ours,
                    "production": theirs,
                    "delta": delta,
                    "regressed": regressed,
                }
            )
            if regressed:
                failures.append(
                    f"Slice {column}={value} ({len(where)} rows): {metric} {ours:.3f} vs "
                    f"production {theirs:.3f}, worse by {-delta:.3f} (tolerance {allowed:.3g})."
                )
    return rows, failures


def sanity_check(
    valid_metrics: Mapping[str, Mapping[str, float]], task: str, *, stage: str = "validation"
) -> list[str]:
    """Reasons to refuse a freshly trained candidate before it meets production.

    Parameters
    ----------
    valid_metrics : mapping
        ``{"candidate": metrics, "baseline": metrics}`` on the validation set, as in
        ``TrainResult.valid_metrics`` of :mod:`conveyor.training`; ``baseline`` may be absent,
        and an empty mapping (a model registered without validation metrics) is not checked.
    task : {"binary", "multiclass", "regression"}
    stage : str, default "validation"
        The data the metrics come from, named in the sentences (``"test"`` for the gate's rows).

    Returns
    -------
    list of str
        Empty when the candidate looks sound; otherwise one sentence per problem: a constant
        label, a score too perfect to be true (usually a leaked label), an undefined score, a
        score no better than chance (usually shuffled labels) or no gain over the baseline.

    Raises
    ------
    InvalidInputError
        If ``valid_metrics`` is not empty and has no ``candidate`` entry.

    Examples
    --------
    >>> sanity_check({"candidate": {"roc_auc": 0.75}, "baseline": {"roc_auc": 0.5}}, "binary")
    []
    >>> sanity_check({"candidate": {"roc_auc": 0.49}}, "binary")[0][:44]
    "The candidate's validation roc_auc is 0.4900"
    """
    check_task(task)
    if not valid_metrics:
        return []
    if "candidate" not in valid_metrics:
        raise InvalidInputError(
            "valid_metrics must have a 'candidate' entry. "
            f"Got keys {sorted(valid_metrics)} instead."
        )
    candidate = valid_metrics["candidate"]
    baseline = valid_metrics.get("baseline")
    metric = primary_metric(task)
    value = _stored(candidate, metric)
    reasons: list[str] = []
    rate = _stored(candidate, "positive_rate")
    if rate in (0.0, 1.0):
        reasons.append(
            f"The {stage} labels are constant (all {int(rate)}): nothing can be learned or ranked."
        )
    if math.isnan(value):
        reasons.append(f"The candidate's {stage} {metric} is undefined (nan).")
    for name, limit in _TOO_GOOD.items():
        score = _stored(candidate, name)
        if score >= limit:
            reasons.append(
                f"The candidate's {stage} {name} is {score:.4f}, suspiciously perfect "
                f"(>= {limit}): check the features for a leak of the label."
            )
    if task == "regression" and math.isnan(_stored(candidate, "r2")) and "r2" in candidate:
        reasons.append(f"The {stage} labels are constant: R² is undefined.")
    auc_name = "roc_auc_macro" if task == "multiclass" else "roc_auc"
    auc, bar = _stored(candidate, auc_name), _chance_bar(candidate)
    if task != "regression" and auc <= bar:
        reasons.append(
            f"The candidate's {stage} {auc_name} is {auc:.4f}, no better than chance "
            f"(<= {bar:.4f}, the one-sided 95% bound of a random ranking's AUC on these rows): "
            "the labels may be shuffled or unrelated to the features."
        )
    reasons += _multiclass_sanity(candidate, stage) if task == "multiclass" else []
    if baseline is not None and not math.isnan(value):
        reference = _stored(baseline, metric)
        if not is_better(metric, value, reference):
            reasons.append(
                f"The candidate's {stage} {metric} {value:.4f} is not better than the "
                f"baseline's {reference:.4f}."
            )
    return reasons


def _multiclass_sanity(candidate: Mapping[str, Any], stage: str) -> list[str]:
    """A constant multiclass truth.

    A log loss is not held to the truth's own class frequencies: they are an oracle a model
    trained on an earlier season cannot know (Seattle's weather in spring after a winter), so
    a model that ranks the classes well would be refused. Chance ranking is caught by the
    AUC bar, and learning nothing by the comparison with the class-prior baseline, which
    knows only the training rows.
    """
    if _stored(candidate, "classes_present") == 1.0:
        return [f"The {stage} labels are constant (one class): nothing can be ranked."]
    return []


def _chance_bar(metrics: Mapping[str, Any]) -> float:
    """The AUC a random ranking stays under 95% of the time (Mann-Whitney null), or 0.5.

    For a multiclass model (metrics with ``n_classes``) the bar is that of one class's
    one-vs-rest AUC with balanced classes: the macro average of k correlated AUCs is no
    noisier than one of them.
    """
    n, rate = _stored(metrics, "n"), _stored(metrics, "positive_rate")
    k = _stored(metrics, "n_classes")
    if k >= 2:
        rate = 1.0 / k
    positives, negatives = n * rate, n * (1 - rate)
    if not (positives >= 1 and negatives >= 1):
        return _CHANCE_AUC
    se = math.sqrt((positives + negatives + 1) / (12 * positives * negatives))
    return _CHANCE_AUC + _ONE_SIDED_95 * se


def _stored(metrics: Mapping[str, Any], name: str) -> float:
    # Metrics read back from JSON hold null where a value was nan.
    value = metrics.get(name)
    return math.nan if value is None else float(value)


#: Fewest test rows on which two models are compared at all; between it and ``min_rows`` a
#: challenger must be better beyond doubt.
SMALL_TEST_FLOOR = 30


def _first_model_warnings(n: int, policy: GatePolicy) -> list[str]:
    if n >= policy.min_rows:
        return []
    return [
        f"Warning: the test set has {n} rows, fewer than the {policy.min_rows} the gate needs "
        "to compare with production; with no production model yet the challenger is judged on "
        "its own. Its successor will be compared with it once enough rows have arrived."
    ]


def _threshold_failures(
    metric: str, value: float, n: int, policy: GatePolicy, *, first: bool = False
) -> list[str]:
    reasons: list[str] = []
    if n < SMALL_TEST_FLOOR and not first:
        reasons.append(
            f"The test set has {n} rows; the gate needs at least {SMALL_TEST_FLOOR} to compare "
            "two models at all."
        )
    if math.isnan(value):
        reasons.append(
            f"The challenger's {metric} cannot be computed on this test set "
            "(a single class or a constant truth)."
        )
    elif policy.floor is not None and not _meets_floor(metric, value, policy.floor):
        word = "below the floor" if higher_is_better(metric) else "above the ceiling"
        reasons.append(f"The challenger's {metric} {value:.3f} is {word} {policy.floor:.3f}.")
    return reasons


def _meets_floor(metric: str, value: float, floor: float) -> bool:
    return value >= floor if higher_is_better(metric) else value <= floor


def _comparison_sentence(
    metric: str,
    values: tuple[float, float],
    delta: float,
    interval: tuple[float, float],
    margin: float,
    policy: GatePolicy,
) -> str:
    challenger, production = values
    ci_low, ci_high = interval
    orientation = ""
    if not higher_is_better(metric):
        orientation = f" (positive means the challenger's {metric} is lower)"
    head = (
        f"{metric} {challenger:.3f} vs production {production:.3f}: "
        f"difference {delta:+.3f}{orientation}"
    )
    one_sided = f"one-sided {policy.confidence * 100:g}% bound"
    if not math.isfinite(ci_low):
        return (
            f"{head}; the {one_sided} could not be computed, so the challenger cannot be "
            "shown not to be worse."
        )
    allowed = f"the allowed margin {-margin:.3f}"
    if margin_kind(metric) is MarginKind.RELATIVE:
        allowed += f" ({policy.margin:.1%} of production's {metric})"
    interval_text = f"{(2 * policy.confidence - 1) * 100:g}% CI [{ci_low:.3f}, {ci_high:.3f}]"
    if not ci_low > -margin:
        return f"{head}, {interval_text}: the {one_sided} {ci_low:.3f} is below {allowed}."
    if delta < 0:
        return (
            f"{head}, {interval_text}: not worse than {allowed}, but no better than production "
            "on these rows, so production stays."
        )
    return (
        f"{head}, {interval_text}: the {one_sided} {ci_low:.3f} lies above {allowed}: "
        "the challenger is not worse, and better on these rows."
    )


def _mcnemar_sentence(only_challenger: int, only_production: int, p: float, exact: bool) -> str:
    form = "exact binomial" if exact else "chi-square"
    return (
        f"McNemar ({form}): {only_challenger} rows only the challenger classifies right, "
        f"{only_production} only production does; p = {p:.3g}."
    )
