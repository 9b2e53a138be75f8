"""Batch scoring on every core: same result, post-processing, metadata, and a crash then rerun."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conveyor.core.signature import encode_frame
from conveyor.serving.batch import META_SUFFIX, read_output_metadata, score_file
from conveyor.serving.postprocess import PostProcessor
from conveyor.spec import PostprocessSpec

SRC = Path(__file__).resolve().parents[3] / "src"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    rng = np.random.default_rng(5)
    n = 20_000
    frame = pd.DataFrame(
        {
            "flight_id": np.arange(n),
            "distance": rng.uniform(100, 3000, n),
            "hour": rng.integers(0, 24, n).astype(float),
            "carrier": rng.choice(["AA", "DL", "UA"], n),
            "weekend": rng.random(n) < 0.3,
        }
    )
    path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=3000)
    return path


def test_threads_give_the_same_rows_in_order_as_one(tmp_path, source, predictor, signature):
    one = score_file(predictor, source, tmp_path / "one.parquet", version=2, workers=1,
                     chunk_rows=1000)  # fmt: skip
    four = score_file(predictor, source, tmp_path / "four.parquet", version=2, workers=4,
                      chunk_rows=1000)  # fmt: skip
    assert one["rows"] == four["rows"] == 20_000
    a, b = pd.read_parquet(tmp_path / "one.parquet"), pd.read_parquet(tmp_path / "four.parquet")
    pd.testing.assert_frame_equal(a, b)
    frame = pq.read_table(source).to_pandas()
    np.testing.assert_allclose(
        b["score"], predictor.predict_encoded(encode_frame(frame, signature))
    )
    assert b["flight_id"].tolist() == list(range(20_000))


def test_model_version_and_input_checksum_are_recorded(tmp_path, source, predictor):
    out = tmp_path / "scored.parquet"
    score_file(predictor, source, out, version=7, model_name="delays")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    meta = read_output_metadata(out)
    assert meta["model_version"] == 7 and meta["input_sha256"] == digest
    assert meta["model_name"] == "delays"
    sidecar = orjson.loads(out.with_name(out.name + META_SUFFIX).read_bytes())
    assert sidecar["rows"] == 20_000 and sidecar["input_sha256"] == digest


def test_post_processing_columns_sit_beside_the_raw_outputs(tmp_path, source, predictor):
    spec = PostprocessSpec.model_validate(
        {
            "steps": [
                {"kind": "threshold", "cutoffs": [[0.7, "high"]], "default": "low"},
                {"kind": "filter", "when": [{"field": "carrier", "op": "eq", "value": "AA"}],
                 "reason": "AA withheld"},
            ]
        }
    )  # fmt: skip
    out = tmp_path / "post.parquet"
    score_file(predictor, source, out, version=1, postprocessor=PostProcessor(spec))
    frame = pd.read_parquet(out)
    aa = frame["carrier"] == "AA"
    assert frame.loc[aa, "withheld"].all() and not frame.loc[~aa, "withheld"].any()
    assert frame.loc[aa, "post_label"].isna().all()
    assert (frame.loc[aa, "reason"] == "AA withheld").all()
    kept = frame.loc[~aa]
    assert (kept["post_label"] == np.where(kept["score"] >= 0.7, "high", "low")).all()
    assert frame["label"].notna().all()  # the raw label stays


SLOW_SCORER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from conftest import train_predictor
    from conveyor.serving.batch import score_file

    predictor = train_predictor(0)
    inner = predictor.predict_encoded
    def slow(matrix):
        time.sleep(0.05)
        return inner(matrix)
    predictor.predict_encoded = slow
    print("started", flush=True)
    score_file(predictor, Path(sys.argv[1]), Path(sys.argv[2]), version=1, chunk_rows=500,
               workers=2)
    """
)


def test_a_rerun_after_kill_9_yields_exactly_one_row_per_input_row(tmp_path, source, predictor):
    out = tmp_path / "out" / "scored.parquet"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(SRC.parent)])}
    args = [sys.executable, "-c", SLOW_SCORER, str(source), str(out), str(Path(__file__).parent)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 60
    while not list(out.parent.glob(".scored.parquet.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # mid-run: some chunks written
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert not out.exists()
    assert list(out.parent.glob(".scored.parquet.*.tmp"))  # the dead run's partial file
    result = score_file(predictor, source, out, version=1, chunk_rows=500)
    frame = pd.read_parquet(out)
    assert result["rows"] == len(frame) == 20_000
    assert frame["flight_id"].is_unique
    assert not list(out.parent.glob(".*.tmp"))  # the stale temporary is gone
