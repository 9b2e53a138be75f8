"""Offline predictions: one key-value contract over SQLite, PostgreSQL and Redis; builds."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conveyor.core.errors import ConfigError, SchemaError
from conveyor.core.signature import encode_frame
from conveyor.serving.offline import (
    OfflineEntry,
    OfflineStore,
    build_offline,
    key_text,
    open_offline_store,
)
from conveyor.serving.postprocess import PostProcessor
from conveyor.spec import PostprocessSpec


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway redis-server on a free 127.0.0.1 port (no persistence)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("redis-server did not start")
        time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OfflineStore]:
    namespace = f"proj_{tmp_path.name[-12:]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'offline.db'}"
    elif request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
    else:
        url = request.getfixturevalue("redis_url")
    opened = open_offline_store(url, namespace=namespace)
    try:
        yield opened
    finally:
        opened.close()


def entry(key: str, score: float, version: int = 1, at: float = 1000.0) -> OfflineEntry:
    return OfflineEntry(key, {"score": score, "label": int(score >= 0.5)}, version, at)


def test_put_then_get_round_trips_and_replaces(store):
    store.put_many([entry("a", 0.1), entry("b", 0.9)])
    store.put_many([entry("b", 0.7, version=2, at=2000.0)])
    found = store.get_many(["a", "b", "missing"])
    assert set(found) == {"a", "b"}
    assert found["a"].output == {"score": 0.1, "label": 0}
    assert (found["b"].model_version, found["b"].computed_at) == (2, 2000.0)
    assert found["b"].output["score"] == 0.7
    assert store.count() == 2


def test_many_keys_in_one_call(store):
    store.put_many([entry(str(i), i / 2000) for i in range(1200)])
    found = store.get_many([str(i) for i in range(0, 1300, 7)])
    assert len(found) == len(range(0, 1200, 7))
    assert store.count() == 1200


def test_namespaces_do_not_see_each_other(store, tmp_path):
    store.put_many([entry("a", 0.2)])
    assert store.get_many(["a"])  # same namespace sees it
    other = open_offline_store(f"sqlite:///{tmp_path / 'other.db'}", namespace="other")
    assert other.get_many(["a"]) == {}
    other.close()


def test_build_scores_every_entity_last_row_wins_with_post(tmp_path, predictor, signature):
    rng = np.random.default_rng(1)
    n = 600
    frame = pd.DataFrame(
        {
            "flight_id": np.r_[np.arange(500), np.arange(100)],  # 100 keys seen twice
            "distance": rng.uniform(100, 3000, n),
            "hour": rng.integers(0, 24, n).astype(float),
            "carrier": rng.choice(["AA", "DL", "UA"], n),
            "weekend": rng.random(n) < 0.3,
        }
    )
    spec = PostprocessSpec.model_validate(
        {"steps": [{"kind": "filter", "when": [{"field": "carrier", "op": "eq", "value": "AA"}]}]}
    )
    store = open_offline_store(f"sqlite:///{tmp_path / 'o.db'}", namespace="toy")
    result = build_offline(predictor, frame, store, key="flight_id", version=3, chunk_rows=128,
                           postprocessor=PostProcessor(spec))  # fmt: skip
    assert result["rows"] == 600 and result["keys"] == 500
    scores = predictor.predict_encoded(encode_frame(frame, signature))
    found = store.get_many([key_text(k) for k in range(500)])
    for i in (0, 99, 100, 499):
        row = 500 + i if i < 100 else i  # the later row of a repeated key wins
        e = found[str(i)]
        assert e.model_version == 3
        assert e.output["score"] == pytest.approx(scores[row])
        assert e.output["post"]["withheld"] == (frame["carrier"].iloc[row] == "AA")
    store.close()


def test_build_needs_the_key_column(tmp_path, predictor):
    store = open_offline_store(f"sqlite:///{tmp_path / 'o.db'}", namespace="toy")
    frame = pd.DataFrame({"distance": [1.0], "hour": [1.0], "carrier": ["AA"], "weekend": [0]})
    with pytest.raises(SchemaError, match="key column 'flight_id'"):
        build_offline(predictor, frame, store, key="flight_id", version=1)


def test_keys_are_canonical_and_urls_checked():
    assert key_text(7) == key_text(7.0) == key_text("7") == "7"
    assert key_text(np.int64(3)) == "3" and key_text("a b") == "a b"
    with pytest.raises(ConfigError, match="allowed are sqlite"):
        open_offline_store("mongodb://x", namespace="p")
