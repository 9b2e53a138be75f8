"""Train the baselines and the candidates on one split, and score them all on the validation rows.

The baselines (the training positive rate or class frequencies, or the mean and median label,
and a regularised linear model) are the bar: a candidate that does not beat the best of them on
validation is not the winner. Candidates are the configured model adapters (LightGBM by default;
XGBoost, scikit-learn pipelines), optionally an ensemble of the best of them (averaging or
stacking), all fitted on the shared encoding of :func:`conveyor.core.signature.encode_frame`.
Class-imbalance options (class weights, down- or up-sampling) change the training rows only;
validation and test rows keep the distribution the model will meet.

A classification label may take any values: it is encoded by the signature's
:class:`~conveyor.core.labels.LabelCodec` (fitted on the training rows when the signature does
not carry classes yet), so a binary model scores its positive class and a multiclass model an
``(n, k)`` matrix of probabilities in the signature's class order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from conveyor.core.errors import InvalidInputError
from conveyor.core.labels import LabelCodec, LabelValue, Task
from conveyor.core.model import Predictor
from conveyor.core.signature import Signature, encode_frame
from conveyor.data.sampling import RebalanceMethod, class_weights, rebalance
from conveyor.evaluation import evaluate, higher_is_better, is_better, primary_metric
from conveyor.training.adapters import (
    ADAPTERS,
    BASELINES,
    LIGHTGBM_DEFAULTS,
    ConstantAdapter,
    FitData,
    Fitted,
    ModelAdapter,
)
from conveyor.training.models import EnsembleModel, ensemble_link

#: LightGBM parameters used unless :attr:`TrainConfig.params` overrides them.
DEFAULT_PARAMS: Mapping[str, Any] = LIGHTGBM_DEFAULTS

_OBJECTIVES = {
    "binary": ("binary", "cross_entropy", "xentropy"),
    "multiclass": ("multiclass", "softmax"),
    "regression": (
        "regression",
        "l2",
        "regression_l1",
        "l1",
        "huber",
        "fair",
        "poisson",
        "quantile",
        "mape",
        "gamma",
        "tweedie",
    ),
}
_DEFAULT_METRIC = {
    "binary": "binary_logloss",
    "multiclass": "multi_logloss",
    "regression": "l2",
}
ENSEMBLES = ("none", "average", "stacking")
IMBALANCE = ("none", "class_weight", "downsample", "upsample")


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """What to train.

    Parameters
    ----------
    task : {"binary", "multiclass", "regression"}
    label : str
        The label column of the training and validation frames.
    params : mapping, optional
        LightGBM parameters overriding :data:`DEFAULT_PARAMS`, including
        ``num_boost_round`` and ``early_stopping_rounds`` (0 turns early stopping off).
    models : sequence of str, default ("lightgbm",)
        Candidate adapters by name: keys of :data:`conveyor.training.adapters.ADAPTERS` or of
        ``adapters``.
    model_params : mapping, optional
        Parameters per candidate name (for ``lightgbm`` merged over ``params``).
    ensemble : {"none", "average", "stacking"}
        Also build an ensemble of the ``ensemble_size`` best candidates: their average (of the
        probability matrices for multiclass), or a logistic (binary) / linear (regression)
        stack fitted on their validation scores and scored by two-fold cross-fitting so its
        validation figure stays honest. A multiclass task cannot stack.
    ensemble_size : int, default 3
    imbalance : {"none", "class_weight", "downsample", "upsample"}
        How a classification task's training rows are rebalanced (every class weighs, or
        is sampled to, the same); validation rows never are.
    seed : int, default 0
        Seed of resampling.
    adapters : mapping, optional
        Extra adapters by name (e.g. ``SklearnAdapter.of(estimator)``) usable in ``models``.
    positive_class : str, int or bool, optional
        The positive class of a binary label when the signature carries no classes yet;
        default: inferred by :meth:`conveyor.core.labels.LabelCodec.fit`.
    """

    task: str
    label: str
    params: Mapping[str, Any] = field(default_factory=dict)
    models: Sequence[str] = ("lightgbm",)
    model_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    ensemble: str = "none"
    ensemble_size: int = 3
    imbalance: str = "none"
    seed: int = 0
    adapters: Mapping[str, ModelAdapter] = field(default_factory=dict)
    positive_class: LabelValue | None = None

    def __post_init__(self) -> None:
        if self.task not in _OBJECTIVES:
            raise InvalidInputError(
                f"The 'task' of TrainConfig must be one of {list(_OBJECTIVES)}. "
                f"Got {self.task!r} instead."
            )
        if not isinstance(self.label, str) or not self.label:
            raise InvalidInputError(
                f"The 'label' of TrainConfig must be a column name. Got {self.label!r} instead."
            )
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "models", tuple(self.models))
        known = {**ADAPTERS, **self.adapters}
        unknown = [m for m in self.models if m not in known]
        if not self.models or unknown:
            raise InvalidInputError(
                f"The 'models' of TrainConfig must be a non-empty list of names in "
                f"{sorted(known)}. Got {list(self.models)!r} instead."
            )
        if self.ensemble not in ENSEMBLES:
            raise InvalidInputError(
                f"The 'ensemble' of TrainConfig must be one of {list(ENSEMBLES)}. "
                f"Got {self.ensemble!r} instead."
            )
        if isinstance(self.ensemble_size, bool) or self.ensemble_size < 2:
            raise InvalidInputError(
                "The 'ensemble_size' of TrainConfig must be an int >= 2. "
                f"Got {self.ensemble_size!r} instead."
            )
        if self.imbalance not in IMBALANCE:
            raise InvalidInputError(
                f"The 'imbalance' of TrainConfig must be one of {list(IMBALANCE)}. "
                f"Got {self.imbalance!r} instead."
            )
        allowed = IMBALANCE if self.task in ("binary", "multiclass") else ("none",)
        if self.imbalance not in allowed:
            raise InvalidInputError(
                f"The 'imbalance' option of a {self.task} task must be one of {list(allowed)}. "
                f"Got {self.imbalance!r} instead."
            )
        if self.ensemble == "stacking" and self.task == "multiclass":
            raise InvalidInputError(
                "The 'ensemble' of a multiclass task must be 'none' or 'average'; stacking "
                "needs a binary or regression task. Got 'stacking' instead."
            )
        resolved = self.resolved_params()
        objective = resolved["objective"]
        if objective not in _OBJECTIVES[self.task]:
            raise InvalidInputError(
                f"The LightGBM objective for a {self.task} task must be one of "
                f"{list(_OBJECTIVES[self.task])}. Got {objective!r} instead."
            )
        for key, low in (("num_boost_round", 1), ("early_stopping_rounds", 0)):
            value = resolved[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidInputError(
                    f"The {key!r} parameter of TrainConfig must be an int in [{low}, inf). "
                    f"Got {value!r} instead."
                )

    def resolved_params(self) -> dict[str, Any]:
        """:data:`DEFAULT_PARAMS` overridden by :attr:`params`, with the task's objective."""
        return {
            "objective": self.task,
            "metric": _DEFAULT_METRIC[self.task],
            **DEFAULT_PARAMS,
            **self.params,
            **self.model_params.get("lightgbm", {}),
        }

    def adapter(self, name: str) -> ModelAdapter:
        return self.adapters[name] if name in self.adapters else ADAPTERS[name]

    def params_for(self, name: str) -> dict[str, Any]:
        """The parameters given to candidate ``name``'s adapter."""
        if name == "lightgbm":
            return {**self.params, **self.model_params.get("lightgbm", {})}
        return dict(self.model_params.get(name, {}))


