from __future__ import annotations

import json
import math
import pickle

import lightgbm as lgb
import numpy as np
import pytest

from conveyor.core.errors import InvalidInputError
from conveyor.core.schema import ColumnKind, ColumnSchema
from conveyor.core.signature import Signature, encode_frame
from conveyor.training import (
    MODEL_FORMAT,
    LightGBMModel,
    MeanModel,
    PriorModel,
    load_model,
    model_size_bytes,
    read_model_meta,
    save_model,
)


def test_lightgbm_round_trip_predicts_identically(binary_result, binary_split, binary_signature):
    _, valid = binary_split
    x = encode_frame(valid, binary_signature)
    data = save_model(binary_result.candidate, meta={"auc": 0.8})
    loaded = load_model(data)
    assert isinstance(loaded, LightGBMModel)
    assert loaded.kind == "lightgbm"
    assert loaded.signature == binary_result.candidate.signature
    assert loaded.signature.inputs == binary_signature.inputs
    np.testing.assert_array_equal(
        loaded.predict_encoded(x), binary_result.candidate.predict_encoded(x)
    )


def test_artifact_is_plain_json_with_the_native_model_text(binary_result):
    document = json.loads(save_model(binary_result.candidate))
    assert set(document) == {"format", "kind", "signature", "meta", "payload"}
    assert document["format"] == MODEL_FORMAT
    assert document["kind"] == "lightgbm"
    assert document["payload"].startswith("tree\n")
    assert document["signature"]["inputs"][3]["categories"] == ["north", "south", "east", "west"]


@pytest.mark.parametrize(
    "model",
    [
        PriorModel(Signature(inputs=(ColumnSchema("a", ColumnKind.NUMERIC),)), 0.3),
        MeanModel(
            Signature(inputs=(ColumnSchema("a", ColumnKind.NUMERIC),), task="regression"), -4.5
        ),
    ],
)
def test_baselines_round_trip(model):
    loaded = load_model(save_model(model))
    assert type(loaded) is type(model)
    assert loaded == model
    np.testing.assert_array_equal(
        loaded.predict_encoded(np.zeros((3, 1))), model.predict_encoded(np.zeros((3, 1)))
    )


def test_meta_is_kept_and_non_finite_floats_become_null(binary_result):
    meta = {"valid": {"roc_auc": float("nan"), "n": np.float64(10.0)}, "rows": np.int64(5)}
    data = save_model(binary_result.baseline, meta=meta)
    assert read_model_meta(data) == {"valid": {"roc_auc": None, "n": 10.0}, "rows": 5}


def test_meta_that_is_not_json_is_refused(binary_result):
    with pytest.raises(InvalidInputError, match="meta must be JSON-ready"):
        save_model(binary_result.baseline, meta={"when": object()})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x04\x95 not json", "UTF-8 JSON document"),
        (pickle.dumps({"kind": "lightgbm"}), "UTF-8 JSON document"),
        (b'{"format": "conveyor.model/1"', "UTF-8 JSON document"),
        (b"[1, 2, 3]", "must have format 'conveyor.model/1'. Got 'list'"),
        (json.dumps({"format": "mlflow/1", "kind": "prior"}).encode(), "Got 'mlflow/1'"),
    ],
)
def test_garbage_is_refused(data, message):
    with pytest.raises(InvalidInputError, match=message):
        load_model(data)


def test_pickle_kind_is_refused(binary_result):
    document = json.loads(save_model(binary_result.baseline))
    document["kind"] = "pickle"
    document["payload"] = pickle.dumps(binary_result.baseline).hex()
    with pytest.raises(InvalidInputError, match=r"kind must be one of .*Got 'pickle'"):
        load_model(json.dumps(document).encode())


@pytest.mark.parametrize(
    ("kind", "payload", "message"),
    [
        ("lightgbm", "this is not a model", "does not parse"),
        ("lightgbm", {"trees": []}, "must be a LightGBM text model"),
        ("prior", {"positive_rate": "0.3"}, "must be {'positive_rate': <number>}"),
        ("prior", {"positive_rate": 3.0}, "in \\[0, 1\\]"),
        ("mean", None, "must be {'mean': <number>}"),
    ],
)
def test_malformed_payloads_are_refused(binary_result, kind, payload, message):
    document = json.loads(save_model(binary_result.baseline))
    document.update(kind=kind, payload=payload)
    with pytest.raises(InvalidInputError, match=message):
        load_model(json.dumps(document).encode())


def test_signature_must_fit_the_booster(binary_result):
    document = json.loads(save_model(binary_result.candidate))
    document["signature"]["inputs"] = document["signature"]["inputs"][:2]
    with pytest.raises(InvalidInputError, match="takes 4 features but its signature has 2"):
        load_model(json.dumps(document).encode())


def test_malformed_signature_is_refused(binary_result):
    document = json.loads(save_model(binary_result.baseline))
    document["signature"] = {"inputs": [{"name": "a", "kind": "hologram"}]}
    with pytest.raises(InvalidInputError, match="signature is malformed"):
        load_model(json.dumps(document).encode())


def test_wrong_matrix_width_is_refused(binary_result):
    with pytest.raises(InvalidInputError, match=r"shape \(n, 4\).*Got shape \(2, 3\)"):
        binary_result.candidate.predict_encoded(np.zeros((2, 3)))
    with pytest.raises(InvalidInputError, match=r"shape \(n, 4\)"):
        binary_result.baseline.predict_encoded(np.zeros(4))


def test_empty_matrix_gives_no_predictions(binary_result):
    assert binary_result.candidate.predict_encoded(np.zeros((0, 4))).shape == (0,)


def test_lightgbm_model_predicts_with_the_raw_booster(binary_result):
    booster = binary_result.candidate.booster
    assert isinstance(booster, lgb.Booster)
    x = np.array([[0.5, -0.2, 0.0, 1.0], [np.nan, np.nan, np.nan, np.nan]])
    np.testing.assert_array_equal(binary_result.candidate.predict_encoded(x), booster.predict(x))


def test_model_size_counts_the_artifact(binary_result):
    size = model_size_bytes(binary_result.candidate)
    assert size == len(save_model(binary_result.candidate))
    assert size > model_size_bytes(binary_result.baseline) > 0


def test_prior_rejects_a_rate_outside_unit_interval():
    sig = Signature(inputs=())
    with pytest.raises(InvalidInputError, match="positive_rate"):
        PriorModel(sig, 1.5)
    with pytest.raises(InvalidInputError, match="finite"):
        MeanModel(sig, math.inf)
