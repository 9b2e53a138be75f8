"""`conveyor models report NAME VERSION --out FILE` writes the gate's stored report."""

from __future__ import annotations

import pytest
from tests.integration.conftest import make_batch

from conveyor.config import Settings
from conveyor.data.service import ingest_batch
from conveyor.pipeline.gate import gate_version
from conveyor.spec import load_spec
from conveyor.training.service import train_model
from conveyor.workspace import Workspace


@pytest.mark.slow
def test_models_report_writes_the_stored_html(cli, project_dir):
    spec = load_spec(project_dir / "conveyor.yaml")
    ws = Workspace.open(Settings(home=project_dir / ".conveyor"))
    for week in range(3):
        ingest_batch(ws, spec, make_batch(week))
    version = train_model(ws, spec).version.version
    gate_version(ws, spec, version, promote_if_passed=False)
    cli("models", "report", "toy", str(version), "--out", "out/report.html")
    html = (project_dir / "out" / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") or html.lstrip().startswith("<!")
    assert f"Evaluation of toy v{version}" in html and ">ROC curve</h2>" in html
    missing = cli("models", "report", "toy", str(version + 1), "--out", "x.html", check=1)
    assert f"version {version + 1}" in missing.stderr
    assert not (project_dir / "x.html").exists()
