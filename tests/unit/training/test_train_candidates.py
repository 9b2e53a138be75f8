from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conveyor.core.errors import InvalidInputError
from conveyor.core.schema import ColumnKind, ColumnSchema
from conveyor.core.signature import Signature, encode_frame
from conveyor.evaluation import evaluate
from conveyor.training import (
    DEFAULT_PARAMS,
    LightGBMModel,
    MeanModel,
    PriorModel,
    TrainConfig,
    train_candidates,
)


def test_binary_candidate_beats_the_prior(binary_result, binary_split, binary_signature):
    _, valid = binary_split
    cand = binary_result.valid_metrics["candidate"]
    base = binary_result.valid_metrics["baseline"]
    assert isinstance(binary_result.candidate, LightGBMModel)
    assert isinstance(binary_result.baseline, PriorModel)
    assert binary_result.baseline_name == "baseline_prior" and binary_result.winner == "lightgbm"
    assert binary_result.beats_baseline
    assert base["roc_auc"] == 0.5
    # The linear baseline finds some of the signal; the candidate had to beat it too.
    linear = binary_result.valid_metrics["baseline_linear"]["roc_auc"]
    assert 0.5 < linear < cand["roc_auc"]
    assert cand["roc_auc"] > 0.75
    assert cand["log_loss"] < base["log_loss"]
    # The reported metrics are those of the returned model on the validation rows.
    pred = binary_result.candidate.predict_encoded(encode_frame(valid, binary_signature))
    assert evaluate("binary", valid["y"], pred) == cand


def test_baseline_predicts_the_training_positive_rate(binary_result, binary_split):
    train, _ = binary_split
    prior = binary_result.baseline
    assert prior.positive_rate == pytest.approx(train["y"].mean())


def test_importance_ranks_signal_above_noise(binary_result):
    gain = binary_result.feature_importance
    assert set(gain) == {"x", "z", "noise", "city"}
    assert gain["x"] > gain["noise"]
    assert gain["city"] > gain["noise"]


def test_candidate_keeps_only_the_best_rounds(binary_result):
    booster = binary_result.candidate.booster
    assert 1 <= binary_result.best_iteration < DEFAULT_PARAMS["num_boost_round"]
    assert booster.current_iteration() == binary_result.best_iteration


def test_categorical_input_is_split_natively(binary_result):
    dumped = binary_result.candidate.booster.dump_model()
    assert dumped["feature_names"][3] == "Column_3"

    def decisions(node):
        if "split_feature" not in node:
            return []
        own = [node["decision_type"]] if node["split_feature"] == 3 else []
        return own + decisions(node["left_child"]) + decisions(node["right_child"])

    found = [d for tree in dumped["tree_info"] for d in decisions(tree["tree_structure"])]
    assert found and set(found) == {"=="}


def test_unseen_and_missing_categories_are_scored(binary_result, binary_signature):
    frame = pd.DataFrame(
        {"x": [0.1, 0.1, 0.1], "z": [0.0] * 3, "noise": [0.0] * 3, "city": ["north", "mars", None]}
    )
    pred = binary_result.candidate.predict_encoded(encode_frame(frame, binary_signature))
    assert np.isfinite(pred).all() and ((pred > 0) & (pred < 1)).all()
    assert pred[1] == pred[2]


def test_regression_candidate_beats_the_mean(regression_split, regression_signature):
    train, valid = regression_split
    result = train_candidates(
        train,
        valid,
        signature=regression_signature,
        config=TrainConfig(task="regression", label="y"),
    )
    assert result.baseline_name in ("baseline_mean", "baseline_median")
    assert isinstance(result.models["baseline_mean"], MeanModel)
    assert result.models["baseline_mean"].mean == pytest.approx(train["y"].mean())
    assert result.models["baseline_median"].median == pytest.approx(train["y"].median())
    assert result.beats_baseline
    cand, base = result.valid_metrics["candidate"], result.valid_metrics["baseline"]
    assert cand["rmse"] < 0.8 * base["rmse"]
    assert cand["rmse"] < result.valid_metrics["baseline_linear"]["rmse"]
    assert cand["r2"] > 0.5


def test_noise_label_does_not_beat_the_baseline(binary_split, binary_signature):
    train, valid = binary_split
    rng = np.random.default_rng(7)
    train = train.assign(y=rng.integers(0, 2, len(train)))
    valid = valid.assign(y=rng.integers(0, 2, len(valid)))
    result = train_candidates(
        train, valid, signature=binary_signature, config=TrainConfig(task="binary", label="y")
    )
    assert result.valid_metrics["candidate"]["roc_auc"] < 0.56


