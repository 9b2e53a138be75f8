"""`conveyor schema` and `conveyor quarantine` through the real command: review, evolve, release."""

from __future__ import annotations

import json

import pytest

from .conftest import make_batch


@pytest.mark.slow
def test_schema_review_accept_and_quarantine_release(cli, project_dir):
    make_batch(0).to_csv(project_dir / "w0.csv", index=False)
    batch = make_batch(1)
    # Four unknown carriers in a quarter of the rows: more than a reviewable change.
    batch.loc[batch.index[:400], "carrier"] = ["ZA", "ZB", "ZC", "ZD"] * 100
    batch.to_csv(project_dir / "w1.csv", index=False)
    cli("ingest", "w0.csv")
    cli("ingest", "w1.csv", check=3)
    [held] = json.loads(cli("--json", "quarantine", "list").stdout)
    assert held["errors"] == "unseen_categories" and held["seq"] == 2
    refused = cli("quarantine", "release", held["id"], check=3)
    assert "still fails validation" in refused.stderr and "'carrier'" in refused.stderr
    diff = cli("schema", "diff", "--batch", "w1.csv")
    assert "carrier" in diff.stdout and "+['ZA', 'ZB', 'ZC', 'ZD']" in diff.stdout
    accepted = cli("schema", "accept", "--batch", "w1.csv", "--reason", "new carrier")
    assert "saved schema v2" in accepted.stdout
    shown = json.loads(cli("--json", "schema", "show").stdout)
    assert shown["version"] == 2 and shown["reason"] == "new carrier"
    carrier = next(c for c in shown["columns"] if c["name"] == "carrier")
    assert "ZD" in carrier["categories"]
    released = json.loads(cli("--json", "quarantine", "release", held["id"]).stdout)
    assert released["status"] == "accepted" and not released["overridden"]
    assert json.loads(cli("--json", "quarantine", "list").stdout) == []
    history = cli("quarantine", "show", held["id"]).stdout
    assert "quarantined -> accepted" in history and "re-validated" in history


def test_release_by_override_and_unknown_ids(cli, project_dir):
    make_batch(0).to_csv(project_dir / "w0.csv", index=False)
    make_batch(1).drop(columns=["late"]).to_csv(project_dir / "w1.csv", index=False)
    cli("ingest", "w0.csv")
    proc = cli("--json", "ingest", "w1.csv", check=3)
    batch_id = json.loads(proc.stdout)[0]["id"]
    released = cli("quarantine", "release", batch_id, "--reason", "labels arrive later")
    assert "released" in released.stdout and "by override" in released.stdout
    missing = cli("quarantine", "show", "ds_nope", check=1)
    assert "'ds_nope'" in missing.stderr and "Traceback" not in missing.stderr
