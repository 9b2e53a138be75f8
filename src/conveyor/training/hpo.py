"""Hyperparameter search with Optuna: declared spaces, pruning, budgets, resumable studies.

A study searches one model adapter's parameters (LightGBM or XGBoost) on encoded training rows:
each trial fits on the training rows and is scored on the validation rows (hold-out), or
k-fold cross-validates on the training rows, leaving the validation rows to compare the winner
with the baselines. TPE (or random) sampling proposes parameters; a median or Hyperband
pruner stops unpromising fits early from the validation loss reported every few boosting
rounds, and early stopping ends each fit. Budgets are a number of trials and a wall-clock
limit, both for the whole study.

The study lives in Optuna's RDB storage in a SQLite file under the workspace
(``<home>/hpo/studies.db``), so an interrupted study resumes where it stopped: its trial
budget counts the trials it already has. Every finished trial becomes a tracked run nested
under the study's run. Trials run in this process (:class:`LocalExecutor`) or in parallel
worker processes sharing the storage (:class:`ProcessPoolExecutor`); both implement the
:class:`TrialExecutor` protocol, which a Ray executor can implement too.

With ``multi_objective`` a trial also reports its single-row prediction latency and the
study keeps a Pareto front of quality against latency.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import multiprocessing
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from conveyor.core.errors import ConfigError, InvalidInputError
from conveyor.evaluation import evaluate, higher_is_better, primary_metric
from conveyor.tracking.service import record_run
from conveyor.training.adapters import ADAPTERS, FitData, ModelAdapter
from conveyor.workspace import Workspace

if TYPE_CHECKING:
    import optuna

Progress = Callable[[str], None]
SpaceFunction = Callable[[Any], dict[str, Any]]

#: Search spaces used when ``training.hpo.space`` is empty.
DEFAULT_SPACES: Mapping[str, Mapping[str, Mapping[str, Any]]] = MappingProxyType(
    {
        "lightgbm": {
            "num_leaves": {"int": [8, 256], "log": True},
            "learning_rate": {"float": [0.01, 0.3], "log": True},
            "min_data_in_leaf": {"int": [5, 300], "log": True},
            "feature_fraction": {"float": [0.4, 1.0]},
            "bagging_fraction": {"float": [0.4, 1.0]},
            "bagging_freq": {"categorical": [0, 1]},
            "lambda_l2": {"float": [1e-8, 10.0], "log": True},
        },
        "xgboost": {
            "max_depth": {"int": [2, 10]},
            "eta": {"float": [0.01, 0.3], "log": True},
            "min_child_weight": {"float": [0.01, 20.0], "log": True},
            "subsample": {"float": [0.5, 1.0]},
            "colsample_bytree": {"float": [0.4, 1.0]},
            "lambda": {"float": [1e-8, 10.0], "log": True},
        },
    }
)
_KINDS = ("int", "float", "categorical")
_REPORT_EVERY = 20
_LATENCY_CALLS = 50
_FACTS = "conveyor"  # the trial's user attribute holding its full params, metrics and rounds


def optuna_module() -> Any:
    """Optuna, imported on first use (it costs start-up time commands that never search
    should not pay).

    Raises
    ------
    ConfigError
        If optuna is not installed.
    """
    try:
        import optuna  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError("Hyperparameter search needs optuna: pip install optuna.") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """Parameter distributions, as declared in ``conveyor.yaml``::

        num_leaves: {int: [8, 128], log: true}
        learning_rate: {float: [0.01, 0.3], log: true}
        boosting: {categorical: [gbdt, dart]}

    Raises
    ------
    InvalidInputError
        From :meth:`from_config` if a distribution is malformed.
    """

    params: Mapping[str, Mapping[str, Any]]

    @classmethod
    def from_config(cls, space: Mapping[str, Mapping[str, Any]]) -> SearchSpace:
        checked: dict[str, dict[str, Any]] = {}
        for name, dist in space.items():
            checked[str(name)] = _check_distribution(str(name), dist)
        if not checked:
            raise InvalidInputError("A search space needs at least one parameter. Got none.")
        return cls(params=checked)

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Parameters proposed by ``trial`` (an ``optuna.Trial``)."""
        out: dict[str, Any] = {}
        for name, dist in self.params.items():
            if "categorical" in dist:
                out[name] = trial.suggest_categorical(name, list(dist["categorical"]))
            elif "int" in dist:
                low, high = dist["int"]
                step = int(dist.get("step", 1))
                out[name] = trial.suggest_int(name, low, high, log=dist["log"], step=step)
            else:
                low, high = dist["float"]
                out[name] = trial.suggest_float(name, low, high, log=dist["log"])
        return out