def test_boolean_labels_are_accepted(binary_split, binary_signature):
    train, valid = binary_split
    result = train_candidates(
        train.assign(y=train["y"].astype(bool)),
        valid.assign(y=valid["y"].astype(bool)),
        signature=binary_signature,
        config=TrainConfig(task="binary", label="y", params={"num_boost_round": 20}),
    )
    assert result.best_iteration <= 20
    assert result.valid_metrics["baseline"]["positive_rate"] == pytest.approx(valid["y"].mean())


def test_progress_reports_stages_and_rounds(binary_split, binary_signature):
    train, valid = binary_split
    messages: list[str] = []
    config = TrainConfig(
        task="binary", label="y", params={"num_boost_round": 100, "early_stopping_rounds": 0}
    )
    result = train_candidates(
        train, valid, signature=binary_signature, config=config, progress=messages.append
    )
    assert result.best_iteration == 100
    assert any(m.startswith("Training lightgbm on 4000 rows x 4 features") for m in messages)
    assert any(m.startswith("Round 100: valid binary_logloss") for m in messages)


def test_training_is_reproducible(binary_split, binary_signature, binary_result):
    train, valid = binary_split
    config = TrainConfig(task="binary", label="y")
    again = train_candidates(train, valid, signature=binary_signature, config=config)
    x = encode_frame(valid, binary_signature)
    np.testing.assert_array_equal(
        again.candidate.predict_encoded(x), binary_result.candidate.predict_encoded(x)
    )


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([1] * 300, "must take exactly two values. Got 1"),
        ([0, 1, 2] * 100, "must take exactly two values. Got 3"),
        ([0.0, 1.0, np.nan] * 100, "must not be missing"),
    ],
)
def test_bad_binary_labels_are_refused(binary_split, binary_signature, labels, message):
    train, valid = binary_split
    train = train.head(300).assign(y=labels)
    with pytest.raises(InvalidInputError, match=message):
        train_candidates(
            train, valid, signature=binary_signature, config=TrainConfig(task="binary", label="y")
        )


def test_missing_columns_are_named(binary_split, binary_signature):
    train, valid = binary_split
    with pytest.raises(InvalidInputError, match=r"valid frame must have the columns \['city'\]"):
        train_candidates(
            train,
            valid.drop(columns="city"),
            signature=binary_signature,
            config=TrainConfig(task="binary", label="y"),
        )


def test_signature_without_inputs_is_refused(binary_split):
    train, valid = binary_split
    with pytest.raises(InvalidInputError, match="at least one input"):
        train_candidates(
            train, valid, signature=Signature(inputs=()), config=TrainConfig("binary", "y")
        )


def test_signature_task_must_match_config(binary_split, regression_signature):
    train, valid = binary_split
    with pytest.raises(InvalidInputError, match="signature's task"):
        train_candidates(
            train, valid, signature=regression_signature, config=TrainConfig("binary", "y")
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "ranking", "label": "y"}, "'task' of TrainConfig"),
        ({"task": "binary", "label": ""}, "'label' of TrainConfig"),
        ({"task": "binary", "label": "y", "params": {"objective": "l2"}}, "objective"),
        ({"task": "binary", "label": "y", "params": {"num_boost_round": 0}}, "num_boost_round"),
    ],
)
def test_config_rejects_bad_settings(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        TrainConfig(**kwargs)


def test_config_params_override_defaults_and_stay_frozen():
    config = TrainConfig(task="regression", label="y", params={"num_leaves": 7})
    resolved = config.resolved_params()
    assert resolved["num_leaves"] == 7
    assert resolved["objective"] == "regression"
    assert resolved["learning_rate"] == DEFAULT_PARAMS["learning_rate"]
    with pytest.raises(TypeError):
        config.params["num_leaves"] = 9  # type: ignore[index]


@pytest.mark.slow
def test_fifty_thousand_rows_train_in_seconds():
    rng = np.random.default_rng(0)
    n, k = 60_000, 8
    frame = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(k)})
    frame["c"] = rng.choice(list("abcdef"), size=n)
    frame["d"] = rng.choice(list("uvw"), size=n)
    logit = frame["x0"] + 0.5 * frame["x1"] * frame["x2"] + (frame["c"] == "a") * 1.0
    frame["y"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    signature = Signature(
        inputs=(
            *(ColumnSchema(f"x{i}", ColumnKind.NUMERIC) for i in range(k)),
            ColumnSchema("c", ColumnKind.CATEGORICAL, categories=tuple("abcdef")),
            ColumnSchema("d", ColumnKind.CATEGORICAL, categories=tuple("uvw")),
        )
    )
    # Its time is measured in benchmarks/training.py, not here.
    config = TrainConfig(task="binary", label="y", params={"num_threads": 1})
    result = train_candidates(frame[:50_000], frame[50_000:], signature=signature, config=config)
    assert result.beats_baseline
