from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import orjson
import pytest
from starlette.testclient import TestClient

from conveyor.core.signature import encode_records
from conveyor.monitoring.scrape import sample_value
from conveyor.serving.app import create_serving_app
from conveyor.serving.predlog import PredictionLogWriter, read_predictions
from conveyor.serving.slot import ModelSlot
from conveyor.serving.validation import ServingLimits


def wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def make_client(slot: ModelSlot, predlog: PredictionLogWriter, **kwargs) -> TestClient:
    app = create_serving_app(
        slot=slot, log=predlog, project="flights", model_name="delays", poll_interval_s=0.05,
        **kwargs,
    )  # fmt: skip
    return TestClient(app, raise_server_exceptions=False, base_url="http://localhost")


@pytest.fixture
def client(slot, predlog) -> Iterator[TestClient]:
    with make_client(slot, predlog) as client:
        wait_for(lambda: client.get("/v1/ready").status_code == 200)
        yield client


def test_predict_scores_with_the_model_and_labels_by_threshold(
    client, predictors, signature, record
):
    records = [record(), record(distance=150.0, carrier="AA"), record(carrier="DL", hour=None)]
    response = client.post("/v1/predict", json={"records": records})
    assert response.status_code == 200
    assert response.headers["x-model-version"] == "1"
    body = response.json()
    assert body["model_version"] == 1
    expected = predictors[1].predict_encoded(encode_records(records, signature))
    scores = [p["score"] for p in body["predictions"]]
    np.testing.assert_allclose(scores, expected)
    assert [p["label"] for p in body["predictions"]] == [int(s >= 0.5) for s in expected]
    assert len({p["request_id"] for p in body["predictions"]}) == 3


def test_columnar_single_record_and_list_bodies_agree(client, record):
    records = [record(), record(distance=300.0)]
    columns = {k: [r[k] for r in records] for k in records[0]}
    by_rows = client.post("/v1/predict", json={"records": records}).json()["predictions"]
    by_cols = client.post("/v1/predict", json={"columns": columns}).json()["predictions"]
    as_list = client.post("/v1/predict", json=records).json()["predictions"]
    single = client.post("/v1/predict", json=records[0]).json()["predictions"]
    assert [p["score"] for p in by_rows] == [p["score"] for p in by_cols]
    assert [p["score"] for p in by_rows] == [p["score"] for p in as_list]
    assert single[0]["score"] == by_rows[0]["score"]


def test_every_prediction_is_logged_when_answered(client, log_dir, record):
    rec = record(request_id="client-7")
    body = client.post("/v1/predict", json={"records": [rec, record()]}).json()
    assert body["predictions"][0]["request_id"] == "client-7"
    logged = read_predictions(log_dir).set_index("request_id")
    assert set(logged.index) == {p["request_id"] for p in body["predictions"]}
    row = logged.loc["client-7"]
    assert row["in_distance"] == 2500.0 and row["in_carrier"] == "UA"
    assert "in_request_id" not in logged.columns
    assert row["model_version"] == 1 and row["score"] == body["predictions"][0]["score"]
    assert row["label"] == body["predictions"][0]["label"] and row["latency_ms"] >= 0


def test_invalid_records_get_422_with_field_errors_and_nothing_logged(client, log_dir, record):
    response = client.post("/v1/predict", json={"records": [record(), record(distance="abc")]})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"row": 1, "field": "distance", "error": "expected a number, got 'abc'"}
    ]
    assert read_predictions(log_dir).empty
    metrics = client.get("/metrics").text
    assert sample_value(metrics, "conveyor_serving_rejected_rows_total", model="delays") == 2


def test_bad_bodies_get_clear_statuses(slot, predlog, record):
    limits = ServingLimits(max_body_bytes=200, max_rows=5)
    with make_client(slot, predlog, limits=limits) as client:
        wait_for(lambda: client.get("/v1/ready").status_code == 200)
        not_json = client.post("/v1/predict", content=b"{nope")
        assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]
        big = client.post("/v1/predict", content=b" " * 201)
        assert big.status_code == 413
        assert client.post("/v1/predict", json={"records": 3}).status_code == 422
        assert client.post("/v1/predict", json="text").status_code == 422
        assert client.post("/v1/predict", json={"columns": {"a": [1], "b": []}}).status_code == 422


def test_no_model_means_503_until_one_is_loaded(make_source, predlog, record):
    source = make_source(None)
    with make_client(ModelSlot(source.load, source.current), predlog) as client:
        assert client.get("/v1/health").status_code == 200
        assert client.get("/v1/ready").status_code == 503
        assert client.get("/v2/health/ready").status_code == 503
        assert client.get("/v2/health/live").status_code == 200
        assert client.post("/v1/predict", json=record()).status_code == 503
        source.version = 2
        wait_for(lambda: client.get("/v1/ready").status_code == 200)
        assert client.post("/v1/predict", json=record()).headers["x-model-version"] == "2"


def test_version_change_swaps_the_model_and_a_failed_load_keeps_it(client, source, slot, record):
    source.version = 2
    wait_for(lambda: client.post("/v1/predict", json=record()).headers["x-model-version"] == "2")
    assert slot.swaps == 2
    source.version = 42  # the loader has no such model
    wait_for(lambda: slot.load_failures >= 1)
    response = client.post("/v1/predict", json=record())
    assert response.status_code == 200 and response.headers["x-model-version"] == "2"
    metrics = client.get("/metrics").text
    version = sample_value(metrics, "conveyor_serving_model_version", role="production")
    assert version == 2
    assert sample_value(metrics, "conveyor_serving_model_swaps_total", model="delays") == 2


