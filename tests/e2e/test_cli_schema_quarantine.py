"""`conveyor schema` and `conveyor quarantine` through the real command: review, evolve, release."""

from __future__ import annotations

import json

import pandas as pd
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


@pytest.mark.slow
def test_fix_the_spec_and_revalidate_quarantined_batches_in_one_command(cli, project_dir):
    make_batch(0).to_csv(project_dir / "w0.csv", index=False)
    for w in (1, 2):
        make_batch(w).assign(comment="free text").to_csv(project_dir / f"w{w}.csv", index=False)
    cli("ingest", "w0.csv")
    cli("ingest", "w1.csv", "w2.csv", check=3)
    usage = cli("quarantine", "revalidate", check=1)
    assert "batch ids or --all" in usage.stderr
    still = cli("quarantine", "revalidate", "--all", check=3)
    assert "'comment'" in still.stdout
    spec = (project_dir / "conveyor.yaml").read_text()
    (project_dir / "conveyor.yaml").write_text(spec.replace("ignore: []", "ignore: [comment]"))
    done = json.loads(cli("--json", "quarantine", "revalidate", "--all").stdout)
    assert [(b["seq"], b["status"]) for b in done] == [(2, "accepted"), (3, "accepted")]
    assert json.loads(cli("--json", "quarantine", "revalidate", "--all").stdout) == []
    history = cli("quarantine", "show", done[0]["id"]).stdout
    assert "quarantined -> accepted" in history and "re-validated" in history
    cli("train")


@pytest.mark.slow
def test_a_new_category_is_proposed_and_accepted_by_command(cli, project_dir):
    make_batch(0).to_csv(project_dir / "w0.csv", index=False)
    batch = make_batch(1)
    batch.loc[batch.index[:400], "carrier"] = "ZZ"
    batch.to_csv(project_dir / "w1.csv", index=False)
    cli("ingest", "w0.csv")
    ingested = cli("ingest", "w1.csv")
    assert "proposed as a schema" in ingested.stdout
    proposed = json.loads(cli("--json", "schema", "diff", "--proposed").stdout)
    assert [c["details"]["added"] for c in proposed["changes"] if c["column"] == "carrier"] == [
        ["ZZ"]
    ]
    both = cli("schema", "diff", "--proposed", "--to", "1", check=1)
    assert "--to and --proposed" in both.stderr
    accepted = cli("schema", "accept", "--reason", "new carrier")
    assert "saved schema v2" in accepted.stdout
    assert "no change is proposed" in cli("schema", "accept").stdout
    assert "no changes" in cli("schema", "diff", "--proposed").stdout


@pytest.mark.slow
def test_feedback_reads_the_label_column_the_spec_names(cli, project_dir):
    pd.DataFrame({"request_id": ["r-1"], "late": [1]}).to_csv(project_dir / "fb.csv", index=False)
    recorded = json.loads(cli("--json", "feedback", "fb.csv").stdout)
    assert recorded["accepted"] == 1
    pd.DataFrame({"request_id": ["r-2"], "label": [0]}).to_csv(project_dir / "old.csv", index=False)
    assert json.loads(cli("--json", "feedback", "old.csv").stdout)["accepted"] == 1
    pd.DataFrame({"request_id": ["r-3"], "y": [0]}).to_csv(project_dir / "bad.csv", index=False)
    refused = cli("feedback", "bad.csv", check=1)
    assert "'late'" in refused.stderr and "'label'" in refused.stderr
