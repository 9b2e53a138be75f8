"""Names over REST against a real `conveyor server`: the same rule as the Python API."""

from __future__ import annotations

import unicodedata
import uuid

import httpx
import pytest

from conveyor.core.errors import InvalidInputError
from conveyor.workspace import Workspace

from .conftest import Server

DIGEST = "sha256:" + "b" * 64


def _version(server: Server, auth: dict[str, str], model: str) -> httpx.Response:
    # The registry takes only an artifact the server holds: upload it first (idempotent).
    uploaded = httpx.post(f"{server.api}/artifacts", content=b"model bytes", headers=auth)
    body = {"artifact": uploaded.json()["digest"], "actor": "ci"}
    return httpx.post(f"{server.api}/models/{model}/versions", json=body, headers=auth)


def _versions(server: Server, model: str) -> list[int]:
    docs = httpx.get(f"{server.api}/models/{model}/versions").json()
    return [doc["version"] for doc in docs]


def test_rest_refuses_a_model_differing_only_in_case(server: Server, auth: dict[str, str]) -> None:
    name = f"model{uuid.uuid4().hex[:8]}"
    assert _version(server, auth, name).status_code == 201
    response = _version(server, auth, name.capitalize())
    assert response.status_code == 422
    assert response.json()["error"] == "InvalidInputError"
    assert "differs only in case" in response.json()["message"]
    assert _versions(server, name.capitalize()) == []


def test_rest_makes_nfc_and_nfd_one_model(server: Server, auth: dict[str, str]) -> None:
    suffix = uuid.uuid4().hex[:8]
    nfc = unicodedata.normalize("NFC", f"café{suffix}")
    nfd = unicodedata.normalize("NFD", f"café{suffix}")
    assert _version(server, auth, nfc).json()["version"] == 1
    second = _version(server, auth, nfd).json()
    assert (second["model"], second["version"]) == (nfc, 2)


@pytest.mark.parametrize(
    "name", ["spaced%20", "%20spaced", pytest.param("m" * 10_000, id="10000-chars"), "a%00b"]
)
def test_rest_refuses_a_bad_model_name(server: Server, auth: dict[str, str], name: str) -> None:
    response = _version(server, auth, name)
    assert response.status_code == 422, response.text
    assert "The model name" in response.json()["message"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("project", "p "),
        pytest.param("experiment", "e" * 10_000, id="experiment-10000-chars"),
        ("name", "a/b"),
    ],
)
def test_rest_refuses_a_bad_run_name_naming_the_field(
    server: Server, auth: dict[str, str], field: str, value: str
) -> None:
    body = {"project": "names", "experiment": "e", "name": "r", field: value}
    response = httpx.post(f"{server.api}/runs", json=body, headers=auth)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_rest_refuses_a_project_differing_only_in_case(
    server: Server, auth: dict[str, str]
) -> None:
    project = f"proj{uuid.uuid4().hex[:8]}"
    body = {"project": project, "experiment": "e", "name": "r"}
    assert httpx.post(f"{server.api}/runs", json=body, headers=auth).status_code == 201
    response = httpx.post(
        f"{server.api}/runs", json={**body, "project": project.upper()}, headers=auth
    )
    assert response.status_code == 422
    assert "differs only in case" in response.json()["message"]


@pytest.mark.parametrize("name", ["../../x", "/etc/passwd", "a\x00b", "%2e%2e%2fx", "C:/x"])
def test_rest_refuses_an_unsafe_artifact_name(
    server: Server, auth: dict[str, str], name: str
) -> None:
    body = {"project": "names", "experiment": "e", "name": "r"}
    run = httpx.post(f"{server.api}/runs", json=body, headers=auth).json()
    url = f"{server.api}/runs/{run['id']}/artifacts"
    response = httpx.post(url, json={"name": name, "digest": DIGEST}, headers=auth)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["name"]
    assert httpx.get(f"{server.api}/runs/{run['id']}").json()["artifacts"] == {}


def test_the_http_client_refuses_bad_names_before_sending(remote_ws: Workspace) -> None:
    runs = remote_ws.stores.runs
    with pytest.raises(InvalidInputError, match="The project name"):
        runs.create_run("names ", "e", "r")
    run = runs.create_run("names", "e", "r")
    with pytest.raises(InvalidInputError, match="artifact name"):
        runs.log_artifact(run.id, "../../x", DIGEST)
    with pytest.raises(InvalidInputError, match="The model name"):
        remote_ws.stores.models.create_model_version(
            "a/versions",
            artifact=DIGEST,
            run_id=None,
            signature={},
            lineage={},
            metrics={},
            actor="ci",
        )
    runs.log_artifact(run.id, "plots/roc.png", DIGEST)
    assert runs.get_run(run.id).artifacts == {"plots/roc.png": DIGEST}