def _check_distribution(name: str, dist: Any) -> dict[str, Any]:
    problem = (
        f"The search space parameter {name!r} must be {{int: [lo, hi]}}, {{float: [lo, hi]}} or "
        f"{{categorical: [...]}} with an optional 'log: true'. Got {dist!r} instead."
    )
    if not isinstance(dist, Mapping):
        raise InvalidInputError(problem)
    kinds = [k for k in _KINDS if k in dist]
    if len(kinds) != 1 or set(dist) - {*_KINDS, "log", "step"}:
        raise InvalidInputError(problem)
    kind = kinds[0]
    log = bool(dist.get("log", False))
    if kind == "categorical":
        choices = dist["categorical"]
        if not isinstance(choices, Sequence) or isinstance(choices, str) or not choices:
            raise InvalidInputError(problem)
        return {"categorical": list(choices), "log": False}
    bounds = dist[kind]
    if not isinstance(bounds, Sequence) or len(bounds) != 2:
        raise InvalidInputError(problem)
    low, high = bounds
    numeric = int if kind == "int" else (int, float)
    if any(isinstance(b, bool) or not isinstance(b, numeric) for b in (low, high)):
        raise InvalidInputError(problem)
    if not low < high or (log and low <= 0):
        raise InvalidInputError(
            f"The search space parameter {name!r} needs lo < hi (and lo > 0 with log). "
            f"Got [{low}, {high}] with log={log} instead."
        )
    return {kind: [low, high], "log": log, **({"step": dist["step"]} if "step" in dist else {})}


@dataclass(frozen=True, slots=True)
class HpoConfig:
    """What a study searches and how.

    Parameters
    ----------
    model : str
        The adapter searched: ``lightgbm`` or ``xgboost`` (keys of ``ADAPTERS``).
    space : SearchSpace or callable, optional
        A declared space, or a picklable ``space(trial) -> params`` function for spaces with
        conditions; default: :data:`DEFAULT_SPACES` of the model.
    n_trials : int
        Trials the study should hold in total (finished or pruned, resumed ones included).
    timeout_s : float, optional
        Wall-clock budget of this call.
    sampler : {"tpe", "random"}
    pruner : {"median", "hyperband", "none"}
    cv_folds : int
        0 for hold-out validation, else k-fold cross-validation on the training rows.
    multi_objective : bool
        Also minimise single-row prediction latency (ms).
    base_params : mapping
        Parameters every trial starts from (the project's configured ones).
    seed : int
    """

    model: str = "lightgbm"
    space: SearchSpace | SpaceFunction | None = None
    n_trials: int = 20
    timeout_s: float | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    cv_folds: int = 0
    multi_objective: bool = False
    base_params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model not in DEFAULT_SPACES:
            raise InvalidInputError(
                f"The HPO 'model' must be one of {sorted(DEFAULT_SPACES)}. Got {self.model!r}."
            )
        if isinstance(self.n_trials, bool) or not isinstance(self.n_trials, int):
            raise InvalidInputError(f"'n_trials' must be an int >= 1. Got {self.n_trials!r}.")
        if self.n_trials < 1:
            raise InvalidInputError(f"'n_trials' must be an int >= 1. Got {self.n_trials!r}.")
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise InvalidInputError(f"'timeout_s' must be > 0. Got {self.timeout_s!r}.")
        if self.sampler not in ("tpe", "random"):
            raise InvalidInputError(f"'sampler' must be 'tpe' or 'random'. Got {self.sampler!r}.")
        if self.pruner not in ("median", "hyperband", "none"):
            raise InvalidInputError(
                f"'pruner' must be 'median', 'hyperband' or 'none'. Got {self.pruner!r}."
            )
        if self.cv_folds == 1 or self.cv_folds < 0:
            raise InvalidInputError(
                f"'cv_folds' must be 0 (hold-out) or at least 2. Got {self.cv_folds!r}."
            )
        if self.space is None:
            object.__setattr__(self, "space", SearchSpace.from_config(DEFAULT_SPACES[self.model]))
        object.__setattr__(self, "base_params", dict(self.base_params))

    def suggest(self, trial: Any) -> dict[str, Any]:
        space = self.space
        proposed = space.suggest(trial) if isinstance(space, SearchSpace) else space(trial)  # type: ignore[misc]
        return {**self.base_params, **proposed}


