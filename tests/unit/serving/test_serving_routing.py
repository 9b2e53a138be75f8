from __future__ import annotations

import time

import numpy as np
import orjson
import pytest
from starlette.testclient import TestClient

from conveyor.core.signature import encode_records
from conveyor.monitoring.scrape import sample_value
from conveyor.serving.app import create_serving_app
from conveyor.serving.postprocess import PostProcessor
from conveyor.serving.predlog import PredictionLogWriter, read_predictions
from conveyor.serving.routing import Canary, Deployment, Shadow, canary_bucket
from conveyor.serving.slot import ModelSlot
from conveyor.spec import PostprocessSpec


def wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def fixed_slot(predictors, version: int | None, **kwargs) -> ModelSlot:
    box = {"version": version}
    slot = ModelSlot(
        lambda: (box["version"], predictors[box["version"]]), lambda: box["version"], **kwargs
    )
    slot.box = box  # type: ignore[attr-defined]
    return slot


def test_canary_bucket_is_stable_and_splits_keys_by_percent(predictors):
    assert canary_bucket("customer-7") == canary_bucket("customer-7")
    slot = fixed_slot(predictors, 2)
    canary = Canary(slot, 10.0, sticky_key="customer")
    keys = [{"customer": f"c{i}"} for i in range(20_000)]
    share = sum(canary.takes([k]) for k in keys) / len(keys)
    assert 0.09 < share < 0.11
    assert all(canary.takes([k]) == canary.takes([k]) for k in keys[:200])
    assert not any(Canary(slot, 0.0).takes([k]) for k in keys[:500])
    assert all(Canary(slot, 100.0).takes([k]) for k in keys[:500])
    unkeyed = sum(canary.takes([{}]) for _ in range(20_000)) / 20_000  # random split
    assert 0.08 < unkeyed < 0.12
    with pytest.raises(ValueError, match="'percent' field of Canary"):
        Canary(slot, 120.0)


def test_route_goes_to_production_while_the_canary_has_no_model(predictors, predlog):
    production, candidate = fixed_slot(predictors, 1), fixed_slot(predictors, 2)
    dep = Deployment("p", "m", production, predlog, canary=Canary(candidate, 100.0))
    production.refresh()
    assert dep.route([{}])[0].version == 1
    candidate.refresh()
    model, role = dep.route([{}])
    assert model.version == 2 and role == "canary"


def test_a_canary_or_shadow_slot_empties_when_its_alias_is_removed(predictors):
    slot = fixed_slot(predictors, 2, release_when_unset=True)
    assert slot.refresh() and slot.model.version == 2
    slot.box["version"] = None
    assert slot.refresh() and slot.model is None
    production = fixed_slot(predictors, 1)
    production.refresh()
    production.box["version"] = None
    assert not production.refresh() and production.model.version == 1


def test_canary_answers_name_their_version_and_shadow_scores_are_logged_only(
    predictors, predlog, log_dir, tmp_path, record
):
    shadow_dir = tmp_path / "shadow"
    app = create_serving_app(
        slot=fixed_slot(predictors, 1),
        log=predlog,
        project="flights",
        model_name="delays",
        poll_interval_s=0.05,
        canary=Canary(fixed_slot(predictors, 2, release_when_unset=True), 100.0),
        shadow=Shadow(fixed_slot(predictors, 3), PredictionLogWriter(shadow_dir)),
    )
    with TestClient(app, base_url="http://localhost") as client:
        wait_for(lambda: (client.get("/v1/model").json().get("shadow") or {}).get("version") == 3)
        wait_for(lambda: client.get("/v1/model").json()["canary"]["version"] == 2)
        response = client.post("/v1/predict", json={"records": [record(), record(hour=3)]})
        assert response.status_code == 200 and response.headers["x-model-version"] == "2"
        ids = [p["request_id"] for p in response.json()["predictions"]]
        wait_for(lambda: len(read_predictions(shadow_dir)) == 2)
        text = client.get("/metrics").text
    assert sample_value(text, "conveyor_serving_model_version", role="shadow") == 3
    assert sample_value(text, "conveyor_serving_shadow_rows_total", model="delays") == 2
    shadow = read_predictions(shadow_dir)
    assert sorted(shadow["request_id"]) == sorted(ids) and set(shadow["model_version"]) == {3}
    line = orjson.loads(next(shadow_dir.glob("seg-*.jsonl")).read_bytes().splitlines()[0])
    assert line["shadow"] is True and line["answered_by"] == 2
    assert set(read_predictions(log_dir)["model_version"]) == {2}