@dataclass(frozen=True, slots=True)
class TrainResult:
    """The trained baselines and candidates, and how they did on the validation rows.

    Attributes
    ----------
    candidate : Predictor
        The winner: the model with the best validation primary metric among the candidates,
        the ensemble and the linear baseline (so a candidate that does not beat the linear
        baseline is not the winner; the linear model is).
    baseline : Predictor
        The best constant baseline on validation (prior, mean or median).
    valid_metrics : mapping
        ``{"candidate": metrics, "baseline": metrics, <model name>: metrics, ...}`` from
        :func:`conveyor.evaluation.evaluate`; baselines are named ``baseline_<name>``.
    best_iteration : int
        Boosting rounds the winner kept (0 for a model that does not boost).
    params : mapping
        The winner's parameters.
    feature_importance : mapping
        The winner's importance per signature input.
    beats_baseline : bool
        Whether the winner's primary metric is strictly better than the best constant
        baseline's.
    train_rows, valid_rows : int
    train_seconds : float
        Wall time of all the candidates' fits.
    winner : str
        The winner's name (``lightgbm``, ``xgboost``, ``ensemble``, ``baseline_linear``...).
    baseline_name : str
        The best constant baseline's name.
    models : mapping
        Every fitted model by name (candidates, ensemble, ``baseline_<name>``).
    leaderboard : tuple of dict
        ``{"name", "role", "metric", "value", "fit_seconds"}`` per model, best first.
    """

    candidate: Predictor
    baseline: Predictor
    valid_metrics: Mapping[str, Mapping[str, float]]
    best_iteration: int
    params: Mapping[str, Any]
    feature_importance: Mapping[str, float]
    beats_baseline: bool
    train_rows: int
    valid_rows: int
    train_seconds: float
    winner: str = "lightgbm"
    baseline_name: str = "baseline_prior"
    models: Mapping[str, Predictor] = field(default_factory=dict)
    leaderboard: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Everything but the models, as JSON-ready values for tracking."""
        return {
            "valid_metrics": {k: dict(v) for k, v in self.valid_metrics.items()},
            "best_iteration": self.best_iteration,
            "params": dict(self.params),
            "feature_importance": dict(self.feature_importance),
            "beats_baseline": self.beats_baseline,
            "train_rows": self.train_rows,
            "valid_rows": self.valid_rows,
            "train_seconds": self.train_seconds,
            "winner": self.winner,
            "baseline_name": self.baseline_name,
            "leaderboard": [dict(row) for row in self.leaderboard],
        }


def train_candidates(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    *,
    signature: Signature,
    config: TrainConfig,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Fit the baselines and the candidates on ``train`` and evaluate them all on ``valid``.

    Parameters
    ----------
    train, valid : pandas.DataFrame
        Rows holding every signature input and the label column. ``valid`` also drives early
        stopping.
    signature : Signature
        The model inputs; its task must be ``config.task``.
    config : TrainConfig
    progress : callable, optional
        Called with a short sentence at each stage and every 50 boosting rounds.

    Returns
    -------
    TrainResult

    Raises
    ------
    InvalidInputError
        If a frame is empty or lacks a column, the label is missing somewhere, a binary label
        does not take two values, a validation label is not a class of the training rows (or of
        the signature's classes), the training label is constant, or the signature's task
        differs from the config's.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from conveyor.core.schema import ColumnKind, ColumnSchema
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=2000)
    >>> df = pd.DataFrame({"x": x, "y": (x**2 + rng.normal(size=2000) > 1).astype(int)})
    >>> sig = Signature(inputs=(ColumnSchema("x", ColumnKind.NUMERIC),))
    >>> result = train_candidates(
    ...     df[:1500], df[1500:], signature=sig, config=TrainConfig(task="binary", label="y")
    ... )
    >>> result.winner, result.baseline_name, result.beats_baseline
    ('lightgbm', 'baseline_prior', True)
    """
    report = progress or (lambda message: None)
    if signature.task != config.task:
        raise InvalidInputError(
            f"The signature's task must match the config's task {config.task!r}. "
            f"Got {signature.task!r} instead."
        )
    if not signature.inputs:
        raise InvalidInputError("The signature must have at least one input. Got none instead.")
    signature = with_classes(signature, train, config)
    x_train, y_train = _encode_split(train, "train", signature, config)
    x_valid, y_valid = _encode_split(valid, "valid", signature, config)
    if y_train.min() == y_train.max():
        only = signature.labels.decode(y_train[:1])[0]
        raise InvalidInputError(
            f"The label {config.label!r} of the training rows must vary. "
            f"Got the constant {only!r} instead."
        )
    data = FitData(signature, x_train, y_train, x_valid, y_valid)
    balanced = _balanced(train, data, config, report)
    metric = primary_metric(config.task)
    fits: dict[str, Fitted] = {}
    valid_metrics: dict[str, dict[str, float]] = {}
    roles: dict[str, str] = {}

    report(f"Fitting the baselines on {len(y_train)} rows.")
    constant: list[str] = []
    for adapter in BASELINES[config.task]:
        name = f"baseline_{adapter.name}"
        # On the rows as they are: a baseline is the real prior, not a rebalanced one.
        fits[name] = adapter.fit(data)
        roles[name] = "baseline"
        if isinstance(adapter, ConstantAdapter):
            constant.append(name)
    started = time.perf_counter()
    for model_name in config.models:
        report(
            f"Training {model_name} on {len(balanced.y_train)} rows x {x_train.shape[1]} features."
        )
        fitted = config.adapter(model_name).fit(
            balanced, params=config.params_for(model_name), progress=report
        )
        report(
            f"{model_name}: kept {fitted.best_iteration} rounds after {fitted.fit_seconds:.2f} s."
        )
        fits[model_name] = fitted
        roles[model_name] = "candidate"
    train_seconds = time.perf_counter() - started
    for name, fitted in fits.items():
        valid_metrics[name] = evaluate(config.task, y_valid, fitted.model.predict_encoded(x_valid))
    if config.ensemble != "none":
        ensemble = _ensemble(fits, valid_metrics, roles, data, config, report)
        if ensemble is not None:
            fits["ensemble"], valid_metrics["ensemble"] = ensemble
            roles["ensemble"] = "candidate"

    board = _leaderboard(fits, valid_metrics, roles, metric)
    # A candidate must clear every baseline: when the linear baseline beats them all, it is
    # the model registered. A constant baseline is never the winner.
    winner = next(row["name"] for row in board if row["name"] not in constant)
    best_baseline = next(row["name"] for row in board if row["name"] in constant)
    beats = is_better(metric, valid_metrics[winner][metric], valid_metrics[best_baseline][metric])
    report(
        f"Winner {winner}: valid {metric} {valid_metrics[winner][metric]:.4f} against the "
        f"constant baseline {best_baseline} {valid_metrics[best_baseline][metric]:.4f}"
        f"{'' if beats else ' (it does not beat it)'}."
    )
    won = fits[winner]
    return TrainResult(
        candidate=won.model,
        baseline=fits[best_baseline].model,
        valid_metrics={
            "candidate": valid_metrics[winner],
            "baseline": valid_metrics[best_baseline],
            **valid_metrics,
        },
        best_iteration=won.best_iteration,
        params=dict(won.params),
        feature_importance=dict(won.feature_importance),
        beats_baseline=beats,
        train_rows=len(balanced.y_train),
        valid_rows=len(y_valid),
        train_seconds=train_seconds,
        winner=winner,
        baseline_name=best_baseline,
        models={name: fitted.model for name, fitted in fits.items()},
        leaderboard=tuple(board),
    )


