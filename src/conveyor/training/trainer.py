"""Train the baseline and a LightGBM candidate on one split, and score both on the validation rows.

The baseline (the training positive rate, or the training mean) is what a model must beat to be
worth anything; the candidate is a LightGBM booster trained on the shared encoding of
:func:`conveyor.core.signature.encode_frame`, with categorical inputs split natively and early
stopping on the validation rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from conveyor.core.errors import InvalidInputError
from conveyor.core.model import Predictor
from conveyor.core.schema import ColumnKind
from conveyor.core.signature import Signature, encode_frame
from conveyor.evaluation import evaluate, is_better, primary_metric
from conveyor.training.models import LightGBMModel, MeanModel, PriorModel, lightgbm

if TYPE_CHECKING:
    import lightgbm as lgb

#: LightGBM parameters used unless :attr:`TrainConfig.params` overrides them.
#: ``num_boost_round`` and ``early_stopping_rounds`` steer the boosting loop. One thread by
#: default: LightGBM's OpenMP threads spin while waiting, so on a machine also serving or running
#: other trials a multi-threaded fit can take ten times longer, not half as long; the saved model
#: keeps the setting, so it also predicts on one thread.
DEFAULT_PARAMS: Mapping[str, Any] = MappingProxyType(
    {
        "num_leaves": 31,
        "learning_rate": 0.05,
        "min_data_in_leaf": 50,
        "feature_fraction": 0.9,
        "bagging_fraction": 1.0,
        "lambda_l2": 0.0,
        "max_bin": 255,
        "num_boost_round": 500,
        "early_stopping_rounds": 30,
        "seed": 0,
        "num_threads": 1,
        "deterministic": True,
        "force_col_wise": True,
        "verbosity": -1,
    }
)

_OBJECTIVES = {
    "binary": ("binary", "cross_entropy", "xentropy"),
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
_DEFAULT_METRIC = {"binary": "binary_logloss", "regression": "l2"}
_PROGRESS_EVERY = 50


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """What to train.

    Parameters
    ----------
    task : {"binary", "regression"}
    label : str
        The label column of the training and validation frames.
    params : mapping, optional
        LightGBM parameters overriding :data:`DEFAULT_PARAMS`, including
        ``num_boost_round`` and ``early_stopping_rounds`` (0 turns early stopping off).
    """

    task: str
    label: str
    params: Mapping[str, Any] = field(default_factory=dict)

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
        }


@dataclass(frozen=True, slots=True)
class TrainResult:
    """The trained baseline and candidate, and how they did on the validation rows.

    Attributes
    ----------
    candidate : LightGBMModel
        The booster, cut to its best iteration.
    baseline : PriorModel or MeanModel
    valid_metrics : mapping
        ``{"candidate": metrics, "baseline": metrics}`` from
        :func:`conveyor.evaluation.evaluate`.
    best_iteration : int
        Boosting rounds kept.
    params : mapping
        The LightGBM parameters used.
    feature_importance : mapping
        Total split gain per signature input.
    beats_baseline : bool
        Whether the candidate's primary metric is strictly better than the baseline's.
    train_rows, valid_rows : int
    train_seconds : float
        Wall time of the LightGBM fit.
    """

    candidate: LightGBMModel
    baseline: Predictor
    valid_metrics: Mapping[str, Mapping[str, float]]
    best_iteration: int
    params: Mapping[str, Any]
    feature_importance: Mapping[str, float]
    beats_baseline: bool
    train_rows: int
    valid_rows: int
    train_seconds: float

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
        }


def train_candidates(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    *,
    signature: Signature,
    config: TrainConfig,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Fit the baseline and a LightGBM candidate on ``train`` and evaluate both on ``valid``.

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
        If a frame is empty or lacks a column, the label is missing somewhere, a binary label is
        not 0/1 or boolean, the training label is constant, or the signature's task differs
        from the config's.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from conveyor.core.schema import ColumnKind, ColumnSchema
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=2000)
    >>> df = pd.DataFrame({"x": x, "y": (x + rng.normal(size=2000) > 0).astype(int)})
    >>> sig = Signature(inputs=(ColumnSchema("x", ColumnKind.NUMERIC),))
    >>> result = train_candidates(
    ...     df[:1500], df[1500:], signature=sig, config=TrainConfig(task="binary", label="y")
    ... )
    >>> result.beats_baseline
    True
    """
    report = progress or (lambda message: None)
    if signature.task != config.task:
        raise InvalidInputError(
            f"The signature's task must match the config's task {config.task!r}. "
            f"Got {signature.task!r} instead."
        )
    if not signature.inputs:
        raise InvalidInputError("The signature must have at least one input. Got none instead.")
    x_train, y_train = _encode_split(train, "train", signature, config)
    x_valid, y_valid = _encode_split(valid, "valid", signature, config)
    if y_train.min() == y_train.max():
        raise InvalidInputError(
            f"The label {config.label!r} of the training rows must vary. "
            f"Got the constant {y_train[0]:g} instead."
        )

    report(f"Fitting the baseline on {len(y_train)} rows.")
    baseline: Predictor
    if config.task == "binary":
        baseline = PriorModel(signature=signature, positive_rate=float(y_train.mean()))
    else:
        baseline = MeanModel(signature=signature, mean=float(y_train.mean()))

    params = config.resolved_params()
    report(
        f"Training LightGBM on {len(y_train)} rows x {x_train.shape[1]} features "
        f"(up to {params['num_boost_round']} rounds)."
    )
    started = time.perf_counter()
    booster, best_iteration = _fit_booster(
        x_train, y_train, x_valid, y_valid, signature, params, report
    )
    candidate = LightGBMModel(signature=signature, booster=booster)
    train_seconds = time.perf_counter() - started
    report(f"Kept {best_iteration} rounds after {train_seconds:.2f} s.")

    valid_metrics = {
        "candidate": evaluate(config.task, y_valid, candidate.predict_encoded(x_valid)),
        "baseline": evaluate(config.task, y_valid, baseline.predict_encoded(x_valid)),
    }
    metric = primary_metric(config.task)
    gains = booster.feature_importance(importance_type="gain")
    return TrainResult(
        candidate=candidate,
        baseline=baseline,
        valid_metrics=valid_metrics,
        best_iteration=best_iteration,
        params=params,
        feature_importance={n: float(g) for n, g in zip(signature.names, gains, strict=True)},
        beats_baseline=is_better(
            metric, valid_metrics["candidate"][metric], valid_metrics["baseline"][metric]
        ),
        train_rows=len(y_train),
        valid_rows=len(y_valid),
        train_seconds=train_seconds,
    )