def test_several_deployments_are_served_by_name(predictors, predlog, tmp_path, record):
    other = Deployment(
        "other-project", "other", fixed_slot(predictors, 3), PredictionLogWriter(tmp_path / "o")
    )
    app = create_serving_app(
        slot=fixed_slot(predictors, 1),
        log=predlog,
        project="flights",
        model_name="delays",
        poll_interval_s=0.05,
        deployments=[other],
    )
    with TestClient(app, base_url="http://localhost") as client:
        wait_for(lambda: client.get("/v1/ready").status_code == 200)
        assert client.get("/v1/ready").json()["models"] == {"delays": 1, "other": 3}
        assert (
            client.post("/v1/models/other/predict", json=record()).headers["x-model-version"] == "3"
        )
        assert client.post("/v1/predict", json=record()).headers["x-model-version"] == "1"
        infer = client.get("/v2/models/other").json()
        assert infer["name"] == "other" and infer["versions"] == ["3"]
        missing = client.post("/v1/models/nope/predict", json=record())
        assert missing.status_code == 404 and "delays, other" in missing.json()["error"]
    assert len(read_predictions(tmp_path / "o")) == 1
    with pytest.raises(ValueError, match="unique model names"):
        create_serving_app(
            slot=fixed_slot(predictors, 1), log=predlog, model_name="other", deployments=[other]
        )


def test_post_processing_is_answered_and_raw_and_processed_are_logged(
    predictors, predlog, log_dir, record
):
    spec = PostprocessSpec.model_validate(
        {
            "steps": [
                {"kind": "threshold", "cutoffs": [[0.5, "late"]], "default": "on time"},
                {"kind": "filter", "when": [{"field": "carrier", "op": "eq", "value": "DL"}]},
            ]
        }
    )
    app = create_serving_app(
        slot=fixed_slot(predictors, 1),
        log=predlog,
        project="flights",
        model_name="delays",
        poll_interval_s=0.05,
    )
    app_with_post = create_serving_app(
        deployments=[
            Deployment(
                "flights",
                "delays",
                fixed_slot(predictors, 1),
                predlog,
                postprocess=PostProcessor(spec),
            )
        ],
        poll_interval_s=0.05,
    )
    records = [record(), record(carrier="DL")]
    with TestClient(app, base_url="http://localhost") as plain:
        wait_for(lambda: plain.get("/v1/ready").status_code == 200)
        raw = plain.post("/v1/predict", json={"records": records}).json()["predictions"]
    with TestClient(app_with_post, base_url="http://localhost") as client:
        wait_for(lambda: client.get("/v1/ready").status_code == 200)
        processed = client.post("/v1/predict", json={"records": records}).json()["predictions"]
    assert processed[0]["score"] == raw[0]["score"] and processed[0]["withheld"] is False
    assert processed[0]["label"] == ("late" if raw[0]["score"] >= 0.5 else "on time")
    assert processed[1]["withheld"] is True and processed[1]["score"] is None
    logged = read_predictions(log_dir)
    row = logged[logged["request_id"] == processed[1]["request_id"]].iloc[0]
    assert row["score"] == raw[1]["score"]  # the raw output is kept beside the processed one
    assert orjson.loads(row["post"])["withheld"] is True


class RecordingPredictor:
    """Remembers every matrix it scored, to see what a warm-up replayed."""

    kind = "lightgbm"

    def __init__(self, inner) -> None:
        self.inner, self.signature, self.seen = inner, inner.signature, []

    def predict_encoded(self, matrix):
        self.seen.append(matrix.copy())
        return self.inner.predict_encoded(matrix)


def test_a_new_version_is_warmed_with_its_stored_sample_requests(predictors, record, signature):
    recording = RecordingPredictor(predictors[2])
    samples = [record(distance=321.0), record(carrier="DL")]
    slot = ModelSlot(lambda: (2, recording), lambda: 2, sample_records=lambda v: samples)
    assert slot.refresh() and slot.model.version == 2
    assert len(recording.seen) == 3  # replayed before the model took traffic
    np.testing.assert_array_equal(recording.seen[0], encode_records(samples, signature))


def test_unreadable_samples_fall_back_and_a_failing_warm_up_keeps_the_old_model(predictors):
    def broken(version):
        raise OSError("artifact missing")

    slot = ModelSlot(lambda: (1, predictors[1]), lambda: 1, sample_records=broken)
    assert slot.refresh() and slot.model.version == 1

    class NaNPredictor(RecordingPredictor):
        def predict_encoded(self, matrix):
            return np.full(len(matrix), np.nan)

    box = {"v": 1}
    models = {1: predictors[1], 2: NaNPredictor(predictors[2])}
    slot = ModelSlot(lambda: (box["v"], models[box["v"]]), lambda: box["v"])
    assert slot.refresh()
    box["v"] = 2
    assert not slot.refresh() and slot.model.version == 1 and slot.load_failures == 1