def _balanced(
    train: pd.DataFrame, data: FitData, config: TrainConfig, report: Callable[[str], None]
) -> FitData:
    if config.imbalance == "none":
        return data
    if config.imbalance == "class_weight":
        report("Weighting the training rows so every class weighs the same.")
        return FitData(
            data.signature,
            data.x_train,
            data.y_train,
            data.x_valid,
            data.y_valid,
            sample_weight=class_weights(data.y_train),
        )
    method: RebalanceMethod = "downsample" if config.imbalance == "downsample" else "upsample"
    positions = pd.DataFrame({"y": data.y_train})
    kept = rebalance(positions, label_column="y", method=method, seed=config.seed).index
    rows = kept.to_numpy()
    report(f"Resampled the training rows by {method}: {len(data.y_train)} -> {len(rows)}.")
    return FitData(
        data.signature, data.x_train[rows], data.y_train[rows], data.x_valid, data.y_valid
    )


def _leaderboard(
    fits: Mapping[str, Fitted],
    valid_metrics: Mapping[str, Mapping[str, float]],
    roles: Mapping[str, str],
    metric: str,
) -> list[dict[str, Any]]:
    sign = -1.0 if higher_is_better(metric) else 1.0

    def key(name: str) -> tuple[float, str]:
        value = valid_metrics[name][metric]
        return (math.inf if math.isnan(value) else sign * value, name)

    return [
        {
            "name": name,
            "role": roles[name],
            "metric": metric,
            "value": valid_metrics[name][metric],
            "fit_seconds": fits[name].fit_seconds,
        }
        for name in sorted(fits, key=key)
    ]


