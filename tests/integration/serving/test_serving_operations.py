"""Operations of the online server under a real uvicorn: standard clients, hostile bodies,
load shedding, graceful shutdown, micro-batching, several models, canary and shadow."""

from __future__ import annotations

import collections
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.serving.predlog import read_predictions

ROW = {"distance": 2200.0, "carrier": "UA"}


def metric(text: str, prefix: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


def test_tritonclient_speaks_v2_to_the_server(server):
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("delays") and not client.is_model_ready("nope")
    meta = client.get_model_metadata("delays")
    assert meta["versions"] == ["1"]
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {
        "distance": "FP64",
        "carrier": "BYTES",
    }
    distance = triton.InferInput("distance", [3], "FP64")
    distance.set_data_from_numpy(np.array([2200.0, 300.0, 1200.0]), binary_data=False)
    carrier = triton.InferInput("carrier", [3], "BYTES")
    carrier.set_data_from_numpy(np.array(["UA", "AA", "ZZ"], dtype=object), binary_data=False)
    outputs = [triton.InferRequestedOutput(n, binary_data=False) for n in ("score", "label")]
    result = client.infer("delays", [distance, carrier], outputs=outputs, request_id="t-1")
    scores = result.as_numpy("score")
    assert result.get_response()["id"] == "t-1"
    assert result.get_response()["model_version"] == "1"
    v1 = httpx.post(
        f"{server.url}/v1/predict",
        json={"columns": {"distance": [2200.0, 300.0, 1200.0], "carrier": ["UA", "AA", "ZZ"]}},
    ).json()["predictions"]
    np.testing.assert_allclose(scores, [p["score"] for p in v1])
    assert result.as_numpy("label").tolist() == [p["label"] for p in v1]
    with pytest.raises(triton.InferenceServerException):
        client.infer("nope", [distance, carrier])
    client.close()


HOSTILE = [
    (b"", 400),
    (b"{", 400),
    (b"\xff\xfe", 400),
    (b"[" * 1500 + b"]" * 1500, 400),
    (b"123", 422),
    (b'"text"', 422),
    (b"null", 422),
    (b"[]", 422),
    (b'{"records": {}}', 422),
    (b'{"records": [1, "a", null]}', 422),
    (b'{"records": [{}]}', 422),
    (b'{"columns": []}', 422),
    (b'{"columns": {"distance": [1, 2], "carrier": ["AA"]}}', 422),
    (b'{"distance": NaN, "carrier": "AA"}', 400),
    (b'{"distance": 1e999, "carrier": "AA"}', 400),
    (b'{"distance": "far", "carrier": "AA"}', 422),
    (b'{"distance": true, "carrier": "AA"}', 422),
    (b'{"distance": [1], "carrier": {"a": 1}}', 422),
    (b'{"distance": 1.0, "carrier": "AA", "colour": "red"}', 422),
    (b'{"distance": 1.0, "carrier": "AA", "request_id": 7}', 422),
    (b'{"distance": 1.0, "carrier": "AA", "request_id": "' + b"x" * 500 + b'"}', 422),
    (b'{"records": [' + b",".join([b'{"distance": 1.0}'] * 20) + b"]}", 422),
    (b"x" * 5000, 413),
]


def test_hostile_bodies_get_4xx_with_field_errors_and_never_a_500(start):
    srv = start({"max_rows": 10, "max_body_bytes": 4096})
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            for body, status in HOSTILE:
                response = client.post("/v1/predict", content=body)
                assert response.status_code == status, (body[:60], response.text[:300])
                assert response.json()["error"]
            bad = client.post("/v1/predict", json={"distance": "far", "carrier": 3.5}).json()
            assert {e["field"] for e in bad["errors"]} == {"distance", "carrier"}
            for path in ("/v2/models/delays/infer", "/v1/models/delays/predict"):
                for body, _ in HOSTILE:
                    assert client.post(path, content=body).status_code < 500, body[:60]
            assert client.post("/v1/predict", json=ROW).status_code == 200
            text = client.get("/metrics").text
        assert (
            metric(
                text,
                'conveyor_serving_requests_total{model="delays",endpoint="v1_predict",status="422"',
            )
            >= 10
        )
        assert (
            metric(
                text,
                'conveyor_serving_rejected_fields_total{project="it",model="delays",field="distance"',
            )
            >= 3
        )
        assert metric(text, "conveyor_serving_errors_total") == 0
        assert srv.process.poll() is None
    finally:
        srv.stop()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "records": st.lists(
                st.dictionaries(
                    st.sampled_from(["distance", "carrier", "request_id", "x"]),
                    json_values,
                    max_size=4,
                ),
                max_size=4,
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "columns": st.dictionaries(
                st.sampled_from(["distance", "carrier"]), json_values, max_size=2
            )
        }
    ),
)


