"""The prediction server refuses strangers and bad bodies: real server, real HTTP on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from conveyor.monitoring.scrape import sample_value
from conveyor.serving.feedback import FeedbackLog

Server = Any  # the conftest.Server of the `start` fixture


ROW = {"distance": 800.0, "carrier": "AA", "customer": "c1"}
TOKEN = "t0ken-for-writes"
ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def guarded(start_shared: Callable[..., Server]) -> Server:
    return start_shared(
        {
            "token": TOKEN,
            "cors_origins": [ORIGIN],
            "allowed_hosts": ["ml.example.com"],
            "max_string_chars": 64,
            "body_timeout_s": 0.5,
            "scoring": True,
        }
    )


def test_unknown_host_headers_are_refused_like_the_tracking_server(guarded: Server) -> None:
    with httpx.Client(base_url=guarded.url, timeout=10) as client:
        assert client.get("/v1/ready").status_code == 200
        assert client.get("/v1/ready", headers={"host": "ml.example.com"}).status_code == 200
        for path in ("/v1/ready", "/v1/model", "/metrics"):
            assert client.get(path, headers={"host": "rebound.attacker.test"}).status_code == 400
        rebound = client.post(
            "/v1/predict", json={"records": [ROW]}, headers={"host": "rebound.attacker.test"}
        )
        assert rebound.status_code == 400


def test_form_and_text_bodies_get_415(guarded: Server) -> None:
    with httpx.Client(base_url=guarded.url, timeout=10) as client:
        form = client.post("/v1/predict", data={"distance": "800"})
        assert form.status_code == 415 and "application/json" in form.json()["error"]
        text = client.post(
            "/v1/predict",
            content=b'{"records": [{"distance": 800.0}]}',
            headers={"content-type": "text/plain"},
        )
        assert text.status_code == 415
        ok = client.post("/v1/predict", json={"records": [ROW]})
        assert ok.status_code == 200
        page = client.get("/metrics").text
        refused = sample_value(page, "conveyor_serving_requests_total", status="415")
        assert refused == 2
        assert (
            sample_value(
                page, "conveyor_serving_requests_total", endpoint="v1_predict", status="415"
            )
            == 2
        )


def test_cross_site_writes_are_refused_and_cors_names_only_allowed_origins(
    guarded: Server,
) -> None:
    with httpx.Client(base_url=guarded.url, timeout=10) as client:
        evil = client.post(
            "/v1/predict", json={"records": [ROW]}, headers={"origin": "https://evil.test"}
        )
        assert evil.status_code == 403 and "evil.test" in evil.json()["error"]
        fetched = client.post(
            "/v1/predict", json={"records": [ROW]}, headers={"sec-fetch-site": "cross-site"}
        )
        assert fetched.status_code == 403
        host = urlsplit(guarded.url).netloc
        same = client.post(
            "/v1/predict", json={"records": [ROW]}, headers={"origin": f"http://{host}"}
        )
        assert same.status_code == 200
        allowed = client.post("/v1/predict", json={"records": [ROW]}, headers={"origin": ORIGIN})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == ORIGIN
        assert "access-control-allow-credentials" not in allowed.headers
        preflight = {"origin": ORIGIN, "access-control-request-method": "POST"}
        ok = client.options("/v1/predict", headers=preflight)
        assert ok.status_code == 204 and ok.headers["access-control-allow-origin"] == ORIGIN
        assert "access-control-allow-credentials" not in ok.headers
        other = client.options("/v1/predict", headers={**preflight, "origin": "https://evil.test"})
        assert other.status_code == 403 and "access-control-allow-origin" not in other.headers
        read = client.get("/v1/model", headers={"origin": "https://evil.test"})
        assert read.status_code == 200 and "access-control-allow-origin" not in read.headers


def test_with_a_token_every_write_but_predictions_needs_it(guarded: Server) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    lookup = {"records": [{"customer": "c9", "distance": 900.0, "carrier": "DL"}]}
    with httpx.Client(base_url=guarded.url, timeout=10) as client:
        assert client.post("/v1/predict", json={"records": [ROW]}).status_code == 200
        assert client.post("/v1/lookup", json=lookup).status_code == 401
        wrong = client.post("/v1/lookup", json=lookup, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "wrong" in wrong.json()["error"]
        assert client.post("/v1/lookup", json=lookup, headers=auth).status_code == 200
        feedback = {"request_id": "r1", "label": 1}
        assert client.post("/v1/feedback", json=feedback).status_code == 401
        assert client.post("/v1/feedback", json=feedback, headers=auth).status_code == 200
        for path in ("/v1/ready", "/v1/model", "/v1/models", "/v1/metrics/live", "/metrics"):
            assert client.get(path).status_code == 200, path


def test_duplicate_keys_are_refused_naming_the_key(guarded: Server) -> None:
    bodies = [
        b'{"records": [{"distance": 800.0, "carrier": "AA", "distance": 5.0}]}',
        b'{"records": [{"distance" : 800.0, "carrier": "AA", "distance" : 5.0}]}',
        b'{"records": [{"distance": 800.0}], "records": [{"distance": 1.0}]}',
    ]
    with httpx.Client(base_url=guarded.url, timeout=10) as client:
        for body in bodies:
            resp = client.post(
                "/v1/predict", content=body, headers={"content-type": "application/json"}
            )
            assert resp.status_code == 422, body
            assert resp.json()["errors"][0]["field"] in ("distance", "records")
        auth = {"authorization": f"Bearer {TOKEN}"}
        twice = b'{"request_id": "r1", "label": 1, "label": 0}'
        fb = client.post(
            "/v1/feedback", content=twice, headers={**auth, "content-type": "application/json"}
        )
        assert fb.status_code == 422 and "'label'" in fb.json()["error"]
        # a key spelled twice only inside a string value is no duplicate
        quoted = {"records": [{**ROW, "customer": 'say "distance": twice'}]}
        assert client.post("/v1/predict", json=quoted).status_code == 200


def test_long_strings_are_refused_naming_the_field_and_never_logged(guarded: Server) -> None:
    with httpx.Client(base_url=guarded.url, timeout=10) as client:
        resp = client.post("/v1/predict", json={"records": [ROW, {**ROW, "carrier": "x" * 65}]})
        assert resp.status_code == 422
        error = resp.json()["errors"][0]
        assert error["row"] == 1 and error["field"] == "carrier" and "64" in error["error"]
        logged = client.post("/v1/predict", json={"records": [{**ROW, "customer": "y" * 65}]})
        assert logged.status_code == 422
        assert logged.json()["errors"][0]["field"] == "customer"
        auth = {"authorization": f"Bearer {TOKEN}"}
        fb = client.post("/v1/feedback", json={"request_id": "r" * 65, "label": 1}, headers=auth)
        assert fb.status_code == 422 and fb.json()["errors"][0]["field"] == "request_id"
        key = client.post("/v1/predict", json={"records": [{**ROW, "k" * 100: 1}]})
        assert key.status_code == 422
        assert (
            client.post("/v1/predict", json={"records": [{**ROW, "carrier": "x" * 64}]}).status_code
            == 200
        )
    logged = b"".join(p.read_bytes() for p in guarded.log_dir.rglob("*") if p.is_file())
    assert b"x" * 65 not in logged and b"y" * 65 not in logged


def test_a_stalled_body_gets_408(guarded: Server) -> None:
    host, port = urlsplit(guarded.url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(
            b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"records": '
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    with httpx.Client(base_url=guarded.url, timeout=10) as client:  # and the server stays up
        assert client.post("/v1/predict", json={"records": [ROW]}).status_code == 200


def test_feedback_labels_are_checked_against_the_task(guarded: Server) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=guarded.url, timeout=10) as client:
        rid = client.post("/v1/predict", json={"records": [ROW]}).json()["predictions"][0][
            "request_id"
        ]
        for bad in ("banana", 2, 0.5, None):
            resp = client.post("/v1/feedback", json={"request_id": rid, "label": bad}, headers=auth)
            assert resp.status_code == 422, bad
            assert "item 0: 'label'" in resp.json()["error"]
        # one class however it is written (as it comes out of a CSV file or JSON)
        for good_label in (True, "1", 1.0, 0):
            good = client.post(
                "/v1/feedback", json={"request_id": rid, "label": good_label}, headers=auth
            )
            assert good.status_code == 200 and good.json()["accepted"] == 1, good_label


def test_a_stored_bad_label_cannot_break_live_metrics(guarded: Server) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=guarded.url, timeout=10) as client:
        rows = [{**ROW, "distance": 100.0 * (i + 1)} for i in range(20)]
        ids = [
            p["request_id"]
            for p in client.post("/v1/predict", json={"records": rows}).json()["predictions"]
        ]
        items = [{"request_id": r, "label": i % 2} for i, r in enumerate(ids[:-1])]
        assert client.post("/v1/feedback", json={"items": items}, headers=auth).status_code == 200
        # a label stored before labels were checked (no task): it must not break the metric
        FeedbackLog(guarded.log_dir.with_name(guarded.log_dir.name + ".feedback")).record(
            [{"request_id": ids[-1], "label": "banana"}]
        )
        live = client.get("/v1/metrics/live").json()
    version = live["versions"]["1"]
    assert "error" not in version and version["n"] >= 19.0 and "roc_auc" in version
    assert version["invalid_labels"] == 1.0 and live["invalid_labels"] == 1


def test_unknown_request_ids_are_answered_alike_every_time_and_in_every_window(
    guarded: Server,
) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=guarded.url, timeout=10) as client:
        for duplicates in (0, 1):
            resp = client.post(
                "/v1/feedback", json={"request_id": "never-served", "label": 1}, headers=auth
            )
            assert resp.status_code == 200
            assert resp.json() == {
                "accepted": 1,
                "duplicates": duplicates,
                "unknown_ids": ["never-served"],
            }
        whole = client.get("/v1/metrics/live").json()["unknown_ids"]
        since = client.get("/v1/metrics/live", params={"since": "2000-01-01T00:00:00Z"})
        assert "never-served" in whole and since.json()["unknown_ids"] == whole