@dataclass(frozen=True, slots=True)
class StudySettings:
    """Everything a process needs to open the study: Optuna keeps no sampler or pruner in
    its storage, so every worker rebuilds them from here."""

    name: str
    storage_url: str
    directions: tuple[str, ...]
    sampler: str
    pruner: str
    seed: int
    max_resource: int

    def load(self, worker: int = 0) -> optuna.Study:
        """The study, with worker ``worker``'s sampler (seeded ``seed + worker``) and pruner."""
        sampler, pruner = self.sampler_and_pruner(worker)
        study: optuna.Study = optuna_module().load_study(
            study_name=self.name, storage=self.storage(), sampler=sampler, pruner=pruner
        )
        return study

    def sampler_and_pruner(self, worker: int = 0) -> tuple[Any, Any]:
        lib = optuna_module()
        sampler: Any
        if self.sampler == "random":
            sampler = lib.samplers.RandomSampler(seed=self.seed + worker)
        else:
            sampler = lib.samplers.TPESampler(
                seed=self.seed + worker, multivariate=True, n_startup_trials=8
            )
        pruner: Any
        if self.pruner == "none" or len(self.directions) > 1:
            pruner = lib.pruners.NopPruner()
        elif self.pruner == "hyperband":
            pruner = lib.pruners.HyperbandPruner(
                min_resource=_REPORT_EVERY, max_resource=max(self.max_resource, 3 * _REPORT_EVERY)
            )
        else:
            pruner = lib.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=_REPORT_EVERY)
        return sampler, pruner

    def storage(self) -> Any:
        optuna = optuna_module()
        kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
        if self.storage_url.startswith("sqlite:///"):
            kwargs = {"creator": _sqlite_connector(self.storage_url.removeprefix("sqlite:///"))}
        return optuna.storages.RDBStorage(self.storage_url, engine_kwargs=kwargs)


def _sqlite_connector(path: str) -> Callable[[], sqlite3.Connection]:
    """Connections in WAL mode with ``synchronous=NORMAL``: a trial reports to the storage
    every few boosting rounds, and a full fsync per report would cost more than the fit.
    A crash loses at most the last reports; the study resumes from what was committed."""

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(path, timeout=60, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    return connect


class TrialExecutor(Protocol):
    """Runs a study's trials until ``target_trials`` are finished or ``timeout_s`` passed.

    ``objective`` is a picklable callable of an ``optuna.Trial``; ``on_progress`` is called in
    the calling process whenever trials may have finished (it reads the study's storage).
    An executor on a cluster (Ray) runs workers that call ``settings.load(worker)`` and
    ``study.optimize`` against the same storage.
    """

    def run(
        self,
        settings: StudySettings,
        objective: Callable[[Any], Any],
        *,
        target_trials: int,
        timeout_s: float | None,
        on_progress: Callable[[], None],
    ) -> None: ...


def _optimize(
    settings: StudySettings,
    objective: Callable[[Any], Any],
    target_trials: int,
    timeout_s: float | None,
    worker: int,
    on_trial: Callable[[], None] | None = None,
) -> None:
    optuna = optuna_module()
    study = settings.load(worker)
    done = optuna.trial.TrialState
    if len(study.get_trials(deepcopy=False, states=(done.COMPLETE, done.PRUNED))) >= target_trials:
        return
    callbacks: list[Any] = [
        optuna.study.MaxTrialsCallback(target_trials, states=(done.COMPLETE, done.PRUNED))
    ]
    if on_trial is not None:
        callbacks.append(lambda _study, _trial: on_trial())
    study.optimize(objective, n_trials=None, timeout=timeout_s, callbacks=callbacks)


@dataclass(frozen=True, slots=True)
class LocalExecutor:
    """Runs the trials one after another in this process."""

    def run(
        self,
        settings: StudySettings,
        objective: Callable[[Any], Any],
        *,
        target_trials: int,
        timeout_s: float | None,
        on_progress: Callable[[], None],
    ) -> None:
        _optimize(settings, objective, target_trials, timeout_s, 0, on_progress)


@dataclass(frozen=True, slots=True)
class ProcessPoolExecutor:
    """Runs trials in ``workers`` processes (spawned, so no thread state is forked), all
    sharing the study's storage; the total may overshoot ``target_trials`` by at most
    ``workers - 1`` trials that were already running when it was reached."""

    workers: int = 2
    poll_s: float = 1.0

    def run(
        self,
        settings: StudySettings,
        objective: Callable[[Any], Any],
        *,
        target_trials: int,
        timeout_s: float | None,
        on_progress: Callable[[], None],
    ) -> None:
        if self.workers < 1:
            raise InvalidInputError(f"'workers' must be >= 1. Got {self.workers!r} instead.")
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=context) as pool:
            futures = [
                pool.submit(_optimize, settings, objective, target_trials, timeout_s, worker)
                for worker in range(self.workers)
            ]
            pending = set(futures)
            while pending:
                _, pending = concurrent.futures.wait(pending, timeout=self.poll_s)
                on_progress()
            for future in futures:
                future.result()


