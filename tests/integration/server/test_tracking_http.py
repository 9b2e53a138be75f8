"""The fluent tracking API and run search over a real `conveyor server`."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import httpx
import pytest

import conveyor as cv
from conveyor.config import Settings
from conveyor.core.entities import RunStatus
from conveyor.core.errors import ConfigError, ConflictError, InvalidInputError, NotFoundError
from conveyor.store.http import HttpClient, HttpRunStore
from conveyor.tracking import fluent
from conveyor.tracking.search import search_runs
from conveyor.workspace import Workspace

from .conftest import TOKEN, Server


class CountingTransport(httpx.HTTPTransport):
    """The real transport, counting requests by path suffix."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(f"{request.method} {request.url.path}")
        return super().handle_request(request)


def test_fluent_run_over_http_batches_points_and_reads_back(
    server: Server, remote_ws: Workspace
) -> None:
    transport = CountingTransport()
    runs = HttpRunStore(HttpClient(server.url, token=TOKEN, transport=transport))
    ws = dataclasses.replace(remote_ws, stores=dataclasses.replace(remote_ws.stores, runs=runs))
    fluent.set_workspace(ws)

    run = cv.start_run("http-run", project="remote")
    cv.log_params({"lr": 0.05, "depth": 6})
    for step in range(5000):
        cv.log_metric("loss", 1.0 / (step + 1), step=step)
    cv.log_metric("diverged", math.nan)
    cv.set_tag("team", "ml")
    ended = cv.end_run()

    assert ended is not None and ended.status is RunStatus.FINISHED
    batches = [p for p in transport.paths if p.endswith("/batch")]
    assert 5 <= len(batches) <= 12, transport.paths  # 1,000 points per flush, not 5,000 calls
    doc = httpx.get(f"{server.api}/runs/{run.id}").json()
    assert doc["status"] == "finished"
    assert doc["params"] == {"lr": "0.05", "depth": "6"}
    assert doc["tags"]["team"] == "ml"
    assert doc["metrics"]["loss"] == pytest.approx(1 / 5000)
    assert doc["metrics"]["diverged"] == "NaN"
    history = httpx.get(f"{server.api}/runs/{run.id}/metric-history", params={"key": "loss"}).json()
    assert [p["step"] for p in history] == list(range(5000))
    assert history[10]["value"] == pytest.approx(1 / 11)
    stored = remote_ws.stores.runs.get_run(run.id)
    assert math.isnan(stored.metrics["diverged"]) and stored.project == "remote"


def test_write_once_param_conflict_travels_as_conflict_error(remote_ws: Workspace) -> None:
    run = remote_ws.stores.runs.create_run("remote", "e", "r")
    remote_ws.stores.runs.log_params(run.id, {"lr": "0.1"})
    with pytest.raises(ConflictError, match="lr"):
        remote_ws.stores.runs.log_batch(run.id, params={"lr": "0.2"})
    with pytest.raises(NotFoundError, match="nope"):
        remote_ws.stores.runs.get_run("nope")  # type: ignore[arg-type]


def test_search_over_http_with_text_filter_tree_and_pages(
    server: Server, remote_ws: Workspace
) -> None:
    project = "search-http"
    for i in range(5):
        with cv.start_run(f"r{i}", project=project):
            cv.log_param("model", "lgbm" if i % 2 else "xgb")
            cv.log_metric("auc", 0.6 + i * 0.08)

    page = search_runs(
        remote_ws,
        "metrics.auc > 0.65 and params.model = 'lgbm'",
        project=project,
        order_by=["metrics.auc DESC"],
    )
    assert [r.name for r in page.runs] == ["r3", "r1"]

    first = search_runs(remote_ws, "", project=project, order_by=["metrics.auc"], limit=2)
    assert [r.name for r in first.runs] == ["r0", "r1"] and first.next_page_token
    second = search_runs(
        remote_ws,
        "",
        project=project,
        order_by=["metrics.auc"],
        limit=2,
        page_token=first.next_page_token,
    )
    assert [r.name for r in second.runs] == ["r2", "r3"]

    body = {"project": project, "filter": "metrics.auc >= 0.9", "order_by": ["name"]}
    doc = httpx.post(f"{server.api}/runs/search", json=body).json()
    assert [r["name"] for r in doc["runs"]] == ["r4"]
    with pytest.raises(InvalidInputError, match="position"):
        search_runs(remote_ws, "metrics.auc >", project=project)


def test_bad_input_is_422_naming_the_field(server: Server, auth: dict[str, str]) -> None:
    run = httpx.post(
        f"{server.api}/runs", json={"project": "p", "name": "bad"}, headers=auth
    ).json()
    body = {
        "metrics": [{"key": "loss", "value": "abc", "step": 0, "timestamp": "2024-05-01T00:00Z"}]
    }
    response = httpx.post(f"{server.api}/runs/{run['id']}/batch", json=body, headers=auth)
    assert response.status_code == 422
    doc = response.json()
    assert doc["error"] == "InvalidInputError"
    assert "'metrics[0].value'" in doc["message"] and "'abc'" in doc["message"]
    naive = {"metrics": [{"key": "x", "value": 1, "timestamp": "2024-05-01T00:00:00"}]}
    response = httpx.post(f"{server.api}/runs/{run['id']}/batch", json=naive, headers=auth)
    assert response.status_code == 422 and "metrics[0].timestamp" in response.json()["message"]
    response = httpx.post(f"{server.api}/runs/search", json={"limit": 0})
    assert response.status_code == 422 and "'limit'" in response.json()["message"]


def test_writes_need_the_token_and_reads_do_not(server: Server, tmp_path: Path) -> None:
    body = {"project": "p", "name": "no-token"}
    assert httpx.post(f"{server.api}/runs", json=body).status_code == 401
    wrong = httpx.post(f"{server.api}/runs", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert wrong.json()["error"] == "Unauthorized"
    assert httpx.get(f"{server.api}/runs", params={"project": "p"}).status_code == 200

    ws = Workspace.open(Settings(home=tmp_path / "c", tracking_uri=server.url, token="nope"))
    with pytest.raises(ConfigError, match="CONVEYOR_TOKEN"):
        ws.stores.runs.create_run("p", "e", "wrong-token")


def test_unknown_host_header_is_refused(server: Server) -> None:
    response = httpx.get(f"{server.api}/health", headers={"Host": "attacker.example"})
    assert response.status_code == 400
    assert httpx.get(f"{server.api}/health", headers={"Host": "localhost"}).status_code == 200


def test_openapi_documents_the_routes(server: Server) -> None:
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    for path in (
        "/api/v1/runs",
        "/api/v1/runs/search",
        "/api/v1/runs/{run_id}/batch",
        "/api/v1/models/{model}/aliases/{alias}",
        "/api/v1/models/{model}/versions/{version}/approval/approve",
    ):
        assert path in paths
