from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.tree import DecisionTreeClassifier

from conveyor.core.errors import InvalidInputError
from conveyor.core.signature import encode_frame
from conveyor.evaluation import evaluate
from conveyor.training import TrainConfig, load_model, train_candidates
from conveyor.training.adapters import (
    ADAPTERS,
    FitData,
    SklearnAdapter,
    XGBoostAdapter,
    get_adapter,
    linear_adapter,
)
from conveyor.training.models import EnsembleModel, MedianModel, PriorModel, XGBoostModel


@pytest.fixture(scope="module")
def binary_data(binary_split, binary_signature) -> FitData:
    train, valid = binary_split
    return FitData(
        binary_signature,
        encode_frame(train, binary_signature),
        train["y"].to_numpy(float),
        encode_frame(valid, binary_signature),
        valid["y"].to_numpy(float),
    )


@pytest.mark.parametrize("name", ["lightgbm", "xgboost", "linear"])
def test_every_adapter_gives_the_same_interface_and_round_trips(name, binary_data):
    fitted = get_adapter(name).fit(
        binary_data, params={"num_boost_round": 80} if name != "linear" else {}
    )
    model = fitted.model
    x = binary_data.x_valid
    proba = model.predict_proba(x)
    assert proba.shape == (len(x), 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert set(np.unique(model.predict(x))) <= {0, 1}
    assert evaluate("binary", binary_data.y_valid, proba[:, 1])["roc_auc"] > 0.7
    data = model.save(meta={"name": name})
    assert model.size_bytes == len(model.save())
    back = model.load(data)
    assert back.kind == model.kind
    np.testing.assert_allclose(back.predict_encoded(x), model.predict_encoded(x), rtol=1e-6)
    assert set(fitted.feature_importance) == set(binary_data.signature.names)
    assert fitted.feature_importance["x"] > fitted.feature_importance["noise"]


def test_xgboost_splits_categories_natively(binary_data):
    fitted = XGBoostAdapter().fit(binary_data, params={"num_boost_round": 40})
    assert isinstance(fitted.model, XGBoostModel)
    assert fitted.model.booster.feature_types[3] == "c"
    document = json.loads(bytes(fitted.model.booster.save_raw(raw_format="json")))
    trees = document["learner"]["gradient_booster"]["model"]["trees"]
    # A categorical split is recorded as a set of categories on the node, not a threshold.
    assert any(tree["categories_nodes"] for tree in trees)
    # Early stopping cut the booster to the rounds it kept.
    assert fitted.model.booster.num_boosted_rounds() == fitted.best_iteration


def test_sklearn_adapter_wraps_any_estimator_and_uses_sample_weights(binary_data):
    adapter = SklearnAdapter.of(DecisionTreeClassifier(max_depth=3), name="tree")
    fitted = adapter.fit(binary_data, params={"max_depth": 5})
    assert fitted.model.estimator.max_depth == 5
    weights = np.where(binary_data.y_train == 1, 10.0, 1.0)
    heavy = FitData(
        binary_data.signature,
        binary_data.x_train,
        binary_data.y_train,
        binary_data.x_valid,
        binary_data.y_valid,
        sample_weight=weights,
    )
    weighted = adapter.fit(heavy)
    x = binary_data.x_valid
    assert weighted.model.predict_encoded(x).mean() > fitted.model.predict_encoded(x).mean() + 0.1


def test_linear_baseline_imputes_scales_and_one_hot_encodes(binary_data, binary_signature):
    fitted = linear_adapter().fit(binary_data)
    prepare = fitted.model.estimator.named_steps["prepare"]
    assert [name for name, _, _ in prepare.transformers_][:2] == ["numeric", "categorical"]
    row = pd.DataFrame({"x": [np.nan], "z": [0.0], "noise": [0.0], "city": ["atlantis"]})
    score = fitted.model.predict_encoded(encode_frame(row, binary_signature))
    assert np.isfinite(score).all()
    # The artifact is skops under the allowlist: no pickle.
    assert b'"skops"' in fitted.model.save()


def test_unknown_model_name_is_refused():
    with pytest.raises(InvalidInputError, match="must be one of"):
        get_adapter("catboost")
    with pytest.raises(InvalidInputError, match="'models' of TrainConfig"):
        TrainConfig(task="binary", label="y", models=("lightgbm", "catboost"))
    assert {"lightgbm", "xgboost", "linear"} <= set(ADAPTERS)


@pytest.mark.parametrize("how", ["average", "stacking"])
def test_ensemble_of_candidates_is_a_candidate_and_round_trips(how, binary_split, binary_signature):
    train, valid = binary_split
    config = TrainConfig(
        task="binary",
        label="y",
        params={"num_boost_round": 120},
        models=("lightgbm", "xgboost"),
        model_params={"xgboost": {"num_boost_round": 120}},
        ensemble=how,
    )
    result = train_candidates(train, valid, signature=binary_signature, config=config)
    assert {"lightgbm", "xgboost", "ensemble", "baseline_prior", "baseline_linear"} <= set(
        result.valid_metrics
    )
    ensemble = result.models["ensemble"]
    assert isinstance(ensemble, EnsembleModel) and len(ensemble.members) == 2
    assert ensemble.link == ("identity" if how == "average" else "logit")
    board = [row["name"] for row in result.leaderboard]
    assert board[0] == result.winner and board[-1] in ("baseline_prior",)
    x = encode_frame(valid, binary_signature)
    back = load_model(ensemble.save())
    np.testing.assert_allclose(back.predict_encoded(x), ensemble.predict_encoded(x), rtol=1e-9)
    if how == "average":
        mean = np.mean([m.predict_encoded(x) for m in ensemble.members], axis=0)
        np.testing.assert_allclose(ensemble.predict_encoded(x), mean)
        assert result.valid_metrics["ensemble"] == evaluate("binary", valid["y"], mean)


def test_a_candidate_that_does_not_beat_the_linear_baseline_is_not_the_winner(binary_signature):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=3000),
            "z": rng.normal(size=3000),
            "noise": rng.normal(size=3000),
            "city": rng.choice(["north", "south"], size=3000),
        }
    )
    frame["y"] = (rng.random(3000) < 1 / (1 + np.exp(-(2 * frame["x"] - frame["z"])))).astype(int)
    # A crippled candidate: two rounds of stumps.
    config = TrainConfig(task="binary", label="y", params={"num_boost_round": 2, "num_leaves": 2})
    result = train_candidates(frame[:2000], frame[2000:], signature=binary_signature, config=config)
    metrics = result.valid_metrics
    assert metrics["baseline_linear"]["roc_auc"] > metrics["lightgbm"]["roc_auc"]
    assert (
        result.winner == "baseline_linear" and result.candidate is result.models["baseline_linear"]
    )
    assert result.beats_baseline  # against the constant prior


