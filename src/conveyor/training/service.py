"""Training service: a window of accepted batches becomes a tracked, registered model version."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from conveyor.core.clock import as_utc
from conveyor.core.entities import DatasetVersion, ModelVersion
from conveyor.core.errors import ConfigError, InvalidInputError
from conveyor.core.labels import LabelCodec, Task, label_key
from conveyor.core.model import Predictor
from conveyor.core.schema import Schema
from conveyor.core.signature import Signature, encode_frame
from conveyor.data.profiles import profile_frame
from conveyor.data.sampling import class_weights, rebalance
from conveyor.data.service import load_versions, project_schema, reference_profile, training_window
from conveyor.data.splits import group_split, random_split, stratified_split, time_split
from conveyor.evaluation.metrics import evaluate, is_better
from conveyor.registry.service import get_version, register_version
from conveyor.spec import ProjectSpec, ReferenceSpec
from conveyor.tracking.service import record_run
from conveyor.training.adapters import FitData
from conveyor.training.hpo import (
    HpoConfig,
    LocalExecutor,
    ProcessPoolExecutor,
    SearchSpace,
    StudyResult,
    TrialExecutor,
    run_study,
)
from conveyor.training.models import load_model, model_size_bytes, save_model
from conveyor.training.trainer import TrainConfig, TrainResult, train_candidates
from conveyor.workspace import Workspace

Progress = Callable[[str], None]
_PACKAGES = ("conveyor-ml", "lightgbm", "scikit-learn", "numpy", "pandas", "pyarrow")
SAMPLE_REQUESTS = 32


@dataclass(frozen=True, slots=True)
class TrainOutcome:
    """A registered candidate and the numbers that describe it."""

    version: ModelVersion
    metrics: dict[str, Any]
    beats_baseline: bool


def signature_of(schema: Schema, task: str, labels: LabelCodec | None = None) -> Signature:
    """The model input signature: the schema's feature columns, in schema order, and the
    classes of ``labels``."""
    classes = labels.classes if labels is not None else ()
    return Signature(inputs=tuple(schema.features), task=task, classes=classes)


def label_codec(frame: pd.DataFrame, spec: ProjectSpec) -> LabelCodec:
    """The label's codec fitted on ``frame`` (a training part) with ``spec.positive_class``.

    Raises
    ------
    InvalidInputError
        As :meth:`conveyor.core.labels.LabelCodec.fit`: a binary label without exactly two
        values, a ``positive_class`` that is not one of them, fewer than two classes.
    """
    return LabelCodec.fit(spec.task, frame[spec.label], positive=spec.positive_class)


def training_signature(schema: Schema, spec: ProjectSpec, window: pd.DataFrame) -> Signature:
    """The signature a model trained on ``window`` gets: the features and the label's classes.

    The classes are those of the whole window, not of its training part: a class that first
    appears in the newest rows, which a split by time puts in the test part, is one the model
    scores (with the probability its training rows give it) instead of an error.
    """
    return signature_of(schema, spec.task, label_codec(window, spec))


def label_vector(
    frame: pd.DataFrame, spec: ProjectSpec, labels: LabelCodec | None = None
) -> np.ndarray:
    """The label as float64 codes of ``labels`` (a model's ``signature.labels``): 0/1 for a
    binary task (1 = the positive class), class codes for multiclass, values for regression.
    Without ``labels`` the codec is fitted on ``frame`` itself.

    Raises
    ------
    InvalidInputError
        If a label is missing or not one of the codec's classes (the message names it).
    """
    codec = labels if labels is not None else label_codec(frame, spec)
    return codec.encode(frame[spec.label].tolist(), what=f"label {spec.label!r}")


def scores_in(model: Predictor, frame: pd.DataFrame, labels: LabelCodec) -> np.ndarray:
    """``model``'s scores of ``frame`` on the classes of ``labels``, so that two models whose
    classes differ (another positive class, a class one of them never saw) score one truth.

    A binary model whose positive class is the other one of ``labels`` scores ``1 - p``; a
    multiclass model's columns are reordered to ``labels.classes`` (a class it does not know
    gets probability 0, and a class unknown to ``labels`` is dropped and the rows renormalised).

    Raises
    ------
    InvalidInputError
        If a binary model's classes are not those of ``labels``.
    """
    scores = np.asarray(model.predict_encoded(encode_frame(frame, model.signature)))
    own = model.signature.labels
    if own.task is not labels.task or own.task is Task.REGRESSION:
        return scores
    keys = [label_key(c) for c in own.classes]
    wanted = [label_key(c) for c in labels.classes]
    if keys == wanted:
        return scores
    if labels.task is Task.BINARY:
        if keys == wanted[::-1]:
            return np.asarray(1.0 - scores, dtype=np.float64)
        raise InvalidInputError(
            f"A binary model of classes {list(own.classes)} cannot be compared on the label "
            f"classes {list(labels.classes)}."
        )
    out = np.zeros((len(scores), len(wanted)), dtype=np.float64)
    for j, key in enumerate(wanted):
        if key in keys:
            out[:, j] = scores[:, keys.index(key)]
    total = out.sum(axis=1, keepdims=True)
    even = np.full_like(out, 1.0 / len(wanted))
    return np.asarray(np.divide(out, total, out=even, where=total > 0), dtype=np.float64)


def package_versions() -> dict[str, str]:
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def code_revision(path: Path | None = None) -> str | None:
    """The git revision of the project directory, if it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=path or Path.cwd(),
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


