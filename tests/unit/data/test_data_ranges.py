"""Inferred ranges are never zero-width and a non-negative column stays non-negative."""

from __future__ import annotations

import numpy as np
import pandas as pd

from conveyor.core.schema import ColumnKind, ColumnSchema, Schema
from conveyor.data import ValidationPolicy, infer_schema, validate_batch
from conveyor.data.validation import allowed_range

POLICY = ValidationPolicy(duplicate_rows_share=1.0)


def _weather(rows: int, *, rainy_share: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    precip = np.where(rng.random(rows) < rainy_share, rng.uniform(0.01, 1.2, rows), 0.0)
    return pd.DataFrame(
        {
            "precip": precip,
            "wind_speed": rng.uniform(0.0, 40.0, rows),
            "temp": rng.uniform(-10.0, 30.0, rows),
            "y": rng.integers(0, 2, rows),
        }
    )


def _out_of_range(frame: pd.DataFrame, schema: Schema) -> dict[str, int]:
    report = validate_batch(frame, schema, policy=POLICY)
    return {
        a.column or "": int(a.details["count"])
        for a in report.anomalies
        if a.kind == "out_of_range"
    }


def test_a_dry_sample_does_not_flag_the_rainy_rows_of_later_batches() -> None:
    schema = infer_schema(_weather(500, rainy_share=0.0, seed=1), label="y")
    precip = schema.column("precip")
    assert precip.min_value == 0.0 and precip.max_value is not None and precip.max_value > 0.0
    assert _out_of_range(_weather(1000, rainy_share=0.1, seed=2), schema) == {}


def test_a_negative_wind_speed_is_out_of_range() -> None:
    schema = infer_schema(_weather(500, rainy_share=0.1, seed=3), label="y")
    assert schema.column("wind_speed").min_value == 0.0
    batch = _weather(100, rainy_share=0.1, seed=4)
    batch.loc[:4, "wind_speed"] = -3.0
    assert _out_of_range(batch, schema) == {"wind_speed": 5}


def test_a_column_with_negative_values_gets_headroom_below() -> None:
    schema = infer_schema(_weather(500, rainy_share=0.1, seed=5), label="y")
    temp = schema.column("temp")
    assert temp.min_value is not None and temp.min_value < -10.0
    assert temp.max_value is not None and temp.max_value > 30.0


def test_a_stored_zero_width_range_admits_values_near_it() -> None:
    schema = Schema(
        (
            ColumnSchema("precip", ColumnKind.NUMERIC, min_value=0.0, max_value=0.0),
            ColumnSchema("y", ColumnKind.NUMERIC),
        )
    )
    batch = pd.DataFrame({"precip": [0.0, 0.0, 0.3, 0.0], "y": [0, 1, 0, 1]})
    assert _out_of_range(batch, schema) == {}
    assert allowed_range(5.0, 5.0, 0.5) == (2.5, 7.5)
    assert allowed_range(0.0, 10.0, 0.5)[0] == 0.0
