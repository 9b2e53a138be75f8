"""Online serving throughput and tail latency against MLflow and a bare endpoint (baseline).

Four servers score the same 20-feature LightGBM binary classifier, one uvicorn worker each on
127.0.0.1, driven by ``wrk -t1`` POSTing one-row JSON at concurrency 1, 8 and 32:

- Conveyor's ``/v1/predict`` (request validation, hot-swappable model slot, micro-batching,
  prediction log written before answering, metrics);
- the same with micro-batching off, for the batching on/off figure;
- ``mlflow models serve --env-manager local`` of the model saved by MLflow's LightGBM flavour,
  in its own virtual environment (``/tmp/peer-venvs/mlflow``, made on demand), with a one-row
  ``dataframe_split`` body;
- a bare Starlette endpoint doing only ``orjson.loads`` + a numpy row + ``Booster.predict`` +
  an orjson answer: the least a Python server does to score one request with the same model.
  It is a baseline, not a physical limit: micro-batching can beat it, since one predict call
  then serves many requests.

Each concurrency is measured in interleaved rounds (3, of 6 s each; ``--quick``: 1 of 2 s),
rotating which server goes first, and the median reported, so changes in the machine's load
hit every server alike. The batch scoring figures of :mod:`benchmarks.batch_scoring` follow.

Run: ``python -m benchmarks serving [--quick] [--json]``; server mode (used internally):
``python -m benchmarks.serving serve {conveyor,conveyor-nobatch,bare} MODEL_FILE PORT LOG_DIR``.
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

from benchmarks import BenchmarkError, Result, batch_scoring, peer_python
from benchmarks.tracking import ensure_mlflow

N_FEATURES = 20
CONCURRENCY = (1, 8, 32)
PEER = "bare Starlette+LightGBM (baseline)"
MLFLOW = "mlflow models serve 3 (LightGBM flavour)"
NOBATCH = "Conveyor with micro-batching off"
ROOT = Path(__file__).resolve().parents[1]

LUA = """
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
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


def conveyor_app(model_file: Path, log_dir: Path, batching: bool = True):  # type: ignore[no-untyped-def]
    import lightgbm as lgb

    from conveyor.core.schema import ColumnKind, ColumnSchema
    from conveyor.core.signature import Signature
    from conveyor.serving.app import create_serving_app
    from conveyor.serving.batching import BatchingConfig
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
        batching=BatchingConfig(enabled=batching),
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

    if kind.startswith("conveyor"):
        app = conveyor_app(model_file, log_dir, batching=kind == "conveyor")
    else:
        app = bare_app(model_file)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ---------------------------------------------------------------- MLflow peer

MLFLOW_SAVE = """
import sys
import lightgbm as lgb
import mlflow.lightgbm
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

model_file, target, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
booster = lgb.Booster(model_file=model_file)
example = pd.DataFrame(np.zeros((2, len(names))), columns=names)
signature = infer_signature(example, booster.predict(example.to_numpy()))
mlflow.lightgbm.save_model(booster, target, signature=signature, input_example=example)
"""


def ensure_mlflow_lightgbm() -> Path:
    """The Python of MLflow's virtual environment, with LightGBM installed in it."""
    ensure_mlflow()
    return peer_python("mlflow", "import lightgbm, mlflow, pandas", ["lightgbm"])


