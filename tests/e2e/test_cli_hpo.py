"""`conveyor hpo run | show` through the real command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.e2e.conftest import CLI, make_batch


@pytest.mark.slow
def test_hpo_run_resumes_and_show_lists_the_study(cli: CLI, project_dir: Path) -> None:
    for w in range(3):
        make_batch(w).to_csv(project_dir / f"w{w}.csv", index=False)
    cli("ingest", "w0.csv", "w1.csv", "w2.csv")
    refused = cli("hpo", "run", check=None)
    assert refused.returncode != 0 and "trial budget" in refused.stderr
    first = cli("hpo", "run", "--trials", "2", "--study", "cli")
    assert "Trial 2/2" in first.stderr and "study cli: best roc_auc" in first.stdout
    again = json.loads(cli("--json", "hpo", "run", "--trials", "3", "--study", "cli").stdout)
    assert again["new_trials"] == 1 and sum(again["trials"].values()) == 3
    assert 0.5 < again["best_value"] <= 1.0 and "num_leaves" in again["best_params"]
    listed = json.loads(cli("--json", "hpo", "show").stdout)
    assert [(s["study"], s["trials"]) for s in listed] == [("cli", 3)]
