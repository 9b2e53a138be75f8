"""A killed batch scoring run's temporaries are removed by the next run into the directory,
whatever its output is named, and a live run's temporaries are never touched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conveyor.serving.batch import score_file
from conveyor.serving.temporaries import remove_stale_temporaries

SRC = Path(__file__).resolve().parents[3] / "src"

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
        time.sleep(0.2)
        return inner(matrix)
    predictor.predict_encoded = slow
    print("started", flush=True)
    score_file(predictor, Path(sys.argv[1]), Path(sys.argv[2]), version=1, chunk_rows=500,
               workers=1)
    """
)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    n = 6000
    frame = pd.DataFrame(
        {
            "distance": rng.uniform(100, 3000, n),
            "hour": rng.integers(0, 24, n).astype(float),
            "carrier": rng.choice(["AA", "DL", "UA"], n),
            "weekend": rng.random(n) < 0.3,
        }
    )
    path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=500)
    return path


def start_scoring(source: Path, out: Path) -> subprocess.Popen[str]:
    """A real batch scoring process, slowed so that it is mid-run when the test acts."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(Path(__file__).parent)])}
    args = [sys.executable, "-c", SLOW_SCORER, str(source), str(out), str(Path(__file__).parent)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 60
    while not temporaries_of(out) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert temporaries_of(out), "the scoring run never started writing"
    return proc


def temporaries_of(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.*.tmp"))


def test_a_run_into_the_directory_removes_a_killed_runs_temporaries(tmp_path, source, predictor):
    killed = tmp_path / "out" / "scored-monday.parquet"
    proc = start_scoring(source, killed)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert not killed.exists() and temporaries_of(killed)  # the dead run's partial file
    score_file(predictor, source, tmp_path / "out" / "scored-tuesday.parquet", version=1)
    assert not temporaries_of(killed)  # another output's run swept it
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "scored-tuesday.parquet",
        "scored-tuesday.parquet.meta.json",
    ]


def test_a_live_runs_temporaries_are_left_alone(tmp_path, source, predictor):
    live = tmp_path / "out" / "live.parquet"
    proc = start_scoring(source, live)
    try:
        held = temporaries_of(live)
        assert remove_stale_temporaries(live.parent) == []
        score_file(predictor, source, tmp_path / "out" / "other.parquet", version=1)
        assert all(p.exists() for p in held)  # still being written by the live run
        assert proc.wait(120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert len(pd.read_parquet(live)) == 6000 and not temporaries_of(live)
