"""The serving app under a real uvicorn: hot swaps drop nothing, and the log survives kill -9."""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
from pathlib import Path

import httpx

from conveyor.monitoring.scrape import sample_value
from conveyor.serving.predlog import PredictionLogWriter, compact_predictions, read_predictions

RECORD = {"records": [{"distance": 2200.0, "carrier": "UA"}, {"distance": 300.0, "carrier": "AA"}]}


def hammer(url: str, stop: threading.Event, results: list[tuple[int, str, list[str]]]) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop.is_set():
            response = client.post("/v1/predict", json=RECORD)
            ids = (
                [p["request_id"] for p in response.json()["predictions"]]
                if response.status_code == 200
                else []
            )
            results.append((response.status_code, response.headers.get("x-model-version"), ids))


def wait_for_version(results: list[tuple[int, str, list[str]]], version: str) -> None:
    deadline = time.monotonic() + 30
    while not any(v == version for _, v, _ in results[-50:]):
        assert time.monotonic() < deadline, f"version {version} never served"
        time.sleep(0.05)


def test_hot_swaps_under_load_fail_no_request(server):
    stop = threading.Event()
    per_client: list[list[tuple[int, str, list[str]]]] = [[] for _ in range(3)]
    threads = [
        threading.Thread(target=hammer, args=(server.url, stop, r), daemon=True) for r in per_client
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        server.set_version(2)
        wait_for_version(per_client[0], "2")
        time.sleep(0.3)
        server.set_version(3)
        wait_for_version(per_client[0], "3")
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    results = [r for client in per_client for r in client]
    assert len(results) > 100
    assert {status for status, _, _ in results} == {200}
    assert {version for _, version, _ in results} == {"1", "2", "3"}
    for client in per_client:  # each client sees versions only move forward
        versions = [int(v) for _, v, _ in client]
        assert versions == sorted(versions)
    metrics = httpx.get(f"{server.url}/metrics").text
    assert sample_value(metrics, "conveyor_serving_model_swaps_total", model="delays") == 3
    answered = {rid for _, _, ids in results for rid in ids}
    logged = read_predictions(server.log_dir)
    assert set(logged["request_id"]) == answered
    assert sorted(logged["model_version"].unique().tolist()) == [1, 2, 3]


def test_every_answered_prediction_survives_kill_9(server):
    stop = threading.Event()
    results: list[tuple[int, str, list[str]]] = []
    thread = threading.Thread(target=hammer_until_dead, args=(server.url, stop, results))
    thread.start()
    time.sleep(1.0)
    server.kill()
    stop.set()
    thread.join(timeout=30)
    answered = {rid for status, _, ids in results if status == 200 for rid in ids}
    assert len(answered) > 20
    logged = read_predictions(server.log_dir)
    assert answered <= set(logged["request_id"])
    moved = compact_predictions(server.log_dir)  # the dead worker's segment is closed
    assert moved == len(logged)
    assert not list(server.log_dir.glob("seg-*.jsonl"))
    assert set(read_predictions(server.log_dir)["request_id"]) == set(logged["request_id"])


def hammer_until_dead(url: str, stop: threading.Event, results: list) -> None:
    with contextlib.suppress(httpx.TransportError):  # the server is killed mid-request
        hammer(url, stop, results)


def write_from_process(directory: str, worker: int) -> None:
    writer = PredictionLogWriter(Path(directory))
    for i in range(200):
        writer.write(
            [
                {
                    "request_id": f"w{worker}-{i}-{j}",
                    "ts": "2024-05-01T12:00:00+00:00",
                    "model_version": 1,
                    "inputs": {"worker": worker},
                    "score": 0.5,
                    "label": 1,
                    "latency_ms": 0.1,
                }
                for j in range(3)
            ]
        )


def test_several_processes_write_one_log_at_once(tmp_path):
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=write_from_process, args=(str(tmp_path), w)) for w in range(3)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert len(list(tmp_path.glob("seg-*.jsonl"))) == 3
    logged = read_predictions(tmp_path)
    assert len(logged) == 1800 and logged["request_id"].is_unique
