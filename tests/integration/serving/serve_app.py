"""Run the serving app under uvicorn for integration tests.

Usage: python serve_app.py PORT LOG_DIR VERSION_FILE

The version to serve is the integer in VERSION_FILE (empty: none); version v is a LightGBM model
trained on synthetic data with 5 + v rounds, so each version scores differently.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import uvicorn

from conveyor.core.schema import ColumnKind, ColumnSchema
from conveyor.core.signature import Signature
from conveyor.serving.app import create_serving_app
from conveyor.serving.predlog import PredictionLogWriter
from conveyor.serving.slot import ModelSlot

SIGNATURE = Signature(
    inputs=(
        ColumnSchema("distance", ColumnKind.NUMERIC, nullable=False),
        ColumnSchema("carrier", ColumnKind.CATEGORICAL, categories=("AA", "DL", "UA")),
    ),
    task="binary",
)


class BoosterPredictor:
    kind = "lightgbm"

    def __init__(self, booster: lgb.Booster) -> None:
        self.booster = booster
        self.signature = SIGNATURE

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(matrix, num_threads=1), dtype=np.float64)


def train(version: int) -> BoosterPredictor:
    rng = np.random.default_rng(version)
    n = 2000
    matrix = np.column_stack([rng.uniform(100, 3000, n), rng.integers(0, 3, n)]).astype(float)
    y = (rng.random(n) < 1 / (1 + np.exp(-(matrix[:, 0] - 1500) / 600))).astype(int)
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": version}
    data = lgb.Dataset(matrix, y, categorical_feature=[1])
    return BoosterPredictor(lgb.train(params, data, num_boost_round=5 + version))


def main() -> None:
    port, log_dir, version_file = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])

    def current() -> int | None:
        text = version_file.read_text().strip()
        return int(text) if text else None

    def load() -> tuple[int, BoosterPredictor]:
        version = current()
        if version is None:
            raise LookupError("no version to serve")
        return version, train(version)

    app = create_serving_app(
        slot=ModelSlot(load, current),
        log=PredictionLogWriter(log_dir),
        project="it",
        model_name="delays",
        poll_interval_s=0.1,
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
