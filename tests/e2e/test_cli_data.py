"""`conveyor data ingest | card | retention` through the real command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from conveyor.spec import parse_spec

from .conftest import CLI, SPEC, make_batch


@pytest.mark.slow
def test_ingest_globs_directories_and_sql_then_card(cli: CLI, project_dir: Path) -> None:
    (project_dir / "parts").mkdir()
    make_batch(0, rows=300).to_parquet(project_dir / "parts" / "a.parquet", index=False)
    make_batch(1, rows=300).to_parquet(project_dir / "parts" / "b.parquet", index=False)
    frame = make_batch(2, rows=300)
    frame.to_csv(project_dir / "w2.csv", index=False)
    engine = sa.create_engine(f"sqlite:///{project_dir / 'src.db'}")
    frame.assign(ts=frame["ts"].astype(str)).to_sql("flights", engine, index=False)
    engine.dispose()

    out = json.loads(cli("--json", "data", "ingest", "parts/*.parquet").stdout)
    assert [r["rows"] for r in out] == [600] and out[0]["created"]
    again = json.loads(cli("--json", "data", "ingest", "parts").stdout)
    assert again[0]["id"] == out[0]["id"] and not again[0]["created"]
    sql = cli(
        "--json",
        "ingest",
        "w2.csv",
        "--sql",
        f"sqlite:///{project_dir / 'src.db'}",
        "--query",
        "SELECT * FROM flights",
    )
    csv_row, sql_row = json.loads(sql.stdout)
    assert csv_row["seq"] == 2 and sql_row["id"] == csv_row["id"] and not sql_row["created"]

    card = json.loads(cli("data", "card", "2", "--html", "card.html", "--json").stdout)
    assert card["dataset"]["batch"] == 2 and card["source"].endswith("w2.csv")
    html = (project_dir / "card.html").read_text()
    assert html.count("<svg") >= 3 and "Data card: toy batch 2" in html
    text = cli("data", "card", card["dataset"]["id"]).stdout
    assert "batch 2 accepted" in text and "no model version" in text


def test_ingest_errors_exit_1_without_traceback(cli: CLI, project_dir: Path) -> None:
    (project_dir / "bad.csv").write_text("a,b\n1,2\n3,4,5,6\n")
    proc = cli("data", "ingest", "bad.csv", check=1)
    assert "could not be read" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("ingest", "--sql", "sqlite:///nowhere.db", check=1)
    assert "--query" in proc.stderr
    proc = cli(
        "ingest",
        "--sql",
        f"sqlite:///{project_dir / 'x.db'}",
        "--query",
        "SELECT * FROM t",
        check=1,
    )
    assert "no such table" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_retention_dry_run_then_delete(cli: CLI, project_dir: Path) -> None:
    spec = parse_spec({**SPEC, "retention": {"keep_batches": 1}})
    (project_dir / "conveyor.yaml").write_text(spec.to_yaml())
    for w in range(3):
        make_batch(w, rows=300).to_csv(project_dir / f"w{w}.csv", index=False)
    cli("ingest", "w0.csv", "w1.csv", "w2.csv")
    dry = cli("retention", "--dry-run").stdout
    assert dry.count("would delete batch") == 2 and "bytes" in dry
    done = json.loads(cli("--json", "data", "retention").stdout)
    assert not done["dry_run"] and len(done["items"]) == 2 and done["bytes_freed"] > 0
    assert json.loads(cli("--json", "retention").stdout)["items"] == []
