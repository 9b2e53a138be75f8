"""`conveyor demo` replays 2013 through the whole line and reports what the data show."""

from __future__ import annotations

import json
import os
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


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_short_demo_reports_the_moves_that_conveyor_history_shows(tmp_path):
    """Eight weeks: a bad release forced after the first served week, rolled back a week later,
    then two more weeks served by the restored version (which the watch must not judge)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    out = tmp_path / "demo"

    def conveyor(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "conveyor.cli.main", *args],
            capture_output=True,
            text=True,
            timeout=800,
            cwd=tmp_path,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    demo = conveyor("demo", "--weeks", "8", "--out", str(out))
    home, spec = out / "workspace", out / "conveyor.yaml"
    shown = json.loads(
        conveyor("--json", "--home", str(home), "--spec", str(spec), "history").stdout
    )
    moves = [(m["action"], m["from"], m["to"]) for m in shown]
    summary = json.loads((out / "summary.json").read_text())
    assert [(m["action"], m["from"], m["to"]) for m in summary["history"]] == moves

    rollbacks = [(i, m) for i, m in enumerate(moves) if m[0] == "rollback"]
    assert summary["rollbacks"] == len(rollbacks) >= 1
    for i, (_, from_version, to_version) in rollbacks:
        # a rollback undoes the release just before it, back to the version it replaced
        assert moves[i - 1] == ("promote", to_version, from_version)
    reported = [
        (e["from"], e["to"])
        for week in summary["per_week"]
        for e in week["events"]
        if e["kind"] == "rollback"
    ]
    assert reported == [(m[1], m[2]) for _, m in rollbacks]
    html = (out / "report.html").read_text()
    for _, (_, from_version, to_version) in rollbacks:
        assert f"rollback v{from_version}→v{to_version}" in html
        assert f"rollback v{from_version}→v{to_version}" in demo.stderr

    last = demo.stderr.strip().splitlines()[-8:]
    assert f"workspace: {home}" in last
    assert any(f"--home {home}" in line and " history " in line for line in last)
    assert any(f"--home {home}" in line and " serve " in line for line in last)
