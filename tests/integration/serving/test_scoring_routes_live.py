"""Feedback and offline lookup on a real server over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from conveyor.serving.offline import OfflineEntry, open_offline_store
from conveyor.serving.predlog import read_predictions

APP = Path(__file__).with_name("scoring_app.py")
SRC = Path(__file__).resolve().parents[3] / "src"
TOKEN = "s3cret-token"


@dataclass
class Served:
    url: str
    base: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(APP.parent)])}
    proc = subprocess.Popen(
        [sys.executable, str(APP), str(port), str(tmp_path), TOKEN, "3600", *extra], env=env
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/v1/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the scoring app did not become ready")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp_path = tmp_path_factory.mktemp("scoring")
    now = time.time()
    store = open_offline_store(f"sqlite:///{tmp_path / 'offline.db'}", namespace="it")
    store.put_many(
        [
            OfflineEntry("1", {"score": 0.9, "label": 1}, 1, now),
            OfflineEntry("2", {"score": 0.1, "label": 0}, 1, now),
            OfflineEntry("3", {"score": 0.5, "label": 1}, 1, now - 7200),  # stale
        ]
    )
    store.close()
    proc, url = _start(tmp_path)
    try:
        yield Served(url, tmp_path)
    finally:
        _stop(proc)


def test_lookup_answers_fresh_entries_and_reports_stale_and_missing(served):
    with httpx.Client(base_url=served.url) as client:
        hit = client.get("/v1/lookup/1")
        assert hit.status_code == 200
        assert hit.json()["source"] == "offline" and hit.json()["score"] == 0.9
        stale = client.get("/v1/lookup/3")
        assert stale.status_code == 404 and stale.json()["status"] == "stale"
        miss = client.get("/v1/lookup/42")
        assert miss.status_code == 404 and miss.json()["status"] == "miss"


def test_lookup_falls_back_to_live_scoring_and_logs_it(served):
    body = {
        "keys": [2, "42"],
        "records": [
            {"flight_id": 1, "distance": 2500.0, "carrier": "UA"},  # fresh: from the table
            {"flight_id": 3, "distance": 2500.0, "carrier": "UA"},  # stale: scored live
            {"flight_id": 7, "distance": 300.0, "carrier": "AA"},  # missing: live, withheld
        ],
    }
    with httpx.Client(base_url=served.url) as client:
        resp = client.post("/v1/lookup", content=orjson.dumps(body))
        assert resp.status_code == 200, resp.text
        results = resp.json()["results"]
        assert [r["source"] for r in results] == ["offline", "miss", "offline", "live", "live"]
        live3, live7 = results[3], results[4]
        assert live3["key"] == "3" and live3["model_version"] == 1 and 0 <= live3["score"] <= 1
        assert live3["post"]["withheld"] is False
        assert live7["post"] == {"score": None, "label": None, "withheld": True,
                                 "reason": "AA is not scored"}  # fmt: skip
        bad = client.post("/v1/lookup", content=orjson.dumps({"records": [{"distance": 1.0}]}))
        assert bad.status_code == 422 and "flight_id" in bad.json()["error"]
        stats = client.get("/v1/lookup-stats").json()
        assert stats["live"] >= 2 and stats["hits"] >= 2
    logged = read_predictions(served.base / "predictions")
    assert {live3["request_id"], live7["request_id"]} <= set(logged["request_id"])
    post = logged.set_index("request_id").loc[live7["request_id"], "post"]
    assert orjson.loads(post)["withheld"] is True


def test_feedback_needs_the_token_is_idempotent_and_reports_unknown_ids(served):
    with httpx.Client(base_url=served.url) as client:
        rows = [{"distance": 500.0 + 100 * i, "carrier": "UA"} for i in range(20)]
        answer = client.post("/v1/predict", json={"records": rows}).json()
        ids = [p["request_id"] for p in answer["predictions"]]
        items = [{"request_id": rid, "label": i % 2} for i, rid in enumerate(ids)]
        items.append({"request_id": "never-predicted", "label": 1})
        assert client.post("/v1/feedback", json={"items": items}).status_code == 401
        wrong = {"authorization": "Bearer nope"}
        assert client.post("/v1/feedback", json=items, headers=wrong).status_code == 401
        auth = {"authorization": f"Bearer {TOKEN}"}
        first = client.post("/v1/feedback", json={"items": items}, headers=auth)
        assert first.status_code == 200, first.text
        assert first.json() == {"accepted": 21, "duplicates": 0, "unknown_ids": ["never-predicted"]}
        again = client.post("/v1/feedback", json={"items": items}, headers=auth).json()
        assert again["duplicates"] == 21 and again["unknown_ids"] == ["never-predicted"]
        invalid = client.post("/v1/feedback", json=[{"label": 1}], headers=auth)
        assert invalid.status_code == 422 and "item 0" in invalid.json()["error"]
        live = client.get("/v1/metrics/live").json()
        assert live["labelled"] == 20 and live["unknown_ids"] == ["never-predicted"]
        assert live["versions"]["1"]["n"] == 20.0
        assert 0.0 <= live["versions"]["1"]["accuracy"] <= 1.0


def test_a_failing_log_answers_503_and_never_acknowledges_an_unlogged_prediction(tmp_path):
    proc, url = _start(tmp_path, str(48 * 1024))  # every log segment is capped at 48 KiB
    acknowledged: set[str] = set()
    statuses: list[int] = []
    retry_after: set[str | None] = set()
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            for i in range(300):
                rows = [{"distance": 100.0 + i, "carrier": "UA"}] * 3
                resp = client.post("/v1/predict", json={"records": rows})
                statuses.append(resp.status_code)
                if resp.status_code == 503:
                    retry_after.add(resp.headers.get("retry-after"))
                if resp.status_code == 200:
                    acknowledged |= {p["request_id"] for p in resp.json()["predictions"]}
            metrics = client.get("/metrics").text
    finally:
        _stop(proc)
    assert statuses.count(503) >= 2 and statuses.count(200) > 200
    assert set(statuses) <= {200, 503}
    assert None not in retry_after  # a client is told to come back, not that the server is gone
    log_dir = tmp_path / "predictions"
    for segment in log_dir.glob("seg-*.jsonl"):  # no torn record anywhere
        data = segment.read_bytes()
        assert not data or data.endswith(b"\n")
        for line in data.splitlines():
            orjson.loads(line)
    logged = set(read_predictions(log_dir)["request_id"])
    assert acknowledged <= logged
    failed = next(
        line for line in metrics.splitlines()
        if line.startswith('conveyor_predlog_failed_writes_total{model="delays"}')
    )  # fmt: skip
    assert int(failed.split()[-1]) >= statuses.count(503) > 0


def test_kill_9_under_load_keeps_every_acknowledged_prediction_and_tears_no_record(tmp_path):
    proc, url = _start(tmp_path)
    acknowledged: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=url, timeout=5) as client:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    resp = client.post(
                        "/v1/predict", json={"records": [{"distance": 10.0 * i, "carrier": "DL"}]}
                    )
                except httpx.TransportError:
                    return
                if resp.status_code == 200:
                    acknowledged.update(p["request_id"] for p in resp.json()["predictions"])

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert len(acknowledged) > 20
    log_dir = tmp_path / "predictions"
    for segment in log_dir.glob("seg-*.jsonl"):
        data = segment.read_bytes()
        assert not data or data.endswith(b"\n")
        for line in data.splitlines():
            orjson.loads(line)
    assert acknowledged <= set(read_predictions(log_dir)["request_id"])