@dataclass(frozen=True, slots=True)
class TrialObjective:
    """Fits one trial's parameters and scores them; picklable for worker processes."""

    data: FitData
    config: HpoConfig
    adapter: ModelAdapter

    def __call__(self, trial: Any) -> float | tuple[float, float]:
        optuna = optuna_module()
        params = self.config.suggest(trial)
        metric = primary_metric(self.data.task)
        sign = 1.0 if higher_is_better(metric) else -1.0
        started = time.perf_counter()
        if self.config.cv_folds:
            value, metrics, best_iteration, model = self._cross_validate(trial, params, metric)
        else:
            hook = _pruning_hook(trial, sign, optuna)
            fitted = self.adapter.fit(self.data, params=params, on_iteration=hook)
            scores = fitted.model.predict_encoded(self.data.x_valid)
            metrics = evaluate(self.data.task, self.data.y_valid, scores)
            value, best_iteration, model = metrics[metric], fitted.best_iteration, fitted.model
        facts: dict[str, Any] = {
            "params": {k: _plain(v) for k, v in params.items()},
            "metrics": {k: _finite(v) for k, v in metrics.items()},
            "best_iteration": int(best_iteration),
            "fit_seconds": time.perf_counter() - started,
        }
        if self.config.multi_objective:
            facts["latency_ms"] = _latency_ms(model, self.data.x_valid)
        # One attribute, so one storage write per trial for all of it.
        trial.set_user_attr(_FACTS, facts)
        if math.isnan(value):
            raise optuna.TrialPruned(f"The trial's {metric} is undefined (nan).")
        if not self.config.multi_objective:
            return float(value)
        return float(value), float(facts["latency_ms"])

    def _cross_validate(
        self, trial: Any, params: Mapping[str, Any], metric: str
    ) -> tuple[float, dict[str, float], int, Any]:
        optuna = optuna_module()
        data = self.data
        folds = _fold_ids(data.y_train, data.task, self.config.cv_folds, self.config.seed)
        values: list[float] = []
        rounds: list[int] = []
        totals: dict[str, list[float]] = {}
        model: Any = None
        for k in range(self.config.cv_folds):
            fit_rows, out_rows = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
            weight = data.sample_weight
            fold = FitData(
                data.signature,
                data.x_train[fit_rows],
                data.y_train[fit_rows],
                data.x_train[out_rows],
                data.y_train[out_rows],
                sample_weight=weight[fit_rows] if weight is not None else None,
            )
            fitted = self.adapter.fit(fold, params=params)
            scores = fitted.model.predict_encoded(fold.x_valid)
            fold_metrics = evaluate(data.task, fold.y_valid, scores)
            for key, value in fold_metrics.items():
                totals.setdefault(key, []).append(value)
            values.append(fold_metrics[metric])
            rounds.append(fitted.best_iteration)
            model = fitted.model
            if not self.config.multi_objective:
                trial.report(float(np.mean(values)), k)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"Pruned after fold {k + 1}.")
        metrics = {key: float(np.mean(v)) for key, v in totals.items()}
        return float(np.mean(values)), metrics, int(round(float(np.mean(rounds)))), model


