from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import optuna
import pytest

from conveyor.config import Settings
from conveyor.core.errors import ConfigError, InvalidInputError
from conveyor.core.signature import encode_frame
from conveyor.training.adapters import ADAPTERS, FitData
from conveyor.training.hpo import (
    HpoConfig,
    ProcessPoolExecutor,
    SearchSpace,
    StudySettings,
    TrialObjective,
    list_studies,
    run_study,
    study_storage_url,
)
from conveyor.workspace import Workspace

FAST = {"num_boost_round": 60, "early_stopping_rounds": 10}
SMALL_SPACE = {
    "num_leaves": {"int": [4, 64], "log": True},
    "learning_rate": {"float": [0.02, 0.3], "log": True},
}


@pytest.fixture(scope="module")
def data(binary_split, binary_signature) -> FitData:
    train, valid = binary_split
    return FitData(
        binary_signature,
        encode_frame(train, binary_signature),
        train["y"].to_numpy(float),
        encode_frame(valid, binary_signature),
        valid["y"].to_numpy(float),
    )


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.open(Settings(home=tmp_path / "ws"))


def _config(**kw) -> HpoConfig:
    return HpoConfig(
        space=SearchSpace.from_config(SMALL_SPACE), base_params=FAST, **{"n_trials": 4, **kw}
    )


