"""Multiclass and text-binary outputs through the serving pieces: the app (in process),
post-processing, batch and offline scoring, the prediction log and feedback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from starlette.testclient import TestClient

from conveyor.core.errors import ConfigError, InvalidInputError
from conveyor.core.labels import LabelCodec, Task
from conveyor.core.schema import ColumnKind, ColumnSchema
from conveyor.core.signature import Signature, encode_frame
from conveyor.pipeline.infra_check import replay_served
from conveyor.serving.app import create_serving_app
from conveyor.serving.batch import score_file
from conveyor.serving.feedback import FeedbackLog, join_feedback, live_metrics, task_truth
from conveyor.serving.outputs import read_outputs
from conveyor.serving.postprocess import PostProcessor
from conveyor.serving.predlog import PredictionLogWriter, read_predictions
from conveyor.serving.routing import Deployment
from conveyor.serving.slot import ModelSlot
from conveyor.spec import PostprocessSpec, ServingSpec
from conveyor.training.models import SklearnModel

SPECIES = ("bream", "perch", "pike")
INPUTS = (
    ColumnSchema("length", ColumnKind.NUMERIC),
    ColumnSchema("lake", ColumnKind.CATEGORICAL, categories=("north", "south")),
)


def fish(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    species = rng.choice(SPECIES, n)
    centre = {"bream": 30.0, "perch": 22.0, "pike": 45.0}
    return pd.DataFrame(
        {
            "length": [centre[s] for s in species] + rng.normal(0, 4, n),
            "lake": rng.choice(["north", "south"], n),
            "species": species,
        }
    )


def fitted(task: str, classes: tuple, labels: pd.Series, frame: pd.DataFrame) -> SklearnModel:
    signature = Signature(inputs=INPUTS, task=task, classes=classes)
    y = signature.labels.encode(labels)
    estimator = HistGradientBoostingClassifier(max_iter=20, random_state=0)
    return SklearnModel(signature, estimator.fit(encode_frame(frame, signature), y))


@pytest.fixture(scope="module")
def multiclass() -> SklearnModel:
    frame = fish(600, 0)
    return fitted("multiclass", SPECIES, frame["species"], frame)


@pytest.fixture(scope="module")
def text_binary() -> SklearnModel:
    frame = fish(600, 1)
    is_pike = pd.Series(np.where(frame["species"] == "pike", "yes", "no"))
    return fitted("binary", ("no", "yes"), is_pike, frame)


def _client(model: SklearnModel, log_dir: Path, **kwargs) -> TestClient:
    slot = ModelSlot(lambda: (1, model), lambda: 1)
    app = create_serving_app(
        slot=slot, log=PredictionLogWriter(log_dir), model_name="fish", poll_interval_s=0.05,
        **kwargs,
    )  # fmt: skip
    return TestClient(app, raise_server_exceptions=False, base_url="http://localhost")


def _records(frame: pd.DataFrame) -> list[dict]:
    return frame[["length", "lake"]].to_dict(orient="records")


def test_the_log_keeps_label_codes_and_the_probability_vector(tmp_path, multiclass):
    frame = fish(30, 2)
    with _client(multiclass, tmp_path / "log") as client:
        body = client.post("/v1/predict", json={"records": _records(frame)}).json()
    ids = [p["request_id"] for p in body["predictions"]]
    logged = read_predictions(tmp_path / "log").set_index("request_id").loc[ids]
    expected = multiclass.predict_encoded(encode_frame(frame, multiclass.signature))
    np.testing.assert_allclose(np.vstack(logged["proba"].to_list()), expected)
    assert logged["label"].tolist() == np.argmax(expected, axis=1).tolist()
    labels = [p["label"] for p in body["predictions"]]
    assert labels == [SPECIES[c] for c in logged["label"]]


def test_a_filter_on_the_predicted_class_withholds_it_and_hides_its_probabilities(
    tmp_path, multiclass
):
    chain = PostprocessSpec.model_validate(
        {"steps": [{"kind": "filter", "when": [{"field": "label", "op": "eq", "value": "pike"}],
                    "reason": "pike are released"}]}
    )  # fmt: skip
    post = PostProcessor(chain, task="multiclass")
    frame = fish(40, 3)
    with _client_with_post(multiclass, tmp_path / "log", post) as client:
        predictions = client.post("/v1/predict", json=_records(frame)).json()["predictions"]
        infer = client.post("/v2/models/fish/infer", json=_tensors(frame)).json()
    expected = multiclass.predict_encoded(encode_frame(frame, multiclass.signature))
    raw = [SPECIES[i] for i in np.argmax(expected, axis=1)]
    assert "pike" in raw and len(set(raw)) > 1
    for row, label in zip(predictions, raw, strict=True):
        assert row["withheld"] is (label == "pike")
        if label == "pike":
            assert row["probabilities"] is None and row["reason"] == "pike are released"
        else:
            assert row["label"] == label and set(row["probabilities"]) == set(SPECIES)
    outputs = {o["name"]: o for o in infer["outputs"]}
    matrix = np.asarray(outputs["probabilities"]["data"]).reshape(-1, 3)
    withheld = np.asarray(outputs["withheld"]["data"])
    assert (matrix[withheld] == 0).all() and np.allclose(matrix[~withheld], expected[~withheld])


def _client_with_post(model: SklearnModel, log_dir: Path, post: PostProcessor) -> TestClient:
    slot = ModelSlot(lambda: (1, model), lambda: 1)
    dep = Deployment("p", "fish", slot, PredictionLogWriter(log_dir), postprocess=post)
    app = create_serving_app(deployments=[dep], poll_interval_s=0.05)
    return TestClient(app, raise_server_exceptions=False, base_url="http://localhost")


def _tensors(frame: pd.DataFrame) -> dict:
    n = len(frame)
    return {"inputs": [
        {"name": "length", "datatype": "FP64", "shape": [n], "data": frame["length"].tolist()},
        {"name": "lake", "datatype": "BYTES", "shape": [n], "data": frame["lake"].tolist()},
    ]}  # fmt: skip


@pytest.mark.parametrize(
    "step",
    [
        {"kind": "threshold", "cutoffs": [[0.8, "sure"]], "default": "unsure"},
        {"kind": "clip", "min": 0.1, "max": 0.9},
    ],
)
def test_score_steps_are_refused_for_a_multiclass_task_naming_the_step(step):
    spec = PostprocessSpec.model_validate({"steps": [step]})
    with pytest.raises(ConfigError, match=f"step 0 \\({step['kind']}\\).*multiclass"):
        PostProcessor(spec, task="multiclass")
    PostProcessor(spec, task="binary")  # still fine for one score per row


def test_a_rule_on_a_text_binary_label_sees_the_class_values(text_binary):
    chain = PostprocessSpec.model_validate(
        {"steps": [{"kind": "rule", "when": [{"field": "label", "op": "eq", "value": "yes"}],
                    "set_label": "call the warden"}]}
    )  # fmt: skip
    outputs = read_outputs([0.9, 0.2], text_binary.signature.labels)
    result = PostProcessor(chain).apply(outputs, [{}, {}])
    assert result.raw_labels.tolist() == ["yes", "no"]
    assert result.labels.tolist() == ["call the warden", "no"]


def test_batch_scoring_writes_class_values_and_probability_columns(tmp_path, multiclass):
    frame = fish(300, 4)
    frame.drop(columns=["species"]).to_csv(tmp_path / "in.csv", index=False)
    score_file(multiclass, tmp_path / "in.csv", tmp_path / "out.parquet", version=3,
               chunk_rows=64, workers=2)  # fmt: skip
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    expected = multiclass.predict_encoded(encode_frame(frame, multiclass.signature))
    np.testing.assert_allclose(out[[f"proba_{s}" for s in SPECIES]].to_numpy(), expected)
    assert out["label"].tolist() == [SPECIES[i] for i in np.argmax(expected, axis=1)]
    np.testing.assert_allclose(out["score"], expected.max(axis=1))
    frame.iloc[:0].drop(columns=["species"]).to_csv(tmp_path / "empty.csv", index=False)
    score_file(multiclass, tmp_path / "empty.csv", tmp_path / "empty.parquet", version=3)
    names = pq.read_schema(tmp_path / "empty.parquet").names
    assert {"label", "proba_bream", "proba_perch", "proba_pike"} <= set(names)


def test_batch_scoring_of_a_text_binary_model_labels_at_the_threshold(tmp_path, text_binary):
    frame = fish(100, 5).drop(columns=["species"])
    frame.to_csv(tmp_path / "in.csv", index=False)
    score_file(text_binary, tmp_path / "in.csv", tmp_path / "out.csv", version=1, threshold=0.3)
    out = pd.read_csv(tmp_path / "out.csv")
    p_yes = text_binary.predict_encoded(encode_frame(frame, text_binary.signature))
    np.testing.assert_allclose(out["score"], p_yes)
    assert out["label"].tolist() == ["yes" if p >= 0.3 else "no" for p in p_yes]


def test_a_model_whose_output_does_not_fit_its_classes_is_named():
    codec = LabelCodec(Task.MULTICLASS, SPECIES)
    with pytest.raises(ValueError, match=r"shape \(n, 3\).*Got shape \(2,\)"):
        read_outputs([0.1, 0.9], codec)
    with pytest.raises(ValueError, match=r"binary model must output one value per row"):
        read_outputs([[0.1, 0.9]], LabelCodec(Task.BINARY, ("no", "yes")))


def test_feedback_checks_labels_against_the_served_classes(tmp_path, multiclass):
    codec = multiclass.signature.labels
    log = FeedbackLog(tmp_path / "fb", task="multiclass", labels=lambda: codec)
    assert log.record([{"request_id": "a", "label": "pike"}]).accepted == 1
    with pytest.raises(InvalidInputError, match=r"item 0: 'label' 'carp' is not a class"):
        log.record([{"request_id": "b", "label": "carp"}])
    binary = FeedbackLog(tmp_path / "fb2", task="binary",
                         labels=lambda: LabelCodec(Task.BINARY, ("bad", "good")))  # fmt: skip
    assert binary.record([{"request_id": "a", "label": "good"}]).accepted == 1
    with pytest.raises(InvalidInputError, match="'1' is not a class.*'bad', 'good'"):
        binary.record([{"request_id": "a", "label": "1"}])


def test_joined_text_labels_are_encoded_with_the_versions_classes(tmp_path, text_binary):
    frame = fish(80, 6)
    with _client(text_binary, tmp_path / "log") as client:
        predictions = client.post("/v1/predict", json=_records(frame)).json()["predictions"]
    truth = np.where(frame["species"] == "pike", "yes", "no")
    log = FeedbackLog(tmp_path / "fb", task="binary", labels=lambda: text_binary.signature.labels)
    log.record([{"request_id": p["request_id"], "label": t}
                for p, t in zip(predictions, truth, strict=True)])  # fmt: skip
    joined = join_feedback(tmp_path / "log", tmp_path / "fb")
    codes, valid = task_truth(text_binary.signature.labels, joined["label"])
    sent = {p["request_id"]: float(t == "yes") for p, t in zip(predictions, truth, strict=True)}
    assert valid.all() and codes.tolist() == [sent[i] for i in joined["request_id"]]
    found = live_metrics(tmp_path / "log", tmp_path / "fb", task="binary",
                         labels_of=lambda _v: text_binary.signature.labels)  # fmt: skip
    assert found["versions"]["1"]["n"] == 80.0 and found["invalid_labels"] == 0
    # read as 0/1 (no classes known) every text label is left out, never a crash
    assert live_metrics(tmp_path / "log", tmp_path / "fb", task="binary")["invalid_labels"] == 80


def test_log_parts_written_before_probabilities_were_logged_still_read(tmp_path):
    old = pa.table({
        "request_id": ["a"], "ts": pa.array([pd.Timestamp("2024-01-01", tz="UTC")],
                                            pa.timestamp("us", tz="UTC")),
        "model_version": [1], "inputs": [orjson.dumps({"x": 1}).decode()], "score": [0.2],
        "label": [0], "latency_ms": [0.1], "post": pa.array([None], pa.string()),
    })  # fmt: skip
    (tmp_path / "date=2024-01-01").mkdir()
    pq.write_table(old, tmp_path / "date=2024-01-01" / "part-old.parquet")
    frame = read_predictions(tmp_path)
    assert frame["proba"].tolist() == [None] and frame["label"].tolist() == [0]


def test_the_release_check_finds_a_multiclass_model_served_as_scored_offline(multiclass):
    records = _records(fish(20, 14))
    check = replay_served(
        1, multiclass, records, project="fish", model_name="fish", serving=ServingSpec()
    )
    assert check.passed, check.problems
    assert check.max_abs_diff <= 1e-9
