"""`conveyor agent` as users run it: a real process ingesting a landing folder, stopped by
SIGTERM, and rolling back a bad release that a real `conveyor serve` process then stops serving."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.integration.pipeline.traffic import serve_and_label

from conveyor.config import Settings
from conveyor.core.clock import utcnow
from conveyor.core.entities import VersionStatus
from conveyor.demo.server import free_port
from conveyor.pipeline.agent import Agent, AgentConfig
from conveyor.pipeline.cycle import lease_name
from conveyor.registry.service import PRODUCTION, find_alias_version, promote
from conveyor.serving.scoring import record_project_feedback
from conveyor.spec import load_spec
from conveyor.training.service import train_model
from conveyor.workspace import Workspace

from .conftest import make_batch


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}


def _agent(project_dir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli.main", "--json", "agent", "--interval", "0.3", *args],
        cwd=project_dir,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def _until(check, timeout_s: float = 120.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def _workspace(project_dir: Path) -> Workspace:
    return Workspace.open(Settings(home=project_dir / ".conveyor"))


@pytest.mark.slow
def test_the_agent_ingests_landed_batches_and_stops_cleanly_on_sigterm(project_dir: Path) -> None:
    landing = project_dir / "landing"
    landing.mkdir()
    proc = _agent(project_dir, "--landing", "landing", "--monitor-every", "0")
    try:
        for w in range(3):
            make_batch(w).to_parquet(landing / f".w{w}.tmp")
            (landing / f".w{w}.tmp").rename(landing / f"week-{w:02d}.parquet")  # atomic drop
        processed = landing / "processed"
        _until(
            lambda: processed.is_dir() and len(list(processed.iterdir())) == 3,
            what="the three landed batches to be processed",
        )
        ws = _workspace(project_dir)
        _until(
            lambda: any("gate" in r.steps for r in ws.stores.pipeline.list_pipeline_runs("toy")),
            what="a gated cycle",
        )
    finally:
        code, out, err = _stop(proc)
    assert code == 0, err[-3000:]
    ticks = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    cycles = [t["cycle"] for t in ticks if t["cycle"]]
    assert cycles[0]["trigger"] == "bootstrap" or cycles[0]["status"] == "skipped"
    assert any(c["trigger"] == "bootstrap" for c in cycles)
    assert {p.name for p in processed.iterdir()} == {f"week-{w:02d}.parquet" for w in range(3)}
    assert (
        ws.stores.pipeline.find_lease(lease_name(load_spec(project_dir / "conveyor.yaml"))) is None
    )
    assert len(ws.stores.datasets.list_dataset_versions("toy")) == 3


@pytest.fixture
def served(project_dir: Path, cli) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    for w in range(3):
        make_batch(w).to_csv(project_dir / f"w{w}.csv", index=False)
    cli("ingest", "w0.csv", "w1.csv", "w2.csv")
    cli("train")
    cli("promote", "1", "--reason", "first release")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli.main", "serve", "--port", str(port)],
        cwd=project_dir,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def ready() -> bool:
        try:
            return client.get("/v1/ready").status_code == 200
        except httpx.TransportError:
            return False

    try:
        _until(ready, 60, "the server")
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=20)


def _version(client: httpx.Client) -> str:
    resp = client.post(
        "/v1/predict", json={"records": [{"hour": 9.0, "distance": 500.0, "carrier": "AA"}]}
    )
    assert resp.status_code == 200, resp.text
    return resp.headers["x-model-version"]


@pytest.mark.slow
def test_the_agent_rolls_back_a_bad_release_and_the_server_follows(
    project_dir: Path, served: httpx.Client
) -> None:
    spec = load_spec(project_dir / "conveyor.yaml")
    ws = _workspace(project_dir)
    rng = np.random.default_rng(3)
    bad = train_model(
        ws, spec, label_noise=lambda f: f.assign(late=rng.permutation(f["late"].to_numpy()))
    ).version.version
    promote(ws, "toy", bad, reason="forced for the test")
    _until(lambda: _version(served) == str(bad), 60, f"the server to serve v{bad}")
    batch = make_batch(9, rows=1200)
    records = batch[["flight_id", "hour", "distance", "carrier"]].rename(
        columns={"flight_id": "request_id"}
    )
    payload = records.to_dict(orient="records")
    for i in range(0, len(payload), 400):
        resp = served.post("/v1/predict", json={"records": payload[i : i + 400]})
        assert resp.status_code == 200 and resp.headers["x-model-version"] == str(bad)
    record_project_feedback(
        ws,
        spec,
        [{"request_id": r["flight_id"], "label": int(r["late"])} for _, r in batch.iterrows()],
    )
    proc = _agent(project_dir, "--monitor-every", "0")
    try:
        _until(lambda: _version(served) == "1", 120, "the server to answer with v1 again")
    finally:
        code, out, err = _stop(proc)
    assert code == 0, err[-3000:]
    assert find_alias_version(ws, "toy", PRODUCTION) == 1
    assert ws.stores.models.get_model_version("toy", bad).status is VersionStatus.BLOCKED
    assert ws.stores.monitor.list_alerts("toy", kind="rollback")
    ticks = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert "rolled_back" in [t["watch"] for t in ticks]
    failures = [
        served.post("/v1/predict", json={"records": payload[:50]}).status_code for _ in range(5)
    ]
    assert failures == [200] * 5


def test_the_agent_refuses_a_lease_shorter_than_a_second(project_dir: Path) -> None:
    proc = _agent(project_dir, "--lease-s", "0.5", "--max-ticks", "1")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out, err)
    assert "--lease-s" in err and "[1.0, inf)" in err and "0.5" in err


@pytest.mark.slow
def test_a_second_agent_takes_the_lease_only_after_the_dead_holders_expires(
    project_dir: Path,
) -> None:
    lease_s = 5.0
    landing = project_dir / "landing"
    landing.mkdir()
    for w in range(3):
        make_batch(w).to_parquet(landing / f".w{w}.tmp")
        (landing / f".w{w}.tmp").rename(landing / f"week-{w:02d}.parquet")
    spec = load_spec(project_dir / "conveyor.yaml")
    name = lease_name(spec)
    ws = _workspace(project_dir)
    first = _agent(
        project_dir, "--landing", "landing", "--monitor-every", "0", "--lease-s", str(lease_s)
    )

    def frozen_holding_the_lease() -> bool:
        """Freeze the first agent; keep it frozen only if its cycle holds the lease."""
        first.send_signal(signal.SIGSTOP)
        lease = ws.stores.pipeline.find_lease(name)
        if lease is not None and f":{first.pid}:" in lease.holder:
            return True
        first.send_signal(signal.SIGCONT)
        time.sleep(0.05)
        return False

    try:
        _until(frozen_holding_the_lease, what="the first agent's cycle to hold the lease")
    finally:
        first.kill()  # dies holding the lease, as a crashed host would
        first.communicate(timeout=60)
    killed_at = utcnow()
    dead = ws.stores.pipeline.find_lease(name)
    assert dead is not None and f":{first.pid}:" in dead.holder
    assert dead.expires_at <= killed_at + timedelta(seconds=lease_s)  # --lease-s was used

    second = Agent(
        ws,
        spec,
        AgentConfig(landing=landing, monitor_every_s=None, watch=False, lease_ttl_s=lease_s),
    )
    deadline = time.monotonic() + 120
    while True:
        report = second.tick()
        if utcnow() < dead.expires_at:  # the whole tick ran while the dead holder's lease lived
            assert report.busy and report.cycle is None, report.to_dict()
        elif report.cycle is not None:
            break
        assert time.monotonic() < deadline, "the second agent never took the expired lease"
        time.sleep(0.1)
    assert not report.errors, report.errors
    assert ws.stores.pipeline.find_lease(name) is None  # taken, used and released


@pytest.mark.slow
def test_conveyor_watch_prints_where_production_went_and_never_judges_its_rollback(
    project_dir: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    for w in range(3):
        make_batch(w).to_csv(project_dir / f"w{w}.csv", index=False)
    cli("ingest", "w0.csv", "w1.csv", "w2.csv")
    cli("train")
    cli("promote", "1", "--reason", "first release")
    cli("train")
    cli("promote", "2", "--reason", "second release")
    spec = load_spec(project_dir / "conveyor.yaml")
    ws = _workspace(project_dir)
    rng = np.random.default_rng(4)
    bad = train_model(
        ws, spec, label_noise=lambda f: f.assign(late=rng.permutation(f["late"].to_numpy()))
    ).version.version
    promote(ws, "toy", bad, reason="forced for the test")
    serve_and_label(ws, spec, make_batch(7), bad)

    judged = " ".join(cli("watch").stdout.split())
    assert judged.startswith(f"release v{bad}: rolled_back (1500 of 200 labels needed; ")
    assert "difference interval [-" in judged and judged.endswith("production moved to v2")
    # the restored version now serves traffic on which it looks worse than the blocked release
    batch = make_batch(8)
    serve_and_label(ws, spec, batch, 2, labels=(1 - batch["late"]).tolist())
    again = json.loads(cli("--json", "watch").stdout)
    assert (again["status"], again["version"]) == ("no_release", 2)
    history = json.loads(cli("--json", "history").stdout)
    assert [(m["action"], m["from"], m["to"]) for m in history] == [
        ("promote", None, 1),
        ("promote", 1, 2),
        ("promote", 2, bad),
        ("rollback", bad, 2),
    ]
