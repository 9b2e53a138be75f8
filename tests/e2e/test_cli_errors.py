"""Bad input everywhere gets one clear line and a meaningful exit code; nothing is half-written."""

from __future__ import annotations

import json

import pytest

from .conftest import make_batch


def test_missing_batch_file_exits_1_naming_the_file(cli, project_dir):
    proc = cli("ingest", "nope.csv", check=1)
    assert "nope.csv" in proc.stderr and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_malformed_spec_names_the_field_and_allowed_values(cli, project_dir):
    (project_dir / "conveyor.yaml").write_text("project: x\ntask: clasification\nlabel: y\n")
    proc = cli("ingest", "a.csv", check=2)
    assert "'task' must be one of" in proc.stderr and "clasification" in proc.stderr


def test_spec_that_is_not_yaml_exits_2(cli, project_dir):
    (project_dir / "conveyor.yaml").write_text("project: [unclosed\n")
    proc = cli("train", check=2)
    assert "not valid YAML" in proc.stderr


def test_corrupt_csv_exits_1_and_stores_nothing(cli, project_dir):
    (project_dir / "bad.csv").write_bytes(b'a,b\n1,"unterminated\n\x00\x00')
    proc = cli("ingest", "bad.csv", check=1)
    assert "bad.csv" in proc.stderr
    listing = cli("--json", "history", check=None)
    assert listing.returncode in (0, 1)


def test_unknown_model_version_exits_1(cli, project_dir):
    make_batch(0).to_csv(project_dir / "w0.csv", index=False)
    cli("ingest", "w0.csv")
    proc = cli("promote", "42", "--reason", "test", check=1)
    assert "no version 42" in proc.stderr


def test_quarantine_exits_3_with_a_readable_report(cli, project_dir):
    make_batch(0).to_csv(project_dir / "w0.csv", index=False)
    make_batch(1).rename(columns={"hour": "hr"}).to_csv(project_dir / "w1.csv", index=False)
    cli("ingest", "w0.csv")
    proc = cli("ingest", "w1.csv", check=3)
    assert "quarantined" in proc.stdout and "'hour'" in proc.stdout


def test_init_drafts_a_spec_from_a_sample(cli, project_dir):
    (project_dir / "conveyor.yaml").unlink()
    make_batch(0).to_csv(project_dir / "sample.csv", index=False)
    proc = cli("--json", "init", "--from", "sample.csv", "--label", "late")
    spec = json.loads(proc.stdout)
    assert spec["task"] == "binary" and spec["timestamp"] == "ts"
    assert "carrier" in spec["categorical"]
    again = cli("init", "--from", "sample.csv", check=1)
    assert "--force" in again.stderr


@pytest.mark.slow
def test_full_cli_line_train_gate_promote_rollback(cli, project_dir):
    for w in range(3):
        make_batch(w).to_csv(project_dir / f"w{w}.csv", index=False)
    cli("ingest", "w0.csv", "w1.csv")
    cli("train")
    cli("gate", "1")
    cli("ingest", "w2.csv")
    cli("train")
    cli("promote", "2", "--reason", "manual release")
    proc = cli("--json", "rollback", "--reason", "check")
    assert json.loads(proc.stdout)["version"] == 1
    history = json.loads(cli("--json", "history").stdout)
    assert [h["action"] for h in history] == ["promote", "promote", "rollback"]
    proc = cli("--json", "run", check=None)
    cycle = json.loads(proc.stdout)
    assert cycle["status"] in ("skipped", "succeeded", "blocked")
    assert proc.returncode == (3 if cycle["status"] == "blocked" else 0)


def test_usage_errors_exit_2_without_a_traceback(cli, project_dir):
    proc = cli("promote", check=2)
    assert "Missing argument" in proc.stderr and "Traceback" not in proc.stderr
    assert cli("no-such-command", check=2).returncode == 2