class FragilePredictor:
    """Fails on absurd distances, as a model with a native bug might."""

    kind = "lightgbm"

    def __init__(self, inner) -> None:
        self.inner = inner
        self.signature = inner.signature

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        if np.nanmax(matrix[:, 0], initial=0.0) > 1e9:
            raise RuntimeError("native failure")
        return self.inner.predict_encoded(matrix)


def test_a_failing_model_gives_503_and_the_server_keeps_serving(predictor, predlog, record):
    fragile = FragilePredictor(predictor)
    slot = ModelSlot(lambda: (1, fragile), lambda: 1)
    with make_client(slot, predlog) as client:
        wait_for(lambda: client.get("/v1/ready").status_code == 200)
        response = client.post("/v1/predict", json=record(distance=1e12))
        assert response.status_code == 503 and "RuntimeError" in response.json()["error"]
        assert client.post("/v1/predict", json=record()).status_code == 200
        assert sample_value(client.get("/metrics").text, "conveyor_serving_errors_total") == 1


def test_model_endpoint_and_metrics(client, signature, record):
    info = client.get("/v1/model").json()
    assert info["version"] == 1 and info["name"] == "delays" and info["project"] == "flights"
    assert [c["name"] for c in info["signature"]["inputs"]] == signature.names
    client.post("/v1/predict", json={"records": [record(carrier="ZZ"), record()]})
    text = client.get("/metrics").text
    assert sample_value(text, "conveyor_serving_rows_total", model="delays") == 2
    requests = "conveyor_serving_requests_total"
    assert sample_value(text, requests, endpoint="v1_predict", status="200") == 1
    unseen = "conveyor_serving_unseen_categories_total"
    assert sample_value(text, unseen, project="flights", model="delays", field="carrier") == 1
    latency = "conveyor_serving_request_latency_seconds_count"
    assert sample_value(text, latency, project="flights", model="delays") == 1


def v2_body(records: list[dict]) -> dict:
    def tensor(name: str, datatype: str) -> dict:
        data = [r[name] for r in records]
        return {"name": name, "datatype": datatype, "shape": [len(data)], "data": data}

    return {
        "id": "req-1",
        "inputs": [
            tensor("distance", "FP64"),
            tensor("hour", "INT64"),
            tensor("carrier", "BYTES"),
            tensor("weekend", "BOOL"),
        ],
    }


def test_v2_metadata_and_infer_match_v1(client, record):
    meta = client.get("/v2/models/delays").json()
    assert meta["versions"] == ["1"]
    assert {i["name"]: i["datatype"] for i in meta["inputs"]}["carrier"] == "BYTES"
    assert client.get("/v2/models/delays/ready").json() == {"name": "delays", "ready": True}
    records = [record(), record(distance=400.0, carrier="AA")]
    v1 = client.post("/v1/predict", json={"records": records}).json()["predictions"]
    response = client.post("/v2/models/delays/infer", json=v2_body(records))
    assert response.status_code == 200
    body = response.json()
    assert body["model_name"] == "delays" and body["model_version"] == "1" and body["id"] == "req-1"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["score"]["datatype"] == "FP64" and outputs["score"]["shape"] == [2]
    assert outputs["score"]["data"] == [p["score"] for p in v1]
    assert outputs["label"]["data"] == [p["label"] for p in v1]
    assert len(outputs["request_id"]["data"]) == 2


def test_v2_rejects_bad_tensors_and_unknown_models(client, record):
    assert client.get("/v2/models/other").status_code == 404
    assert client.post("/v2/models/other/infer", json=v2_body([record()])).status_code == 404
    body = v2_body([record()])
    body["inputs"][2]["datatype"] = "FP64"
    wrong_type = client.post("/v2/models/delays/infer", json=body)
    assert wrong_type.status_code == 422
    assert wrong_type.json()["errors"][0]["field"] == "carrier"
    body = v2_body([record()])
    body["inputs"][0]["shape"] = [3]
    assert client.post("/v2/models/delays/infer", json=body).status_code == 422
    body = v2_body([record()])
    body["inputs"][0]["data"] = ["far"]
    bad_value = client.post("/v2/models/delays/infer", json=body).json()
    assert bad_value["errors"] == [
        {"row": 0, "field": "distance", "error": "expected a number, got 'far'"}
    ]
    assert client.post("/v2/models/delays/infer", content=orjson.dumps([1])).status_code == 422


def test_large_requests_are_scored_off_the_loop(slot, predlog, record, predictors, signature):
    records = [record(distance=float(d)) for d in range(100, 3100, 3)]
    with make_client(slot, predlog, limits=ServingLimits(inline_rows=10)) as client:
        wait_for(lambda: client.get("/v1/ready").status_code == 200)
        body = client.post("/v1/predict", json={"records": records}).json()
    expected = predictors[1].predict_encoded(encode_records(records, signature))
    np.testing.assert_allclose([p["score"] for p in body["predictions"]], expected)


def test_create_serving_app_rejects_bad_threshold(slot, predlog):
    with pytest.raises(ValueError, match="'threshold' parameter of create_serving_app"):
        create_serving_app(slot=slot, log=predlog, project="p", model_name="m", threshold=2.0)