def _ensemble(
    fits: Mapping[str, Fitted],
    valid_metrics: Mapping[str, Mapping[str, float]],
    roles: Mapping[str, str],
    data: FitData,
    config: TrainConfig,
    report: Callable[[str], None],
) -> tuple[Fitted, dict[str, float]] | None:
    metric = primary_metric(config.task)
    board = _leaderboard(fits, valid_metrics, roles, metric)
    names = [row["name"] for row in board if row["role"] == "candidate"][: config.ensemble_size]
    if len(names) < 2:
        report("Skipping the ensemble: it needs at least two candidates.")
        return None
    members = tuple(fits[n].model for n in names)
    link = "logit" if config.task == "binary" else "identity"
    if config.ensemble == "average":
        model = EnsembleModel(data.signature, members, tuple([1.0 / len(names)] * len(names)))
        scores = model.predict_encoded(data.x_valid)
    else:
        z = np.column_stack([ensemble_link(m.predict_encoded(data.x_valid), link) for m in members])
        weights, intercept, scores = _stack(z, data.y_valid, config.task, config.seed)
        model = EnsembleModel(data.signature, members, weights, intercept, link)
    report(f"Built a {config.ensemble} ensemble of {', '.join(names)}.")
    fitted = Fitted(
        model=model,
        params={"ensemble": config.ensemble, "members": names},
        feature_importance=dict(fits[names[0]].feature_importance),
        fit_seconds=sum(fits[n].fit_seconds for n in names),
    )
    return fitted, evaluate(config.task, data.y_valid, scores)


