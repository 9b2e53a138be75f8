"""A monitoring job over 1M logged predictions x 25 features, against the physical limit.

Setup (not timed): a workspace with a 25-feature binary project (22 numeric, 3 categorical),
a LightGBM model trained on three ingested batches and promoted, then 1,000,000 predictions of
that model (``--quick``: 200,000) logged over one day with the real ``PredictionLogWriter``
(JSON-lines segments, compacted into dated Parquet as a running server's log would be), a
second half shifted by 0.8 sd (PSI ~0.15 per numeric feature, under the 0.2 threshold),
and labels for 20% of the rows in the feedback log.

Timed: ``conveyor.monitoring.monitor`` over the day (feature drift against the reference
profile, prediction drift, bias, realised performance on the labelled rows, the label-free
estimate, data quality, latency; reports stored, alerts raised; HTML not written), median of 3
runs (``--quick``: 1).

Peer, the physical limit: one DuckDB query over the same Parquet files that parses every
record's JSON inputs once and computes, per feature, the count, missing count, mean and a
10-bin histogram, plus the score mean and latency p95: the least work any monitoring job over
this log must do, with DuckDB's vectorised, multi-threaded engine.

Run: ``python -m benchmarks monitoring [--quick] [--json]``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import orjson
import pandas as pd

from benchmarks import BenchmarkError, Result
from conveyor.config import Settings
from conveyor.core.signature import encode_frame
from conveyor.data.service import ingest_batch
from conveyor.monitoring.service import monitor
from conveyor.registry.service import promote
from conveyor.serving.feedback import FeedbackLog
from conveyor.serving.predlog import PredictionLogWriter, compact_predictions
from conveyor.spec import parse_spec
from conveyor.training.service import load_version, train_model
from conveyor.workspace import Workspace

N_NUMERIC, N_CATEGORICAL = 22, 3
PEER = "DuckDB one-pass query over the same Parquet (physical limit)"
DAY = datetime(2024, 6, 1, tzinfo=UTC)
CHUNK = 50_000


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _names() -> tuple[list[str], list[str]]:
    return [f"x{i:02d}" for i in range(N_NUMERIC)], [f"c{i}" for i in range(N_CATEGORICAL)]


def make_frame(rows: int, rng: np.random.Generator, *, shift: float = 0.0) -> pd.DataFrame:
    numeric, categorical = _names()
    x = rng.normal(0.0, 1.0, (rows, N_NUMERIC)) + shift
    frame = pd.DataFrame(x.round(4), columns=numeric)
    for i, name in enumerate(categorical):
        frame[name] = rng.choice(["a", "b", "c", "d", "e"], rows, p=[0.4, 0.2, 0.2, 0.1, 0.1])
        frame[name] = frame[name].where(~((frame[name] == "a") & (i == 0) & (x[:, 0] > 1)), "b")
    logit = x[:, 0] - 0.5 * x[:, 1] + 0.3 * x[:, 2] + np.where(frame["c0"] == "b", 0.6, 0.0)
    frame["y"] = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype("int64")
    return frame


def build_workspace(root: Path, rows: int) -> tuple[Workspace, object]:
    """A trained, promoted project and ``rows`` logged predictions with 20% labelled."""
    ws = Workspace.open(Settings(home=root / "ws"))
    spec = parse_spec(
        {
            "project": "bench",
            "task": "binary",
            "label": "y",
            "timestamp": "ts",
            "entities": ["id"],
            "categorical": _names()[1],
            "training": {"window_batches": 3, "params": {"num_boost_round": 40}},
        }
    )
    rng = np.random.default_rng(0)
    for week in range(3):
        batch = make_frame(5000, rng)
        batch["id"] = [f"b{week}-{i}" for i in range(len(batch))]
        batch["ts"] = pd.Timestamp("2024-05-01", tz="UTC") + pd.to_timedelta(
            week * 7 * 86400 + np.arange(len(batch)) * 60, unit="s"
        )
        ingest_batch(ws, spec, batch)
    version = train_model(ws, spec).version.version
    promote(ws, "bench", version, reason="benchmark")
    model = load_version(ws, "bench", version)
    writer = PredictionLogWriter(ws.project_dir("bench", "predictions"))
    feedback = FeedbackLog(ws.project_dir("bench", "feedback"))
    names = [c.name for c in model.signature.inputs]
    for start in range(0, rows, CHUNK):
        n = min(CHUNK, rows - start)
        frame = make_frame(n, rng, shift=0.8 if start >= rows // 2 else 0.0)
        scores = model.predict_encoded(encode_frame(frame, model.signature))
        seconds = (start + np.arange(n)) * (86_000 / rows)
        records = frame[names].to_dict("records")
        lines = [
            orjson.dumps(
                {
                    "request_id": f"r{start + i}",
                    "ts": (DAY + timedelta(seconds=float(seconds[i]))).isoformat(),
                    "model_version": version,
                    "inputs": records[i],
                    "score": float(scores[i]),
                    "label": int(scores[i] >= 0.5),
                    "latency_ms": float(1.0 + (i % 97) / 10),
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
            for i in range(n)
        ]
        writer.write_bytes(b"".join(lines))
        say(f"logged {start + n:,} / {rows:,} predictions")
        labelled = range(0, n, 5)
        feedback.record(
            [{"request_id": f"r{start + i}", "label": int(frame["y"].iat[i])} for i in labelled]
        )
    writer.close()
    compact_predictions(ws.project_dir("bench", "predictions"))
    return ws, spec


def peer_query(log_dir: Path) -> float:
    """Seconds for DuckDB to compute the per-feature basics over the compacted log."""
    numeric, categorical = _names()
    struct = (
        "{"
        + ", ".join(
            [f'"{n}": "DOUBLE"' for n in numeric] + [f'"{c}": "VARCHAR"' for c in categorical]
        )
        + "}"
    )
    aggregates = []
    for n in numeric:
        aggregates += [
            f"count(f.{n})",
            f"avg(f.{n})",
            f"histogram(least(greatest(floor(f.{n} * 2 + 5), 0), 9))",
        ]
    aggregates += [f"count(f.{c})" for c in categorical]
    aggregates += [f"histogram(f.{c})" for c in categorical]
    aggregates += ["avg(score)", "quantile_cont(latency_ms, 0.95)"]
    files = str(log_dir / "date=*" / "*.parquet")
    started = time.perf_counter()
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.sql(
            f"SELECT {', '.join(aggregates)} FROM (SELECT score, latency_ms, "
            f"json_transform(inputs, '{struct}') AS f FROM read_parquet('{files}'))"
        ).fetchall()
    finally:
        con.close()
    return time.perf_counter() - started


def run(quick: bool = False) -> list[Result]:
    rows = 200_000 if quick else 1_000_000
    repeats = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-monitoring-") as tmp:
        setup = time.perf_counter()
        ws, spec = build_workspace(Path(tmp), rows)
        say(f"setup: {rows:,} logged predictions in {time.perf_counter() - setup:.1f} s")
        ours, peers = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            outcome = monitor(ws, spec, since=DAY, until=DAY + timedelta(days=1), write_html=False)
            ours.append(time.perf_counter() - started)
            peers.append(peer_query(ws.project_dir("bench", "predictions")))
            say(f"run: conveyor {ours[-1]:.2f} s, peer {peers[-1]:.2f} s")
        stats = outcome.report.stats
        if stats["rows"] != rows or stats["live"]["labels"] != rows // 5:
            raise BenchmarkError(
                f"the job saw {stats['rows']} rows, {stats['live']['labels']} labels"
            )
        say(
            f"job: {rows:,} rows, drifted {len(stats['drift']['summary']['drifted_features'])} "
            f"features, live {stats['live']['metric']:.3f}, estimated "
            f"{stats['estimated']['metric']:.3f}"
        )
    return [
        Result(
            benchmark="monitoring",
            metric=f"job_{rows // 1000}k_rows_s",
            unit="s",
            conveyor=statistics.median(ours),
            peer_name=PEER,
            peer=statistics.median(peers),
            better="lower",
        )
    ]
