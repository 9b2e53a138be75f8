"""Autologging: ``cv.autolog()`` records every scikit-learn, LightGBM and XGBoost fit as a run.

Patched (and restored by ``cv.autolog(disable=True)``):

* scikit-learn: the ``fit`` of every :class:`sklearn.base.BaseEstimator` subclass that defines
  one. Classes already imported are found by walking ``__subclasses__()``; classes imported
  later are patched as they are defined, through a hook on ``BaseEstimator.__init_subclass__``.
  This covers every estimator and pipeline, also third-party ones, without importing all of
  scikit-learn up front (MLflow's ``all_estimators()`` walk does, at a cost of seconds).
* LightGBM: ``lightgbm.train`` and the ``fit`` of ``LGBMModel`` and its subclasses.
* XGBoost: ``xgboost.train`` and the ``fit`` of ``XGBModel`` and its subclasses.

Only the outermost fit is logged: a pipeline's steps, a forest's trees or the ``train`` call
inside ``LGBMClassifier.fit`` run unpatched. A fit logs into the active run (the first one;
a further fit in the same run gets a nested child run so write-once params never clash), or
into a run of its own that ends with the fit, ``failed`` if the fit raised. Each logs:

* params (``get_params()``, or the booster params and ``num_boost_round``),
* per-iteration evaluation metrics of boosting libraries as ``<dataset>-<metric>`` with
  ``step`` = iteration, and ``training_score`` (``estimator.score`` on the training data),
* one directory artifact ``model/`` (restore it with
  :func:`conveyor.tracking.service.restore_artifact`) holding the model in a format that
  executes nothing on load: ``model.skops`` (load it with
  :func:`conveyor.training.formats.load_sklearn`), ``model.xgb.json``
  (:func:`~conveyor.training.formats.load_xgboost`) or ``model.lgb.txt``
  (``lightgbm.Booster(model_str=...)``); ``signature.json`` (column names and kinds of the
  training frame and the classes a classifier scores, a
  :class:`~conveyor.core.signature.Signature`); ``input_example.json`` (its
  first rows as JSON records) and ``feature_importance.json``. One directory means one
  run-store write per fit, which keeps autologging cheap.

Logging never breaks a fit: a logging failure is reported as a warning and the fit's result
is returned as usual.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, cast

import numpy as np
import orjson
import pandas as pd
from pandas.api import types as pdt

from conveyor.core.entities import RunId, RunStatus
from conveyor.core.errors import InvalidInputError
from conveyor.core.labels import LabelValue
from conveyor.core.schema import ColumnKind, ColumnSchema
from conveyor.core.signature import Signature
from conveyor.tracking.fluent import TrackedRun, active_run, start_run
from conveyor.tracking.service import log_artifact_files

_log = logging.getLogger(__name__)

FRAMEWORKS = ("sklearn", "lightgbm", "xgboost")
#: Rows kept as the input example.
EXAMPLE_ROWS = 5
#: Text columns with more distinct values than this are ``text`` in the signature.
MAX_CATEGORIES = 200
_MAX_PARAM_CHARS = 1000
_MARK = "__conveyor_autolog__"


@dataclass(frozen=True, slots=True)
class AutologConfig:
    """What a patched fit logs besides params and metrics."""

    log_models: bool = True
    log_input_example: bool = True


@dataclass(frozen=True, slots=True)
class _Patch:
    owner: Any
    attr: str
    original: Any  # the owner's own attribute before patching, or None if it had none


# Re-entrant: importing a library while autolog() holds it defines classes that the
# ``__init_subclass__`` hook patches.
_lock = threading.RLock()
_patches: list[_Patch] = []
_config: AutologConfig | None = None
_autologged_runs: set[RunId] = set()
_in_fit: contextvars.ContextVar[bool] = contextvars.ContextVar("conveyor_in_fit", default=False)


def autolog(
    *,
    frameworks: Sequence[str] = FRAMEWORKS,
    log_models: bool = True,
    log_input_example: bool = True,
    disable: bool = False,
) -> None:
    """Log every fit of the given frameworks as a tracked run; ``disable=True`` undoes it.

    Calling it again replaces the earlier configuration. A framework that is not installed is
    skipped (logged at INFO). The frameworks are imported by this call, so fits pay nothing
    for it.

    Parameters
    ----------
    frameworks : sequence of str, default ("sklearn", "lightgbm", "xgboost")
        Which libraries to patch.
    log_models : bool, default True
        Store the fitted model as a safe artifact.
    log_input_example : bool, default True
        Store the first rows of the training input as JSON.
    disable : bool, default False
        Restore every patched method and stop logging.

    Raises
    ------
    InvalidInputError
        If ``frameworks`` names a library other than sklearn, lightgbm and xgboost.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from sklearn.linear_model import LogisticRegression
    >>> from conveyor.config import Settings
    >>> from conveyor.tracking.fluent import set_workspace
    >>> from conveyor.workspace import Workspace
    >>> set_workspace(Workspace.open(Settings(home=Path(tempfile.mkdtemp()))))
    >>> autolog(frameworks=["sklearn"])
    >>> with start_run("fit") as run:
    ...     _ = LogisticRegression(C=0.5).fit([[0.0], [1.0], [2.0]], [0, 0, 1])
    >>> stored = run.fetch()
    >>> stored.params["C"], sorted(stored.metrics), sorted(stored.artifacts)
    ('0.5', ['training_score'], ['model/'])
    >>> autolog(disable=True)
    """
    if isinstance(frameworks, str) or not all(f in FRAMEWORKS for f in frameworks):
        raise InvalidInputError(
            f"The 'frameworks' parameter of autolog() must be a sequence of names from "
            f"{list(FRAMEWORKS)}. Got {frameworks!r} instead."
        )
    global _config
    with _lock:
        _restore_all()
        _config = None
        if disable:
            return
        for framework in dict.fromkeys(frameworks):
            try:
                _patches.extend(_PATCHERS[framework]())
            except ImportError as exc:
                _log.info("Autologging skips %s: it is not installed (%s).", framework, exc)
        if log_models and "sklearn" in frameworks:
            _import_skops()  # now, so the first fit does not pay for it
        _config = AutologConfig(log_models=log_models, log_input_example=log_input_example)


def _import_skops() -> ModuleType | None:
    try:
        import skops.io as sio  # noqa: PLC0415 - optional: pip install conveyor-ml[sklearn]
    except ImportError:
        return None
    return cast(ModuleType, sio)


def is_autologging() -> bool:
    """True while :func:`autolog` is enabled."""
    return _config is not None


# --- patching ---------------------------------------------------------------------------------


def _restore_all() -> None:
    while _patches:
        patch = _patches.pop()
        if patch.original is None:
            delattr(patch.owner, patch.attr)
        else:
            setattr(patch.owner, patch.attr, patch.original)


def _set(owner: Any, attr: str, value: Any) -> _Patch:
    # A class keeps only what it defines itself; restoring deletes what it merely inherited.
    original = owner.__dict__.get(attr) if isinstance(owner, type) else getattr(owner, attr)
    setattr(owner, attr, value)
    return _Patch(owner, attr, original)


def _subclasses(root: type) -> Iterator[type]:
    seen: set[type] = set()
    todo = [root]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        yield cls
        todo.extend(cls.__subclasses__())


def _patch_fit(cls: type, flavor: str) -> _Patch | None:
    fit = cls.__dict__.get("fit")
    if not callable(fit) or getattr(fit, _MARK, False):
        return None
    return _set(cls, "fit", _fit_wrapper(fit, flavor))


def _sklearn_flavor(cls: type) -> str | None:
    module = cls.__module__ or ""
    return None if module.startswith(("lightgbm", "xgboost")) else "sklearn"


def _patch_sklearn() -> list[_Patch]:
    from sklearn.base import BaseEstimator  # noqa: PLC0415 - patched only when asked for

    patches = [
        p
        for cls in _subclasses(BaseEstimator)
        if _sklearn_flavor(cls) and (p := _patch_fit(cls, "sklearn"))
    ]
    hook_original = BaseEstimator.__dict__.get("__init_subclass__")

    def init_subclass(cls: type, **kwargs: Any) -> None:
        if hook_original is not None:
            hook_original.__func__(cls, **kwargs)
        else:
            super(BaseEstimator, cls).__init_subclass__(**kwargs)
        if _sklearn_flavor(cls) and (patch := _patch_fit(cls, "sklearn")):
            with _lock:
                _patches.append(patch)

    patches.append(
        _set(BaseEstimator, "__init_subclass__", classmethod(init_subclass))  # type: ignore[arg-type]
    )
    return patches


def _patch_lightgbm() -> list[_Patch]:
    import lightgbm as lgb  # noqa: PLC0415

    patches = [p for cls in _subclasses(lgb.LGBMModel) if (p := _patch_fit(cls, "lightgbm"))]
    patches.append(_set(lgb, "train", _train_wrapper(lgb.train, "lightgbm")))
    return patches


def _patch_xgboost() -> list[_Patch]:
    import xgboost as xgb  # noqa: PLC0415

    patches = [p for cls in _subclasses(xgb.XGBModel) if (p := _patch_fit(cls, "xgboost"))]
    patches.append(_set(xgb, "train", _train_wrapper(xgb.train, "xgboost")))
    return patches


_PATCHERS: dict[str, Callable[[], list[_Patch]]] = {
    "sklearn": _patch_sklearn,
    "lightgbm": _patch_lightgbm,
    "xgboost": _patch_xgboost,
}


def _fit_wrapper(original: Callable[..., Any], flavor: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        config = _config
        if config is None or _in_fit.get():
            return original(self, *args, **kwargs)
        X = args[0] if args else kwargs.get("X")
        y = args[1] if len(args) > 1 else kwargs.get("y")
        return _logged(
            lambda: original(self, *args, **kwargs),
            lambda run, _: _log_estimator(run, config, flavor, self, X, y),
            type(self).__name__,
            flavor,
        )

    setattr(fit, _MARK, True)
    return fit


def _train_wrapper(original: Callable[..., Any], flavor: str) -> Callable[..., Any]:
    signature = inspect.signature(original)
    prepare = _lightgbm_train_call if flavor == "lightgbm" else _xgboost_train_call

    @functools.wraps(original)
    def train(*args: Any, **kwargs: Any) -> Any:
        config = _config
        if config is None or _in_fit.get():
            return original(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        log = prepare(config, bound.arguments)
        return _logged(
            lambda: original(*bound.args, **bound.kwargs), log, f"{flavor}.train", flavor
        )

    setattr(train, _MARK, True)
    return train


def _logged(
    call: Callable[[], Any],
    log: Callable[[TrackedRun, Any], None],
    name: str,
    flavor: str,
) -> Any:
    token = _in_fit.set(True)
    try:
        try:
            run, owned = _open_run(name, flavor)
        except Exception as exc:  # tracking must never stop a fit: fit untracked instead
            _log.warning("Autologging could not start a run for %s: %s", name, exc)
            return call()
        try:
            result = call()
        except BaseException:
            if owned:
                _end(run, RunStatus.FAILED)
            raise
        try:
            log(run, result)
        except Exception as exc:  # a logging failure is reported, the fit's result kept
            _log.warning("Autologging could not log the %s fit to run %s: %s", name, run.id, exc)
        if owned:
            _end(run, RunStatus.FINISHED)
        return result
    finally:
        _in_fit.reset(token)


def _open_run(name: str, flavor: str) -> tuple[TrackedRun, bool]:
    tags = {"conveyor.autolog.flavor": flavor, "conveyor.autolog.estimator": name}
    current = active_run()
    if current is None:
        return start_run(name, tags=tags), True
    with _lock:
        fresh = current.id not in _autologged_runs
        _autologged_runs.add(current.id)
    if fresh:
        current.set_tags(tags)
        return current, False
    return start_run(name, nested=True, tags=tags), True


def _end(run: TrackedRun, status: RunStatus) -> None:
    try:
        run.end(status)
    except Exception as exc:  # the fit's outcome matters more than the run's bookkeeping
        _log.warning("Autologging could not end run %s: %s", run.id, exc)


# --- what a fit logs ----------------------------------------------------------------------------


def _log_estimator(
    run: TrackedRun, config: AutologConfig, flavor: str, model: Any, X: Any, y: Any
) -> None:
    run.log_params(_params(model.get_params(deep=True)))
    if flavor == "lightgbm":
        _log_evals(run, getattr(model, "evals_result_", None) or {})
    elif flavor == "xgboost":
        _log_evals(run, model.evals_result() if hasattr(model, "evals_result_") else {})
    if y is not None and hasattr(model, "score"):
        try:
            run.log_metric("training_score", float(model.score(X, y)))
        except (TypeError, ValueError, AttributeError) as exc:
            _log.info("Autologging skips training_score of %s: %s", type(model).__name__, exc)
    files: dict[str, bytes] = {}
    names = _feature_names(X, model)
    stored = model
    if flavor == "lightgbm":
        stored = model.booster_
        _add_importance(files, stored.feature_name(), stored.feature_importance("gain"))
    elif flavor == "xgboost":
        stored = model.get_booster()
        _add_json(files, "feature_importance.json", stored.get_score(importance_type="gain"))
    elif hasattr(model, "feature_importances_"):
        _add_importance(files, names, model.feature_importances_)
    if config.log_models:
        _add_model(files, flavor, stored)
    _add_inputs(files, config, X, _task(model, {}), names, _classes(model, {}))
    _log_files(run, files)


def _lightgbm_train_call(
    config: AutologConfig, arguments: dict[str, Any]
) -> Callable[[TrackedRun, Any], None]:
    """Add an evaluation recorder to a bound ``lightgbm.train`` call; return its logger."""
    import lightgbm as lgb  # noqa: PLC0415 - only reached once lightgbm is patched

    params = dict(arguments.get("params") or {})
    rounds = arguments.get("num_boost_round")
    data = getattr(arguments.get("train_set"), "data", None)  # LightGBM may free it in training
    evals: dict[str, Any] = {}
    arguments["callbacks"] = [*(arguments.get("callbacks") or []), lgb.record_evaluation(evals)]

    def log(run: TrackedRun, booster: Any) -> None:
        files: dict[str, bytes] = {}
        run.log_params(_params({**params, "num_boost_round": rounds}))
        _log_evals(run, evals)
        names = booster.feature_name()
        _add_importance(files, names, booster.feature_importance(importance_type="gain"))
        if config.log_models:
            _add_model(files, "lightgbm", booster)
        _add_inputs(files, config, data, _task(None, params), names, _classes(None, params))
        _log_files(run, files)

    return log


def _xgboost_train_call(
    config: AutologConfig, arguments: dict[str, Any]
) -> Callable[[TrackedRun, Any], None]:
    """Make a bound ``xgboost.train`` call record its evaluations; return its logger."""
    params = dict(arguments.get("params") or {})
    rounds = arguments.get("num_boost_round")
    dtrain = arguments.get("dtrain")
    if arguments.get("evals_result") is None:
        arguments["evals_result"] = {}
    evals: dict[str, Any] = arguments["evals_result"]

    def log(run: TrackedRun, booster: Any) -> None:
        files: dict[str, bytes] = {}
        run.log_params(_params({**params, "num_boost_round": rounds}))
        _log_evals(run, evals)
        _add_json(files, "feature_importance.json", booster.get_score(importance_type="gain"))
        if config.log_models:
            _add_model(files, "xgboost", booster)
        names = list(getattr(dtrain, "feature_names", None) or [])
        types = list(getattr(dtrain, "feature_types", None) or ["float"] * len(names))
        if names:
            inputs = tuple(
                ColumnSchema(n, _XGB_KINDS.get(t, ColumnKind.NUMERIC))
                for n, t in zip(names, types, strict=False)
            )
            signature = Signature(
                inputs=inputs, task=_task(None, params), classes=_classes(None, params)
            )
            _add_json(files, "signature.json", signature.to_dict())
        _log_files(run, files)

    return log


_XGB_KINDS = {"c": ColumnKind.CATEGORICAL, "i": ColumnKind.BOOLEAN}


def _params(params: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in params.items():
        text = type(value).__name__ if hasattr(value, "get_params") else str(value)
        out[str(key)] = text[:_MAX_PARAM_CHARS]
    return out


def _log_evals(run: TrackedRun, evals: Mapping[str, Mapping[str, Sequence[float]]]) -> None:
    for dataset, metrics in evals.items():
        for metric, values in metrics.items():
            for step, value in enumerate(values):
                run.log_metric(f"{dataset}-{metric}", float(value), step=step)


def _add_importance(files: dict[str, bytes], names: Sequence[str], values: Any) -> None:
    importance = np.asarray(values, dtype=np.float64).ravel()
    if len(names) != len(importance):
        names = [f"f{j}" for j in range(len(importance))]
    _add_json(files, "feature_importance.json", dict(zip(names, importance.tolist(), strict=True)))


def _add_model(files: dict[str, bytes], flavor: str, model: Any) -> None:
    if flavor == "lightgbm":
        files["model.lgb.txt"] = model.model_to_string().encode("utf-8")
    elif flavor == "xgboost":
        files["model.xgb.json"] = bytes(model.save_raw(raw_format="json"))
    else:
        sio = _import_skops()
        if sio is None:
            _log.warning("Autologging skips the model: skops is not installed.")
            return
        files["model.skops"] = sio.dumps(model)


def _add_inputs(
    files: dict[str, bytes],
    config: AutologConfig,
    X: Any,
    task: str,
    names: Sequence[str],
    classes: Sequence[LabelValue] = (),
) -> None:
    signature = signature_of(X, task=task, names=names, classes=classes)
    if signature is not None:
        _add_json(files, "signature.json", signature.to_dict())
    if config.log_input_example and X is not None:
        example = input_example(X, names=signature.names if signature else names)
        if example is not None:
            _add_json(files, "input_example.json", example)


def _add_json(files: dict[str, bytes], name: str, obj: object) -> None:
    files[name] = orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY, default=str)


def _log_files(run: TrackedRun, files: Mapping[str, bytes]) -> None:
    # One directory artifact: a single run-store write however many files a fit produces.
    if files:
        log_artifact_files(run.ws, run.id, "model", files)


def _task(model: Any, params: Mapping[str, Any]) -> str:
    classes = getattr(model, "classes_", None)
    if classes is not None:
        return "binary" if len(classes) == 2 else "multiclass"
    objective = str(params.get("objective", getattr(model, "objective", "")) or "")
    if objective.startswith(("binary", "cross_entropy")):
        return "binary"
    if objective.startswith(("multi", "softmax")):
        return "multiclass"
    return "regression"


def _classes(model: Any, params: Mapping[str, Any]) -> tuple[LabelValue, ...]:
    """The classes a classifier scores, in its probability columns' order: an estimator's
    ``classes_``, else ``0..num_class-1`` of a multiclass booster; empty when unknown (a binary
    booster scores 1 against 0)."""
    classes = getattr(model, "classes_", None)
    if classes is not None:
        return tuple(v.item() if isinstance(v, np.generic) else v for v in np.asarray(classes))
    num_class = params.get("num_class")
    if _task(None, params) == "multiclass" and isinstance(num_class, int) and num_class > 1:
        return tuple(range(num_class))
    return ()


def _feature_names(X: Any, model: Any) -> list[str]:
    if isinstance(X, pd.DataFrame):
        return [str(c) for c in X.columns]
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    width = np.shape(X)[1] if np.ndim(X) == 2 else 0
    return [f"f{j}" for j in range(width)]


def signature_of(
    X: Any,
    *,
    task: str = "binary",
    names: Sequence[str] = (),
    classes: Sequence[LabelValue] = (),
) -> Signature | None:
    """The input signature of a training input, from its dtypes; None for other inputs.

    ``classes`` are the classes the model scores, in its probability columns' order (an
    estimator's ``classes_``).

    A DataFrame gives its column names and kinds (numeric, boolean, datetime; text columns are
    categorical with their sorted values, or ``text`` past :data:`MAX_CATEGORIES` values). A
    2-D array gives ``names`` (default ``f0, f1, ...``), all numeric.

    Examples
    --------
    >>> frame = pd.DataFrame({"x": [1.5, 2.0], "city": ["b", "a"], "ok": [True, False]})
    >>> [(c.name, str(c.kind), c.categories) for c in signature_of(frame).inputs]
    [('x', 'numeric', None), ('city', 'categorical', ('a', 'b')), ('ok', 'boolean', None)]
    """
    scored = tuple(classes)
    if isinstance(X, pd.DataFrame):
        inputs = tuple(_column(str(name), X[name]) for name in X.columns)
        return Signature(inputs=inputs, task=task, classes=scored)
    if np.ndim(X) != 2 or not hasattr(X, "shape"):
        return None
    width = X.shape[1]
    labels = list(names) if len(names) == width else [f"f{j}" for j in range(width)]
    inputs = tuple(ColumnSchema(n, ColumnKind.NUMERIC) for n in labels)
    return Signature(inputs=inputs, task=task, classes=scored)


def _column(name: str, values: pd.Series) -> ColumnSchema:
    dtype = values.dtype
    if pdt.is_bool_dtype(dtype):
        return ColumnSchema(name, ColumnKind.BOOLEAN)
    if pdt.is_datetime64_any_dtype(dtype):
        return ColumnSchema(name, ColumnKind.DATETIME)
    if pdt.is_numeric_dtype(dtype):
        return ColumnSchema(name, ColumnKind.NUMERIC)
    if isinstance(dtype, pd.CategoricalDtype):
        levels = dtype.categories
    else:
        levels = pd.Index(values.dropna().unique())
    if len(levels) > MAX_CATEGORIES:
        return ColumnSchema(name, ColumnKind.TEXT)
    return ColumnSchema(
        name, ColumnKind.CATEGORICAL, categories=tuple(sorted(str(v) for v in levels))
    )


def input_example(X: Any, *, names: Sequence[str] = ()) -> list[dict[str, Any]] | None:
    """The first :data:`EXAMPLE_ROWS` rows of a training input as JSON-ready records.

    Examples
    --------
    >>> input_example(np.array([[1.0, 2.0], [3.0, 4.0]]), names=["a", "b"])
    [{'a': 1.0, 'b': 2.0}, {'a': 3.0, 'b': 4.0}]
    """
    if isinstance(X, pd.DataFrame):
        head = X.head(EXAMPLE_ROWS)
        return [
            {str(k): _json_value(v) for k, v in row.items()}
            for row in head.to_dict(orient="records")
        ]
    if np.ndim(X) != 2 or not hasattr(X, "shape"):
        return None
    rows = np.asarray(X[:EXAMPLE_ROWS].toarray() if hasattr(X, "toarray") else X[:EXAMPLE_ROWS])
    labels = list(names) if len(names) == rows.shape[1] else [f"f{j}" for j in range(rows.shape[1])]
    return [dict(zip(labels, (_json_value(v) for v in row), strict=True)) for row in rows]


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    return None if pd.isna(value) else str(value)