def test_search_space_from_config_suggests_within_bounds():
    space = SearchSpace.from_config(
        {
            **SMALL_SPACE,
            "boosting": {"categorical": ["gbdt", "goss"]},
            "depth": {"int": [2, 8], "step": 2},
        }
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        params = space.suggest(study.ask())
        assert 4 <= params["num_leaves"] <= 64 and 0.02 <= params["learning_rate"] <= 0.3
        assert params["boosting"] in ("gbdt", "goss") and params["depth"] in (2, 4, 6, 8)


@pytest.mark.parametrize(
    ("space", "match"),
    [
        ({"a": {"int": [5, 1]}}, "lo < hi"),
        ({"a": {"float": [0.0, 1.0], "log": True}}, "lo > 0 with log"),
        ({"a": {"uniform": [0, 1]}}, "must be {int"),
        ({"a": {"int": [0.5, 2]}}, "must be {int"),
        ({"a": {"categorical": []}}, "must be {int"),
        ({}, "at least one parameter"),
    ],
)
def test_bad_search_spaces_are_refused_naming_the_parameter(space, match):
    with pytest.raises(InvalidInputError, match=match):
        SearchSpace.from_config(space)


def test_hpo_config_refuses_bad_options():
    with pytest.raises(InvalidInputError, match="'cv_folds' must be 0"):
        HpoConfig(cv_folds=1)
    with pytest.raises(InvalidInputError, match="'pruner'"):
        HpoConfig(pruner="asha")
    with pytest.raises(InvalidInputError, match="HPO 'model'"):
        HpoConfig(model="catboost")


def test_study_finds_params_records_nested_runs_and_resumes(ws, data):
    messages: list[str] = []
    first = run_study(ws, "p", data, _config(), study_name="s", progress=messages.append)
    assert first.new_trials == 4 and len(first.trials) == 4
    assert sum(m.startswith("Trial ") for m in messages) == 4
    complete = [t for t in first.trials if t.state == "complete"]
    assert first.best_value == max(t.values[0] for t in complete)
    assert first.best_params["num_boost_round"] == 60  # the base params are part of the best
    assert 4 <= first.best_params["num_leaves"] <= 64
    # Every trial is a tracked run nested under the study's run.
    runs = {r.id: r for r in ws.stores.runs.list_runs("p", experiment="hpo")}
    study_run = runs[first.run_id]
    children = [r for r in runs.values() if r.parent_id == study_run.id]
    assert sorted(int(r.tags["trial"]) for r in children) == [0, 1, 2, 3]
    assert all(t.run_id in runs for t in first.trials)
    best_run = runs[
        next(t.run_id for t in first.trials if t.values and t.values[0] == first.best_value)
    ]
    assert best_run.metrics["roc_auc"] == pytest.approx(first.best_value)
    # The study is kept in the workspace: asking for 6 trials runs only the 2 missing ones.
    again = run_study(ws, "p", data, _config(n_trials=6), study_name="s")
    assert again.new_trials == 2 and len(again.trials) == 6
    assert again.best_value >= first.best_value
    nested = [
        r for r in ws.stores.runs.list_runs("p", experiment="hpo") if r.parent_id == again.run_id
    ]
    assert len(nested) == 2  # only the new trials are recorded again
    assert study_storage_url(ws).endswith("hpo/studies.db")
    listed = {s["study"]: s for s in list_studies(ws)}
    assert listed["s"]["trials"] == 6 and listed["s"]["best_value"] == pytest.approx(
        again.best_value
    )


def test_median_pruner_stops_hopeless_trials(ws, data):
    # Learning rates so small that most fits go nowhere; the pruner cuts them short.
    space = SearchSpace.from_config({"learning_rate": {"float": [1e-4, 0.3], "log": True}})
    config = HpoConfig(
        space=space,
        base_params={"num_boost_round": 100, "early_stopping_rounds": 0},
        n_trials=10,
        sampler="random",
        seed=1,
    )
    small = FitData(
        data.signature, data.x_train[:1500], data.y_train[:1500], data.x_valid, data.y_valid
    )
    result = run_study(ws, "p", small, config, study_name="pruned")
    states = [t.state for t in result.trials]
    assert "pruned" in states and "complete" in states
    pruned_runs = [
        r
        for r in ws.stores.runs.list_runs("p", experiment="hpo")
        if r.tags.get("state") == "pruned"
    ]
    assert len(pruned_runs) == states.count("pruned")


def test_cross_validation_scores_on_training_folds_only(ws, data):
    result = run_study(
        ws, "p", data, _config(cv_folds=3, n_trials=2, pruner="none"), study_name="cv"
    )
    assert result.new_trials == 2
    # Scored on folds of the training rows: the metrics carry no validation-row count.
    for trial in result.trials:
        assert trial.metrics["n"] == pytest.approx(len(data.y_train) / 3, abs=1)


def test_multi_objective_keeps_a_pareto_front_of_quality_and_latency(ws, data):
    result = run_study(ws, "p", data, _config(multi_objective=True, n_trials=4), study_name="mo")
    assert result.pareto and all(len(t.values) == 2 for t in result.pareto)
    front = [t.values for t in result.pareto]
    for a in front:  # no point of the front dominates another
        assert not any(b[0] >= a[0] and b[1] <= a[1] and b != a for b in front)
    with pytest.raises(ConfigError, match="exists with objectives"):
        run_study(ws, "p", data, _config(n_trials=5), study_name="mo")


def test_objective_is_picklable_for_worker_processes(data):
    objective = TrialObjective(data=data, config=_config(), adapter=ADAPTERS["lightgbm"])
    back = pickle.loads(pickle.dumps(objective))
    assert back.config.suggest(optuna.create_study().ask())["num_boost_round"] == 60


@pytest.mark.slow
def test_process_pool_runs_trials_in_parallel_workers(ws, data):
    result = run_study(
        ws, "p", data, _config(n_trials=4), study_name="pool", executor=ProcessPoolExecutor(2)
    )
    assert 4 <= len(result.trials) <= 5  # at most workers - 1 over the target
    nested = [
        r for r in ws.stores.runs.list_runs("p", experiment="hpo") if r.parent_id == result.run_id
    ]
    assert len(nested) == len(result.trials)
    assert np.isfinite(result.best_value)


def test_wall_clock_budget_stops_a_hyperband_study(ws, data):
    config = _config(n_trials=10_000, timeout_s=3.0, pruner="hyperband")
    result = run_study(ws, "p", data, config, study_name="budget")
    assert 1 <= result.new_trials < 10_000
    # optimize() only checks the clock between trials: one trial may run past the budget.
    assert result.elapsed_s < 3.0 + 30.0
    settings = StudySettings("x", "", ("maximize",), "tpe", "hyperband", 0, 60)
    assert isinstance(settings.sampler_and_pruner()[1], optuna.pruners.HyperbandPruner)
    multi = StudySettings("x", "", ("maximize", "minimize"), "tpe", "median", 0, 60)
    assert isinstance(multi.sampler_and_pruner()[1], optuna.pruners.NopPruner)
