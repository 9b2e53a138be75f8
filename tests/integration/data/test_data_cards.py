"""Data cards: JSON that round-trips and an HTML page with a plot per profiled column."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conveyor.core.errors import NotFoundError
from conveyor.data.cards import build_data_card, write_data_card_html
from conveyor.data.service import ingest_batch
from conveyor.project import Project
from conveyor.registry.service import register_version
from conveyor.spec import ProjectSpec
from conveyor.workspace import Workspace

from ..conftest import make_batch


def test_card_names_source_lineage_schema_profile_and_validation(
    ws: Workspace, spec: ProjectSpec, tmp_path: Path
) -> None:
    make_batch(0, rows=500).to_csv(tmp_path / "w0.csv", index=False)
    first = ingest_batch(ws, spec, tmp_path / "w0.csv").version
    second = ingest_batch(ws, spec, make_batch(1, rows=500)).version
    register_version(
        ws,
        spec.model_name,
        artifact=ws.stores.artifacts.put_bytes(b"m"),
        run_id=None,
        signature={},
        lineage={"datasets": [first.id, second.id]},
        metrics={},
    )
    card = build_data_card(ws, spec, second.seq)
    assert json.loads(json.dumps(card, allow_nan=False)) == card
    assert card["dataset"]["id"] == second.id and card["dataset"]["rows"] == 500
    assert card["lineage"]["models"] == [
        {"model": "toy", "version": 1, "run_id": None, "status": "ready"}
    ]
    assert card["reference"]["batch"] == 1
    assert {c["name"] for c in card["schema"]["columns"]} >= {"hour", "distance", "carrier"}
    assert card["validation"]["passed"] and card["validation"]["anomalies"] == []
    assert card["profile"]["columns"]["distance"]["count"] == 500
    assert build_data_card(ws, spec, first.id)["source"].endswith("w0.csv")


def test_html_card_has_a_histogram_per_feature(
    ws: Workspace, spec: ProjectSpec, tmp_path: Path
) -> None:
    ingest_batch(ws, spec, make_batch(0, rows=400))
    version = ingest_batch(ws, spec, make_batch(1, rows=400)).version
    card = build_data_card(ws, spec, version.id)
    out = write_data_card_html(card, tmp_path / "cards" / "card.html")
    html = out.read_text()
    charted = [
        name
        for name, col in card["profile"]["columns"].items()
        if col.get("histogram") or col.get("values")
    ]
    assert {"hour", "distance", "carrier"} <= set(charted)
    assert html.count("<svg") >= len(charted)
    for name in charted:
        assert f"Distribution of &#39;{name}&#39;" in html or f"Distribution of '{name}'" in html
    assert "reference (batch 1)" in html
    assert version.id in html


def test_quarantined_card_shows_anomalies_and_project_facade_writes_html(
    ws: Workspace, spec: ProjectSpec, tmp_path: Path
) -> None:
    ingest_batch(ws, spec, make_batch(0, rows=400))
    bad = make_batch(1, rows=400)
    bad.loc[:30, "hour"] = float("nan")
    quarantined = ingest_batch(ws, spec, bad).version
    project = Project(ws=ws, spec=spec)
    card = project.data_card(quarantined.id, html=tmp_path / "q.html")
    errors = [a for a in card["validation"]["anomalies"] if a["severity"] == "error"]
    assert not card["validation"]["passed"] and errors[0]["column"] == "hour"
    page = (tmp_path / "q.html").read_text()
    assert "quarantined" in page and "no profile" in page
    with pytest.raises(NotFoundError, match="no batch 9"):
        project.data_card(9)