#: Fewest distinct times in a window for ``split_by: auto`` to split it by time.
AUTO_TIME_MIN_STAMPS = 20


def split_window(
    frame: pd.DataFrame, spec: ProjectSpec
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train/validation/test as ``training.split_by`` says; ``auto`` splits by time when the
    project has a timestamp that takes at least :data:`AUTO_TIME_MIN_STAMPS` distinct values in
    the window, else by a seeded shuffle (a year column over a few years cannot order
    train, validation and test rows: every row of a part would share one time).

    Raises
    ------
    ConfigError
        If ``split_by`` is ``time`` without a timestamp or ``group`` without a group column.
    """
    frame = frame[~frame[spec.label].isna()]
    training = spec.training
    how = training.split_by
    if how == "auto":
        stamps = frame[spec.timestamp].nunique() if spec.timestamp else 0
        how = "time" if stamps >= AUTO_TIME_MIN_STAMPS else "random"
    if how == "time":
        if not spec.timestamp:
            raise ConfigError("training.split_by 'time' needs the project's 'timestamp' column.")
        return time_split(frame, time_column=spec.timestamp, fractions=training.split)
    if how == "stratified":
        return stratified_split(
            frame, label_column=spec.label, fractions=training.split, seed=training.seed
        )
    if how == "group":
        if not training.group_column:
            raise ConfigError("training.split_by 'group' needs 'training.group_column'.")
        return group_split(
            frame, group_column=training.group_column, fractions=training.split, seed=training.seed
        )
    return random_split(frame, fractions=training.split, seed=training.seed)


def train_config(spec: ProjectSpec, tuned: StudyResult | None = None) -> TrainConfig:
    """The trainer's configuration from ``training:``, with a study's best parameters."""
    training = spec.training
    model_params = {k: dict(v) for k, v in training.model_params.items()}
    models = list(training.models)
    if tuned is not None:
        model = training.hpo.model
        model_params[model] = {**model_params.get(model, {}), **tuned.best_params}
        if model not in models:
            models.insert(0, model)
    return TrainConfig(
        task=spec.task,
        label=spec.label,
        positive_class=spec.positive_class,
        params=dict(training.params),
        models=tuple(models),
        model_params=model_params,
        ensemble=training.ensemble,
        ensemble_size=training.ensemble_size,
        imbalance=training.imbalance,
        seed=training.seed,
    )


def hpo_config(
    spec: ProjectSpec, *, trials: int | None = None, timeout_s: float | None = None
) -> HpoConfig:
    """The study's configuration from ``training.hpo``, with optional budget overrides."""
    hpo = spec.training.hpo
    base = dict(spec.training.params) if hpo.model == "lightgbm" else {}
    base.update(spec.training.model_params.get(hpo.model, {}))
    return HpoConfig(
        model=hpo.model,
        space=SearchSpace.from_config(hpo.space) if hpo.space else None,
        n_trials=trials if trials is not None else hpo.trials,
        timeout_s=timeout_s if timeout_s is not None else hpo.timeout_s,
        sampler=hpo.sampler,
        pruner=hpo.pruner,
        cv_folds=hpo.cv_folds,
        multi_objective=hpo.multi_objective,
        base_params=base,
        seed=hpo.seed,
    )


def _executor(jobs: int) -> TrialExecutor:
    return ProcessPoolExecutor(workers=jobs) if jobs > 1 else LocalExecutor()


def fit_data(
    train: pd.DataFrame, valid: pd.DataFrame, signature: Signature, spec: ProjectSpec
) -> FitData:
    """Encoded training and validation rows for a study (imbalance weights included); the
    labels are coded by ``signature.labels``."""
    labels = signature.labels
    y_train = label_vector(train, spec, labels)
    weight = class_weights(y_train) if spec.training.imbalance == "class_weight" else None
    if spec.training.imbalance in ("downsample", "upsample"):
        train = rebalance(
            train, label_column=spec.label, method=spec.training.imbalance, seed=spec.training.seed
        )
        y_train = label_vector(train, spec, labels)
    return FitData(
        signature,
        encode_frame(train, signature),
        y_train,
        encode_frame(valid, signature),
        label_vector(valid, spec, labels),
        sample_weight=weight,
    )


def tune_model(
    ws: Workspace,
    spec: ProjectSpec,
    *,
    trials: int | None = None,
    timeout_s: float | None = None,
    jobs: int | None = None,
    study: str | None = None,
    progress: Progress | None = None,
) -> StudyResult:
    """Run (or resume) a hyperparameter study on the training window's train/valid rows.

    Raises
    ------
    ConfigError
        If neither ``trials`` nor ``training.hpo.trials`` gives a budget.
    """
    budget = trials if trials is not None else spec.training.hpo.trials
    if budget < 1:
        raise ConfigError(
            "A study needs a trial budget: pass --trials N or set training.hpo.trials in "
            f"conveyor.yaml. Got {budget}."
        )
    window = training_window(ws, spec)
    frame = load_versions(ws, window)
    train, valid, _ = split_window(frame, spec)
    signature = training_signature(project_schema(ws, spec), spec, frame)
    return run_study(
        ws,
        spec.project,
        fit_data(train, valid, signature, spec),
        hpo_config(spec, trials=budget, timeout_s=timeout_s),
        study_name=study or default_study_name(spec, window[-1].seq),
        executor=_executor(jobs or spec.training.hpo.jobs),
        progress=progress,
    )


def default_study_name(spec: ProjectSpec, last_seq: int) -> str:
    """One study per project, model and training window: trials on other data don't mix."""
    return f"{spec.project}-{spec.training.hpo.model}-w{last_seq}"


def train_model(
    ws: Workspace,
    spec: ProjectSpec,
    *,
    versions: list[DatasetVersion] | None = None,
    label_noise: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    reason: str = "",
    progress: Progress | None = None,
) -> TrainOutcome:
    """Train the baselines and the candidates on the training window; register the winner.

    With ``training.hpo.trials > 0`` a study (nested under the training run) first searches the
    ``training.hpo.model``'s parameters on the same train/validation rows, and the candidate
    is trained with its best parameters. The winner is the candidate (or ensemble) with the
    best validation metric; it is registered with every baseline's and candidate's figures,
    and tagged ``beats_baseline: false`` when it does not beat the best baseline (the gate
    refuses such a version). ``label_noise`` transforms the training part before fitting; it
    exists to rehearse a bad release (the demo trains one on shuffled labels) and is recorded
    in the version's tags.
    """
    say = progress or (lambda _msg: None)
    window = versions if versions is not None else training_window(ws, spec)
    frame = load_versions(ws, window)
    schema = project_schema(ws, spec)
    train, valid, test = split_window(frame, spec)
    if label_noise is not None:
        train = label_noise(train)
    signature = training_signature(schema, spec, frame)
    say(f"training on {len(train):,} rows from batches {window[0].seq}..{window[-1].seq}")
    if signature.task == Task.BINARY:
        say(f"positive class of {spec.label!r}: {signature.labels.positive!r}")
    with record_run(
        ws,
        spec.project,
        experiment="training",
        name=f"train-{window[-1].seq}",
        tags={"trigger": reason} if reason else None,
    ) as run:
        tuned = None
        if spec.training.hpo.trials > 0:
            say(
                f"searching {spec.training.hpo.model} parameters: {spec.training.hpo.trials} trials"
            )
            tuned = run_study(
                ws,
                spec.project,
                fit_data(train, valid, signature, spec),
                hpo_config(spec),
                study_name=default_study_name(spec, window[-1].seq)
                + ("-noise" if label_noise is not None else ""),
                executor=_executor(spec.training.hpo.jobs),
                parent_run_id=run.id,
                progress=say,
            )
        config = train_config(spec, tuned)
        result = train_candidates(train, valid, signature=signature, config=config, progress=say)
        y_test = label_vector(test, spec, signature.labels)
        x_test = encode_frame(test, signature)
        test_metrics = evaluate(spec.task, y_test, result.candidate.predict_encoded(x_test))
        baseline_test = evaluate(spec.task, y_test, result.baseline.predict_encoded(x_test))
        run.log_params(
            {
                **result.params,
                "rows_train": len(train),
                "rows_valid": len(valid),
                "rows_test": len(test),
                "winner": result.winner,
            }
        )
        run.log_metrics({f"valid_{k}": v for k, v in result.valid_metrics["candidate"].items()})
        run.log_metrics({f"test_{k}": v for k, v in test_metrics.items()})
        run.log_metrics({f"baseline_test_{k}": v for k, v in baseline_test.items()})
        run.log_json("leaderboard.json", [dict(row) for row in result.leaderboard])
        run.log_datasets([v.id for v in window])
        model_bytes = save_model(
            result.candidate, meta={"feature_importance": result.feature_importance}
        )
        artifact = run.log_bytes("model.json", model_bytes)
        ref = profile_frame(train, schema, reference=reference_profile(ws, spec.project))
        ref_digest = run.log_json("reference_profile.json", ref)
        samples = test[signature.names].head(SAMPLE_REQUESTS)
        samples_digest = run.log_json("sample_requests.json", _records(samples))
        lineage = {
            "datasets": [v.id for v in window],
            "dataset_seqs": [v.seq for v in window],
            "run_id": run.id,
            "schema_version": schema.version,
            "code_revision": code_revision(),
            "packages": package_versions(),
            "reference_profile": ref_digest,
            "sample_requests": samples_digest,
            "test_start": _iso(test[spec.timestamp].min()) if spec.timestamp else None,
            "rows": {"train": len(train), "valid": len(valid), "test": len(test)},
        }
        metrics = {
            "test": test_metrics,
            "baseline_test": baseline_test,
            "valid": result.valid_metrics,
            "best_iteration": result.best_iteration,
            "winner": result.winner,
            "baseline": result.baseline_name,
            "beats_baseline": result.beats_baseline,
            "leaderboard": [dict(row) for row in result.leaderboard],
            "baselines_test": _baselines_test(result, spec.task, x_test, y_test),
            "size_bytes": model_size_bytes(result.candidate),
        }
        if spec.training.reference is not None:
            metrics["reference"] = _against_reference(spec, spec.training.reference, test_metrics)
        if tuned is not None:
            metrics["hpo"] = {
                "study": tuned.name,
                "best_valid": tuned.best_value,
                "trials": len(tuned.trials),
                "run_id": tuned.run_id,
            }
        tags = {"label_noise": "true"} if label_noise is not None else {}
        tags["candidate"] = result.winner
        tags["beats_baseline"] = "true" if result.beats_baseline else "false"
        version = register_version(
            ws,
            spec.model_name,
            artifact=artifact,
            run_id=run.id,
            signature=signature.to_dict(),
            lineage=lineage,
            metrics=metrics,
            tags=tags,
        )
    say(
        f"registered {spec.model_name} v{version.version} ({result.winner}): test "
        f"{_fmt(test_metrics)} (baseline {_fmt(baseline_test)})"
    )
    return TrainOutcome(version=version, metrics=metrics, beats_baseline=result.beats_baseline)


def _baselines_test(
    result: TrainResult, task: str, x_test: np.ndarray, y_test: np.ndarray
) -> dict[str, dict[str, float]]:
    return {
        name: evaluate(task, y_test, model.predict_encoded(x_test))
        for name, model in result.models.items()
        if name.startswith("baseline_")
    }


def _against_reference(
    spec: ProjectSpec, reference: ReferenceSpec, test_metrics: dict[str, float]
) -> dict[str, Any]:
    if reference.metric not in test_metrics:
        raise ConfigError(
            f"training.reference.metric must be a {spec.task} metric, one of "
            f"{sorted(test_metrics)}. Got {reference.metric!r} instead."
        )
    value = test_metrics[reference.metric]
    return {
        "name": reference.name,
        "metric": reference.metric,
        "value": reference.value,
        "model": value,
        "beats": is_better(reference.metric, value, reference.value),
    }


def load_version(ws: Workspace, model: str, version: int) -> Predictor:
    """Load a version's model from its hash-checked artifact (no code runs on load)."""
    mv = get_version(ws, model, version)
    cached = ws.cached_model(mv.artifact)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    predictor = load_model(ws.stores.artifacts.get_bytes(mv.artifact))
    ws.cache_model(mv.artifact, predictor)
    return predictor


def test_rows(ws: Workspace, spec: ProjectSpec, version: ModelVersion) -> pd.DataFrame:
    """The held-out test rows of a version, rebuilt from its lineage."""
    seqs = set(version.lineage.get("dataset_seqs", []))
    window = [v for v in ws.stores.datasets.list_dataset_versions(spec.project) if v.seq in seqs]
    if not window:
        raise InvalidInputError(f"Version {version.version} has no dataset lineage to test on.")
    _, _, test = split_window(load_versions(ws, window), spec)
    return test


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    clean = frame.astype(object).where(frame.notna(), None)
    return cast(list[dict[str, Any]], clean.to_dict(orient="records"))


def _iso(value: Any) -> str | None:
    if value is None or pd.isna(value):
        return None
    return as_utc(pd.Timestamp(value).to_pydatetime(warn=False)).isoformat()


def _fmt(metrics: dict[str, float]) -> str:
    keys = [k for k in ("roc_auc", "roc_auc_macro", "accuracy", "rmse", "mae") if k in metrics]
    return ", ".join(f"{k} {metrics[k]:.3f}" for k in keys)