def _stack(
    z: np.ndarray, y: np.ndarray, task: str, seed: int
) -> tuple[tuple[float, ...], float, np.ndarray]:
    """Stacking weights fitted on all validation rows, and two-fold cross-fitted scores."""
    from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: PLC0415

    def fit(rows: np.ndarray) -> Any:
        if task == "binary":
            return LogisticRegression(C=1.0, max_iter=500).fit(z[rows], y[rows].astype(int))
        return LinearRegression().fit(z[rows], y[rows])

    def score(model: Any, rows: np.ndarray) -> np.ndarray:
        if task == "binary":
            return np.asarray(model.predict_proba(z[rows])[:, 1], dtype=np.float64)
        return np.asarray(model.predict(z[rows]), dtype=np.float64)

    folds = np.random.default_rng(seed).permutation(len(y)) % 2
    scores = np.empty(len(y))
    for k in (0, 1):
        fit_rows, out_rows = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        if task == "binary" and len(np.unique(y[fit_rows])) < 2:
            fit_rows = np.arange(len(y))
        scores[out_rows] = score(fit(fit_rows), out_rows)
    final = fit(np.arange(len(y)))
    weights = tuple(float(w) for w in np.ravel(final.coef_))
    return weights, float(np.ravel([final.intercept_])[0]), scores


def _encode_split(
    frame: pd.DataFrame, name: str, signature: Signature, config: TrainConfig
) -> tuple[np.ndarray, np.ndarray]:
    if len(frame) == 0:
        raise InvalidInputError(f"The {name} frame must hold at least one row. Got 0 rows instead.")
    missing = [c for c in [*signature.names, config.label] if c not in frame.columns]
    if missing:
        raise InvalidInputError(
            f"The {name} frame must have the columns {missing}; it has {list(frame.columns)}."
        )
    if config.label in signature.names:
        raise InvalidInputError(
            f"The label {config.label!r} must not be a model input. Got it in the signature."
        )
    return encode_frame(frame, signature), _label_vector(
        frame[config.label], name, signature.labels
    )


def with_classes(signature: Signature, train: pd.DataFrame, config: TrainConfig) -> Signature:
    """``signature`` with the classes of the training label when it carries none yet.

    Raises
    ------
    InvalidInputError
        As :meth:`conveyor.core.labels.LabelCodec.fit` (a binary label without exactly two
        values, a positive class that is not one of them, fewer than two classes).
    """
    if signature.classes or signature.task == Task.REGRESSION or config.label not in train:
        return signature
    labels = LabelCodec.fit(signature.task, train[config.label], positive=config.positive_class)
    return replace(signature, classes=labels.classes)


def _label_vector(values: pd.Series, name: str, labels: LabelCodec) -> np.ndarray:
    """The codes of a label column (see :class:`~conveyor.core.labels.LabelCodec`)."""
    label = str(values.name)
    if values.isna().any():
        raise InvalidInputError(
            f"The label {label!r} of the {name} rows must not be missing. "
            f"Got {int(values.isna().sum())} missing values instead."
        )
    return labels.encode(values.tolist(), what=f"label {label!r} of the {name} rows")