def _pruning_hook(trial: Any, sign: float, optuna: Any) -> Callable[[int, float], None] | None:
    if len(trial.study.directions) > 1:
        return None

    def hook(step: int, loss: float) -> None:
        if step % _REPORT_EVERY:
            return
        # The booster reports a loss; a study that maximises its metric sees the negated loss,
        # so "higher is better" holds for the pruner in both cases.
        trial.report(-loss if sign > 0 else loss, step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"Pruned at round {step}.")

    return hook


def _fold_ids(y: np.ndarray, task: str, k: int, seed: int) -> np.ndarray:
    """A fold number per training row; stratified by class for a classification task."""
    if len(y) < k:
        raise InvalidInputError(f"{k}-fold cross-validation needs at least {k} training rows.")
    rng = np.random.default_rng(seed)
    folds = np.empty(len(y), dtype=np.int64)
    classes = np.unique(y) if task in ("binary", "multiclass") else np.array([])
    groups = [np.flatnonzero(y == c) for c in classes] if len(classes) else [np.arange(len(y))]
    offset = 0
    for members in groups:
        shuffled = rng.permutation(members)
        folds[shuffled] = (np.arange(len(shuffled)) + offset) % k
        offset += len(shuffled)
    return folds


def _latency_ms(model: Any, x: np.ndarray) -> float:
    row = x[:1]
    model.predict_encoded(row)
    times = []
    for _ in range(_LATENCY_CALLS):
        started = time.perf_counter()
        model.predict_encoded(row)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000.0)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class TrialSummary:
    """One finished trial: its number, state, objective values, parameters and metrics."""

    number: int
    state: str
    values: tuple[float, ...]
    params: Mapping[str, Any]
    metrics: Mapping[str, Any]
    best_iteration: int
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class StudyResult:
    """What a study found.

    Attributes
    ----------
    name : str
    metric : str
        The quality objective (the task's primary metric).
    best_value : float
        The best quality of a complete trial.
    best_params : mapping
        The full parameters of that trial (the base parameters with the searched ones).
    best_iteration : int
    trials : tuple of TrialSummary
        Every finished trial of the study, this session's and earlier ones.
    pareto : tuple of TrialSummary
        The quality/latency Pareto front (multi-objective studies), else empty.
    new_trials : int
        Trials finished by this call.
    elapsed_s : float
        Wall time of this call.
    run_id : str
        The study run that this call's trial runs are nested under.
    """

    name: str
    metric: str
    best_value: float
    best_params: Mapping[str, Any]
    best_iteration: int
    trials: tuple[TrialSummary, ...]
    pareto: tuple[TrialSummary, ...]
    new_trials: int
    elapsed_s: float
    run_id: str

    @property
    def trials_per_minute(self) -> float:
        return 60.0 * self.new_trials / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        states: dict[str, int] = {}
        for t in self.trials:
            states[t.state] = states.get(t.state, 0) + 1
        return {
            "study": self.name,
            "metric": self.metric,
            "best_value": self.best_value,
            "best_params": dict(self.best_params),
            "best_iteration": self.best_iteration,
            "trials": states,
            "pareto": [
                {"number": t.number, "values": list(t.values), "params": dict(t.params)}
                for t in self.pareto
            ],
            "new_trials": self.new_trials,
            "elapsed_s": self.elapsed_s,
            "trials_per_minute": self.trials_per_minute,
            "run_id": self.run_id,
        }


def study_storage_url(ws: Workspace) -> str:
    """The SQLite file under the workspace that keeps every study."""
    folder = ws.home / "hpo"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'studies.db'}"


