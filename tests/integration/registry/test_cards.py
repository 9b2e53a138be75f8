"""Model cards from recorded lineage and metrics, as JSON and HTML, and the `models` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conveyor.pipeline.gate import gate_version
from conveyor.registry.approvals import approve, request_approval
from conveyor.registry.cards import build_model_card, write_model_card_html
from conveyor.training.service import train_model


def test_card_describes_data_evaluation_gate_and_governance(ws, spec, as_actor, trained):
    gate_version(ws, spec, trained.version)
    challenger = train_model(ws, spec).version
    request_approval(ws, "toy", challenger.version, reason="review")
    approve(as_actor("reviewer"), "toy", challenger.version, reason="ok")
    gate_version(ws, spec, challenger.version, promote_if_passed=False)
    card = build_model_card(ws, "toy", challenger.version, spec=spec)
    json.dumps(card, allow_nan=False)
    assert card["purpose"] == {
        "project": "toy",
        "task": "binary",
        "label": "late",
        "classes": [0, 1],
        "positive_class": 1,
        "timestamp": "ts",
        "entities": ["flight_id"],
        "features": [c["name"] for c in challenger.signature["inputs"]],
    }
    data = card["training_data"]
    stored = ws.stores.datasets.list_dataset_versions("toy")
    assert [d["seq"] for d in data["datasets"]] == challenger.lineage["dataset_seqs"]
    assert data["total_rows"] == sum(v.row_count for v in stored) == 4 * 1500
    assert data["time_range"] == [stored[0].min_time.isoformat(), stored[-1].max_time.isoformat()]
    assert all(d["validation"]["passed"] for d in data["datasets"])
    assert card["evaluation"]["test"] == challenger.metrics["test"]
    assert card["evaluation"]["baseline_test"] == challenger.metrics["baseline_test"]
    gate = card["gate"]
    assert gate["champion"]["version"] == trained.version
    assert gate["champion"]["test"] == trained.metrics["test"]
    assert gate["decision"]["metric"] == "roc_auc" and not gate["promoted"]
    importance = card["feature_importance"]
    assert set(importance) == set(card["purpose"]["features"])
    assert max(importance, key=importance.get) in {"hour", "distance"}
    assert card["approval"]["decided_by"] == "reviewer"
    assert [e["action"] for e in card["audit"]] == ["register", "request_approval", "approve"]
    assert {"lightgbm", "numpy"} <= set(card["lineage"]["packages"])
    assert card["lineage"]["run_id"] == challenger.run_id
    assert card["signature"] == challenger.signature


def test_card_html_shows_metrics_importance_and_the_json(ws, spec, trained, tmp_path):
    card = build_model_card(ws, "toy", trained.version, spec=spec)
    path = write_model_card_html(card, tmp_path / "cards" / "v1.html")
    html = path.read_text()
    assert "Model card: toy v1" in html and "<svg" in html
    assert "Feature importance" in html and "Training data" in html
    assert "No approval was requested" in html
    assert trained.artifact in html


@pytest.mark.slow
def test_models_commands_approve_release_and_write_a_card(tmp_path, spec, trained):
    project, home = tmp_path / "p", tmp_path / "ws"
    project.mkdir()
    registry = spec.registry.model_copy(update={"require_approval": True})
    (project / "conveyor.yaml").write_text(spec.model_copy(update={"registry": registry}).to_yaml())
    base = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}

    def cli(*args: str, actor: str = "alice", code: int = 0) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "conveyor.cli.main", "--home", str(home), *args],
            cwd=project,
            env={**base, "CONVEYOR_ACTOR": actor},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == code, (proc.stdout, proc.stderr)
        return proc

    blocked = cli("promote", "1", "--reason", "ship", code=3)
    assert "requires an approval" in blocked.stderr and "request-approval 1" in blocked.stderr
    cli("models", "request-approval", "1", "--reason", "ready")
    cli("models", "approve", "1", "--reason", "reviewed", actor="bob")
    cli("promote", "1", "--reason", "ship")
    listing = json.loads(cli("--json", "models", "list").stdout)
    assert [(r["version"], r["aliases"], r["approval"]) for r in listing] == [
        (1, ["production"], "approved")
    ]
    card = json.loads(cli("--json", "models", "card", "1", "--html", "card.html").stdout)
    assert card["approval"]["decided_by"] == "bob" and (project / "card.html").is_file()
    assert [e["action"] for e in card["audit"]][-1] == "promote"
