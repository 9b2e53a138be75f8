"""`conveyor demo` replays 2013 through the whole line and reports what the data show."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_demo_runs_the_whole_year_and_reports(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", "demo", "--out", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["weeks"] == 52
    assert summary["quarantined"] >= 2 and summary["rollbacks"] >= 1
    assert summary["promotions"] >= 2 and summary["rejections"] + summary["promotions"] > 10
    assert 0.5 < summary["static"]["auc_h2"] < 0.9 and 0.5 < summary["ct"]["auc_h2"] < 0.9
    assert summary["predictions_served"] > 250_000
    html = (tmp_path / "demo" / "report.html").read_text()
    assert html.count("<svg") >= 4 and "Weekly ROC-AUC" in html
    assert "continuous training" in proc.stderr