def run_study(
    ws: Workspace,
    project: str,
    data: FitData,
    config: HpoConfig,
    *,
    study_name: str,
    executor: TrialExecutor | None = None,
    parent_run_id: str | None = None,
    progress: Progress | None = None,
) -> StudyResult:
    """Search ``config.model``'s parameters on ``data``; create or resume ``study_name``.

    Parameters
    ----------
    ws : Workspace
    project : str
        The project the tracked runs belong to.
    data : FitData
        Training rows (and validation rows for hold-out scoring and pruning).
    config : HpoConfig
    study_name : str
        A study of this name in the workspace's storage is resumed: its finished trials
        count towards ``config.n_trials``.
    executor : TrialExecutor, optional
        Default :class:`LocalExecutor`.
    parent_run_id : str, optional
        The run the study's run is nested under (the training run).
    progress : callable, optional
        Called with a sentence per finished trial.

    Returns
    -------
    StudyResult

    Raises
    ------
    ConfigError
        If a study of that name exists with other objectives, or optuna is missing.
    InvalidInputError
        If no trial completes (every one pruned or failed), or a parameter is refused by the
        model library.
    """
    optuna = optuna_module()
    say = progress or (lambda _m: None)
    metric = primary_metric(data.task)
    directions = ["maximize" if higher_is_better(metric) else "minimize"]
    if config.multi_objective:
        directions.append("minimize")
    adapter = ADAPTERS[config.model]
    rounds = int(config.base_params.get("num_boost_round", 500))
    settings = StudySettings(
        name=study_name,
        storage_url=study_storage_url(ws),
        directions=tuple(directions),
        sampler=config.sampler,
        pruner=config.pruner,
        seed=config.seed,
        max_resource=rounds,
    )
    storage = settings.storage()
    study = optuna.create_study(
        study_name=study_name, storage=storage, directions=directions, load_if_exists=True
    )
    existing = [d.name.lower() for d in study.directions]
    if existing != directions:
        raise ConfigError(
            f"The study {study_name!r} exists with objectives {existing}; this search needs "
            f"{directions}. Use another study name."
        )
    study.set_user_attr("model", config.model)
    study.set_user_attr("metric", metric)
    objective = TrialObjective(data=data, config=config, adapter=adapter)
    chosen = executor or LocalExecutor()
    started = time.perf_counter()
    with record_run(
        ws,
        project,
        experiment="hpo",
        name=f"study-{study_name}",
        parent_id=parent_run_id,  # type: ignore[arg-type]
        tags={"study": study_name, "model": config.model},
    ) as parent:
        parent.log_params(
            {
                "n_trials": config.n_trials,
                "sampler": config.sampler,
                "pruner": config.pruner,
                "cv_folds": config.cv_folds,
                "multi_objective": config.multi_objective,
            }
        )
        recorder = _TrialRecorder(ws, project, str(parent.id), study_name, config.n_trials, say)
        recorder.sync(study)
        before = len(recorder.recorded)
        chosen.run(
            settings,
            objective,
            target_trials=config.n_trials,
            timeout_s=config.timeout_s,
            on_progress=lambda: recorder.sync(study),
        )
        recorder.sync(study)
        elapsed = time.perf_counter() - started
        result = _result(study, metric, recorder, len(recorder.recorded) - before, elapsed)
        result = dataclasses.replace(result, run_id=str(parent.id))
        parent.log_metrics(
            {f"best_{metric}": result.best_value, "trials_per_minute": result.trials_per_minute}
        )
        parent.log_json("best_params.json", dict(result.best_params))
    return result


