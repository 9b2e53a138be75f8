"""The online server on a slow prediction-log disk: liveness and prediction latency.

One uvicorn worker serves a small LightGBM model on 127.0.0.1 with the prediction log's writer
set to take ``DELAY_S`` (2 s) per write (``PredictionLogWriter(write_delay_s=...)``, its
fault-injection setting). ``CLIENTS`` threads post one-row predictions back to back while a
probe asks ``/v1/health`` every 100 ms, for ``DURATION_S`` seconds (``--quick``: a third).

The figures are compared with goals, not a peer (``peer_name`` names the goal; ``ratio >= 1``
means the goal is met): ``/v1/health`` p99 under 250 ms (a liveness probe's budget with room),
a prediction's p50 under two log writes plus 0.5 s (it waits at most for the group being
written, then for its own), and every request answered 200. Before the log writes moved off
the event loop, the same set-up gave 13-16 s per prediction and ``/v1/health`` past 10 s.

Run: ``python -m benchmarks slow_log [--quick] [--json]``; server mode (used internally):
``python -m benchmarks.slow_log serve PORT LOG_DIR DELAY_S``.
"""

from __future__ import annotations

import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from benchmarks import BenchmarkError, Result

DELAY_S = 2.0
CLIENTS = 16
DURATION_S = 30.0
HEALTH_GOAL_S = 0.25
ROOT = Path(__file__).resolve().parents[1]


def _serve(port: int, log_dir: Path, delay_s: float) -> None:
    import lightgbm as lgb
    import uvicorn

    from conveyor.core.schema import ColumnKind, ColumnSchema
    from conveyor.core.signature import Signature
    from conveyor.serving.app import create_serving_app
    from conveyor.serving.predlog import PredictionLogWriter
    from conveyor.serving.slot import ModelSlot

    signature = Signature(
        inputs=(ColumnSchema("x", ColumnKind.NUMERIC), ColumnSchema("y", ColumnKind.NUMERIC)),
        task="binary",
    )
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(2000, 2))
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_threads": 1},
        lgb.Dataset(matrix, (matrix.sum(axis=1) > 0).astype(int)),
        num_boost_round=20,
    )

    class Model:
        kind = "lightgbm"

        def __init__(self) -> None:
            self.signature = signature

        def predict_encoded(self, rows: np.ndarray) -> np.ndarray:
            return np.asarray(booster.predict(rows, num_threads=1), dtype=np.float64)

    app = create_serving_app(
        slot=ModelSlot(lambda: (1, Model()), lambda: 1),  # type: ignore[arg-type, return-value]
        log=PredictionLogWriter(log_dir, write_delay_s=delay_s),
        project="bench",
        model_name="bench",
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _timed(request: urllib.request.Request | str, timeout_s: float) -> float | None:
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
            if response.status != 200:
                return None
    except (urllib.error.URLError, TimeoutError):
        return None
    return time.perf_counter() - started


def run(quick: bool) -> list[Result]:
    """Measure ``/v1/health`` and prediction latency while every log write takes 2 s."""
    duration = DURATION_S / 3 if quick else DURATION_S
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-slow-log-") as tmp:
        command = [
            sys.executable,
            "-m",
            "benchmarks.slow_log",
            "serve",
            str(port),
            tmp,
            str(DELAY_S),
        ]
        server = subprocess.Popen(command, cwd=ROOT)
        try:
            deadline = time.monotonic() + 120
            while _timed(f"{url}/v1/ready", 2.0) is None:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise BenchmarkError("the slow-log server did not become ready")
                time.sleep(0.2)
            health, predictions, failed = _load(url, duration)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    if not health or not predictions:
        raise BenchmarkError(f"no answers measured ({failed} failed)")
    health_p99 = float(np.percentile(health, 99))
    prediction_p50 = statistics.median(predictions)
    answered = len(predictions) / (len(predictions) + failed)
    return [
        Result("slow_log", "health_p99", "s", health_p99,
               f"goal: under {HEALTH_GOAL_S} s", HEALTH_GOAL_S, "lower"),
        Result("slow_log", "prediction_p50", "s", prediction_p50,
               f"goal: under 2 writes of {DELAY_S} s + 0.5 s", 2 * DELAY_S + 0.5, "lower"),
        Result("slow_log", "answered_share", "share", answered,
               "goal: every request answered 200", 1.0, "higher"),
    ]  # fmt: skip


def _load(url: str, duration_s: float) -> tuple[list[float], list[float], int]:
    body = json.dumps({"records": [{"x": 0.3, "y": -0.1}]}).encode()
    stop = time.monotonic() + duration_s
    predictions: list[float] = []
    health: list[float] = []
    failed = 0

    def client() -> None:
        nonlocal failed
        while time.monotonic() < stop:
            request = urllib.request.Request(
                f"{url}/v1/predict", data=body, headers={"Content-Type": "application/json"}
            )
            took = _timed(request, 60.0)
            if took is None:
                failed += 1
            else:
                predictions.append(took)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    while time.monotonic() < stop:
        took = _timed(f"{url}/v1/health", 10.0)
        health.append(10.0 if took is None else took)
        time.sleep(0.1)
    for thread in threads:
        thread.join()
    return health, predictions, failed


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "serve":
        _serve(int(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4]))
    else:
        sys.exit("usage: python -m benchmarks.slow_log serve PORT LOG_DIR DELAY_S")
