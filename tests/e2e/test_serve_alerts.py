"""`conveyor serve` sends its own alerts (a refused model, a fallback) to the project's sinks."""

from __future__ import annotations

import sys
import time

import httpx
import orjson
import pytest
import yaml

from conveyor.config import Settings
from conveyor.workspace import Workspace

from .conftest import release_two_and_truncate_the_second
from .test_serve import ROW, _serve, _wait_ready


def _sent(path):
    if not path.exists():
        return {}
    return {p["kind"]: p for p in map(orjson.loads, path.read_bytes().splitlines())}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_fallback_is_sent_to_the_sinks_past_a_failing_one(cli, project_dir, tmp_path):
    sink = tmp_path / "sent" / "alerts.jsonl"
    spec = yaml.safe_load((project_dir / "conveyor.yaml").read_text())
    spec["alerts"] = {
        "sinks": [
            {"kind": "command", "argv": [sys.executable, "-c", "raise SystemExit(4)"]},
            {"kind": "file", "path": str(sink)},
        ]
    }
    (project_dir / "conveyor.yaml").write_text(yaml.safe_dump(spec))
    home = release_two_and_truncate_the_second(cli, project_dir)
    ws = Workspace.open(Settings(home=home))
    proc, url = _serve(project_dir)
    try:
        assert _wait_ready(proc, url).json()["model_version"] == 1
        deadline = time.monotonic() + 120
        while not {"model_refused", "serving_fallback"} <= set(_sent(sink)):
            assert time.monotonic() < deadline, _sent(sink)
            time.sleep(0.2)
        resp = httpx.post(f"{url}/v1/predict", json={"records": [ROW]}, timeout=10)
        assert resp.status_code == 200 and resp.headers["x-model-version"] == "1"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    sent = _sent(sink)
    stored = {a.kind: a for a in ws.stores.monitor.list_alerts("toy")}
    fallback = sent["serving_fallback"]
    assert fallback["id"] == stored["serving_fallback"].id and fallback["severity"] == "critical"
    assert fallback["evidence"]["wanted"] == 2 and fallback["evidence"]["serving"] == 1
    assert sent["model_refused"]["evidence"]["model"] == "toy"
    assert b"not delivered to command:" in out and b"exited with 4" in out
