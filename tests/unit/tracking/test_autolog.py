"""cv.autolog(): fits of scikit-learn, LightGBM and XGBoost become runs with safe model files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import conveyor as cv
from conveyor.core.entities import RunStatus
from conveyor.core.errors import InvalidInputError
from conveyor.core.signature import Signature
from conveyor.tracking.autolog import is_autologging
from conveyor.tracking.service import restore_artifact
from conveyor.training.formats import load_sklearn, load_xgboost
from conveyor.workspace import Workspace


@pytest.fixture
def frame() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(7)
    X = pd.DataFrame(
        {
            "x": rng.normal(size=300),
            "z": rng.normal(size=300),
            "city": pd.Categorical(rng.choice(["a", "b"], size=300)),
        }
    )
    y = pd.Series((X["x"] + rng.normal(scale=0.5, size=300) > 0).astype(int), name="y")
    return X, y


@pytest.fixture
def autologging(ws: Workspace) -> Iterator[Workspace]:
    cv.autolog()
    yield ws
    cv.autolog(disable=True)


def _runs(ws: Workspace):
    return sorted(ws.stores.runs.list_runs("default"), key=lambda r: r.started_at)


def _model_dir(ws: Workspace, run_id, tmp_path: Path) -> Path:
    return restore_artifact(ws, run_id, "model/", tmp_path / f"restored-{run_id}")


def test_sklearn_fit_outside_a_run_logs_a_finished_run_with_a_loadable_model(
    autologging, frame, tmp_path
):
    X, y = frame
    model = LogisticRegression(C=0.3).fit(X[["x", "z"]], y)
    (run,) = _runs(autologging)
    assert run.status is RunStatus.FINISHED
    assert run.params["C"] == "0.3"
    assert run.metrics["training_score"] == pytest.approx(model.score(X[["x", "z"]], y))
    folder = _model_dir(autologging, run.id, tmp_path)
    loaded = load_sklearn((folder / "model.skops").read_bytes())
    np.testing.assert_array_equal(
        loaded.predict_proba(X[["x", "z"]]), model.predict_proba(X[["x", "z"]])
    )
    signature = json.loads((folder / "signature.json").read_text())
    assert [(c["name"], c["kind"]) for c in signature["inputs"]] == [
        ("x", "numeric"),
        ("z", "numeric"),
    ]
    example = json.loads((folder / "input_example.json").read_text())
    assert len(example) == 5
    assert example[0] == {"x": X["x"].iloc[0], "z": X["z"].iloc[0]}


def test_pipeline_fit_is_one_run_and_inner_fits_are_not_logged(autologging, frame):
    X, y = frame
    make_pipeline(StandardScaler(), LogisticRegression()).fit(X[["x", "z"]], y)
    runs = _runs(autologging)
    assert [r.name for r in runs] == ["Pipeline"]
    assert "logisticregression__C" in runs[0].params


def test_fits_inside_an_active_run_log_there_then_in_child_runs(autologging, frame):
    X, y = frame
    with cv.start_run("outer") as outer:
        LogisticRegression(C=1.0).fit(X[["x"]], y)
        LogisticRegression(C=2.0).fit(X[["x"]], y)
    stored = outer.fetch()
    assert stored.params["C"] == "1.0"
    children = [r for r in _runs(autologging) if r.parent_id == outer.id]
    assert [c.params["C"] for c in children] == ["2.0"]


def test_a_failing_fit_raises_and_marks_its_run_failed(autologging):
    with pytest.raises(ValueError):
        LogisticRegression().fit([[0.0], [1.0]], [1, 1])  # one class only
    (run,) = _runs(autologging)
    assert run.status is RunStatus.FAILED


def test_classes_defined_after_autolog_are_patched_and_disable_restores(ws):
    original = LogisticRegression.__dict__["fit"]
    cv.autolog(frameworks=["sklearn"])
    assert is_autologging()
    assert LogisticRegression.__dict__["fit"] is not original

    class Constant(BaseEstimator):
        def fit(self, X, y=None):
            self.value_ = 1.0
            return self

    Constant().fit([[1.0]])
    assert [r.name for r in _runs(ws)] == ["Constant"]
    cv.autolog(disable=True)
    assert not is_autologging()
    assert LogisticRegression.__dict__["fit"] is original
    assert "__init_subclass__" not in BaseEstimator.__dict__
    assert Constant.__dict__["fit"].__name__ == "fit"
    Constant().fit([[1.0]])
    assert len(_runs(ws)) == 1


def test_lightgbm_train_logs_each_iteration_with_its_step(autologging, frame, tmp_path):
    X, y = frame
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "learning_rate": 0.2},
        lgb.Dataset(X, y),
        num_boost_round=6,
        valid_sets=[lgb.Dataset(X, y)],
        valid_names=["train"],
    )
    (run,) = _runs(autologging)
    assert run.params["num_boost_round"] == "6"
    history = autologging.stores.runs.get_metric_history(run.id, "train-binary_logloss")
    assert [p.step for p in history] == list(range(6))
    assert history[-1].value < history[0].value
    folder = _model_dir(autologging, run.id, tmp_path)
    reloaded = lgb.Booster(model_str=(folder / "model.lgb.txt").read_text())
    np.testing.assert_array_equal(reloaded.predict(X), booster.predict(X))
    importance = json.loads((folder / "feature_importance.json").read_text())
    assert set(importance) == {"x", "z", "city"}
    assert importance["x"] > importance["z"]
    kinds = {
        c["name"]: c["kind"] for c in json.loads((folder / "signature.json").read_text())["inputs"]
    }
    assert kinds == {"x": "numeric", "z": "numeric", "city": "categorical"}


def test_xgboost_sklearn_fit_logs_eval_metrics_and_a_json_model(autologging, frame, tmp_path):
    X, y = frame
    Xn = X[["x", "z"]]
    model = xgb.XGBClassifier(n_estimators=4, max_depth=2)
    model.fit(Xn, y, eval_set=[(Xn, y)], verbose=False)
    (run,) = _runs(autologging)
    assert run.params["n_estimators"] == "4"
    history = autologging.stores.runs.get_metric_history(run.id, "validation_0-logloss")
    assert [p.step for p in history] == [0, 1, 2, 3]
    folder = _model_dir(autologging, run.id, tmp_path)
    booster = load_xgboost((folder / "model.xgb.json").read_bytes())
    np.testing.assert_allclose(
        booster.predict(xgb.DMatrix(Xn)), model.predict_proba(Xn)[:, 1], rtol=0, atol=0
    )


def test_lgbm_classifier_fit_is_one_run_with_training_score(autologging, frame):
    X, y = frame
    lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(X, y)
    runs = _runs(autologging)
    assert [r.name for r in runs] == ["LGBMClassifier"]
    assert 0.5 < runs[0].metrics["training_score"] <= 1.0


def test_autolog_rejects_unknown_frameworks(ws):
    with pytest.raises(InvalidInputError, match="'frameworks' parameter of autolog"):
        cv.autolog(frameworks=["torch"])
    with pytest.raises(InvalidInputError):
        cv.autolog(frameworks="sklearn")


@pytest.fixture
def three_classes(frame) -> tuple[pd.DataFrame, pd.Series]:
    X, _ = frame
    y = pd.Series(np.select([X["x"] < -0.5, X["x"] > 0.5], ["low", "high"], "mid"), name="y")
    return X[["x", "z"]], y


@pytest.mark.parametrize(
    "make",
    [
        lambda: LogisticRegression(),
        lambda: lgb.LGBMClassifier(n_estimators=3, verbose=-1),
        lambda: xgb.XGBClassifier(n_estimators=3, max_depth=2),
    ],
    ids=["sklearn", "lightgbm", "xgboost"],
)
def test_multiclass_classifiers_log_their_classes(autologging, three_classes, tmp_path, make):
    X, y = three_classes
    model = make()
    target = (
        y if not isinstance(model, xgb.XGBClassifier) else y.map({"high": 0, "low": 1, "mid": 2})
    )
    model.fit(X, target)
    (run,) = _runs(autologging)
    folder = _model_dir(autologging, run.id, tmp_path)
    signature = Signature.from_dict(json.loads((folder / "signature.json").read_text()))
    assert signature.task == "multiclass"
    assert signature.classes == tuple(np.asarray(model.classes_).tolist())
    assert len(signature.labels.classes) == 3


def test_a_multiclass_booster_logs_its_class_codes(autologging, three_classes, tmp_path):
    X, y = three_classes
    codes = y.map({"high": 0, "low": 1, "mid": 2})
    lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1},
        lgb.Dataset(X, codes),
        num_boost_round=2,
    )
    (run,) = _runs(autologging)
    signature = json.loads(
        (_model_dir(autologging, run.id, tmp_path) / "signature.json").read_text()
    )
    assert (signature["task"], signature["classes"]) == ("multiclass", [0, 1, 2])
