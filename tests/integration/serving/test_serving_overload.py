"""A real server under a slow prediction log and under overload: liveness keeps answering,
overload is shed with 503 and Retry-After, nothing acknowledged is lost, SIGTERM exits 0,
and /metrics adds up every worker.

The slow disk is the log writer's documented fault-injection delay (``write_delay_s``): the
writer thread sleeps that long before each group write, as a disk taking that long would.
Time bounds here are only clients' timeouts, far above what a healthy server needs.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.monitoring.scrape import sample_value
from conveyor.serving.predlog import read_predictions

SCRIPT = Path(__file__).with_name("serve_perf_app.py")
SRC = Path(__file__).resolve().parents[3] / "src"
ROW = {"distance": 2200.0, "carrier": "UA"}
PROBE_TIMEOUT_S = 2.0  # a liveness probe's timeout, as an orchestrator would set it


@dataclass
class PerfServer:
    url: str
    log_dir: Path
    process: subprocess.Popen[bytes]

    def predict(self, rows: list[dict[str, Any]], timeout: float = 60.0) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/predict", json={"records": rows}, timeout=timeout)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(timeout=10)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., PerfServer]]:
    started: list[PerfServer] = []

    def run(**options: Any) -> PerfServer:
        port, log_dir = free_port(), tmp_path / f"predictions-{len(started)}"
        paths = [p for p in (os.environ.get("PYTHONPATH"), str(SRC)) if p]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        args = [sys.executable, str(SCRIPT), str(port), str(log_dir), json.dumps(options)]
        srv = PerfServer(f"http://127.0.0.1:{port}", log_dir, subprocess.Popen(args, env=env))
        started.append(srv)
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{srv.url}/v1/ready", timeout=2).status_code == 200:
                    return srv
            except httpx.TransportError:
                pass
            assert srv.process.poll() is None and time.monotonic() < deadline, "not ready"
            time.sleep(0.1)

    try:
        yield run
    finally:
        for srv in started:
            if srv.process.poll() is None:
                srv.process.kill()
                srv.process.wait(timeout=10)


def probe_liveness(url: str) -> None:
    """Both liveness routes answer 200 within a probe's timeout (else httpx raises)."""
    for path in ("/v1/health", "/v2/health/live"):
        assert httpx.get(f"{url}{path}", timeout=PROBE_TIMEOUT_S).status_code == 200


def in_background(
    srv: PerfServer, bodies: list[list[dict[str, Any]]]
) -> tuple[list[httpx.Response], list[threading.Thread]]:
    answers: list[httpx.Response] = []

    def ask(rows: list[dict[str, Any]]) -> None:
        answers.append(srv.predict(rows))

    threads = [threading.Thread(target=ask, args=(rows,)) for rows in bodies]
    for thread in threads:
        thread.start()
    return answers, threads


def acknowledged(answers: list[httpx.Response]) -> set[str]:
    return {
        p["request_id"] for r in answers if r.status_code == 200 for p in r.json()["predictions"]
    }


@pytest.mark.slow
def test_liveness_answers_while_the_log_disk_is_slow(start):
    srv = start(log_delay_s=2.0)  # the disk of the report: 2 s per write
    answers, threads = in_background(srv, [[{**ROW, "request_id": f"slow-{i}"}] for i in range(8)])
    time.sleep(0.5)  # the requests are waiting for the log now
    for _ in range(4):
        probe_liveness(srv.url)
        assert httpx.get(f"{srv.url}/metrics", timeout=PROBE_TIMEOUT_S).status_code == 200
        time.sleep(0.3)
    for thread in threads:
        thread.join(timeout=60)
    assert [r.status_code for r in answers] == [200] * 8
    assert srv.stop() == 0
    assert set(read_predictions(srv.log_dir)["request_id"]) == acknowledged(answers)


@pytest.mark.slow
def test_a_full_log_buffer_sheds_with_retry_after_and_loses_nothing_acknowledged(start):
    srv = start(log_delay_s=1.0, log_buffer_bytes=1500)  # about six requests' lines
    bodies = [[{**ROW, "request_id": f"buf-{i}"}] for i in range(40)]
    answers, threads = in_background(srv, bodies)
    time.sleep(0.3)
    probe_liveness(srv.url)
    for thread in threads:
        thread.join(timeout=60)
    statuses = collections.Counter(r.status_code for r in answers)
    assert set(statuses) == {200, 503}, statuses
    assert all(r.headers.get("retry-after") for r in answers if r.status_code == 503)
    page = httpx.get(f"{srv.url}/metrics", timeout=PROBE_TIMEOUT_S).text
    rejected = sample_value(page, "conveyor_predlog_rejected_writes_total", role="production")
    shed = sample_value(page, "conveyor_serving_shed_total")  # refused before scoring
    assert rejected >= 1 and rejected + shed == statuses[503]
    assert srv.stop() == 0
    assert acknowledged(answers) <= set(read_predictions(srv.log_dir)["request_id"])


@pytest.mark.slow
def test_overload_past_the_queue_time_budget_is_shed_and_liveness_still_answers(start):
    srv = start(model_s=0.25, max_wait_ms=1000)  # one model call at a time, 250 ms each
    two_rows = [ROW, ROW]
    for _ in range(10):  # the server measures how fast it clears requests
        assert srv.predict(two_rows).status_code == 200
    with ThreadPoolExecutor(40) as pool:
        futures = [pool.submit(srv.predict, two_rows) for _ in range(40)]
        time.sleep(0.5)
        probe_liveness(srv.url)  # answered beside a full queue
        answers = [f.result() for f in futures]
    statuses = collections.Counter(r.status_code for r in answers)
    assert statuses[200] >= 1 and statuses[503] >= 10 and set(statuses) <= {200, 503}, statuses
    shed = [r for r in answers if r.status_code == 503]
    assert all(r.headers["retry-after"] == "1" for r in shed)
    assert all("queue limit" in r.json()["error"] for r in shed)
    page = httpx.get(f"{srv.url}/metrics", timeout=PROBE_TIMEOUT_S).text
    assert sample_value(page, "conveyor_serving_shed_total") == statuses[503]
    assert srv.stop() == 0


def test_sigterm_after_a_clean_drain_exits_0_and_logs_every_answer(start):
    srv = start(log_delay_s=1.0)
    answers, threads = in_background(srv, [[{**ROW, "request_id": f"drain-{i}"}] for i in range(4)])
    time.sleep(0.5)  # in flight: waiting for the slow log
    srv.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(timeout=60)
    assert srv.process.wait(timeout=60) == 0
    assert [r.status_code for r in answers] == [200] * 4
    assert set(read_predictions(srv.log_dir)["request_id"]) == {f"drain-{i}" for i in range(4)}


@pytest.mark.slow
def test_two_workers_metrics_add_up_on_every_scrape(start):
    srv = start(workers=2)
    pids: set[int] = set()
    n = 0
    deadline = time.monotonic() + 120
    while len(pids) < 2 or n < 30:
        assert time.monotonic() < deadline, f"only workers {pids} answered"
        with httpx.Client(base_url=srv.url, timeout=10) as client:  # a new connection each
            pids.add(client.get("/v1/health").json()["pid"])
            assert client.post("/v1/predict", json={"records": [ROW]}).status_code == 200
            n += 1
    scraped = set()
    for _ in range(12):
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            page = client.get("/metrics").text
        requests = "conveyor_serving_requests_total"
        scraped.add(sample_value(page, requests, endpoint="v1_predict", status="200"))
        assert sample_value(page, "conveyor_serving_rows_total", model="delays") == n
    assert scraped == {n}
    assert srv.stop() == 0
