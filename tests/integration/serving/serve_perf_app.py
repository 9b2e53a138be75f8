"""Run the serving app the way ``conveyor serve`` does (``run_app``: workers, metrics
directory, SIGTERM), with knobs for overload tests.

Usage: python serve_perf_app.py PORT LOG_DIR OPTIONS_JSON

OPTIONS_JSON may hold: ``workers`` (uvicorn worker processes), ``log_delay_s`` (the log
writer's fault-injection delay before each group write: a disk that slow), ``log_buffer_bytes``
(the log buffer's bound), ``model_s`` (each predict call holds one lock this long, as a model
that keeps one core busy would), ``max_wait_ms`` (the queue's time budget) and ``max_queue``.
Version 1 of serve_app's model is served.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
from serve_app import BoosterPredictor, train
from starlette.applications import Starlette

from conveyor.serving.admission import AdmissionConfig
from conveyor.serving.app import create_serving_app
from conveyor.serving.batching import BatchingConfig
from conveyor.serving.predlog import PredictionLogWriter
from conveyor.serving.service import run_app
from conveyor.serving.slot import ModelSlot
from conveyor.serving.validation import ServingLimits

OPTIONS_ENV = "SERVE_PERF_OPTIONS"
_BUSY = threading.Lock()


class BusyPredictor(BoosterPredictor):
    """Holds one lock for ``model_s`` per call: calls queue up as on a saturated core."""

    model_s = 0.0

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        with _BUSY:
            time.sleep(self.model_s)
            return super().predict_encoded(matrix)


def build() -> Starlette:
    """The app factory each worker calls."""
    opts = json.loads(os.environ[OPTIONS_ENV])
    model_s = float(opts.get("model_s", 0.0))

    def load() -> tuple[int, BoosterPredictor]:
        if not model_s:
            return 1, train(1)
        busy = BusyPredictor(train(1).booster)
        busy.model_s = model_s
        return 1, busy

    inline_rows = 1 if model_s else 256  # requests of 2+ rows call a busy model in threads
    limits = ServingLimits(inline_rows=inline_rows)
    return create_serving_app(
        slot=ModelSlot(load, lambda: 1),
        log=PredictionLogWriter(
            Path(opts["log_dir"]),
            write_delay_s=float(opts.get("log_delay_s", 0.0)),
            max_pending_bytes=int(opts.get("log_buffer_bytes", 8 * 1024 * 1024)),
        ),
        project="it",
        model_name="delays",
        poll_interval_s=0.2,
        limits=limits,
        batching=BatchingConfig(inline_rows=inline_rows),
        max_queue=int(opts.get("max_queue", 1024)),
        admission=AdmissionConfig(max_wait_s=float(opts.get("max_wait_ms", 250.0)) / 1000.0),
    )


def main() -> None:
    port, log_dir = int(sys.argv[1]), sys.argv[2]
    opts = {**json.loads(sys.argv[3]), "log_dir": log_dir}
    os.environ[OPTIONS_ENV] = json.dumps(opts)
    run_app("serve_perf_app:build", host="127.0.0.1", port=port, workers=opts.get("workers", 1))


if __name__ == "__main__":
    main()