def _spawn_mlflow(model_file: Path, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    python = ensure_mlflow_lightgbm()
    target = work / "mlflow-model"
    script = work / "mlflow_save.py"
    script.write_text(MLFLOW_SAVE)
    args = [str(python), str(script), str(model_file), str(target), ",".join(feature_names())]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchmarkError(f"MLflow could not save the model: {done.stderr[-2000:]}")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"  # it execs `uvicorn`
    command = [str(python.parent / "mlflow"), "models", "serve", "-m", str(target),
               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
    log = (work / "mlflow-serve.log").open("wb")
    process = subprocess.Popen(command, env=env, cwd=work, stdout=log, stderr=log)
    return process, f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------- driver


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(kind: str, process: subprocess.Popen[bytes], url: str, path: str) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchmarkError(f"the {kind} server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}{path}", timeout=1) as response:
                if response.status == 200:
                    return url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise BenchmarkError(f"the {kind} server did not become ready within 120 s")


def _spawn(kind: str, model_file: Path, log_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
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
    return process, f"http://127.0.0.1:{port}"


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
        "-s", str(script), url,
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


KINDS = ("bare", "conveyor", "conveyor-nobatch", "mlflow")


def _measure(quick: bool, work: Path) -> dict[str, dict[int, dict[str, float]]]:
    """Median req/s and p99 per server kind and concurrency."""
    duration_s, warmup_s, rounds = (2, 1, 1) if quick else (6, 1, 3)
    model_file = work / "model.txt"
    train_model(model_file)
    values = np.random.default_rng(1).normal(size=N_FEATURES)
    record = {n: round(float(v), 6) for n, v in zip(feature_names(), values, strict=True)}
    ours = work / "post.lua"
    ours.write_text(LUA % {"body": json.dumps({"records": [record]})})
    theirs = work / "post-mlflow.lua"
    split = {"columns": feature_names(), "data": [list(record.values())]}
    theirs.write_text(LUA % {"body": json.dumps({"dataframe_split": split})})
    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    runs: dict[str, dict[int, list[dict[str, float]]]] = {kind: {} for kind in KINDS}
    try:
        for kind in ("mlflow", *(k for k in KINDS if k != "mlflow")):  # slowest first
            servers[kind] = (
                _spawn_mlflow(model_file, work)
                if kind == "mlflow"
                else _spawn(kind, model_file, work / f"log-{kind}")
            )
        for kind, (process, url) in servers.items():
            _wait_ready(kind, process, url, "/ping" if kind == "mlflow" else "/v1/ready")
        for c in CONCURRENCY:
            for r in range(rounds):
                for i in range(len(KINDS)):  # rotate who goes first
                    kind = KINDS[(i + r) % len(KINDS)]
                    url = servers[kind][1]
                    target, script = (
                        (f"{url}/invocations", theirs)
                        if kind == "mlflow"
                        else (f"{url}/v1/predict", ours)
                    )
                    _wrk(target, script, c, warmup_s)
                    runs[kind].setdefault(c, []).append(_wrk(target, script, c, duration_s))
    finally:
        for process, _ in servers.values():
            _stop(process)
    logged = sum(p.read_bytes().count(b"\n") for p in (work / "log-conveyor").glob("*.jsonl"))
    if logged == 0:
        raise BenchmarkError("the Conveyor server logged no prediction")
    return {
        kind: {c: {k: statistics.median(run[k] for run in per_c[c]) for k in per_c[c][0]}
               for c in per_c}
        for kind, per_c in runs.items()
    }  # fmt: skip


def run(quick: bool = False) -> list[Result]:
    """Measure every server at each concurrency; return req/s and p99 results, then batch."""
    if shutil.which("wrk") is None:
        raise BenchmarkError(
            "the 'wrk' HTTP load generator is not installed; install it with "
            "'apt-get install -y wrk' (Debian package wrk) and run again"
        )
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        figures = _measure(quick, Path(tmp))
    results = []
    for c in CONCURRENCY:
        ours, bare = figures["conveyor"][c], figures["bare"][c]
        mlflow, nobatch = figures["mlflow"][c], figures["conveyor-nobatch"][c]
        results += [
            Result("serving", f"throughput_c{c}", "req/s", round(ours["req_per_s"], 1), PEER,
                   round(bare["req_per_s"], 1), "higher"),
            Result("serving", f"p99_latency_c{c}", "ms", round(ours["p99_ms"], 3), PEER,
                   round(bare["p99_ms"], 3), "lower"),
            Result("serving", f"throughput_c{c}_vs_mlflow", "req/s", round(ours["req_per_s"], 1),
                   MLFLOW, round(mlflow["req_per_s"], 1), "higher"),
            Result("serving", f"p99_latency_c{c}_vs_mlflow", "ms", round(ours["p99_ms"], 3),
                   MLFLOW, round(mlflow["p99_ms"], 3), "lower"),
            Result("serving", f"throughput_c{c}_batching", "req/s", round(ours["req_per_s"], 1),
                   NOBATCH, round(nobatch["req_per_s"], 1), "higher"),
        ]  # fmt: skip
    return results + batch_scoring.run(quick)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "serve":
        serve(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
    else:
        sys.exit(
            "usage: python -m benchmarks.serving serve {conveyor,conveyor-nobatch,bare} "
            "MODEL PORT LOG_DIR"
        )
