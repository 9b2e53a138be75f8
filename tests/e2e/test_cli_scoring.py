"""`conveyor predict --batch`, `conveyor offline build|lookup` and `conveyor feedback` as users
run them."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from .conftest import make_batch


@pytest.mark.slow
def test_predict_offline_and_feedback_from_the_command_line(cli, project_dir):
    for w in range(2):
        make_batch(w, rows=800).to_csv(project_dir / f"w{w}.csv", index=False)
    cli("ingest", "w0.csv", "w1.csv")
    cli("train")
    cli("promote", "1", "--reason", "first release")
    score_input = make_batch(5, rows=3000).drop(columns=["late"])
    score_input.to_parquet(project_dir / "to_score.parquet")

    scored = json.loads(
        cli("--json", "predict", "--batch", "to_score.parquet", "--out", "scored.parquet").stdout
    )
    assert scored["rows"] == 3000 and scored["model_version"] == 1
    out = pd.read_parquet(project_dir / "scored.parquet")
    assert out["flight_id"].tolist() == score_input["flight_id"].tolist()
    assert out["score"].between(0, 1).all()
    meta = json.loads(pq.read_schema(project_dir / "scored.parquet").metadata[b"conveyor"])
    assert meta["model_version"] == 1 and meta["input_sha256"] == scored["input_sha256"]

    built = json.loads(cli("--json", "offline", "build", "--source", "to_score.parquet").stdout)
    assert built["keys"] == 3000 and built["model_version"] == 1
    looked = json.loads(cli("--json", "offline", "lookup", "w5-0", "w5-2999", "nope").stdout)
    assert looked["missing"] == ["nope"]
    first = out.loc[out["flight_id"] == "w5-0", "score"].item()
    assert abs(looked["found"]["w5-0"]["score"] - first) < 1e-12

    pd.DataFrame({"request_id": ["r-unknown"], "label": [1]}).to_csv(
        project_dir / "fb.csv", index=False
    )
    recorded = json.loads(cli("--json", "feedback", "fb.csv").stdout)
    assert recorded == {"accepted": 1, "duplicates": 0, "unknown_ids": ["r-unknown"]}
    again = json.loads(cli("--json", "feedback", "fb.csv").stdout)
    assert again["duplicates"] == 1

    missing = cli("predict", "--batch", "absent.csv", "--out", "x.parquet", check=1)
    assert "does not exist" in missing.stderr