def _fit_booster(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    signature: Signature,
    params: Mapping[str, Any],
    report: Callable[[str], None],
) -> tuple[lgb.Booster, int]:
    booster_params = dict(params)
    rounds = int(booster_params.pop("num_boost_round"))
    patience = int(booster_params.pop("early_stopping_rounds"))
    categorical = [
        j for j, col in enumerate(signature.inputs) if col.kind is ColumnKind.CATEGORICAL
    ]
    lgb = lightgbm()
    train_set = lgb.Dataset(
        x_train, label=y_train, categorical_feature=categorical, params=booster_params
    )
    valid_set = lgb.Dataset(x_valid, label=y_valid, reference=train_set)
    callbacks: list[Callable[..., None]] = [_progress_callback(report)]
    if patience > 0:
        callbacks.append(lgb.early_stopping(patience, first_metric_only=True, verbose=False))
    booster = lgb.train(
        booster_params,
        train_set,
        num_boost_round=rounds,
        valid_sets=[valid_set],
        valid_names=["valid"],
        callbacks=callbacks,
    )
    best = booster.best_iteration if patience > 0 and booster.best_iteration > 0 else rounds
    best = min(best, booster.current_iteration())
    if best < booster.current_iteration():
        # Keep only the rounds early stopping chose, so the artifact and every prediction
        # agree without anyone passing num_iteration around.
        booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    return booster, best


def _progress_callback(report: Callable[[str], None]) -> Callable[..., None]:
    def callback(env: Any) -> None:
        done = env.iteration + 1
        if done % _PROGRESS_EVERY == 0 and env.evaluation_result_list:
            _, metric, value, _ = env.evaluation_result_list[0][:4]
            report(f"Round {done}: valid {metric} {value:.5f}.")

    return callback


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
    return encode_frame(frame, signature), _label_vector(frame[config.label], name, config.task)


def _label_vector(values: pd.Series, name: str, task: str) -> np.ndarray:
    label = str(values.name)
    if values.isna().any():
        raise InvalidInputError(
            f"The label {label!r} of the {name} rows must not be missing. "
            f"Got {int(values.isna().sum())} missing values instead."
        )
    if pd.api.types.is_bool_dtype(values):
        return np.asarray(values.astype("float64").to_numpy(), dtype=np.float64)
    try:
        y: np.ndarray = pd.to_numeric(values, errors="raise").astype("float64").to_numpy()
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"The label {label!r} of the {name} rows must be numeric"
            f"{' 0/1 or boolean' if task == 'binary' else ''}. Got {values.dtype} instead."
        ) from exc
    if task == "binary":
        bad = ~np.isin(y, (0.0, 1.0))
        if bad.any():
            raise InvalidInputError(
                f"The label {label!r} of the {name} rows of a binary task must be 0/1 or boolean."
                f" Got {values[bad].tolist()[0]!r} instead."
            )
    elif not np.isfinite(y).all():
        raise InvalidInputError(
            f"The label {label!r} of the {name} rows must be finite. Got an infinite value instead."
        )
    return y