@pytest.mark.parametrize("imbalance", ["class_weight", "downsample", "upsample"])
def test_imbalance_options_change_training_rows_only(imbalance, binary_signature):
    rng = np.random.default_rng(4)
    n = 6000
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "z": rng.normal(size=n),
            "noise": rng.normal(size=n),
            "city": rng.choice(["north", "south"], size=n),
        }
    )
    frame["y"] = (rng.random(n) < 1 / (1 + np.exp(-(2 * frame["x"] - 4)))).astype(int)
    train, valid = frame[:4000], frame[4000:]
    messages: list[str] = []
    plain = train_candidates(
        train, valid, signature=binary_signature, config=TrainConfig(task="binary", label="y")
    )
    balanced = train_candidates(
        train,
        valid,
        signature=binary_signature,
        config=TrainConfig(task="binary", label="y", imbalance=imbalance),
        progress=messages.append,
    )
    x = encode_frame(valid, binary_signature)
    # Rebalanced training shifts the candidate's scores up toward the rare class...
    before = plain.models["lightgbm"].predict_encoded(x).mean()
    assert balanced.models["lightgbm"].predict_encoded(x).mean() > 1.5 * before
    # ...while validation is untouched and the prior baseline keeps the real positive rate.
    assert balanced.valid_rows == plain.valid_rows == len(valid)
    assert balanced.models["baseline_prior"].positive_rate == pytest.approx(train["y"].mean())
    if imbalance == "downsample":
        assert balanced.train_rows == 2 * int(train["y"].sum())
    elif imbalance == "upsample":
        assert balanced.train_rows == 2 * int((train["y"] == 0).sum())
    else:
        assert balanced.train_rows == len(train)
        assert any("Weighting" in m for m in messages)


def test_imbalance_needs_a_binary_task():
    with pytest.raises(InvalidInputError, match="option of a regression task must be one of"):
        TrainConfig(task="regression", label="y", imbalance="downsample")


def test_regression_baselines_are_mean_median_and_ridge(regression_split, regression_signature):
    train, valid = regression_split
    result = train_candidates(
        train,
        valid,
        signature=regression_signature,
        config=TrainConfig(task="regression", label="y", params={"num_boost_round": 100}),
    )
    assert isinstance(result.models["baseline_median"], MedianModel)
    assert (
        result.models["baseline_linear"].estimator.named_steps["model"].__class__.__name__
        == "Ridge"
    )
    with pytest.raises(InvalidInputError, match="predict_proba\\(\\) needs a classification model"):
        result.candidate.predict_proba(encode_frame(valid, regression_signature))


def test_ensemble_model_validates_its_members(binary_signature, regression_signature):
    prior = PriorModel(binary_signature, 0.3)
    with pytest.raises(InvalidInputError, match="one weight per member"):
        EnsembleModel(binary_signature, (prior,), (0.5, 0.5))
    with pytest.raises(InvalidInputError, match="the ensemble's signature"):
        EnsembleModel(regression_signature, (prior,), (1.0,))
    with pytest.raises(InvalidInputError, match="'link' of EnsembleModel"):
        EnsembleModel(binary_signature, (prior,), (1.0,), link="probit")
