"""`conveyor run` says by its exit code whether the cycle left a served model behind: 3 when the
gate blocked it or nothing is served yet, 1 when it failed; and a project whose first model was
refused serves one as soon as more data arrives, without waiting for the new-data threshold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conveyor.spec import parse_spec

from .conftest import CLI

SPEC = {
    "project": "toy",
    "task": "binary",
    "label": "y",
    "timestamp": "ts",
    "training": {"params": {"num_boost_round": 30}},
    # A floor a model of a learnable label clears and one of a coin-flip label does not.
    "gate": {"min_rows": 50, "n_bootstrap": 100, "floor": 0.8},
    "validation": {"min_rows": 50},
}


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    (tmp_path / "conveyor.yaml").write_text(parse_spec(SPEC).to_yaml())
    return tmp_path


def _batch(week: int, rows: int, *, learnable: bool) -> pd.DataFrame:
    """A week of rows; the label follows three features, or is a coin flip."""
    rng = np.random.default_rng(100 + week)
    x = rng.normal(size=(rows, 3))
    signal = x.sum(axis=1) + 0.5 * rng.normal(size=rows)
    y = signal > 0 if learnable else rng.random(rows) < 0.5
    start = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(weeks=week)
    return pd.DataFrame(
        {
            "ts": start + pd.to_timedelta(np.sort(rng.uniform(0, 7 * 86400, rows)), unit="s"),
            "a": x[:, 0],
            "b": x[:, 1],
            "c": x[:, 2],
            "y": y.astype("int64"),
        }
    )


def _write(project_dir: Path, name: str, frame: pd.DataFrame) -> str:
    frame.to_csv(project_dir / name, index=False)
    return name


@pytest.mark.slow
def test_a_blocked_bootstrap_exits_3_and_the_next_batches_serve_a_model(
    cli: CLI, project_dir: Path
) -> None:
    noise = _write(project_dir, "w0.csv", _batch(0, 600, learnable=False))
    blocked = cli("run", noise, "--json", check=3)
    cycle = json.loads(blocked.stdout)
    assert (cycle["trigger"], cycle["status"]) == ("bootstrap", "blocked")
    assert "floor" in cycle["blocked_because"]
    assert "blocked" in blocked.stderr
    assert cli("models", "list", "--json").stdout.count('"production"') == 0

    more = [_write(project_dir, f"w{w}.csv", _batch(w, 1500, learnable=True)) for w in (1, 2)]
    served = json.loads(cli("run", *more, "--json").stdout)
    # 3,000 new rows are under the new-data threshold (5,000): the bootstrap fires again
    # because nothing is served yet.
    assert (served["trigger"], served["status"]) == ("bootstrap", "succeeded")
    assert served["steps"]["gate"]["promoted"] and served["blocked_because"] is None
    assert served["steps"]["window"]["batches"] == [1, 2, 3]
    # Nothing new: no cycle, and the served model keeps the exit code at 0.
    assert json.loads(cli("run", "--json").stdout)["status"] == "skipped"


def test_a_project_whose_only_batch_is_quarantined_exits_3(cli: CLI, project_dir: Path) -> None:
    tiny = _write(project_dir, "w0.csv", _batch(0, 20, learnable=True))
    proc = cli("run", tiny, check=3)
    assert "No model of project 'toy' is served yet: batches [1] were quarantined" in proc.stderr


def test_a_failed_cycle_exits_1(cli: CLI, project_dir: Path) -> None:
    # Every row at the same time: a split declared by time cannot make three parts.
    timed = {**SPEC, "training": {**SPEC["training"], "split_by": "time"}}
    (project_dir / "conveyor.yaml").write_text(parse_spec(timed).to_yaml())
    same_time = _batch(0, 200, learnable=True).assign(ts="2024-01-01T00:00:00Z")
    proc = cli("run", _write(project_dir, "w0.csv", same_time), check=1)
    assert "failed" in proc.stderr and "distinct timestamps" in proc.stderr
