"""Run the serving app under uvicorn for integration tests.

Usage: python serve_app.py PORT LOG_DIR VERSION_FILE [OPTIONS_JSON]

The version to serve is the integer in VERSION_FILE (empty: none); version v is a LightGBM model
trained on synthetic data with 5 + v rounds, so each version scores differently.

OPTIONS_JSON may hold: ``canary`` ({"percent", "sticky_key"}; its version is read from
VERSION_FILE.canary), ``shadow`` (true; version from VERSION_FILE.shadow, log in LOG_DIR.shadow),
``second`` (true: also serve model "other", always version 1), ``slow_s`` (each predict call
sleeps this long, in a worker thread), ``max_queue``, ``max_rows``, ``max_body_bytes``,
``batching`` (false to turn it off), ``token``, ``cors_origins``, ``allowed_hosts``,
``max_string_chars``, ``body_timeout_s`` (the request guards) and ``scoring`` (true: also mount
the feedback routes, feedback in LOG_DIR.feedback, task binary, and the offline-lookup routes
keyed by ``customer``, table in LOG_DIR.offline.db; both with ``token``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import uvicorn

from conveyor.core.schema import ColumnKind, ColumnSchema
from conveyor.core.signature import Signature
from conveyor.serving.app import create_serving_app
from conveyor.serving.batching import BatchingConfig
from conveyor.serving.feedback import FeedbackLog, feedback_routes
from conveyor.serving.offline import lookup_routes, open_offline_store
from conveyor.serving.predlog import PredictionLogWriter
from conveyor.serving.routing import Canary, Deployment, Shadow
from conveyor.serving.slot import ModelSlot
from conveyor.serving.validation import ServingLimits

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
        if SLOW_S:
            time.sleep(SLOW_S)
        return np.asarray(self.booster.predict(matrix, num_threads=1), dtype=np.float64)


SLOW_S = 0.0


def train(version: int) -> BoosterPredictor:
    rng = np.random.default_rng(version)
    n = 2000
    matrix = np.column_stack([rng.uniform(100, 3000, n), rng.integers(0, 3, n)]).astype(float)
    y = (rng.random(n) < 1 / (1 + np.exp(-(matrix[:, 0] - 1500) / 600))).astype(int)
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": version}
    data = lgb.Dataset(matrix, y, categorical_feature=[1])
    return BoosterPredictor(lgb.train(params, data, num_boost_round=5 + version))


def file_slot(version_file: Path, release_when_unset: bool = False) -> ModelSlot:
    def current() -> int | None:
        text = version_file.read_text().strip() if version_file.exists() else ""
        return int(text) if text else None

    def load() -> tuple[int, BoosterPredictor]:
        version = current()
        if version is None:
            raise LookupError("no version to serve")
        return version, train(version)

    return ModelSlot(load, current, release_when_unset=release_when_unset)


def main() -> None:
    global SLOW_S
    port, log_dir, version_file = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    opts = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    SLOW_S = float(opts.get("slow_s", 0.0))
    canary = shadow = None
    if "canary" in opts:
        canary = Canary(
            file_slot(version_file.with_suffix(".canary"), True),
            opts["canary"]["percent"],
            opts["canary"].get("sticky_key"),
        )
    if opts.get("shadow"):
        shadow_log = PredictionLogWriter(log_dir.with_name(log_dir.name + ".shadow"))
        shadow = Shadow(file_slot(version_file.with_suffix(".shadow"), True), shadow_log)
    more = []
    if opts.get("second"):
        other = ModelSlot(lambda: (1, train(1)), lambda: 1)
        more.append(Deployment("it2", "other", other, PredictionLogWriter(log_dir / "other")))
    limits = ServingLimits(
        max_rows=opts.get("max_rows", 10_000),
        max_body_bytes=opts.get("max_body_bytes", 16 * 1024 * 1024),
        inline_rows=1 if SLOW_S else 256,
        max_string_chars=opts.get("max_string_chars", 4096),
        body_timeout_s=opts.get("body_timeout_s", 30.0),
    )
    slot = file_slot(version_file)
    log = PredictionLogWriter(log_dir)
    app = create_serving_app(
        slot=slot,
        log=log,
        project="it",
        model_name="delays",
        poll_interval_s=0.1,
        passthrough=("customer",),
        canary=canary,
        shadow=shadow,
        deployments=more,
        limits=limits,
        batching=BatchingConfig(enabled=opts.get("batching", True), inline_rows=limits.inline_rows),
        max_queue=opts.get("max_queue", 1024),
        token=opts.get("token"),
        cors_origins=opts.get("cors_origins", ()),
        allowed_hosts=opts.get("allowed_hosts", ()),
    )
    if opts.get("scoring"):
        feedback = FeedbackLog(
            log_dir.with_name(log_dir.name + ".feedback"), predictions_dir=log_dir, task="binary"
        )
        app.router.routes.extend(feedback_routes(feedback, task="binary", token=opts.get("token")))
        store = open_offline_store(
            f"sqlite:///{log_dir.with_suffix('.offline.db')}", namespace="it"
        )
        app.router.routes.extend(
            lookup_routes(store, key="customer", max_age_s=3600.0, slot=slot, log=log)
        )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
