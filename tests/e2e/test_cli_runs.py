"""`conveyor runs search | compare` through the real command."""

from __future__ import annotations

import json
from pathlib import Path

from conveyor.config import Settings
from conveyor.spec import parse_spec
from conveyor.tracking.service import record_run
from conveyor.workspace import Workspace

from .conftest import SPEC


def _seed(project_dir: Path) -> list[str]:
    ws = Workspace.open(Settings(home=project_dir / ".conveyor"))
    project = parse_spec(SPEC).project
    ids = []
    for name, lr, auc in [("train-a", "0.1", 0.9), ("train-b", "0.01", 0.7), ("eval", "0.1", 0.8)]:
        with record_run(ws, project, name=name) as run:
            run.log_params({"lr": lr})
            run.log_metrics({"auc": auc - 0.1}, step=0)
            run.log_metrics({"auc": auc}, step=1)
        ids.append(run.id)
    with record_run(ws, "another-project", name="train-z") as run:
        run.log_metrics({"auc": 0.99})
    return ids


def test_search_filters_orders_and_pages_as_json(cli, project_dir):
    _seed(project_dir)
    args = ["--json", "--home", ".conveyor", "runs", "search"]
    proc = cli(*args, "name LIKE 'train-%'", "--order-by", "metrics.auc DESC", "--limit", "1")
    first = json.loads(proc.stdout)
    assert [r["name"] for r in first["runs"]] == ["train-a"]
    assert first["runs"][0]["metrics"] == {"auc": 0.9}
    proc = cli(
        *args,
        "name LIKE 'train-%'",
        "--order-by",
        "metrics.auc DESC",
        "--limit",
        "1",
        "--page-token",
        first["next_page_token"],
    )
    second = json.loads(proc.stdout)
    assert [r["name"] for r in second["runs"]] == ["train-b"]
    assert second["next_page_token"] is None


def test_search_error_names_the_position(cli, project_dir):
    _seed(project_dir)
    proc = cli("--home", ".conveyor", "runs", "search", "metrics.auc auc", check=1)
    assert "Expected a comparison operator at position 12, got 'auc'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_compare_prints_a_table_and_writes_html(cli, project_dir):
    ids = _seed(project_dir)
    proc = cli("--home", ".conveyor", "runs", "compare", ids[0], ids[1], "--html", "cmp.html")
    assert "params.lr" in proc.stdout and "train-a" in proc.stdout and "train-b" in proc.stdout
    assert "* params.lr" in proc.stdout
    assert (project_dir / "cmp.html").read_text().count("<svg") == 1
    data = json.loads(cli("--json", "--home", ".conveyor", "runs", "compare", *ids).stdout)
    assert data["params"] == [
        {"key": "lr", "differs": True, "values": {ids[0]: "0.1", ids[1]: "0.01", ids[2]: "0.1"}}
    ]
