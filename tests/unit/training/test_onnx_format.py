"""ONNX models: scikit-learn round trips, zipmap and regression outputs, refused graphs."""

from __future__ import annotations

import base64
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conveyor.core.errors import InvalidInputError
from conveyor.core.schema import ColumnKind, ColumnSchema
from conveyor.core.signature import Signature
from conveyor.training import load_model, save_model
from conveyor.training.onnx_format import (
    OnnxModel,
    check_onnx_graph,
    onnx_model,
    onnx_model_from_sklearn,
)

SIGNATURE = Signature(
    inputs=(
        ColumnSchema("a", ColumnKind.NUMERIC),
        ColumnSchema("b", ColumnKind.NUMERIC),
        ColumnSchema("c", ColumnKind.NUMERIC),
    )
)
RNG = np.random.default_rng(7)
X = RNG.normal(size=(500, 3))
Y = (X[:, 0] - 0.5 * X[:, 1] + 0.3 * RNG.normal(size=500) > 0).astype(int)


def _artifact(payload: object, kind: str = "onnx") -> bytes:
    return json.dumps(
        {
            "format": "conveyor.model/1",
            "kind": kind,
            "signature": SIGNATURE.to_dict(),
            "meta": {},
            "payload": payload,
        }
    ).encode("utf-8")


def _onnx_payload(data: bytes) -> dict[str, str]:
    return {"onnx": base64.b64encode(data).decode("ascii")}


@pytest.mark.parametrize(
    "estimator",
    [
        LogisticRegression(),
        RandomForestClassifier(n_estimators=25, max_depth=6, random_state=0),
        make_pipeline(StandardScaler(), LogisticRegression(C=0.5)),
    ],
    ids=["logistic", "forest", "pipeline"],
)
def test_sklearn_round_trip_matches_predict_proba(estimator: object) -> None:
    estimator.fit(X, Y)  # type: ignore[attr-defined]
    model = onnx_model_from_sklearn(estimator, SIGNATURE)
    artifact = save_model(model, meta={"source": "sklearn"})

    loaded = load_model(artifact)

    assert isinstance(loaded, OnnxModel)
    assert loaded.kind == "onnx"
    assert json.loads(artifact)["kind"] == "onnx"
    expected = estimator.predict_proba(X)[:, 1]  # type: ignore[attr-defined]
    got = loaded.predict_encoded(X)
    assert got.dtype == np.float64
    assert got.shape == (len(X),)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert save_model(loaded, meta={"source": "sklearn"}) == artifact


def test_float32_conversion_and_zipmap_output_score_the_positive_class() -> None:
    clf = LogisticRegression().fit(X, Y)
    expected = clf.predict_proba(X)[:, 1]
    float32 = onnx_model_from_sklearn(clf, SIGNATURE, dtype="float32")
    zipmap = to_onnx(clf, initial_types=[("input", FloatTensorType([None, 3]))])
    zipmapped = onnx_model(SIGNATURE, zipmap.SerializeToString())

    assert zipmapped.runner.output_shape == "zipmap"
    np.testing.assert_allclose(float32.predict_encoded(X), expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(zipmapped.predict_encoded(X), expected, atol=1e-5, rtol=0)


def test_regression_returns_the_value_and_empty_input_returns_empty() -> None:
    reg = Ridge().fit(X, X @ np.array([1.0, -2.0, 0.5]))
    signature = Signature(inputs=SIGNATURE.inputs, task="regression")
    loaded = load_model(save_model(onnx_model_from_sklearn(reg, signature)))

    np.testing.assert_allclose(loaded.predict_encoded(X), reg.predict(X), atol=1e-9, rtol=0)
    assert loaded.predict_encoded(np.empty((0, 3))).shape == (0,)
    with pytest.raises(InvalidInputError, match=r"shape \(n, 3\)"):
        loaded.predict_encoded(np.zeros((2, 2)))


def test_garbage_bytes_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="onnx"):
        load_model(_artifact(_onnx_payload(b"\x08\x07garbage that is not a model")))
    with pytest.raises(InvalidInputError, match="base64 ONNX model"):
        load_model(_artifact({"onnx": "not base64!"}))
    with pytest.raises(InvalidInputError, match="base64 ONNX model"):
        load_model(_artifact("a string payload"))