def test_fuzzed_bodies_never_get_a_5xx(server):
    client = httpx.Client(base_url=server.url, timeout=10)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(bodies)
    def post(body: object) -> None:
        try:
            content = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:  # integers past 64 bits: send them as text
            content = repr(body).encode()
        for path in ("/v1/predict", "/v2/models/delays/infer"):
            response = client.post(path, content=content)
            assert response.status_code < 500, (content[:200], response.text[:300])

    try:
        post()
        assert metric(client.get("/metrics").text, "conveyor_serving_errors_total") == 0
    finally:
        client.close()
    assert server.process.poll() is None


def test_past_the_queue_limit_requests_get_503_with_retry_after(start):
    srv = start({"slow_s": 0.3, "max_queue": 2})
    two_rows = {"records": [ROW, ROW]}  # more rows than inline_rows: scored in a thread
    try:
        with ThreadPoolExecutor(12) as pool:
            responses = list(
                pool.map(
                    lambda _: httpx.post(f"{srv.url}/v1/predict", json=two_rows, timeout=30),
                    range(12),
                )
            )
        statuses = collections.Counter(r.status_code for r in responses)
        assert statuses[200] >= 2 and statuses[503] >= 1 and set(statuses) <= {200, 503}, statuses
        shed = [r for r in responses if r.status_code == 503]
        assert all(r.headers["retry-after"] == "1" for r in shed)
        text = httpx.get(f"{srv.url}/metrics").text
        assert metric(text, "conveyor_serving_shed_total") == statuses[503]
    finally:
        srv.stop()


def test_sigterm_drains_requests_in_flight_and_flushes_the_log(start):
    srv = start({"slow_s": 2.0})
    answers: list[httpx.Response] = []

    def ask(i: int) -> None:
        body = {"records": [{**ROW, "request_id": f"drain-{i}-{j}"} for j in range(2)]}
        answers.append(httpx.post(f"{srv.url}/v1/predict", json=body, timeout=30))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while metric(httpx.get(f"{srv.url}/metrics").text, "conveyor_serving_in_flight ") < 4:
        assert time.monotonic() < deadline, "the requests never got in flight"
        time.sleep(0.05)
    srv.process.send_signal(signal.SIGTERM)  # all four are inside the slow model now
    for thread in threads:
        thread.join(timeout=30)
    # uvicorn re-raises the captured SIGTERM once it has shut down cleanly
    assert srv.process.wait(timeout=30) in (0, -signal.SIGTERM)
    assert [r.status_code for r in answers] == [200] * 4
    logged = set(read_predictions(srv.log_dir)["request_id"])
    assert logged == {f"drain-{i}-{j}" for i in range(4) for j in range(2)}
    assert not list(srv.log_dir.glob("seg-*.jsonl")) or all(
        p.read_bytes().endswith(b"\n") for p in srv.log_dir.glob("seg-*.jsonl")
    )


