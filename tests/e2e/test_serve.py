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

from conveyor.config import Settings
from conveyor.demo.server import free_port
from conveyor.monitoring.scrape import sample_value
from conveyor.serving.predlog import read_predictions
from conveyor.workspace import Workspace

from .conftest import make_batch, release_two_and_truncate_the_second, start_serve


@pytest.fixture
def served(cli, project_dir):
    for w in range(3):
        make_batch(w).to_csv(project_dir / f"w{w}.csv", index=False)
    cli("ingest", "w0.csv", "w1.csv")
    cli("train")
    cli("promote", "1", "--reason", "first release")
    proc, url = start_serve(project_dir, ready_s=60)
    client = httpx.Client(base_url=url, timeout=10)
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


def test_the_projects_timestamp_is_accepted_logged_and_never_scored(served, project_dir):
    row = {**ROW, "ts": "2024-01-08T09:30:00+00:00"}
    resp = served.post("/v1/predict", json={"records": [row]})
    assert resp.status_code == 200, resp.text
    plain = served.post("/v1/predict", json={"records": [ROW]}).json()["predictions"][0]
    assert resp.json()["predictions"][0]["score"] == plain["score"]  # not a model input
    rid = resp.json()["predictions"][0]["request_id"]
    logged = read_predictions(project_dir / ".conveyor" / "projects" / "toy" / "predictions")
    mine = logged[logged["request_id"] == rid]
    assert mine["in_ts"].tolist() == ["2024-01-08T09:30:00+00:00"]


def _serve(project_dir, *args, env_extra=None):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(env_extra or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli.main", "serve", "--port", str(port), *args],
        cwd=project_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return proc, f"http://127.0.0.1:{port}"


def _wait_ready(proc, url):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            resp = httpx.get(f"{url}/v1/ready", timeout=2)
            if resp.status_code == 200:
                return resp
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"server not ready: {proc.stdout.read().decode()[-2000:]}")


def test_a_reachable_host_needs_a_token_or_the_insecure_flag(project_dir):
    proc, _ = _serve(project_dir, "--host", "0.0.0.0")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0 and b"0.0.0.0" in out and b"CONVEYOR_TOKEN" in out
    proc, url = _serve(project_dir, "--host", "0.0.0.0", "--insecure")
    try:
        deadline = time.monotonic() + 120
        while True:  # no model yet: it answers liveness, on a loopback Host
            try:
                if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert b"warning" in out and b"without a token" in out


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_production_version_that_cannot_load_falls_back_to_the_last_good_one(cli, project_dir):
    spec = yaml.safe_load((project_dir / "conveyor.yaml").read_text())
    spec["ignore"] = ["note"]
    (project_dir / "conveyor.yaml").write_text(yaml.safe_dump(spec))
    home = release_two_and_truncate_the_second(cli, project_dir, note="free text")
    ws = Workspace.open(Settings(home=home))
    proc, url = _serve(project_dir)
    try:
        ready = _wait_ready(proc, url).json()
        assert ready["status"] == "degraded" and ready["model_version"] == 1
        assert ready["fallback"]["toy"]["wanted"] == 2 and ready["fallback"]["toy"]["serving"] == 1
        row = {**ROW, "ts": "2024-01-08T09:30:00+00:00", "note": "kept in the log"}
        resp = httpx.post(f"{url}/v1/predict", json={"records": [row]}, timeout=10)
        assert resp.status_code == 200 and resp.headers["x-model-version"] == "1"
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        wanted = sample_value(
            metrics, "conveyor_serving_model_fallback", model="toy", role="production"
        )
        assert wanted == 2
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    kinds = {a.kind: a for a in ws.stores.monitor.list_alerts("toy")}
    assert {"model_refused", "serving_fallback"} <= set(kinds)
    assert kinds["serving_fallback"].evidence["serving"] == 1
    logged = read_predictions(home / "projects" / "toy" / "predictions")
    assert logged["in_note"].tolist() == ["kept in the log"]
