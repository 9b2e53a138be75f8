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
from conveyor.core.errors import InvalidInputError
from conveyor.core.model import Predictor
from conveyor.core.schema import Schema
from conveyor.core.signature import Signature, encode_frame
from conveyor.data.profiles import profile_frame
from conveyor.data.service import load_versions, project_schema, reference_profile, training_window
from conveyor.data.splits import random_split, time_split
from conveyor.evaluation.metrics import evaluate
from conveyor.registry.service import get_version, register_version
from conveyor.spec import ProjectSpec
from conveyor.tracking.service import record_run
from conveyor.training.models import load_model, save_model
from conveyor.training.trainer import TrainConfig, train_candidates
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


def signature_of(schema: Schema, task: str) -> Signature:
    """The model input signature: the schema's feature columns, in schema order."""
    return Signature(inputs=tuple(schema.features), task=task)


def label_vector(frame: pd.DataFrame, spec: ProjectSpec) -> np.ndarray:
    """The label as float64 (booleans and 0/1 for binary tasks)."""
    values = pd.to_numeric(frame[spec.label], errors="coerce").astype("float64")
    return np.asarray(values, dtype=np.float64)


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


def split_window(
    frame: pd.DataFrame, spec: ProjectSpec
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train/validation/test by time when the project has a timestamp, else by a seeded shuffle."""
    frame = frame[~frame[spec.label].isna()]
    if spec.timestamp:
        return time_split(frame, time_column=spec.timestamp, fractions=spec.training.split)
    return random_split(frame, fractions=spec.training.split, seed=0)


def train_model(
    ws: Workspace,
    spec: ProjectSpec,
    *,
    versions: list[DatasetVersion] | None = None,
    label_noise: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    reason: str = "",
    progress: Progress | None = None,
) -> TrainOutcome:
    """Train a baseline and a LightGBM candidate on the training window; register the candidate.

    ``label_noise`` transforms the training part before fitting; it exists to rehearse a bad
    release (the demo trains one on shuffled labels) and is recorded in the version's tags.
    """
    say = progress or (lambda _msg: None)
    window = versions if versions is not None else training_window(ws, spec)
    frame = load_versions(ws, window)
    schema = project_schema(ws, spec)
    signature = signature_of(schema, spec.task)
    train, valid, test = split_window(frame, spec)
    if label_noise is not None:
        train = label_noise(train)
    say(f"training on {len(train):,} rows from batches {window[0].seq}..{window[-1].seq}")
    config = TrainConfig(task=spec.task, label=spec.label, params=dict(spec.training.params))
    with record_run(
        ws,
        spec.project,
        experiment="training",
        name=f"train-{window[-1].seq}",
        tags={"trigger": reason} if reason else None,
    ) as run:
        result = train_candidates(train, valid, signature=signature, config=config, progress=say)
        y_test = label_vector(test, spec)
        x_test = encode_frame(test, signature)
        test_metrics = evaluate(spec.task, y_test, result.candidate.predict_encoded(x_test))
        baseline_test = evaluate(spec.task, y_test, result.baseline.predict_encoded(x_test))
        run.log_params(
            {
                **result.params,
                "rows_train": len(train),
                "rows_valid": len(valid),
                "rows_test": len(test),
            }
        )
        run.log_metrics({f"valid_{k}": v for k, v in result.valid_metrics["candidate"].items()})
        run.log_metrics({f"test_{k}": v for k, v in test_metrics.items()})
        run.log_metrics({f"baseline_test_{k}": v for k, v in baseline_test.items()})
        run.log_datasets([v.id for v in window])
        artifact = run.log_bytes(
            "model.json",
            save_model(result.candidate, meta={"feature_importance": result.feature_importance}),
        )
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
        }
        tags = {"label_noise": "true"} if label_noise is not None else {}
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
        f"registered {spec.model_name} v{version.version}: test "
        f"{_fmt(test_metrics)} (baseline {_fmt(baseline_test)})"
    )
    return TrainOutcome(version=version, metrics=metrics, beats_baseline=result.beats_baseline)


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
    keys = [k for k in ("roc_auc", "accuracy", "rmse", "mae") if k in metrics]
    return ", ".join(f"{k} {metrics[k]:.3f}" for k in keys)
