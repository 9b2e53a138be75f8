"""A synthetic problem whose signal a tree model must find: numeric, categorical and noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conveyor.core.schema import ColumnKind, ColumnSchema
from conveyor.core.signature import Signature
from conveyor.training import TrainConfig, TrainResult, train_candidates

CITIES = ("north", "south", "east", "west")


def _frame(n: int, *, seed: int, task: str = "binary") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "z": rng.normal(size=n),
            "noise": rng.normal(size=n),
            "city": rng.choice(CITIES, size=n),
        }
    )
    effect = frame["city"].map({"north": 1.5, "south": -1.5, "east": 0.0, "west": 0.5})
    signal = 1.2 * frame["x"] - 0.8 * frame["z"] ** 2 + effect
    if task == "binary":
        frame["y"] = (rng.random(n) < 1 / (1 + np.exp(-signal))).astype(int)
    else:
        frame["y"] = signal + rng.normal(scale=0.5, size=n)
    return frame


def _signature(task: str) -> Signature:
    return Signature(
        inputs=(
            ColumnSchema("x", ColumnKind.NUMERIC),
            ColumnSchema("z", ColumnKind.NUMERIC),
            ColumnSchema("noise", ColumnKind.NUMERIC),
            ColumnSchema("city", ColumnKind.CATEGORICAL, categories=CITIES),
        ),
        task=task,
    )


@pytest.fixture(scope="session")
def binary_signature() -> Signature:
    return _signature("binary")


@pytest.fixture(scope="session")
def regression_signature() -> Signature:
    return _signature("regression")


@pytest.fixture(scope="session")
def binary_split() -> tuple[pd.DataFrame, pd.DataFrame]:
    return _frame(4000, seed=1), _frame(1500, seed=2)


@pytest.fixture(scope="session")
def regression_split() -> tuple[pd.DataFrame, pd.DataFrame]:
    return _frame(4000, seed=3, task="regression"), _frame(1500, seed=4, task="regression")


@pytest.fixture(scope="session")
def binary_result(binary_split, binary_signature) -> TrainResult:
    train, valid = binary_split
    config = TrainConfig(task="binary", label="y")
    return train_candidates(train, valid, signature=binary_signature, config=config)
