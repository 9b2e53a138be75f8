"""A retention run that deletes something sends its alert to the project's sinks."""

from __future__ import annotations

import sys

import orjson

from conveyor.data.service import ingest_batch
from conveyor.pipeline.retention import enforce_retention
from conveyor.spec import parse_spec
from conveyor.workspace import Workspace

from ..conftest import SPEC, make_batch


def test_the_retention_alert_reaches_the_sinks_even_past_a_failing_one(ws: Workspace) -> None:
    spec = parse_spec(
        {
            **SPEC,
            "retention": {"keep_batches": 1},
            "alerts": {
                "sinks": [
                    {"kind": "command", "argv": [sys.executable, "-c", "raise SystemExit(2)"]},
                    {"kind": "file", "path": "alerts.jsonl"},
                ]
            },
        }
    )
    batches = [ingest_batch(ws, spec, make_batch(w, rows=300)).version for w in range(3)]
    enforce_retention(ws, spec, dry_run=True)
    assert not (ws.home / "alerts.jsonl").exists()  # a dry run deletes and sends nothing
    report = enforce_retention(ws, spec)
    assert {i.name for i in report.deleted} == {batches[0].id, batches[1].id}
    (stored,) = ws.stores.monitor.list_alerts(spec.project, kind="retention")
    (payload,) = [orjson.loads(x) for x in (ws.home / "alerts.jsonl").read_bytes().splitlines()]
    assert payload["id"] == stored.id and payload["kind"] == "retention"
    assert payload["report"] == stored.report == "conveyor --json alerts list --kind retention"
    assert {i["name"] for i in payload["evidence"]["items"]} == {b.id for b in batches[:2]}