def _graph_model(node: onnx.NodeProto, *, domains: dict[str, int]) -> bytes:
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.DOUBLE, [None, 3])],
        [helper.make_tensor_value_info("out", TensorProto.DOUBLE, [None, 1])],
    )
    opsets = [helper.make_opsetid(d, v) for d, v in domains.items()]
    return helper.make_model(graph, opset_imports=opsets, ir_version=9).SerializeToString()


def test_custom_op_domain_is_refused_before_onnxruntime_sees_it() -> None:
    node = helper.make_node("Evil", ["input"], ["out"], domain="com.example.custom")
    data = _graph_model(node, domains={"": 17, "com.example.custom": 1})

    with pytest.raises(InvalidInputError, match=r"com\.example\.custom.*no custom ops"):
        load_model(_artifact(_onnx_payload(data)))


def test_external_data_is_refused() -> None:
    weights = helper.make_tensor("w", TensorProto.DOUBLE, [3, 1], [0.0, 0.0, 0.0])
    weights.ClearField("double_data")
    weights.data_location = TensorProto.EXTERNAL
    entry = weights.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    node = helper.make_node("MatMul", ["input", "w"], ["out"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.DOUBLE, [None, 3])],
        [helper.make_tensor_value_info("out", TensorProto.DOUBLE, [None, 1])],
        initializer=[weights],
    )
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)

    with pytest.raises(InvalidInputError, match=r"\['w'\] in external data"):
        check_onnx_graph(data.SerializeToString())


def test_standard_graph_with_wrong_width_is_refused() -> None:
    clf = LogisticRegression().fit(X[:, :2], Y)
    data = to_onnx(
        clf,
        initial_types=[("input", FloatTensorType([None, 2]))],
        options={"zipmap": False},
    ).SerializeToString()

    with pytest.raises(InvalidInputError, match=r"shape \[n, 3\]"):
        onnx_model(SIGNATURE, data)


def test_graph_built_by_hand_runs_and_load_model_dispatches_onnx() -> None:
    node = helper.make_node("ReduceSum", ["input", "axes"], ["out"], keepdims=1)
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    graph = helper.make_graph(
        [node],
        "sum",
        [helper.make_tensor_value_info("input", TensorProto.DOUBLE, [None, 3])],
        [helper.make_tensor_value_info("out", TensorProto.DOUBLE, [None, 1])],
        initializer=[axes],
    )
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    signature = Signature(inputs=SIGNATURE.inputs, task="regression")
    artifact = json.dumps(
        {
            "format": "conveyor.model/1",
            "kind": "onnx",
            "signature": signature.to_dict(),
            "meta": {},
            "payload": _onnx_payload(data.SerializeToString()),
        }
    ).encode("utf-8")

    loaded = load_model(artifact)

    assert isinstance(loaded, OnnxModel)
    np.testing.assert_allclose(loaded.predict_encoded(X), X.sum(axis=1), atol=1e-12)


def test_a_multiclass_onnx_model_scores_every_class() -> None:
    three = np.digitize(X[:, 0], [-0.5, 0.5])
    clf = LogisticRegression().fit(X, three)
    signature = Signature(inputs=SIGNATURE.inputs, task="multiclass", classes=("a", "b", "c"))
    loaded = load_model(save_model(onnx_model_from_sklearn(clf, signature)))
    np.testing.assert_allclose(loaded.predict_encoded(X), clf.predict_proba(X), atol=1e-5)
    zipmap = to_onnx(clf, initial_types=[("input", FloatTensorType([None, 3]))])
    zipmapped = onnx_model(signature, zipmap.SerializeToString())
    assert zipmapped.runner.output_shape == "zipmap"
    np.testing.assert_allclose(zipmapped.predict_encoded(X), clf.predict_proba(X), atol=1e-5)
    assert loaded.predict_encoded(X[:0]).shape == (0, 3)
