"""Per-call latency of the tracking REST API on loopback: is there a delayed-ACK floor?

A client that writes a request's headers and body in two ``send`` calls without
``TCP_NODELAY`` waits for the server's delayed ACK (~40 ms on Linux) before the second write
leaves: MLflow's REST tracking shows a ~44 ms floor per call for this reason. This script
starts ``conveyor server`` on 127.0.0.1 in a subprocess and times, per call (median, p99):

* ``get_run`` (a GET, no body) and ``log_batch`` with one point (a POST with a body) through
  :class:`conveyor.store.http.HttpRunStore` as shipped (keep-alive, ``TCP_NODELAY``);
* the same ``log_batch`` through an httpx client without ``TCP_NODELAY``, to show the floor
  the option avoids (when the stack exhibits it);
* the physical limit: ``GET /api/v1/health`` over one raw keep-alive socket, one ``send``.

Run: ``python -m benchmarks.rest_latency [--calls 300]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from conveyor.core.entities import MetricPoint
from conveyor.store.http import HttpClient, HttpRunStore


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _time_calls(call: Callable[[], object], n: int) -> dict[str, float]:
    for _ in range(20):
        call()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 3),
        "p99_ms": round(samples[int(0.99 * (len(samples) - 1))], 3),
    }


def _raw_health(port: int) -> Callable[[], object]:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request = b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

    def call() -> bytes:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"}"):
            data += sock.recv(65536)
        return data

    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args(argv)
    port = _free_port()
    home = tempfile.mkdtemp(prefix="conveyor-rest-")
    env = {**os.environ, "CONVEYOR_HOME": home}
    env.pop("CONVEYOR_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "conveyor.cli.main", "server", "--port", str(port)]
    server = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        store = HttpRunStore(HttpClient(url))
        run = store.create_run("bench", "latency", "calls")
        point = [MetricPoint("loss", 0.5, 0, datetime.now(UTC))]
        plain = HttpRunStore(HttpClient(url, transport=httpx.HTTPTransport()))
        results = {
            "get_run (nodelay client)": _time_calls(lambda: store.get_run(run.id), args.calls),
            "log_batch 1 point (nodelay client)": _time_calls(
                lambda: store.log_batch(run.id, metrics=point), args.calls
            ),
            "log_batch 1 point (plain httpx)": _time_calls(
                lambda: plain.log_batch(run.id, metrics=point), args.calls
            ),
            "raw socket GET /health (limit)": _time_calls(_raw_health(port), args.calls),
        }
    finally:
        server.terminate()
        server.wait(timeout=10)
    for name, figures in results.items():
        print(json.dumps({"call": name, **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
