"""Multiclass and text-binary models served as users run them: `conveyor serve` on 127.0.0.1,
feedback with class names, batch scoring, and monitoring of the realised metrics.

The models are real scikit-learn classifiers fitted on label codes, registered and promoted
through the public registry API, as training registers them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from conveyor.config import Settings
from conveyor.core.labels import LabelCodec, Task
from conveyor.core.schema import ColumnKind, ColumnSchema
from conveyor.core.signature import Signature, encode_frame
from conveyor.data.service import project_schema
from conveyor.monitoring.service import monitor
from conveyor.registry.service import promote, register_version
from conveyor.serving.predlog import read_predictions
from conveyor.spec import load_spec, parse_spec
from conveyor.training.models import SklearnModel, save_model
from conveyor.workspace import Workspace

from .conftest import start_serve

INPUTS = (
    ColumnSchema("length", ColumnKind.NUMERIC, nullable=False),
    ColumnSchema("weight", ColumnKind.NUMERIC, nullable=False),
)
SPECIES = ("bream", "perch", "pike")

pytestmark = pytest.mark.slow  # two servers and a scoring subprocess: about two minutes


def fish(n: int, seed: int) -> pd.DataFrame:
    """Three species that differ in length and weight, with overlap."""
    rng = np.random.default_rng(seed)
    species = rng.choice(SPECIES, n)
    centre = {"bream": (30.0, 600.0), "perch": (22.0, 300.0), "pike": (45.0, 900.0)}
    length = np.array([centre[s][0] for s in species]) + rng.normal(0, 5, n)
    weight = np.array([centre[s][1] for s in species]) + rng.normal(0, 150, n)
    return pd.DataFrame(
        {"fish_id": [f"f{seed}-{i}" for i in range(n)], "length": length, "weight": weight,
         "species": species}
    )  # fmt: skip


@dataclass
class Project:
    url: str
    dir: Path
    ws: Workspace
    model: SklearnModel


def _register(project_dir: Path, spec_data: dict, signature: Signature, y: np.ndarray,
              frame: pd.DataFrame) -> tuple[Workspace, SklearnModel]:  # fmt: skip
    spec = parse_spec(spec_data)
    (project_dir / "conveyor.yaml").write_text(spec.to_yaml())
    ws = Workspace.open(Settings(home=project_dir / ".conveyor"))
    project_schema(ws, spec, frame)  # what ingesting the training batch would have stored
    estimator = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(
        encode_frame(frame, signature), y
    )
    model = SklearnModel(signature=signature, estimator=estimator)
    artifact = ws.stores.artifacts.put_bytes(save_model(model))
    version = register_version(
        ws, spec.model_name, artifact=artifact, run_id=None, signature=signature.to_dict(),
        lineage={}, metrics={},
    )  # fmt: skip
    promote(ws, spec.model_name, version.version, reason="first release")
    return ws, model


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    project_dir = tmp_path_factory.mktemp("fish")
    signature = Signature(inputs=INPUTS, task="multiclass", classes=SPECIES)
    frame = fish(600, 0)
    y = LabelCodec(Task.MULTICLASS, SPECIES).encode(frame["species"])
    spec = {"project": "fish", "task": "multiclass", "label": "species",
            "entities": ["fish_id"]}  # fmt: skip
    ws, model = _register(project_dir, spec, signature, y, frame)
    proc, url = start_serve(project_dir)
    yield Project(url, project_dir, ws, model)
    _stop(proc)


@pytest.fixture(scope="module")
def text_binary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    project_dir = tmp_path_factory.mktemp("pike")
    signature = Signature(inputs=INPUTS, task="binary", classes=("no", "yes"))
    frame = fish(600, 1)
    frame["is_pike"] = np.where(frame["species"] == "pike", "yes", "no")
    y = signature.labels.encode(frame["is_pike"])
    spec = {"project": "pike", "task": "binary", "label": "is_pike", "positive_class": "yes",
            "entities": ["fish_id"]}  # fmt: skip
    ws, model = _register(project_dir, spec, signature, y, frame)
    proc, url = start_serve(project_dir)
    yield Project(url, project_dir, ws, model)
    _stop(proc)


def _records(frame: pd.DataFrame) -> list[dict]:
    return frame[["length", "weight"]].to_dict(orient="records")


def test_multiclass_predict_answers_the_most_probable_class_with_every_probability(multiclass):
    frame = fish(20, 7)
    resp = httpx.post(f"{multiclass.url}/v1/predict", json={"records": _records(frame)})
    assert resp.status_code == 200, resp.text
    predictions = resp.json()["predictions"]
    expected = multiclass.model.predict_encoded(encode_frame(frame, multiclass.model.signature))
    assert expected.shape == (20, 3)
    for row, p in zip(predictions, expected, strict=True):
        assert list(row["probabilities"]) == list(SPECIES)
        assert [row["probabilities"][s] for s in SPECIES] == pytest.approx(p.tolist())
        assert row["label"] == SPECIES[int(np.argmax(p))]
        assert row["score"] == pytest.approx(row["probabilities"][row["label"]])
    assert len({r["label"] for r in predictions}) > 1


def test_multiclass_v2_infer_carries_a_probabilities_tensor_and_text_labels(multiclass):
    frame = fish(5, 8)
    body = {"inputs": [
        {"name": "length", "datatype": "FP64", "shape": [5], "data": frame["length"].tolist()},
        {"name": "weight", "datatype": "FP64", "shape": [5], "data": frame["weight"].tolist()},
    ]}  # fmt: skip
    resp = httpx.post(f"{multiclass.url}/v2/models/fish/infer", json=body)
    assert resp.status_code == 200, resp.text
    outputs = {o["name"]: o for o in resp.json()["outputs"]}
    proba = outputs["probabilities"]
    assert proba["datatype"] == "FP64" and proba["shape"] == [5, 3]
    assert orjson.loads(proba["parameters"]["classes"]) == list(SPECIES)
    matrix = np.asarray(proba["data"]).reshape(5, 3)
    expected = multiclass.model.predict_encoded(encode_frame(frame, multiclass.model.signature))
    np.testing.assert_allclose(matrix, expected)
    assert outputs["label"]["datatype"] == "BYTES"
    assert outputs["label"]["data"] == [SPECIES[i] for i in np.argmax(expected, axis=1)]
    meta = httpx.get(f"{multiclass.url}/v2/models/fish").json()
    described = {o["name"]: o for o in meta["outputs"]}
    assert described["probabilities"]["shape"] == [-1, 3]
    assert described["label"]["datatype"] == "BYTES"


def test_multiclass_batch_scoring_writes_a_label_and_a_probability_per_class(multiclass):
    frame = fish(50, 9)
    frame.drop(columns=["species"]).to_csv(multiclass.dir / "in.csv", index=False)
    proc = subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", "predict", "--batch", "in.csv",
         "--out", "out.parquet"],
        cwd=multiclass.dir, capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = pd.read_parquet(multiclass.dir / "out.parquet")
    probas = [f"proba_{s}" for s in SPECIES]
    assert set(probas) <= set(out.columns)
    expected = multiclass.model.predict_encoded(encode_frame(frame, multiclass.model.signature))
    np.testing.assert_allclose(out[probas].to_numpy(), expected)
    assert out["label"].tolist() == [SPECIES[i] for i in np.argmax(expected, axis=1)]


def test_feedback_with_class_names_joins_and_monitoring_reports_macro_auc(multiclass):
    frame = fish(300, 10)
    resp = httpx.post(f"{multiclass.url}/v1/predict", json={"records": _records(frame)})
    ids = [p["request_id"] for p in resp.json()["predictions"]]
    items = [{"request_id": i, "label": s} for i, s in zip(ids, frame["species"], strict=True)]
    fb = httpx.post(f"{multiclass.url}/v1/feedback", json={"items": items})
    assert fb.status_code == 200, fb.text
    assert fb.json()["accepted"] == 300
    live = httpx.get(f"{multiclass.url}/v1/metrics/live").json()["versions"]["1"]
    assert live["n"] == 300.0 and "invalid_labels" not in live
    assert live["roc_auc_macro"] > 0.8 and live["accuracy"] > 0.6
    logged = read_predictions(multiclass.dir / ".conveyor" / "projects" / "fish" / "predictions")
    assert {len(p) for p in logged["proba"]} == {3}
    spec = load_spec(multiclass.dir / "conveyor.yaml")
    outcome = monitor(multiclass.ws, spec, write_html=False)
    stats = outcome.report.stats
    assert stats["live"]["metric_name"] == "roc_auc_macro"
    assert stats["live"]["metric"] == pytest.approx(live["roc_auc_macro"])
    assert stats["live"]["metrics"]["accuracy"] == pytest.approx(live["accuracy"])
    assert set(stats["live"]["bias_by_class"]) == set(SPECIES)
    assert stats["estimated"]["metric_name"] == "roc_auc_macro"
    assert 0.5 < stats["estimated"]["metric"] <= 1.0


def test_feedback_naming_an_unknown_class_is_refused_naming_it(multiclass):
    resp = httpx.post(f"{multiclass.url}/v1/predict", json=_records(fish(1, 11))[0])
    rid = resp.json()["predictions"][0]["request_id"]
    fb = httpx.post(
        f"{multiclass.url}/v1/feedback",
        json={"items": [{"request_id": rid, "label": "perch"},
                        {"request_id": rid, "label": "salmon"}]},
    )  # fmt: skip
    assert fb.status_code == 422
    error = fb.json()["error"]
    assert "'salmon'" in error and "bream" in error and "item 1" in error


def test_a_text_binary_model_answers_its_class_values_and_takes_them_as_feedback(text_binary):
    frame = fish(200, 12)
    resp = httpx.post(f"{text_binary.url}/v1/predict", json={"records": _records(frame)})
    assert resp.status_code == 200, resp.text
    predictions = resp.json()["predictions"]
    p_yes = text_binary.model.predict_encoded(encode_frame(frame, text_binary.model.signature))
    assert [r["score"] for r in predictions] == pytest.approx(p_yes.tolist())
    assert [r["label"] for r in predictions] == ["yes" if p >= 0.5 else "no" for p in p_yes]
    assert {r["label"] for r in predictions} == {"yes", "no"}
    truth = np.where(frame["species"] == "pike", "yes", "no")
    items = [{"request_id": r["request_id"], "label": t}
             for r, t in zip(predictions, truth, strict=True)]  # fmt: skip
    fb = httpx.post(f"{text_binary.url}/v1/feedback", json=items)
    assert fb.status_code == 200, fb.text
    live = httpx.get(f"{text_binary.url}/v1/metrics/live").json()["versions"]["1"]
    assert live["n"] == 200.0 and live["roc_auc"] > 0.8
    bad = httpx.post(
        f"{text_binary.url}/v1/feedback",
        json={"request_id": predictions[0]["request_id"], "label": "maybe"},
    )
    assert bad.status_code == 422 and "'maybe'" in bad.json()["error"]
    v2 = httpx.post(
        f"{text_binary.url}/v2/models/pike/infer",
        json={"inputs": [{"name": "length", "datatype": "FP64", "shape": [1], "data": [50.0]},
                         {"name": "weight", "datatype": "FP64", "shape": [1], "data": [950.0]}]},
    )  # fmt: skip
    outputs = {o["name"]: o for o in v2.json()["outputs"]}
    assert outputs["label"]["datatype"] == "BYTES" and outputs["label"]["data"] == ["yes"]
    spec = load_spec(text_binary.dir / "conveyor.yaml")
    stats = monitor(text_binary.ws, spec, write_html=False).report.stats
    assert stats["live"]["labels"] == 200
    assert stats["live"]["metrics"]["roc_auc"] == pytest.approx(live["roc_auc"])
    assert abs(stats["live"]["bias"]) < 0.2  # P(yes) against the share of "yes" codes


def test_conveyor_feedback_reads_text_labels_and_names_an_unknown_one(text_binary):
    frame = fish(30, 13)
    resp = httpx.post(f"{text_binary.url}/v1/predict", json={"records": _records(frame)})
    ids = [p["request_id"] for p in resp.json()["predictions"]]
    truth = np.where(frame["species"] == "pike", "yes", "no")
    pd.DataFrame({"request_id": ids, "label": truth}).to_csv(
        text_binary.dir / "fb.csv", index=False
    )
    pd.DataFrame({"request_id": ids[:2], "label": ["no", "maybe"]}).to_csv(
        text_binary.dir / "bad.csv", index=False
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}

    def feedback(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "conveyor.cli.main", "--json", "feedback", name],
            cwd=text_binary.dir, capture_output=True, text=True, timeout=300, env=env,
        )  # fmt: skip

    good = feedback("fb.csv")
    assert good.returncode == 0, good.stderr
    assert orjson.loads(good.stdout)["accepted"] == 30
    bad = feedback("bad.csv")
    assert bad.returncode != 0
    assert "'maybe' is not a class" in bad.stdout + bad.stderr
