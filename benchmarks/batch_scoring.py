"""Batch scoring: ``score_file`` against an in-process ``predict`` over the same Parquet file.

The model is a 20-feature LightGBM binary classifier (100 trees) wrapped as Conveyor's
``LightGBMModel``. The peer is the plain way to score a file in one process: read the whole
Parquet file, encode it, ``predict`` it (LightGBM uses every core), append the score and label
columns and write Parquet. Conveyor streams the same file in chunks through a pool of threads,
writes atomically and records the model version and input checksum. Both figures include the
Parquet I/O. Rounds alternate between the two; the figures are medians.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks import Result
from conveyor.core.schema import ColumnKind, ColumnSchema
from conveyor.core.signature import Signature, encode_frame
from conveyor.serving.batch import score_file
from conveyor.training.models import LightGBMModel

FEATURES = 20


def _signature() -> Signature:
    inputs = [ColumnSchema(f"f{i}", ColumnKind.NUMERIC) for i in range(FEATURES - 1)]
    inputs.append(ColumnSchema("cat", ColumnKind.CATEGORICAL, categories=("a", "b", "c", "d")))
    return Signature(inputs=tuple(inputs), task="binary")


def _data(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {"entity_id": np.arange(rows)}
    for i in range(FEATURES - 1):
        columns[f"f{i}"] = rng.normal(size=rows)
    columns["cat"] = rng.choice(["a", "b", "c", "d"], rows)
    return pa.table(columns)


def _model(signature: Signature) -> LightGBMModel:
    table = _data(20_000, 1)
    frame = table.to_pandas()
    x = encode_frame(frame, signature)
    y = x[:, 0] + 0.5 * x[:, 1] - 0.3 * x[:, 2] + np.random.default_rng(2).normal(size=len(x)) > 0
    params = {"objective": "binary", "verbose": -1, "num_leaves": 31, "seed": 0}
    booster = lgb.train(params, lgb.Dataset(x, y.astype(int)), num_boost_round=100)
    return LightGBMModel(signature=signature, booster=booster)


def _in_process(model: LightGBMModel, source: Path, output: Path) -> None:
    table = pq.read_table(source)
    scores = model.predict_encoded(encode_frame(table.to_pandas(), model.signature))
    out = table.append_column("score", pa.array(scores)).append_column(
        "label", pa.array((scores >= 0.5).astype(np.int64))
    )
    pq.write_table(out, output)


def run(quick: bool = False) -> list[Result]:
    """Rows/s of Conveyor's batch scoring and of an in-process predict, Parquet I/O included."""
    rows = 200_000 if quick else 2_000_000
    rounds = 3 if quick else 5
    signature = _signature()
    model = _model(signature)
    conveyor_s: list[float] = []
    peer_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-batch-") as tmp:
        source = Path(tmp) / "in.parquet"
        pq.write_table(_data(rows, 3), source, row_group_size=100_000)
        for r in range(rounds):
            start = time.perf_counter()
            _in_process(model, source, Path(tmp) / "peer.parquet")
            peer_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            result = score_file(model, source, Path(tmp) / "conveyor.parquet", version=1)
            conveyor_s.append(time.perf_counter() - start)
            if result["rows"] != rows:
                raise RuntimeError(f"batch scoring wrote {result['rows']} of {rows} rows")
            print(
                f"round {r + 1}/{rounds}: conveyor {conveyor_s[-1]:.2f} s, "
                f"in-process {peer_s[-1]:.2f} s",
                file=sys.stderr,
                flush=True,
            )
    return [
        Result(
            benchmark="batch_scoring",
            metric="batch_rows_per_s",
            unit="rows/s",
            conveyor=rows / statistics.median(conveyor_s),
            peer_name="in-process predict (read, predict, write Parquet)",
            peer=rows / statistics.median(peer_s),
            better="higher",
        )
    ]
