"""Model adapters: one way to fit every kind of model on the shared encoded matrix.

An adapter turns training rows (the float64 matrix of
:func:`conveyor.core.signature.encode_frame` and a label vector) into a fitted
:class:`~conveyor.training.models.ModelMethods` model, which predicts, saves, loads and knows its
size the same way whatever library is behind it::

    fitted = ADAPTERS["lightgbm"].fit(data, params={"num_leaves": 63})
    fitted.model.predict_proba(x)

LightGBM splits categorical inputs natively (``categorical_feature``), XGBoost too
(``enable_categorical`` with ``feature_types``); scikit-learn estimators and pipelines take the
matrix as it is, and the linear baseline one-hot encodes the categorical codes itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from conveyor.core.errors import InvalidInputError
from conveyor.core.model import Predictor
from conveyor.core.schema import ColumnKind
from conveyor.core.signature import Signature
from conveyor.training.formats import xgboost
from conveyor.training.models import (
    ClassPriorModel,
    LightGBMModel,
    MeanModel,
    MedianModel,
    PriorModel,
    SklearnModel,
    XGBoostModel,
    lightgbm,
)

#: Called with (boosting round, validation metric value) after every round, so a caller can
#: stop an unpromising fit (Optuna pruning) by raising.
IterationHook = Callable[[int, float], None]
Progress = Callable[[str], None]

#: LightGBM parameters used unless overridden. ``num_boost_round`` and ``early_stopping_rounds``
#: steer the boosting loop. One thread by default: LightGBM's OpenMP threads spin while
#: waiting, so on a machine also serving or running other trials a multi-threaded fit can take
#: ten times longer, not half as long; the saved model keeps the setting.
LIGHTGBM_DEFAULTS: Mapping[str, Any] = MappingProxyType(
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

#: XGBoost parameters used unless overridden (one thread, histogram trees, native categories).
XGBOOST_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "eta": 0.1,
        "max_depth": 6,
        "min_child_weight": 1.0,
        "subsample": 1.0,
        "colsample_bytree": 0.9,
        "lambda": 1.0,
        "max_bin": 256,
        "max_cat_to_onehot": 1,
        "tree_method": "hist",
        "nthread": 1,
        "seed": 0,
        "num_boost_round": 500,
        "early_stopping_rounds": 30,
    }
)

#: Parameters of the regularised linear baseline: inverse regularisation strength ``C`` of a
#: logistic regression (binary) or ``alpha`` of a ridge regression, the solver's tolerance
#: (1e-3 stops lbfgs in a third of the iterations with the same ROC-AUC on standardised inputs),
#: and the most training rows it fits on (a seeded sample above that).
LINEAR_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {"C": 1.0, "alpha": 1.0, "max_iter": 300, "tol": 1e-3, "max_rows": 50_000}
)

_PROGRESS_EVERY = 50

#: Objective and validation metric per task: LightGBM's and XGBoost's names.
_LIGHTGBM_TASK: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "binary": {"objective": "binary", "metric": "binary_logloss"},
        "multiclass": {"objective": "multiclass", "metric": "multi_logloss"},
        "regression": {"objective": "regression", "metric": "l2"},
    }
)
_XGBOOST_TASK: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "binary": {"objective": "binary:logistic", "eval_metric": "logloss"},
        "multiclass": {"objective": "multi:softprob", "eval_metric": "mlogloss"},
        "regression": {"objective": "reg:squarederror", "eval_metric": "rmse"},
    }
)


@dataclass(frozen=True, slots=True)
class FitData:
    """Encoded training and validation rows.

    Attributes
    ----------
    signature : Signature
    x_train, y_train : numpy.ndarray
    x_valid, y_valid : numpy.ndarray
        Validation rows: early stopping and pruning look at them, nothing is fitted on them.
    sample_weight : numpy.ndarray, optional
        One weight per training row (class weights, importance weights).
    """

    signature: Signature
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    sample_weight: np.ndarray | None = None

    @property
    def task(self) -> str:
        return self.signature.task

    @property
    def n_classes(self) -> int:
        """The classes of a multiclass label (0 for other tasks)."""
        return len(self.signature.classes) if self.task == "multiclass" else 0

    @property
    def categorical(self) -> list[int]:
        """Positions of the categorical inputs in the matrix."""
        return [
            j for j, col in enumerate(self.signature.inputs) if col.kind is ColumnKind.CATEGORICAL
        ]


@dataclass(frozen=True, slots=True)
class Fitted:
    """A fitted model and what its fit found.

    Attributes
    ----------
    model : Predictor
        Has ``predict``, ``predict_proba``, ``save``, ``load`` and ``size_bytes`` too.
    params : mapping
        The parameters the fit used.
    best_iteration : int
        Boosting rounds kept (0 for models that do not boost).
    feature_importance : mapping
        Importance per signature input (split gain for trees, |coefficient| summed over the
        encoded columns for linear models).
    fit_seconds : float
    """

    model: Predictor
    params: Mapping[str, Any]
    best_iteration: int = 0
    feature_importance: Mapping[str, float] = field(default_factory=dict)
    fit_seconds: float = 0.0


class ModelAdapter(Protocol):
    """Fits one kind of model. ``name`` is how ``conveyor.yaml`` refers to it."""

    @property
    def name(self) -> str: ...

    def fit(
        self,
        data: FitData,
        *,
        params: Mapping[str, Any] | None = None,
        progress: Progress | None = None,
        on_iteration: IterationHook | None = None,
    ) -> Fitted: ...


def _quiet(_message: str) -> None:
    return None


def _split_rounds(params: dict[str, Any], name: str) -> tuple[int, int]:
    rounds = params.pop("num_boost_round")
    patience = params.pop("early_stopping_rounds")
    for key, value, low in (
        ("num_boost_round", rounds, 1),
        ("early_stopping_rounds", patience, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise InvalidInputError(
                f"The {key!r} parameter of the {name} model must be an int in [{low}, inf). "
                f"Got {value!r} instead."
            )
    return int(rounds), int(patience)


@dataclass(frozen=True, slots=True)
class LightGBMAdapter:
    """LightGBM boosting with native categorical splits and early stopping on validation."""

    name: str = "lightgbm"

    def resolved_params(
        self, task: str, params: Mapping[str, Any] | None, *, n_classes: int = 0
    ) -> dict[str, Any]:
        """The booster's parameters: defaults, the task's objective, then ``params``."""
        return {
            **_LIGHTGBM_TASK[task],
            **({"num_class": n_classes} if task == "multiclass" else {}),
            **LIGHTGBM_DEFAULTS,
            **(params or {}),
        }

    def fit(
        self,
        data: FitData,
        *,
        params: Mapping[str, Any] | None = None,
        progress: Progress | None = None,
        on_iteration: IterationHook | None = None,
    ) -> Fitted:
        report = progress or _quiet
        resolved = self.resolved_params(data.task, params, n_classes=data.n_classes)
        booster_params = dict(resolved)
        rounds, patience = _split_rounds(booster_params, self.name)
        lgb = lightgbm()
        started = time.perf_counter()
        train_set = lgb.Dataset(
            data.x_train,
            label=data.y_train,
            weight=data.sample_weight,
            categorical_feature=data.categorical,
            params=booster_params,
        )
        valid_set = lgb.Dataset(data.x_valid, label=data.y_valid, reference=train_set)
        callbacks: list[Callable[..., None]] = [_lightgbm_callback(report, on_iteration)]
        if patience > 0:
            callbacks.append(lgb.early_stopping(patience, first_metric_only=True, verbose=False))
        try:
            booster = lgb.train(
                booster_params,
                train_set,
                num_boost_round=rounds,
                valid_sets=[valid_set],
                valid_names=["valid"],
                callbacks=callbacks,
            )
        except lgb.basic.LightGBMError as exc:
            raise InvalidInputError(f"LightGBM refused the parameters {resolved}: {exc}") from exc
        best = booster.best_iteration if patience > 0 and booster.best_iteration > 0 else rounds
        best = min(best, booster.current_iteration())
        if best < booster.current_iteration():
            # Keep only the rounds early stopping chose, so the artifact and every prediction
            # agree without anyone passing num_iteration around.
            booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
        gains = booster.feature_importance(importance_type="gain")
        return Fitted(
            model=LightGBMModel(signature=data.signature, booster=booster),
            params=resolved,
            best_iteration=best,
            feature_importance={
                n: float(g) for n, g in zip(data.signature.names, gains, strict=True)
            },
            fit_seconds=time.perf_counter() - started,
        )


def _lightgbm_callback(report: Progress, hook: IterationHook | None) -> Callable[..., None]:
    def callback(env: Any) -> None:
        done = env.iteration + 1
        if not env.evaluation_result_list:
            return
        _, metric, value, _ = env.evaluation_result_list[0][:4]
        if done % _PROGRESS_EVERY == 0:
            report(f"Round {done}: valid {metric} {value:.5f}.")
        if hook is not None:
            hook(done, float(value))

    return callback


@dataclass(frozen=True, slots=True)
class XGBoostAdapter:
    """XGBoost histogram boosting with native categorical splits and early stopping."""

    name: str = "xgboost"

    def resolved_params(
        self, task: str, params: Mapping[str, Any] | None, *, n_classes: int = 0
    ) -> dict[str, Any]:
        """The booster's parameters: defaults, the task's objective, then ``params``."""
        return {
            **_XGBOOST_TASK[task],
            **({"num_class": n_classes} if task == "multiclass" else {}),
            **XGBOOST_DEFAULTS,
            **(params or {}),
        }

    def fit(
        self,
        data: FitData,
        *,
        params: Mapping[str, Any] | None = None,
        progress: Progress | None = None,
        on_iteration: IterationHook | None = None,
    ) -> Fitted:
        report = progress or _quiet
        resolved = self.resolved_params(data.task, params, n_classes=data.n_classes)
        booster_params = dict(resolved)
        rounds, patience = _split_rounds(booster_params, self.name)
        xgb = xgboost()
        types = ["c" if j in set(data.categorical) else "q" for j in range(data.x_train.shape[1])]
        started = time.perf_counter()
        dtrain = xgb.DMatrix(
            data.x_train,
            label=data.y_train,
            weight=data.sample_weight,
            feature_types=types,
            enable_categorical=True,
        )
        dvalid = xgb.DMatrix(
            data.x_valid, label=data.y_valid, feature_types=types, enable_categorical=True
        )
        try:
            booster = xgb.train(
                booster_params,
                dtrain,
                num_boost_round=rounds,
                evals=[(dvalid, "valid")],
                early_stopping_rounds=patience or None,
                verbose_eval=False,
                callbacks=[_xgboost_callback(xgb, report, on_iteration)],
            )
        except xgb.core.XGBoostError as exc:
            raise InvalidInputError(f"XGBoost refused the parameters {resolved}: {exc}") from exc
        rounds_done = booster.num_boosted_rounds()
        best = int(getattr(booster, "best_iteration", rounds_done - 1)) + 1 if patience else rounds
        best = min(best, rounds_done)
        if best < rounds_done:
            booster = booster[:best]
        gains = booster.get_score(importance_type="total_gain")
        names = data.signature.names
        return Fitted(
            model=XGBoostModel(signature=data.signature, booster=booster),
            params=resolved,
            best_iteration=best,
            feature_importance={n: float(gains.get(f"f{j}", 0.0)) for j, n in enumerate(names)},
            fit_seconds=time.perf_counter() - started,
        )


def _xgboost_callback(xgb: Any, report: Progress, hook: IterationHook | None) -> Any:
    class Hook(xgb.callback.TrainingCallback):  # type: ignore[misc]
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            series = next(iter(evals_log.get("valid", {}).items()), None)
            if series is None:
                return False
            metric, values = series
            value = float(values[-1])
            if (epoch + 1) % _PROGRESS_EVERY == 0:
                report(f"Round {epoch + 1}: valid {metric} {value:.5f}.")
            if hook is not None:
                hook(epoch + 1, value)
            return False

    return Hook()


def linear_pipeline(signature: Signature, params: Mapping[str, Any] | None = None) -> Any:
    """The regularised linear baseline as an unfitted scikit-learn pipeline.

    Numeric inputs are median-imputed and standardised, categorical codes one-hot encoded
    (missing as a category of its own, unseen ignored), then a logistic regression (binary; a
    multinomial one for multiclass) or a ridge regression (regression).
    """
    from sklearn.compose import ColumnTransformer  # noqa: PLC0415 - scikit-learn is slow to import
    from sklearn.impute import SimpleImputer  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression, Ridge  # noqa: PLC0415
    from sklearn.pipeline import Pipeline  # noqa: PLC0415
    from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: PLC0415

    resolved = {**LINEAR_DEFAULTS, **(params or {})}
    categorical = [
        j for j, col in enumerate(signature.inputs) if col.kind is ColumnKind.CATEGORICAL
    ]
    numeric = [j for j in range(len(signature.inputs)) if j not in set(categorical)]
    parts: list[tuple[str, Any, list[int]]] = []
    if numeric:
        steps = [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
        parts.append(("numeric", Pipeline(steps), numeric))
    if categorical:
        encode = [
            ("impute", SimpleImputer(strategy="constant", fill_value=-1.0)),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
        parts.append(("categorical", Pipeline(encode), categorical))
    head: Any
    if signature.task in ("binary", "multiclass"):
        # lbfgs fits a multinomial logistic regression on more than two classes.
        head = LogisticRegression(
            C=float(resolved["C"]), max_iter=int(resolved["max_iter"]), tol=float(resolved["tol"])
        )
    else:
        head = Ridge(alpha=float(resolved["alpha"]))
    return Pipeline([("prepare", ColumnTransformer(parts)), ("model", head)])


@dataclass(frozen=True, slots=True)
class SklearnAdapter:
    """A scikit-learn estimator or pipeline, fitted on the encoded matrix.

    Parameters
    ----------
    name : str
    build : callable
        ``build(signature, params)`` returns a fresh unfitted estimator; the estimator must be
        storable with skops under Conveyor's allowlist to be registered.
    max_rows : int, optional
        Fit on a seeded sample of at most this many training rows.
    """

    name: str
    build: Callable[[Signature, Mapping[str, Any]], Any]
    max_rows: int | None = None

    @classmethod
    def of(cls, estimator: Any, *, name: str = "sklearn") -> SklearnAdapter:
        """An adapter fitting clones of ``estimator`` (parameters given to ``fit`` are set
        on the clone with ``set_params``)."""
        from sklearn.base import clone  # noqa: PLC0415

        def build(_signature: Signature, params: Mapping[str, Any]) -> Any:
            return clone(estimator).set_params(**params)

        return cls(name=name, build=build)

    def fit(
        self,
        data: FitData,
        *,
        params: Mapping[str, Any] | None = None,
        progress: Progress | None = None,
        on_iteration: IterationHook | None = None,
    ) -> Fitted:
        resolved = dict(params or {})
        estimator = self.build(data.signature, resolved)
        x, y, w = data.x_train, data.y_train, data.sample_weight
        limit = self.max_rows
        if limit is not None and len(y) > limit:
            keep = np.sort(np.random.default_rng(0).choice(len(y), size=limit, replace=False))
            x, y, w = x[keep], y[keep], (w[keep] if w is not None else None)
        (progress or _quiet)(f"Fitting {self.name} on {len(y)} rows.")
        started = time.perf_counter()
        fit_params: dict[str, Any] = {}
        if w is not None:
            steps = getattr(estimator, "steps", None)
            key = f"{steps[-1][0]}__sample_weight" if steps else "sample_weight"
            fit_params[key] = w
        target = y if data.task == "regression" else y.astype(np.int64)
        try:
            estimator.fit(x, target, **fit_params)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"The {self.name} model could not be fitted: {exc}") from exc
        return Fitted(
            model=SklearnModel(signature=data.signature, estimator=estimator),
            params=resolved,
            feature_importance=_linear_importance(estimator, data.signature, x),
            fit_seconds=time.perf_counter() - started,
        )


def _linear_importance(estimator: Any, signature: Signature, x: np.ndarray) -> dict[str, float]:
    """Per input, the standard deviation over (up to 10,000) training rows of its term in the
    linear predictor: |coefficient| for a standardised numeric input, and for a one-hot
    encoded categorical input the spread of its categories' coefficients weighted by how often
    each occurs."""
    steps = getattr(estimator, "named_steps", None)
    if not steps or "prepare" not in steps or not hasattr(steps.get("model"), "coef_"):
        return {}
    prepare = steps["prepare"]
    # One row of coefficients per class of a multinomial model, one row otherwise.
    coef = np.atleast_2d(steps["model"].coef_)
    rows = x[: min(len(x), 10_000)]
    importance = dict.fromkeys(signature.names, 0.0)
    offset = 0
    for name, transformer, columns in prepare.transformers_:
        if name == "remainder" or transformer == "drop":
            continue
        encoded = transformer.transform(rows[:, columns])
        encoded = np.asarray(encoded.toarray() if hasattr(encoded, "toarray") else encoded)
        if name == "categorical":
            sizes = [len(c) for c in transformer.named_steps["onehot"].categories_]
        else:
            sizes = [1] * len(columns)
        local = 0
        for j, size in zip(columns, sizes, strict=True):
            block = coef[:, offset + local : offset + local + size]
            term = encoded[:, local : local + size] @ block.T
            importance[signature.names[j]] = float(np.std(term, axis=0).mean())
            local += size
        offset += local
    return importance


def linear_adapter() -> SklearnAdapter:
    """The regularised linear baseline (see :func:`linear_pipeline`)."""
    return SklearnAdapter(
        name="linear",
        build=linear_pipeline,
        max_rows=int(LINEAR_DEFAULTS["max_rows"]),
    )


@dataclass(frozen=True, slots=True)
class ConstantAdapter:
    """A constant baseline: the positive rate or the class frequencies (``prior``), the
    ``mean`` or the ``median`` label."""

    name: str

    def fit(
        self,
        data: FitData,
        *,
        params: Mapping[str, Any] | None = None,
        progress: Progress | None = None,
        on_iteration: IterationHook | None = None,
    ) -> Fitted:
        y = data.y_train
        model: Predictor
        if self.name == "prior" and data.task == "multiclass":
            counts = np.bincount(y.astype(np.int64), minlength=data.n_classes)
            model = ClassPriorModel(data.signature, tuple(float(c) for c in counts / len(y)))
        elif self.name == "prior":
            model = PriorModel(data.signature, float(np.mean(y)))
        elif self.name == "mean":
            model = MeanModel(data.signature, float(np.mean(y)))
        elif self.name == "median":
            model = MedianModel(data.signature, float(np.median(y)))
        else:
            raise InvalidInputError(
                "A ConstantAdapter name must be 'prior', 'mean' or 'median'. "
                f"Got {self.name!r} instead."
            )
        return Fitted(model=model, params={})


#: Candidate adapters by the name ``conveyor.yaml`` uses in ``training.models``.
ADAPTERS: Mapping[str, ModelAdapter] = MappingProxyType(
    {
        "lightgbm": LightGBMAdapter(),
        "xgboost": XGBoostAdapter(),
        "linear": linear_adapter(),
    }
)

#: The baselines trained with every candidate, per task.
BASELINES: Mapping[str, tuple[ModelAdapter, ...]] = MappingProxyType(
    {
        "binary": (ConstantAdapter("prior"), linear_adapter()),
        "multiclass": (ConstantAdapter("prior"), linear_adapter()),
        "regression": (ConstantAdapter("mean"), ConstantAdapter("median"), linear_adapter()),
    }
)


def get_adapter(name: str) -> ModelAdapter:
    """The candidate adapter called ``name``.

    Raises
    ------
    InvalidInputError
        If no adapter has that name.
    """
    if name not in ADAPTERS:
        raise InvalidInputError(
            f"The model name must be one of {sorted(ADAPTERS)}. Got {name!r} instead."
        )
    return ADAPTERS[name]
