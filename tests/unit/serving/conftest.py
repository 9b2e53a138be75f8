"""A real LightGBM predictor on synthetic data, and the serving pieces around it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from conveyor.core.schema import ColumnKind, ColumnSchema
from conveyor.core.signature import Signature, encode_frame
from conveyor.serving.predlog import PredictionLogWriter
from conveyor.serving.slot import ModelSlot

CARRIERS = ("AA", "DL", "UA")

SIGNATURE = Signature(
    inputs=(
        ColumnSchema("distance", ColumnKind.NUMERIC, nullable=False),
        ColumnSchema("hour", ColumnKind.NUMERIC),
        ColumnSchema("carrier", ColumnKind.CATEGORICAL, categories=CARRIERS),
        ColumnSchema("weekend", ColumnKind.BOOLEAN),
    ),
    task="binary",
)


class BoosterPredictor:
    """The Predictor protocol over a raw LightGBM booster."""

    kind = "lightgbm"

    def __init__(self, booster: lgb.Booster, signature: Signature) -> None:
        self.booster = booster
        self.signature = signature

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(matrix, num_threads=1), dtype=np.float64)


def synthetic_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "distance": rng.uniform(100, 3000, n),
            "hour": rng.integers(0, 24, n).astype(float),
            "carrier": rng.choice(CARRIERS, n),
            "weekend": rng.random(n) < 0.3,
        }
    )
    logit = (frame["distance"] - 1500) / 600 + (frame["carrier"] == "UA") * 1.5 - 0.5
    frame["delayed"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def train_predictor(seed: int = 0, rounds: int = 20) -> BoosterPredictor:
    frame = synthetic_frame(2000, seed)
    matrix = encode_frame(frame, SIGNATURE)
    data = lgb.Dataset(matrix, frame["delayed"].to_numpy(), categorical_feature=[2])
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": seed}
    return BoosterPredictor(lgb.train(params, data, num_boost_round=rounds), SIGNATURE)


@pytest.fixture(scope="session")
def signature() -> Signature:
    return SIGNATURE


@pytest.fixture(scope="session")
def predictor() -> BoosterPredictor:
    return train_predictor(0)


@pytest.fixture(scope="session")
def predictors() -> dict[int, BoosterPredictor]:
    """Three different models, as versions 1, 2 and 3."""
    return {v: train_predictor(v, rounds=10 + 5 * v) for v in (1, 2, 3)}


class VersionSource:
    """Which version should be served: a stand-in for the registry's production alias."""

    def __init__(self, models: dict[int, BoosterPredictor], version: int | None) -> None:
        self.models = models
        self.version = version
        self.loads = 0

    def current(self) -> int | None:
        return self.version

    def load(self) -> tuple[int, BoosterPredictor]:
        self.loads += 1
        version = self.version
        assert version is not None
        return version, self.models[version]


@pytest.fixture
def make_source(
    predictors: dict[int, BoosterPredictor],
) -> Callable[[int | None], VersionSource]:
    return lambda version: VersionSource(predictors, version)


@pytest.fixture
def source(make_source: Callable[[int | None], VersionSource]) -> VersionSource:
    return make_source(1)


@pytest.fixture
def slot(source: VersionSource) -> ModelSlot:
    return ModelSlot(source.load, source.current)


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "predictions"


@pytest.fixture
def predlog(log_dir: Path) -> PredictionLogWriter:
    return PredictionLogWriter(log_dir)


@pytest.fixture
def record() -> Callable[..., dict[str, object]]:
    def make(**overrides: object) -> dict[str, object]:
        base: dict[str, object] = {
            "distance": 2500.0,
            "hour": 9,
            "carrier": "UA",
            "weekend": False,
        }
        base.update(overrides)
        return base

    return make