class _TrialRecorder:
    """Turns each finished trial into a tracked run nested under the study run, once."""

    def __init__(
        self,
        ws: Workspace,
        project: str,
        parent_id: str,
        study_name: str,
        target: int,
        say: Progress,
    ) -> None:
        self.ws, self.project, self.parent_id = ws, project, parent_id
        self.study_name, self.target, self.say = study_name, target, say
        self.recorded: dict[int, str] = {}
        self.best: float | None = None

    def sync(self, study: Any) -> None:
        optuna = optuna_module()
        finished = (
            optuna.trial.TrialState.COMPLETE,
            optuna.trial.TrialState.PRUNED,
            optuna.trial.TrialState.FAIL,
        )
        tracked = dict(study.user_attrs.get("tracked_runs", {}))
        self.recorded.update({int(k): v for k, v in tracked.items()})
        fresh = [
            t
            for t in study.get_trials(deepcopy=False, states=finished)
            if t.number not in self.recorded
        ]
        if not fresh:
            return
        metric = str(study.user_attrs.get("metric", "value"))
        maximise = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
        for trial in fresh:
            self.recorded[trial.number] = self._record(trial, metric)
            if trial.state == optuna.trial.TrialState.COMPLETE:
                value = float(trial.values[0])
                if self.best is None or (value > self.best if maximise else value < self.best):
                    self.best = value
            complete = trial.state == optuna.trial.TrialState.COMPLETE
            shown = f"{metric} {trial.values[0]:.4f}" if complete else trial.state.name.lower()
            best = f"{self.best:.4f}" if self.best is not None else "-"
            self.say(f"Trial {len(self.recorded)}/{self.target}: {shown}, best {best}.")
        study.set_user_attr("tracked_runs", {str(k): v for k, v in self.recorded.items()})

    def _record(self, trial: Any, metric: str) -> str:
        state = trial.state.name.lower()
        with record_run(
            self.ws,
            self.project,
            experiment="hpo",
            name=f"trial-{trial.number}",
            parent_id=self.parent_id,  # type: ignore[arg-type]
            tags={"study": self.study_name, "trial": str(trial.number), "state": state},
        ) as run:
            run.log_params(trial.params)
            values: dict[str, float] = {}
            if trial.values and trial.state.name == "COMPLETE":
                values[metric] = float(trial.values[0])
                if len(trial.values) > 1:
                    values["latency_ms"] = float(trial.values[1])
            facts = _facts(trial)
            for key, value in (facts.get("metrics") or {}).items():
                if value is not None:
                    values[f"valid_{key}"] = float(value)
            if "best_iteration" in facts:
                values["best_iteration"] = float(facts["best_iteration"])
            if values:
                run.log_metrics(values)
            return str(run.id)


def _facts(trial: Any) -> dict[str, Any]:
    facts = trial.user_attrs.get(_FACTS)
    return dict(facts) if isinstance(facts, dict) else {}


def _summary(trial: Any, recorded: Mapping[int, str]) -> TrialSummary:
    return TrialSummary(
        number=trial.number,
        state=trial.state.name.lower(),
        values=tuple(float(v) for v in (trial.values or ())),
        params=dict(trial.params),
        metrics=dict(_facts(trial).get("metrics") or {}),
        best_iteration=int(_facts(trial).get("best_iteration", 0)),
        run_id=recorded.get(trial.number),
    )


def _result(
    study: Any, metric: str, recorder: _TrialRecorder, new_trials: int, elapsed: float
) -> StudyResult:
    optuna = optuna_module()
    finished = study.get_trials(
        deepcopy=False,
        states=(
            optuna.trial.TrialState.COMPLETE,
            optuna.trial.TrialState.PRUNED,
            optuna.trial.TrialState.FAIL,
        ),
    )
    complete = [t for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise InvalidInputError(
            f"The study {study.study_name!r} has no complete trial ({len(finished)} pruned or "
            "failed): widen the search space or raise the budget."
        )
    maximise = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    best = (max if maximise else min)(complete, key=lambda t: t.values[0])
    pareto = study.best_trials if len(study.directions) > 1 else []
    return StudyResult(
        name=study.study_name,
        metric=metric,
        best_value=float(best.values[0]),
        best_params=dict(_facts(best).get("params") or best.params),
        best_iteration=int(_facts(best).get("best_iteration", 0)),
        trials=tuple(_summary(t, recorder.recorded) for t in finished),
        pareto=tuple(_summary(t, recorder.recorded) for t in pareto),
        new_trials=new_trials,
        elapsed_s=elapsed,
        run_id="",
    )


def list_studies(ws: Workspace) -> list[dict[str, Any]]:
    """Every study in the workspace: name, trials, best value and its parameters."""
    optuna = optuna_module()
    url = study_storage_url(ws)
    storage = optuna.storages.RDBStorage(
        url, engine_kwargs={"creator": _sqlite_connector(url.removeprefix("sqlite:///"))}
    )
    out = []
    for summary in optuna.get_all_study_summaries(storage):
        best = summary.best_trial
        out.append(
            {
                "study": summary.study_name,
                "trials": summary.n_trials,
                "metric": summary.user_attrs.get("metric"),
                "model": summary.user_attrs.get("model"),
                "best_value": float(best.values[0]) if best is not None and best.values else None,
                "best_params": dict(best.params) if best is not None else {},
            }
        )
    return out
