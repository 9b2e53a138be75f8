"""Experiment tracking against MLflow 3, both on SQLite in a temporary folder.

Measured, each as the time until what was logged is durable (the final flush included):

* ``points_one_by_one``: 10,000 metric points logged one call at a time, then the run ended
  (Conveyor ``cv.log_metric`` loop, median of 3, vs ``mlflow.log_metric`` loop);
* ``points_vs_log_batch``: the same Conveyor loop vs MLflow's ``MlflowClient.log_batch`` with
  1,000 points per call, MLflow's fastest way in;
* ``runs_params_metrics``: 200 runs, each with 10 params and 10 metrics logged one call at a
  time, started and ended;
* ``search_metric_filter``: finding those runs with ``metrics.m0 > 0.5`` (median of 5);
* ``register_and_alias``: 50 model versions registered, each followed by an alias move.

Durability is the same on both sides in the headline figures: Conveyor's SQLite runs in WAL
mode with ``synchronous=NORMAL`` (a commit is durable against a crashed process, and against a
power cut from the next checkpoint on), so MLflow's engine gets the same two pragmas. MLflow's own
default (rollback journal, a sync on every commit) is reported beside them as ``*_mlflow_default``
so the cost of that setting stays visible.

MLflow runs in its own virtual environment (created under ``CONVEYOR_BENCH_VENVS``, default
``/tmp/peer-venvs``, with ``pip install mlflow==3.18.0`` when missing) as a subprocess, so it
never touches Conveyor's environment. With ``--quick`` the MLflow one-by-one loop logs 1,000
points and its time is scaled by 10 (its cost per call is flat), and 50 runs are logged.

Run: ``python -m benchmarks tracking [--quick] [--json]``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks import BenchmarkError, Result, peer_python

#: The peer's version, pinned so figures from different days compare the same MLflow.
MLFLOW_VERSION = "3.18.0"
N_POINTS = 10_000
BATCH = 1_000
N_VERSIONS = 50
PEER = "MLflow {version} (SQLite WAL, synchronous=NORMAL)"

MLFLOW_SCRIPT = r"""
import json, statistics, sys, time, warnings, logging
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

work, n_points, n_loop, n_runs, n_versions, batch = sys.argv[1], *map(int, sys.argv[2:7])
if sys.argv[7] == "wal":
    # The same durability as Conveyor's SQLite: WAL, synced at checkpoints.
    import sqlalchemy

    @sqlalchemy.event.listens_for(sqlalchemy.engine.Engine, "connect")
    def _pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()
mlflow.set_tracking_uri(f"sqlite:///{work}/mlflow.db")
mlflow.set_experiment("bench")
client = MlflowClient()
out = {"version": mlflow.__version__}

with mlflow.start_run(run_name="warm"):
    mlflow.log_metric("warm", 1.0)

run = mlflow.start_run(run_name="points")
t = time.perf_counter()
for i in range(n_loop):
    mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
mlflow.end_run()
out["points_one_by_one_s"] = (time.perf_counter() - t) * (n_points / n_loop)

run = mlflow.start_run(run_name="batch")
run_id = run.info.run_id
t = time.perf_counter()
now = int(time.time() * 1000)
for start in range(0, n_points, batch):
    client.log_batch(run_id, metrics=[Metric("loss", 1.0 / (i + 1), now, i)
                                      for i in range(start, start + batch)])
mlflow.end_run()
out["points_log_batch_s"] = time.perf_counter() - t

exp = mlflow.set_experiment("runs")
t = time.perf_counter()
for r in range(n_runs):
    with mlflow.start_run(run_name=f"r{r}"):
        for p in range(10):
            mlflow.log_param(f"p{p}", r * p)
        for m in range(10):
            mlflow.log_metric(f"m{m}", ((r * 7919 + m * 104729) % 1000) / 1000)
out["runs_s"] = time.perf_counter() - t

times = []
for _ in range(5):
    t = time.perf_counter()
    found = mlflow.search_runs([exp.experiment_id], filter_string="metrics.m0 > 0.5",
                               max_results=50000, output_format="list")
    times.append(time.perf_counter() - t)
out["search_s"] = statistics.median(times)
out["search_found"] = len(found)

(open(f"{work}/model.bin", "wb")).write(b"model")
t = time.perf_counter()
for v in range(n_versions):
    mv = mlflow.register_model(f"file://{work}/model.bin", "bench-model")
    client.set_registered_model_alias("bench-model", "challenger", mv.version)
out["register_s"] = time.perf_counter() - t
print("MLFLOW_RESULT " + json.dumps(out))
"""


def ensure_mlflow() -> Path:
    """Return the Python of a virtual environment with MLflow 3, creating it when missing."""
    return peer_python(
        "mlflow",
        f"import mlflow, sys; sys.exit(mlflow.__version__ != '{MLFLOW_VERSION}')",
        [f"mlflow=={MLFLOW_VERSION}"],
    )


def run_mlflow(work: Path, *, n_loop: int, n_runs: int, journal: str) -> dict[str, float]:
    """MLflow's half in its own environment; ``journal`` is ``wal`` (Conveyor's durability) or
    ``default`` (MLflow's own: rollback journal, a sync per commit)."""
    python = ensure_mlflow()
    work.mkdir(parents=True, exist_ok=True)
    script = work / "mlflow_bench.py"
    script.write_text(MLFLOW_SCRIPT)
    args = [str(python), str(script), str(work), str(N_POINTS), str(n_loop), str(n_runs),
            str(N_VERSIONS), str(BATCH), journal]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, check=False, cwd=work)
    for line in done.stdout.splitlines():
        if line.startswith("MLFLOW_RESULT "):
            result: dict[str, float] = json.loads(line.removeprefix("MLFLOW_RESULT "))
            return result
    raise BenchmarkError(f"the MLflow half printed no result: {done.stderr[-3000:]}")


