from __future__ import annotations

import pandas as pd
import pytest
from tests.integration.conftest import SPEC, make_batch

from conveyor.core.errors import ConfigError
from conveyor.data.service import ingest_batch
from conveyor.registry.service import get_version
from conveyor.spec import parse_spec
from conveyor.training.hpo import list_studies
from conveyor.training.service import split_window, train_model, tune_model


def _spec(**training):
    return parse_spec({**SPEC, "training": {**SPEC["training"], **training}})


def _ingest(ws, spec, weeks=3):
    for w in range(weeks):
        ingest_batch(ws, spec, make_batch(w))


def test_hpo_models_ensemble_and_reference_from_the_spec(ws):
    spec = _spec(
        models=["lightgbm", "xgboost"],
        model_params={"xgboost": {"num_boost_round": 60}},
        ensemble="average",
        reference={"metric": "roc_auc", "value": 0.55, "name": "rule-based"},
        hpo={"trials": 3, "space": {"num_leaves": {"int": [4, 32], "log": True}}},
    )
    _ingest(ws, spec)
    messages: list[str] = []
    outcome = train_model(ws, spec, progress=messages.append)
    m = outcome.version.metrics
    assert {"lightgbm", "xgboost", "ensemble", "baseline_prior", "baseline_linear"} <= set(
        m["valid"]
    )
    ranked = [row["name"] for row in m["leaderboard"] if row["name"] != "baseline_prior"]
    assert m["winner"] == ranked[0]
    assert outcome.version.tags["candidate"] == m["winner"]
    assert set(m["baselines_test"]) == {"baseline_prior", "baseline_linear"}
    assert m["reference"]["name"] == "rule-based" and m["reference"]["value"] == 0.55
    assert m["reference"]["beats"] == (m["test"]["roc_auc"] > 0.55)
    assert m["size_bytes"] > 0
    # The study ran inside the training run, its trials nested under it.
    hpo = m["hpo"]
    assert hpo["trials"] == 3
    study_run = ws.stores.runs.get_run(hpo["run_id"])
    assert study_run.parent_id == outcome.version.run_id
    trials = [
        r
        for r in ws.stores.runs.list_runs(spec.project, experiment="hpo")
        if r.parent_id == study_run.id
    ]
    assert len(trials) == 3
    assert any(msg.startswith("Trial 3/3") for msg in messages)
    assert (
        get_version(ws, spec.model_name, outcome.version.version).metrics["hpo"]["study"]
        == hpo["study"]
    )


def test_tune_model_resumes_the_window_study(ws):
    spec = _spec(hpo={"space": {"num_leaves": {"int": [4, 32]}}})
    _ingest(ws, spec)
    with pytest.raises(ConfigError, match="trial budget"):
        tune_model(ws, spec)
    first = tune_model(ws, spec, trials=2)
    second = tune_model(ws, spec, trials=3)
    assert first.name == second.name == "toy-lightgbm-w3"
    assert second.new_trials == 1 and len(second.trials) == 3
    assert [s["trials"] for s in list_studies(ws)] == [3]


@pytest.mark.parametrize("split_by", ["random", "stratified", "group"])
def test_split_strategies_from_the_spec(ws, split_by):
    spec = _spec(split_by=split_by, group_column="carrier" if split_by == "group" else None, seed=3)
    _ingest(ws, spec, weeks=2)
    frame = pd.concat([make_batch(0), make_batch(1)], ignore_index=True)
    train, valid, test = split_window(frame, spec)
    assert len(train) + len(valid) + len(test) == len(frame)
    if split_by == "group":
        assert not set(train["carrier"]) & set(test["carrier"])
    if split_by == "stratified":
        rates = [p["late"].mean() for p in (train, valid, test)]
        assert max(rates) - min(rates) < 0.01


def test_split_options_need_their_columns(ws):
    frame = make_batch(0)
    with pytest.raises(ConfigError, match="group_column"):
        split_window(frame, _spec(split_by="group"))
    no_time = parse_spec(
        {**{k: v for k, v in SPEC.items() if k != "timestamp"}, "training": {"split_by": "time"}}
    )
    with pytest.raises(ConfigError, match="timestamp"):
        split_window(frame, no_time)


def test_class_weights_from_the_spec_train_and_register(ws):
    spec = _spec(imbalance="class_weight")
    _ingest(ws, spec)
    outcome = train_model(ws, spec)
    # Weighted training pushes scores up; the prior baseline keeps the real positive rate.
    base = outcome.version.metrics["valid"]["baseline_prior"]
    cand = outcome.version.metrics["valid"]["lightgbm"]
    assert cand["mean_prediction"] > base["mean_prediction"] + 0.1


def test_auto_splits_a_coarse_time_at_random_and_a_fine_one_by_time():
    spec = _spec()  # split_by: auto, with the timestamp "ts"
    fine = pd.concat([make_batch(0), make_batch(1)], ignore_index=True)
    train, _, test = split_window(fine, spec)
    assert train[spec.timestamp].max() <= test[spec.timestamp].min()  # newest rows tested

    # A year column over three years: a split by time would give each part one year (and
    # fail with fewer years than parts); at random, every part holds every year.
    coarse = fine.assign(**{spec.timestamp: pd.Timestamp("2021-01-01", tz="UTC")})
    coarse.loc[coarse.index[::3], spec.timestamp] = pd.Timestamp("2022-01-01", tz="UTC")
    train, valid, test = split_window(coarse, spec)
    assert len(train) + len(valid) + len(test) == len(coarse)
    assert test[spec.timestamp].nunique() == 2
