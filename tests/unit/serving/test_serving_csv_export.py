"""Batch scoring's CSV output never carries a cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pyarrow as pa

from conveyor.data.csv_cells import escape_formula_cells
from conveyor.serving.batch import score_file

FORMULAS = ['=HYPERLINK("http://evil.example","x")', "+1+2", "-2+3", "@SUM(A1)", "\tx", "\rx"]


def test_scored_csv_escapes_formula_cells_of_passed_through_columns(tmp_path, predictor):
    n = len(FORMULAS) + 2
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "flight_id": np.arange(n),
            "distance": rng.uniform(100, 3000, n).round(1),
            "hour": rng.integers(0, 24, n).astype(float),
            "carrier": [*FORMULAS, "AA", "UA"],
            "weekend": rng.random(n) < 0.3,
        }
    )
    source = tmp_path / "in.parquet"
    frame.to_parquet(source)
    score_file(predictor, source, tmp_path / "out.csv", version=1)
    with open(tmp_path / "out.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["carrier"] for row in rows] == [*(f"'{f}" for f in FORMULAS), "AA", "UA"]
    assert [float(row["distance"]) for row in rows] == frame["distance"].tolist()
    assert all(not row["score"].startswith("'") for row in rows)


def test_escape_formula_cells_handles_dictionary_text_and_keeps_metadata():
    carrier = pa.array(["=1", "AA", None, "@x"]).dictionary_encode()
    schema = pa.schema([("carrier", carrier.type), ("n", pa.int64())], metadata={b"k": b"v"})
    batch = pa.RecordBatch.from_arrays([carrier, pa.array([-1, 2, 3, 4])], schema=schema)
    escaped = escape_formula_cells(batch)
    assert escaped.column(0).to_pylist() == ["'=1", "AA", None, "'@x"]
    assert escaped.column(1).to_pylist() == [-1, 2, 3, 4]
    assert escaped.schema.metadata == {b"k": b"v"}
