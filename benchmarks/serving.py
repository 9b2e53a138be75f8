"""Online serving throughput and tail latency against the physical limit.

Conveyor's ``/v1/predict`` (request validation, hot-swappable model slot, prediction log
written before answering, metrics) is compared with a bare Starlette endpoint doing only
``orjson.loads`` + a numpy row + ``Booster.predict`` + an orjson answer: the least any Python
server must do to score the same model. Both run the same 20-feature LightGBM binary classifier
under uvicorn (one worker, 127.0.0.1) and are driven by ``wrk -t1`` POSTing one-row JSON at
concurrency 1, 8 and 32.

Each concurrency is measured in interleaved rounds (3, of 6 s each; ``--quick``: 1 of 3 s) and
the median reported, so changes in the machine's load hit both servers alike.

Run: ``python -m benchmarks serving [--quick] [--json]``; server mode (used internally):
``python -m benchmarks.serving serve {conveyor,bare} MODEL_FILE PORT LOG_DIR``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from benchmarks import BenchmarkError, Result

N_FEATURES = 20
CONCURRENCY = (1, 8, 32)
PEER = "bare Starlette+LightGBM (physical limit)"
ROOT = Path(__file__).resolve().parents[1]

LUA = """
wrk.method = "POST"
wrk.body = [[%(body)s]]
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  io.write(string.format(
    'WRK_RESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, '
    .. '"non2xx": %%d, "socket_errors": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout))
end
"""


def feature_names() -> list[str]:
    return [f"f{i:02d}" for i in range(N_FEATURES)]


def train_model(path: Path) -> None:
    """Train the benchmark's 20-feature binary classifier and save it in LightGBM's format."""
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, N_FEATURES))
    logit = x[:, :5] @ np.array([1.0, -0.8, 0.6, 0.5, -0.4]) + 0.3 * x[:, 5] * x[:, 6]
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-logit))).astype(int)
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "num_leaves": 31}
    lgb.train(params, lgb.Dataset(x, y), num_boost_round=100).save_model(str(path))


# ---------------------------------------------------------------- server mode


def conveyor_app(model_file: Path, log_dir: Path):  # type: ignore[no-untyped-def]
    import lightgbm as lgb

    from conveyor.core.schema import ColumnKind, ColumnSchema
    from conveyor.core.signature import Signature
    from conveyor.serving.app import create_serving_app
    from conveyor.serving.predlog import PredictionLogWriter
    from conveyor.serving.slot import ModelSlot

    signature = Signature(
        tuple(ColumnSchema(n, ColumnKind.NUMERIC) for n in feature_names()), task="binary"
    )

    class BoosterPredictor:
        kind = "lightgbm"

        def __init__(self, booster: lgb.Booster) -> None:
            self.booster = booster
            self.signature = signature

        def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
            return self.booster.predict(matrix, num_threads=1)

    predictor = BoosterPredictor(lgb.Booster(model_file=str(model_file)))
    slot = ModelSlot(lambda: (1, predictor), lambda: 1)
    return create_serving_app(
        slot=slot,
        log=PredictionLogWriter(log_dir),
        project="bench",
        model_name="bench",
        poll_interval_s=1.0,
    )


def bare_app(model_file: Path):  # type: ignore[no-untyped-def]
    import lightgbm as lgb
    import orjson
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    booster = lgb.Booster(model_file=str(model_file))
    names = feature_names()

    async def predict(request: Request) -> Response:
        payload = orjson.loads(await request.body())
        rows = [[rec[n] for n in names] for rec in payload["records"]]
        scores = booster.predict(np.array(rows, dtype=np.float64), num_threads=1)
        return Response(orjson.dumps({"scores": scores.tolist()}), media_type="application/json")

    async def ready(request: Request) -> Response:
        return Response(b"{}", media_type="application/json")

    return Starlette(
        routes=[
            Route("/v1/predict", predict, methods=["POST"]),
            Route("/v1/ready", ready, methods=["GET"]),
        ]
    )


def serve(kind: str, model_file: Path, port: int, log_dir: Path) -> None:
    import uvicorn

    app = conveyor_app(model_file, log_dir) if kind == "conveyor" else bare_app(model_file)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ---------------------------------------------------------------- driver


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(kind: str, model_file: Path, log_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (env.get("PYTHONPATH"), str(ROOT / "src"), str(ROOT)) if p
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.serving", "serve", kind, str(model_file), str(port),
         str(log_dir)],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchmarkError(f"the {kind} server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/v1/ready", timeout=1) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise BenchmarkError(f"the {kind} server did not become ready within 60 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wrk(url: str, script: Path, concurrency: int, duration_s: int) -> dict[str, float]:
    command = [
        "wrk", "-t1", f"-c{concurrency}", f"-d{duration_s}s", "--timeout", "10s",
        "-s", str(script), f"{url}/v1/predict",
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("WRK_RESULT "):
            raw = json.loads(line.removeprefix("WRK_RESULT "))
            if raw["non2xx"] or raw["socket_errors"]:
                raise BenchmarkError(
                    f"wrk saw {raw['non2xx']} non-2xx answers and {raw['socket_errors']} socket "
                    f"errors from {url} at concurrency {concurrency}"
                )
            return {
                "req_per_s": raw["requests"] / (raw["duration_us"] / 1e6),
                "p99_ms": raw["p99_us"] / 1000.0,
            }
    raise BenchmarkError(f"wrk printed no result: {out.stdout}{out.stderr}")


def run(quick: bool = False) -> list[Result]:
    """Measure both servers at each concurrency; return req/s and p99 results."""
    if shutil.which("wrk") is None:
        raise BenchmarkError(
            "the 'wrk' HTTP load generator is not installed; install it with "
            "'apt-get install -y wrk' (Debian package wrk) and run again"
        )
    duration_s, warmup_s, rounds = (3, 1, 1) if quick else (6, 1, 3)
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        work = Path(tmp)
        model_file = work / "model.txt"
        train_model(model_file)
        rng = np.random.default_rng(1)
        values = rng.normal(size=N_FEATURES)
        record = {n: round(float(v), 6) for n, v in zip(feature_names(), values, strict=True)}
        script = work / "post.lua"
        script.write_text(LUA % {"body": json.dumps({"records": [record]})})
        runs: dict[str, dict[int, list[dict[str, float]]]] = {"bare": {}, "conveyor": {}}
        servers = {kind: _start(kind, model_file, work / f"log-{kind}") for kind in runs}
        try:
            # Interleaved rounds, alternating which server goes first, so drift in the
            # machine's load hits both alike; the median of the rounds is reported.
            for c in CONCURRENCY:
                for r in range(rounds):
                    for kind in ("bare", "conveyor") if r % 2 == 0 else ("conveyor", "bare"):
                        url = servers[kind][1]
                        _wrk(url, script, c, warmup_s)
                        runs[kind].setdefault(c, []).append(_wrk(url, script, c, duration_s))
        finally:
            for process, _ in servers.values():
                _stop(process)
        logged = sum(p.read_bytes().count(b"\n") for p in (work / "log-conveyor").glob("*.jsonl"))
        figures = {
            kind: {
                c: {k: statistics.median(run[k] for run in per_c[c]) for k in per_c[c][0]}
                for c in per_c
            }
            for kind, per_c in runs.items()
        }
    if logged == 0:
        raise BenchmarkError("the Conveyor server logged no prediction")
    results = []
    for c in CONCURRENCY:
        ours, peer = figures["conveyor"][c], figures["bare"][c]
        results += [
            Result("serving", f"throughput_c{c}", "req/s", round(ours["req_per_s"], 1), PEER,
                   round(peer["req_per_s"], 1), "higher"),
            Result("serving", f"p99_latency_c{c}", "ms", round(ours["p99_ms"], 3), PEER,
                   round(peer["p99_ms"], 3), "lower"),
        ]  # fmt: skip
    return results


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "serve":
        serve(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
    else:
        sys.exit("usage: python -m benchmarks.serving serve {conveyor,bare} MODEL PORT LOG_DIR")