def run_conveyor(work: Path, *, n_runs: int) -> dict[str, float]:
    import conveyor as cv
    from conveyor.registry.service import register_version, set_alias

    ws = cv.Workspace.open(cv.Settings(home=work / "conveyor"))
    cv.set_workspace(ws)
    out: dict[str, float] = {}
    with cv.start_run("warm", project="bench"):
        cv.log_metric("warm", 1.0)

    times = []
    for attempt in range(3):  # the median of 3 runs: this loop is short enough to be noisy
        run = cv.start_run(f"points-{attempt}", project="bench", experiment="bench")
        t = time.perf_counter()
        for i in range(N_POINTS):
            cv.log_metric("loss", 1.0 / (i + 1), step=i)
        run.end()
        times.append(time.perf_counter() - t)
        if len(ws.stores.runs.get_metric_history(run.id, "loss")) != N_POINTS:
            raise BenchmarkError("Conveyor did not store every metric point")
    out["points_one_by_one_s"] = statistics.median(times)

    t = time.perf_counter()
    for r in range(n_runs):
        with cv.start_run(f"r{r}", project="bench", experiment="runs"):
            for p in range(10):
                cv.log_param(f"p{p}", r * p)
            for m in range(10):
                cv.log_metric(f"m{m}", ((r * 7919 + m * 104729) % 1000) / 1000)
    out["runs_s"] = time.perf_counter() - t

    times = []
    for _ in range(5):
        t = time.perf_counter()
        found = _search(ws)
        times.append(time.perf_counter() - t)
    out["search_s"] = statistics.median(times)
    out["search_found"] = found

    digest = ws.stores.artifacts.put_bytes(b"model")
    t = time.perf_counter()
    for _ in range(N_VERSIONS):
        mv = register_version(
            ws, "bench-model", artifact=digest, run_id=None, signature={}, lineage={}, metrics={}
        )
        set_alias(ws, "bench-model", "challenger", mv.version, action="move", reason="bench")
    out["register_s"] = time.perf_counter() - t
    return out


def _search(ws: object) -> int:
    """Runs of experiment 'runs' with m0 > 0.5, through tracking search when it exists."""
    try:
        from conveyor.tracking.search import search_runs
    except ImportError:  # older trees: list and filter in Python
        runs = ws.stores.runs.list_runs("bench", experiment="runs")  # type: ignore[attr-defined]
        return sum(1 for run in runs if run.metrics.get("m0", 0.0) > 0.5)
    found, token = 0, None
    while True:
        page = search_runs(ws, "metrics.m0 > 0.5", project="bench", limit=10_000, page_token=token)  # type: ignore[arg-type]
        found += len(page.runs)
        token = page.next_page_token
        if token is None:
            return found


def run(quick: bool = False) -> list[Result]:
    """Run both halves and return one result per measured figure (ratio > 1: Conveyor ahead)."""
    n_loop, n_runs = (1_000, 50) if quick else (N_POINTS, 200)
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-tracking-") as tmp:
        work = Path(tmp)
        peer = run_mlflow(work / "mlflow-wal", n_loop=n_loop, n_runs=n_runs, journal="wal")
        ours = run_conveyor(work, n_runs=n_runs)
        default = run_mlflow(work / "mlflow", n_loop=n_loop, n_runs=n_runs, journal="default")
    for other in (peer, default):
        if ours["search_found"] != other["search_found"]:
            raise BenchmarkError(
                f"the searches disagree: Conveyor found {ours['search_found']} runs, "
                f"MLflow {other['search_found']}"
            )
    name = PEER.format(version=peer["version"])
    batch_name = f"MLflow {peer['version']} log_batch x{BATCH} (SQLite WAL, synchronous=NORMAL)"
    default_name = f"MLflow {peer['version']} (SQLite, its default sync per commit)"
    return [
        Result("tracking", "points_one_by_one_mlflow_default", "s",
               round(ours["points_one_by_one_s"], 4), default_name,
               round(default["points_one_by_one_s"], 4), "lower"),
        Result("tracking", f"runs_{n_runs}x10p10m_mlflow_default", "s", round(ours["runs_s"], 4),
               default_name, round(default["runs_s"], 4), "lower"),
        Result("tracking", "points_one_by_one", "s", round(ours["points_one_by_one_s"], 4), name,
               round(peer["points_one_by_one_s"], 4), "lower"),
        Result("tracking", "points_vs_log_batch", "s", round(ours["points_one_by_one_s"], 4),
               batch_name, round(peer["points_log_batch_s"], 4), "lower"),
        Result("tracking", f"runs_{n_runs}x10p10m", "s", round(ours["runs_s"], 4), name,
               round(peer["runs_s"], 4), "lower"),
        Result("tracking", "search_metric_filter", "ms", round(ours["search_s"] * 1000, 3), name,
               round(peer["search_s"] * 1000, 3), "lower"),
        Result("tracking", f"register_alias_{N_VERSIONS}", "s", round(ours["register_s"], 4),
               name, round(peer["register_s"], 4), "lower"),
    ]  # fmt: skip
