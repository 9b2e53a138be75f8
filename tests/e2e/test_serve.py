"""`conveyor serve` as users run it: real process, real HTTP on 127.0.0.1, hot swap on promote."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from conveyor.demo.server import free_port
from conveyor.serving.predlog import read_predictions

from .conftest import make_batch


@pytest.fixture
def served(cli, project_dir):
    for w in range(3):
        make_batch(w).to_csv(project_dir / f"w{w}.csv", index=False)
    cli("ingest", "w0.csv", "w1.csv")
    cli("train")
    cli("promote", "1", "--reason", "first release")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli.main", "serve", "--port", str(port)],
        cwd=project_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if client.get("/v1/ready").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"server not ready: {proc.stdout.read().decode()[-2000:]}")
    yield client
    client.close()
    proc.terminate()
    proc.wait(timeout=10)


ROW = {"hour": 9.5, "distance": 800.0, "carrier": "B6"}


def test_wrong_types_get_422_with_one_error_per_field(served):
    bad = {"records": [{"hour": "nine", "distance": None, "carrier": ["B6"], "colour": "red"}]}
    resp = served.post("/v1/predict", json=bad)
    assert resp.status_code == 422
    fields = {e["field"] for e in resp.json()["errors"]}
    assert {"hour", "distance", "carrier", "colour"} <= fields
    assert served.post("/v1/predict", content=b"{not json").status_code == 400


def test_predictions_name_their_version_and_swap_after_promote(served, cli):
    resp = served.post("/v1/predict", json={"records": [ROW, {**ROW, "carrier": "ZZ"}]})
    assert resp.status_code == 200 and resp.headers["x-model-version"] == "1"
    preds = resp.json()["predictions"]
    assert len(preds) == 2 and all(0 <= p["score"] <= 1 for p in preds)
    cli("ingest", "w2.csv")
    cli("train")
    cli("promote", "2", "--reason", "second release")
    deadline = time.monotonic() + 15
    versions = set()
    while time.monotonic() < deadline and "2" not in versions:
        r = served.post("/v1/predict", json={"records": [ROW]})
        assert r.status_code == 200
        versions.add(r.headers["x-model-version"])
    assert "2" in versions


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_projects_side_by_side_on_two_workers(cli, project_dir):
    for w in range(2):
        make_batch(w).to_csv(project_dir / f"w{w}.csv", index=False)
    spec = yaml.safe_load((project_dir / "conveyor.yaml").read_text())
    spec["project"] = "toy2"
    spec["training"]["params"]["num_boost_round"] = 20
    (project_dir / "toy2.yaml").write_text(yaml.safe_dump(spec))
    for path in ("conveyor.yaml", "toy2.yaml"):
        cli("--spec", path, "ingest", "w0.csv", "w1.csv")
        cli("--spec", path, "train")
        cli("--spec", path, "promote", "1", "--reason", "first release")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    args = ["serve", "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli.main", *args, "--project", "conveyor.yaml",
         "--project", "toy2.yaml"],
        cwd=project_dir,
        env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # two workers import the stack and load models
        while True:
            try:
                if httpx.get(f"{url}/v1/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server not ready"
            time.sleep(0.2)
        pids, answered = set(), {"toy": [], "toy2": []}
        for i in range(200):
            with httpx.Client(base_url=url, timeout=10) as client:  # a new connection each
                pids.add(client.get("/v1/health").json()["pid"])
                name = "toy" if i % 2 else "toy2"
                r = client.post(f"/v1/models/{name}/predict", json={"records": [ROW]})
                assert r.status_code == 200 and r.headers["x-model-version"] == "1"
                answered[name].append(r.json()["predictions"][0]["request_id"])
            if len(pids) == 2 and i >= 20:
                break
        assert len(pids) == 2  # both workers answer
        assert httpx.get(f"{url}/v1/models").json()["default"] == "toy"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    home = project_dir / ".conveyor" / "projects"
    for name, ids in answered.items():
        logged = read_predictions(home / name / "predictions")
        assert sorted(logged["request_id"]) == sorted(ids)  # each exactly once, both workers
