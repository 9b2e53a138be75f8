"""`conveyor init` through the real command: it asks for the label instead of guessing,
prints the positive class and why columns were excluded, and its spec ingests as drafted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tests.unit.data import drafting_shapes as shapes

from conveyor.spec import load_spec

from .conftest import CLI


def test_init_without_a_label_name_exits_2_listing_candidates(cli: CLI, project_dir: Path):
    (project_dir / "conveyor.yaml").unlink()
    shapes.wage().to_csv(project_dir / "Wage.csv", index=False)
    proc = cli("init", "--from", "Wage.csv", check=2)
    assert "--label" in proc.stderr and "'wage' (numeric)" in proc.stderr
    assert not (project_dir / "conveyor.yaml").exists()


def test_init_prints_the_positive_class_and_excluded_columns(cli: CLI, project_dir: Path):
    (project_dir / "conveyor.yaml").unlink()
    frame = shapes.smarket()
    frame.to_csv(project_dir / "week-01.csv", index=False)
    rarer = frame["Direction"].value_counts().idxmin()
    proc = cli("init", "--from", "week-01.csv", "--label", "Direction")
    out = " ".join(proc.stdout.split())
    assert f"positive class: '{rarer}' (the rarer value; set positive_class to change)" in out
    assert "ignored: 'Today' alone predicts the label almost perfectly" in out
    spec = load_spec(project_dir / "conveyor.yaml")
    assert spec.project == "direction" and spec.positive_class == rarer
    assert (spec.timestamp, spec.timestamp_format) == ("Year", "year")
    assert spec.ignore == ["rownames", "Today"]


@pytest.mark.slow
def test_init_json_carries_the_notes_and_the_spec_ingests_unedited(cli: CLI, project_dir: Path):
    (project_dir / "conveyor.yaml").unlink()
    shapes.bikeshare(days=40).to_csv(project_dir / "hourly.csv", index=False)
    drafted = json.loads(
        cli("--json", "init", "--from", "hourly.csv", "--label", "bikers", "--name", "bikes").stdout
    )
    assert drafted["project"] == "bikes" and drafted["timestamp_parts"] == {
        "day_of_year": "day",
        "hour": "hr",
    }
    assert any("linear fit" in n for n in drafted["notes"])
    written = yaml.safe_load((project_dir / "conveyor.yaml").read_text())
    # The gate's 200 test rows over the 0.15 test share, with 10% headroom.
    assert "notes" not in written and written["training"]["window_rows"] == 1467
    out = json.loads(cli("--json", "ingest", "hourly.csv").stdout)
    assert out[0]["status"] == "accepted"
