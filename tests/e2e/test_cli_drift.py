"""`conveyor data drift | profile` through the real command, on stored profiles only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import CLI, make_batch


@pytest.mark.slow
def test_drift_and_profile_of_ingested_batches(cli: CLI, project_dir: Path) -> None:
    for week, shift in ((0, 0.0), (1, 0.0), (2, 1.5)):
        make_batch(week, rows=2000, shift=shift).to_parquet(
            project_dir / f"w{week}.parquet", index=False
        )
    ingested = json.loads(cli("--json", "ingest", "w0.parquet", "w1.parquet", "w2.parquet").stdout)
    assert [r["status"] for r in ingested] == ["accepted"] * 3
    first, second, third = (r["seq"] for r in ingested)

    profile = json.loads(cli("--json", "data", "profile", str(second)).stdout)
    distance = profile["columns"]["distance"]
    assert "sketch" not in distance and distance["distinct"] == 2000
    assert profile["drift"]["seq"] == first  # stored at ingestion, against the previous batch
    assert profile["drift"]["summary"]["drifted_features"] == []

    drift = json.loads(cli("--json", "data", "drift", str(third)).stdout)
    assert (drift["baseline"]["seq"], drift["current"]["seq"]) == (second, third)
    assert drift["summary"]["drifted_features"] == ["distance"]
    assert drift["features"]["distance"]["ks_pvalue_adjusted"] < 1e-6
    assert drift["features"]["hour"]["drifted"] is False
    reference = json.loads(
        cli("--json", "data", "drift", str(third), "--against", "reference").stdout
    )
    assert reference["baseline"]["seq"] == first

    text = cli("data", "drift", str(third)).stdout
    assert f"batch {third} against batch {second}" in text and "drifted: distance" in text

    alone = cli("data", "drift", str(first), check=1)
    assert "no accepted batch before it" in alone.stderr and "Traceback" not in alone.stderr
