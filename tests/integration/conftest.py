"""A small synthetic project: weekly batches with a time column, categories and a real signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conveyor.config import Settings
from conveyor.spec import ProjectSpec, parse_spec
from conveyor.workspace import Workspace


def make_batch(
    week: int, rows: int = 1500, *, seed: int | None = None, shift: float = 0.0
) -> pd.DataFrame:
    """One week of data: late depends on hour, distance and carrier, plus noise."""
    rng = np.random.default_rng(week if seed is None else seed)
    start = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(weeks=week)
    hour = rng.uniform(5, 23, rows)
    distance = rng.gamma(3.0, 300.0, rows) + shift * 500
    carrier = rng.choice(["AA", "B6", "DL", "UA"], rows)
    logit = -2.0 + 0.15 * (hour - 12) + 0.0008 * distance + np.where(carrier == "B6", 0.8, 0.0)
    late = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    return pd.DataFrame(
        {
            "flight_id": [f"w{week}-{i}" for i in range(rows)],
            "ts": start + pd.to_timedelta(np.sort(rng.uniform(0, 7 * 86400, rows)), unit="s"),
            "hour": hour,
            "distance": distance,
            "carrier": carrier,
            "late": late,
        }
    )


SPEC = {
    "project": "toy",
    "task": "binary",
    "label": "late",
    "timestamp": "ts",
    "entities": ["flight_id"],
    "categorical": ["carrier"],
    "training": {"window_batches": 4, "params": {"num_boost_round": 60}},
    "gate": {"min_rows": 100, "n_bootstrap": 100},
    "triggers": {"new_data_rows": 1000},
    "watch": {"min_labels": 200},
}


@pytest.fixture
def spec() -> ProjectSpec:
    return parse_spec(SPEC)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.open(Settings(home=tmp_path / "ws"))


@pytest.fixture
def spec_file(tmp_path: Path, spec: ProjectSpec) -> Path:
    path = tmp_path / "conveyor.yaml"
    path.write_text(spec.to_yaml())
    return path
