"""Safe model formats: skops against an allowlist, XGBoost JSON, pickle only trusted and hashed."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
import skops.io as sio
import xgboost as xgb
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conveyor.config import Settings
from conveyor.core.errors import InvalidInputError, StoreError
from conveyor.core.schema import ColumnKind, ColumnSchema
from conveyor.core.signature import Signature
from conveyor.registry.service import register_version
from conveyor.training import PriorModel, SklearnModel, XGBoostModel, load_model, save_model
from conveyor.training.formats import SKOPS_ALLOWLIST, dump_sklearn, load_pickle, load_sklearn
from conveyor.training.service import load_version
from conveyor.workspace import Workspace

SIGNATURE = Signature(
    inputs=(ColumnSchema("a", ColumnKind.NUMERIC), ColumnSchema("b", ColumnKind.NUMERIC))
)
RNG = np.random.default_rng(3)
X = RNG.normal(size=(400, 2))
Y = (X[:, 0] - X[:, 1] > 0).astype(int)


class TouchesAFile:
    """Unpickling this would create ``path``: the proof that a pickle ran code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


@pytest.mark.parametrize(
    "estimator",
    [
        LogisticRegression(),
        RandomForestClassifier(n_estimators=5, random_state=0),
        HistGradientBoostingClassifier(max_iter=5),
        make_pipeline(StandardScaler(), LogisticRegression()),
    ],
    ids=lambda e: type(e).__name__,
)
def test_sklearn_model_round_trips_with_identical_predictions(estimator):
    model = SklearnModel(SIGNATURE, estimator.fit(X, Y))
    loaded = load_model(save_model(model))
    assert isinstance(loaded, SklearnModel)
    np.testing.assert_array_equal(loaded.predict_encoded(X), model.predict_encoded(X))


def test_xgboost_model_round_trips_as_xgboost_json_with_identical_predictions():
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(X, label=Y), 5)
    model = XGBoostModel(SIGNATURE, booster)
    artifact = save_model(model)
    assert b'"kind": "xgboost"' in artifact and b"learner" in artifact
    loaded = load_model(artifact)
    np.testing.assert_array_equal(loaded.predict_encoded(X), model.predict_encoded(X))


def test_skops_file_with_a_type_outside_the_allowlist_is_refused_naming_it():
    data = dump_sklearn(lgb.LGBMClassifier(n_estimators=2, verbose=-1).fit(X, Y))
    with pytest.raises(InvalidInputError, match=r"lightgbm\.basic\.Booster") as info:
        load_sklearn(data)
    assert "lightgbm.sklearn.LGBMClassifier" in str(info.value)
    assert "lightgbm.basic.Booster" not in SKOPS_ALLOWLIST


def test_skops_file_holding_a_code_running_object_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    data = sio.dumps({"payload": TouchesAFile(str(marker))})
    with pytest.raises(InvalidInputError, match="TouchesAFile"):
        load_sklearn(data)
    assert not marker.exists()


def test_malicious_pickle_is_refused_without_executing(tmp_path):
    marker = tmp_path / "pwned"
    data = pickle.dumps(TouchesAFile(str(marker)))
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    with pytest.raises(InvalidInputError, match="trusted=True"):
        load_model(data)
    with pytest.raises(InvalidInputError, match="trusted=True"):
        load_model(data, expected_sha256=digest)  # the right hash alone is not trust
    with pytest.raises(InvalidInputError, match="expected_sha256"):
        load_model(data, trusted=True)  # trust without a hash is not enough either
    with pytest.raises(InvalidInputError, match="must hash to"):
        load_model(data, trusted=True, expected_sha256="sha256:" + "0" * 64)
    assert not marker.exists()


def test_trusted_hash_checked_pickle_of_a_predictor_loads():
    data = pickle.dumps(PriorModel(SIGNATURE, 0.25))
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    model = load_model(data, trusted=True, expected_sha256=digest)
    np.testing.assert_array_equal(model.predict_encoded(X[:2]), [0.25, 0.25])
    assert load_pickle(data, trusted=True, expected_sha256=digest.removeprefix("sha256:"))


def test_trusted_pickle_that_is_not_a_predictor_is_refused():
    data = pickle.dumps({"not": "a model"})
    digest = hashlib.sha256(data).hexdigest()
    with pytest.raises(InvalidInputError, match="must be a Predictor"):
        load_model(data, trusted=True, expected_sha256=digest)


def test_registry_load_refuses_a_tampered_artifact(tmp_path: Path):
    ws = Workspace.open(Settings(home=tmp_path / "ws"))
    artifact = save_model(PriorModel(SIGNATURE, 0.25))
    digest = ws.stores.artifacts.put_bytes(artifact)
    mv = register_version(
        ws, "m", artifact=digest, run_id=None, signature=SIGNATURE.to_dict(), lineage={},
        metrics={},
    )  # fmt: skip
    blob = ws.stores.artifacts.local_path(digest)
    blob.chmod(0o644)
    blob.write_bytes(artifact.replace(b"0.25", b"0.99"))
    with pytest.raises(StoreError, match="corrupt"):
        load_version(ws, "m", mv.version)