def test_concurrent_requests_are_coalesced_into_micro_batches(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:

        def ask(i: int) -> int:
            return client.post("/v1/predict", json={**ROW, "distance": float(i)}).status_code

        with ThreadPoolExecutor(16) as pool:
            assert set(pool.map(ask, range(300))) == {200}
    text = httpx.get(f"{server.url}/metrics").text
    calls = metric(text, "conveyor_serving_batch_requests_count")
    coalesced = metric(text, "conveyor_serving_batch_requests_sum")
    assert coalesced >= 300 and calls < coalesced  # some predict call served several requests
    assert metric(text, 'conveyor_serving_batch_rows_bucket{le="1"}') < calls


def test_two_models_are_served_side_by_side(start):
    srv = start({"second": True})
    try:
        with httpx.Client(base_url=srv.url) as client:
            listed = client.get("/v1/models").json()
            assert listed["default"] == "delays"
            assert [m["name"] for m in listed["models"]] == ["delays", "other"]
            default = client.post("/v1/predict", json=ROW).json()
            named = client.post("/v1/models/delays/predict", json=ROW).json()
            other = client.post("/v1/models/other/predict", json=ROW)
            assert other.status_code == 200 and other.headers["x-model-version"] == "1"
            assert default["predictions"][0]["score"] == named["predictions"][0]["score"]
            assert client.post("/v1/models/nope/predict", json=ROW).status_code == 404
            assert client.get("/v2/models/other/ready").json() == {"name": "other", "ready": True}
            assert client.get("/v1/models/other").json()["project"] == "it2"
            text = client.get("/metrics").text
        assert 'conveyor_serving_rows_total{project="it2",model="other"} 1' in text
        assert 'conveyor_serving_rows_total{project="it",model="delays"} 2' in text
        assert len(read_predictions(srv.log_dir / "other")) == 1
    finally:
        srv.stop()


def test_canary_splits_by_sticky_key_and_shadow_is_logged_never_returned(start):
    srv = start({"canary": {"percent": 30, "sticky_key": "customer"}, "shadow": True})
    srv.set_version(2, "canary")
    srv.set_version(3, "shadow")
    shadow_dir = srv.log_dir.with_name(srv.log_dir.name + ".shadow")
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            deadline = time.monotonic() + 30
            while (
                client.get("/v1/model").json()["canary"]["version"] != 2
                or client.get("/v1/model").json()["shadow"]["version"] != 3
            ):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            seen: dict[str, set[str]] = collections.defaultdict(set)
            answered: dict[str, str] = {}
            for i in range(600):
                customer = f"c{i % 200}"
                response = client.post("/v1/predict", json={**ROW, "customer": customer})
                assert response.status_code == 200
                version = response.headers["x-model-version"]
                seen[customer].add(version)
                answered[response.json()["predictions"][0]["request_id"]] = version
            text = client.get("/metrics").text
        assert all(len(v) == 1 for v in seen.values())  # sticky: one customer, one version
        share = sum(v == {"2"} for v in seen.values()) / len(seen)
        assert 0.15 < share < 0.45, share
        assert set(answered.values()) == {"1", "2"}  # the shadow version never answers
        assert 'routed_total{project="it",model="delays",role="canary"}' in text
        deadline = time.monotonic() + 10
        while len(read_predictions(shadow_dir)) < len(answered):
            assert time.monotonic() < deadline, "shadow predictions missing"
            time.sleep(0.1)
        shadow = read_predictions(shadow_dir)
        assert set(shadow["model_version"]) == {3}
        assert set(shadow["request_id"]) == set(answered)
        served = read_predictions(srv.log_dir)
        assert (
            dict(zip(served["request_id"], served["model_version"].astype(str), strict=True))
            == answered
        )
    finally:
        srv.stop()


def test_moving_production_and_canary_under_load_fails_no_request(start):
    srv = start({"canary": {"percent": 50}, "shadow": True})
    stop = threading.Event()
    results: list[tuple[int, str | None]] = []

    def hammer() -> None:
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            while not stop.is_set():
                r = client.post("/v1/predict", json={"records": [ROW, ROW]})
                results.append((r.status_code, r.headers.get("x-model-version")))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for production, canary in ((1, 2), (2, 3), (3, 4), (4, None)):
            srv.set_version(production)
            srv.set_version(canary, "canary")
            srv.set_version(canary or production, "shadow")
            time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        srv.stop()
    assert len(results) > 100
    assert {status for status, _ in results} == {200}
    assert {"1", "2", "3", "4"} <= {v for _, v in results}
