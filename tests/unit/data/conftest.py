"""Shared frames for the data capability's tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conveyor.core.schema import Schema
from conveyor.data.schemas import infer_schema


def make_flights(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    """A small flights-like batch: every column kind, a label, a timestamp and an entity."""
    rng = np.random.default_rng(seed)
    delay = rng.normal(10.0, 30.0, n)
    delay[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "flight_id": np.arange(n, dtype=np.int64),
            "ts": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
            "carrier": rng.choice(["AA", "DL", "UA"], n),
            "distance": rng.uniform(100.0, 3000.0, n),
            "dep_delay": delay,
            "weekend": rng.random(n) < 2 / 7,
            "note": [f"note {i}" for i in range(n)],
            "delayed": rng.integers(0, 2, n),
        }
    )


@pytest.fixture
def flights() -> pd.DataFrame:
    return make_flights()


@pytest.fixture
def flights_schema(flights: pd.DataFrame) -> Schema:
    return infer_schema(
        flights, label="delayed", timestamp="ts", entities=["flight_id"], max_categories=50
    )


@pytest.fixture
def make_batch():
    """Build further flights-like batches: ``make_batch(n=..., seed=...)``."""
    return make_flights
