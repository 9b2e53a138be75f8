"""Multiclass training for every model kind, and binary labels of any two values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from conveyor.core.errors import InvalidInputError
from conveyor.core.labels import LabelCodec, Task
from conveyor.core.schema import ColumnKind, ColumnSchema
from conveyor.core.signature import Signature, encode_frame
from conveyor.training import TrainConfig, train_candidates
from conveyor.training.adapters import FitData, SklearnAdapter
from conveyor.training.models import (
    ClassPriorModel,
    PriorModel,
    SklearnModel,
    load_model,
    save_model,
)
from conveyor.training.service import scores_in

SHAPES = ("circle", "square", "triangle")
SIGNATURE = Signature(
    inputs=(
        ColumnSchema("x", ColumnKind.NUMERIC),
        ColumnSchema("z", ColumnKind.NUMERIC),
        ColumnSchema("site", ColumnKind.CATEGORICAL, categories=("a", "b")),
    ),
    task="multiclass",
)


def shapes(n: int, seed: int) -> pd.DataFrame:
    """Three text classes: one from x, one from z (flipped by site), one from x * z."""
    rng = np.random.default_rng(seed)
    x, z = rng.normal(size=n), rng.normal(size=n)
    site = rng.choice(["a", "b"], n)
    logits = np.column_stack([2 * x, 2 * z * np.where(site == "a", 1, -1), 1.5 * x * z])
    label = np.asarray(SHAPES)[(logits + rng.gumbel(size=(n, 3))).argmax(axis=1)]
    return pd.DataFrame({"x": x, "z": z, "site": site, "shape": label})


@pytest.fixture(scope="module")
def split() -> tuple[pd.DataFrame, pd.DataFrame]:
    return shapes(1500, 1), shapes(600, 2)


@pytest.fixture(scope="module")
def multiclass_result(split):
    train, valid = split
    config = TrainConfig(
        task="multiclass",
        label="shape",
        models=("lightgbm", "xgboost", "linear"),
        model_params={"lightgbm": {"num_boost_round": 120}, "xgboost": {"num_boost_round": 60}},
        ensemble="average",
    )
    return train_candidates(train, valid, signature=SIGNATURE, config=config)


def test_every_multiclass_model_scores_class_probabilities(multiclass_result, split):
    _, valid = split
    x = encode_frame(valid, SIGNATURE)
    names = {"lightgbm", "xgboost", "linear", "ensemble", "baseline_prior", "baseline_linear"}
    assert set(multiclass_result.models) == names
    for name, model in multiclass_result.models.items():
        assert model.signature.classes == SHAPES, name
        scores = model.predict_encoded(x)
        assert scores.shape == (len(valid), 3), name
        np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-6, err_msg=name)
        # The artifact round trip scores the same (n, 3) matrix.
        again = load_model(save_model(model)).predict_encoded(x)
        np.testing.assert_allclose(again, scores, atol=1e-12, err_msg=name)


def test_multiclass_candidates_beat_the_class_prior(multiclass_result, split):
    train, _ = split
    metrics = multiclass_result.valid_metrics
    assert multiclass_result.leaderboard[0]["metric"] == "roc_auc_macro"
    prior = metrics["baseline_prior"]
    assert prior["roc_auc_macro"] == 0.5
    for name in ("lightgbm", "xgboost", "ensemble"):
        assert metrics[name]["roc_auc_macro"] > prior["roc_auc_macro"] + 0.2, name
        assert metrics[name]["log_loss"] < prior["log_loss"], name
    assert multiclass_result.beats_baseline
    # The prior is the training class frequencies, in class order.
    rates = multiclass_result.models["baseline_prior"].predict_encoded(np.zeros((1, 3)))[0]
    expected = train["shape"].value_counts(normalize=True).reindex(SHAPES).to_numpy()
    np.testing.assert_allclose(rates, expected)
    # The averaging ensemble is the mean of its members' probability matrices.
    ensemble = multiclass_result.models["ensemble"]
    x = encode_frame(split[1], SIGNATURE)
    mean = np.mean([m.predict_encoded(x) for m in ensemble.members], axis=0)
    np.testing.assert_allclose(ensemble.predict_encoded(x), mean)


def test_multiclass_predict_gives_codes_that_decode_to_classes(multiclass_result, split):
    model = multiclass_result.candidate
    x = encode_frame(split[1], SIGNATURE)
    codes = model.predict(x)
    np.testing.assert_array_equal(codes, model.predict_proba(x).argmax(axis=1))
    decoded = model.signature.labels.decode(codes)
    assert np.mean(np.asarray(decoded) == split[1]["shape"].to_numpy()) > 0.6


@pytest.mark.parametrize("imbalance", ["class_weight", "downsample", "upsample"])
def test_multiclass_training_rows_are_rebalanced_over_every_class(split, imbalance):
    train, valid = split
    messages: list[str] = []
    result = train_candidates(
        train,
        valid,
        signature=SIGNATURE,
        config=TrainConfig(
            task="multiclass",
            label="shape",
            imbalance=imbalance,
            params={"num_boost_round": 40},
        ),
        progress=messages.append,
    )
    assert result.valid_metrics["lightgbm"]["roc_auc_macro"] > 0.7
    counts = train["shape"].value_counts()
    expected = {
        "class_weight": len(train),
        "downsample": 3 * counts.min(),
        "upsample": 3 * counts.max(),
    }
    assert result.train_rows == expected[imbalance]
    assert any("Weighting" in m or "Resampled" in m for m in messages)


def test_multiclass_stacking_is_refused():
    with pytest.raises(InvalidInputError, match="stacking needs a binary or regression task"):
        TrainConfig(task="multiclass", label="shape", ensemble="stacking")


def test_an_unknown_class_in_the_validation_rows_is_named(split):
    train, valid = split
    valid = valid.assign(shape=valid["shape"].where(valid.index != 7, "hexagon"))
    with pytest.raises(
        InvalidInputError,
        match=r"label 'shape' of the valid rows 'hexagon' is not a class of this multiclass",
    ):
        train_candidates(
            train, valid, signature=SIGNATURE, config=TrainConfig(task="multiclass", label="shape")
        )


def test_a_multiclass_label_with_one_class_is_refused(split):
    train, valid = split
    with pytest.raises(InvalidInputError, match="at least two classes"):
        train_candidates(
            train.assign(shape="circle"),
            valid,
            signature=SIGNATURE,
            config=TrainConfig(task="multiclass", label="shape"),
        )


def _answers(n: int, seed: int, values: tuple[str, str]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x, z = rng.normal(size=n), rng.normal(size=n)
    site = rng.choice(["a", "b"], n)
    hit = x + rng.normal(size=n) > 0.8  # the rarer value, about a quarter of the rows
    return pd.DataFrame({"x": x, "z": z, "site": site, "y": np.where(hit, values[1], values[0])})


@pytest.mark.parametrize(
    ("values", "declared", "positive"),
    [
        (("no", "yes"), None, "yes"),  # named positive
        (("good", "bad"), None, "bad"),  # the rarer value
        (("good", "bad"), "good", "good"),  # declared
    ],
)
def test_a_binary_label_of_any_two_values_trains_on_its_positive_class(values, declared, positive):
    signature = Signature(inputs=SIGNATURE.inputs, task="binary")
    train, valid = _answers(1500, 3, values), _answers(600, 4, values)
    config = TrainConfig(
        task="binary", label="y", positive_class=declared, params={"num_boost_round": 40}
    )
    result = train_candidates(train, valid, signature=signature, config=config)
    labels = result.candidate.signature.labels
    assert labels.positive == positive
    # Metrics are computed on codes: 1 is the positive class.
    metrics = result.valid_metrics["candidate"]
    assert metrics["positive_rate"] == pytest.approx(float((valid["y"] == positive).mean()))
    assert metrics["roc_auc"] > 0.7
    scores = result.candidate.predict_encoded(encode_frame(valid, signature))
    truth = (valid["y"] == positive).to_numpy()
    assert scores[truth].mean() > scores[~truth].mean()


def test_a_sklearn_classifier_missing_a_class_scores_it_zero():
    signature = Signature(
        inputs=(ColumnSchema("x", ColumnKind.NUMERIC),), task="multiclass", classes=SHAPES
    )
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0.0, 0.0, 2.0, 2.0])  # no "square" (code 1) in these rows
    fitted = SklearnAdapter.of(LogisticRegression()).fit(FitData(signature, x, y, x, y))
    scores = fitted.model.predict_encoded(x)
    assert isinstance(fitted.model, SklearnModel)
    assert scores.shape == (4, 3)
    np.testing.assert_array_equal(scores[:, 1], 0.0)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0)


def test_a_class_prior_model_checks_its_rates():
    signature = Signature(inputs=SIGNATURE.inputs, task="multiclass", classes=SHAPES)
    with pytest.raises(InvalidInputError, match="3 non-negative floats, one per class"):
        ClassPriorModel(signature, (0.5, 0.5))
    with pytest.raises(InvalidInputError, match="must sum to 1"):
        ClassPriorModel(signature, (0.5, 0.5, 0.5))


def test_a_model_is_scored_on_another_models_classes():
    frame = shapes(4, 0)
    older = Signature(inputs=SIGNATURE.inputs, task="multiclass", classes=("circle", "square"))
    model = ClassPriorModel(older, (0.25, 0.75))
    scores = scores_in(model, frame, LabelCodec(Task.MULTICLASS, SHAPES))
    np.testing.assert_allclose(scores, np.tile([0.25, 0.75, 0.0], (4, 1)))
    dropped = scores_in(model, frame, LabelCodec(Task.MULTICLASS, ("square", "triangle")))
    np.testing.assert_allclose(dropped, np.tile([1.0, 0.0], (4, 1)))
    yes = Signature(inputs=SIGNATURE.inputs, task="binary", classes=("no", "yes"))
    flipped = scores_in(PriorModel(yes, 0.2), frame, LabelCodec(Task.BINARY, ("yes", "no")))
    np.testing.assert_allclose(flipped, 0.8)
    with pytest.raises(InvalidInputError, match=r"classes \['no', 'yes'\] cannot be compared"):
        scores_in(PriorModel(yes, 0.2), frame, LabelCodec(Task.BINARY, ("bad", "good")))
