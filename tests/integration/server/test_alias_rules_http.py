"""The registry's rules over REST, on a real `conveyor server`: the same alias vocabulary,
archived/blocked checks, approvals, compare-and-swap, the release check and uploaded artifacts
as on the Python path, whether a raw HTTP client or the Python client speaks to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conveyor.config import Settings
from conveyor.core.entities import VersionStatus
from conveyor.core.errors import BlockedError, GateRejectedError, InvalidInputError
from conveyor.registry.service import promote, set_alias
from conveyor.store.http import close_clients
from conveyor.workspace import Workspace

from .conftest import TOKEN, Server, running_server
from .real_models import real_versions

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _put(srv: Server, model: str, version: int, alias: str = "production", **body: object):
    doc = {"version": version, "expected_revision": None, "actor": "eve", "reason": "r", **body}
    return httpx.put(
        f"{srv.api}/models/{model}/aliases/{alias}", json=doc, headers=AUTH, timeout=60
    )


def _status(srv: Server, model: str, version: int, status: VersionStatus) -> None:
    body = {"status": str(status), "actor": "ops", "reason": "r"}
    url = f"{srv.api}/models/{model}/versions/{version}/status"
    assert httpx.post(url, json=body, headers=AUTH).status_code == 200


def _blob(srv: Server, digest: str) -> Path:
    hex_digest = digest.removeprefix("sha256:")
    return srv.artifacts / "sha256" / hex_digest[:2] / hex_digest[2:]


def test_rest_moves_obey_the_registry_rules(server: Server, remote_ws: Workspace) -> None:
    good, blocked, archived, tampered = real_versions(remote_ws, "rules", 4)
    _status(server, "rules", blocked, VersionStatus.BLOCKED)
    _status(server, "rules", archived, VersionStatus.ARCHIVED)
    digest = httpx.get(f"{server.api}/models/rules/versions/{tampered}").json()["artifact"]
    _blob(server, digest).write_bytes(b'{"format": "tampered"}')

    unknown = _put(server, "rules", good, alias="prodution")
    assert unknown.status_code == 422 and "'candidate'" in unknown.json()["message"]
    response = _put(server, "rules", blocked)
    assert response.status_code == 422 and "blocked" in response.json()["message"]
    response = _put(server, "rules", archived, alias="shadow")
    assert response.status_code == 422 and "archived" in response.json()["message"]
    response = _put(server, "rules", good, require_approval=True)
    assert response.status_code == 423 and "requires an approval" in response.json()["message"]
    response = _put(server, "rules", tampered)
    assert response.status_code == 423, response.text
    assert "release check" in response.json()["message"]
    assert response.json()["evidence"]["passed"] is False
    assert httpx.get(f"{server.api}/models/rules/aliases").json() == []

    assert _put(server, "rules", good).status_code == 200
    stale = _put(server, "rules", good, expected_revision=None)
    assert stale.status_code == 409
    assert _put(server, "rules", blocked, alias="candidate").status_code == 200
    event = httpx.get(f"{server.api}/models/rules/audit", params={"alias": "production"}).json()
    assert [(e["to_version"], e["actor"]) for e in event] == [(good, "eve")]


def test_the_python_client_gets_the_servers_refusals(server: Server, remote_ws: Workspace) -> None:
    good, blocked, tampered = real_versions(remote_ws, "client", 3)
    remote_ws.stores.models.set_version_status(
        "client", blocked, VersionStatus.BLOCKED, actor="ops", reason="r"
    )
    digest = remote_ws.stores.models.get_model_version("client", tampered).artifact
    _blob(server, digest).write_bytes(b"truncated")
    with pytest.raises(InvalidInputError, match="blocked"):
        promote(remote_ws, "client", blocked, reason="r")
    with pytest.raises(InvalidInputError, match="not known"):
        set_alias(remote_ws, "client", "canary", good, action="a", reason="r")
    with pytest.raises(GateRejectedError, match="cannot be loaded"):
        promote(remote_ws, "client", tampered, reason="r")
    assert promote(remote_ws, "client", good, reason="r").version == good


def test_rest_refuses_a_version_whose_artifact_was_never_uploaded(server: Server) -> None:
    body = {"artifact": "sha256:" + "cd" * 32, "actor": "eve"}
    response = httpx.post(f"{server.api}/models/ghost/versions", json=body, headers=AUTH)
    assert response.status_code == 422
    assert "no such blob is in the artifact store" in response.json()["message"]
    assert httpx.get(f"{server.api}/models/ghost/versions").json() == []


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that requires an approval for production whatever the client says."""
    home = tmp_path_factory.mktemp("strict")
    with running_server(home, CONVEYOR_TOKEN=TOKEN, CONVEYOR_REQUIRE_APPROVAL="true") as srv:
        yield srv


def test_a_server_requiring_approval_enforces_it_on_every_client(
    strict_server: Server, tmp_path: Path
) -> None:
    ws = Workspace.open(
        Settings(
            home=tmp_path / "client",
            tracking_uri=strict_server.url,
            token=TOKEN,
            artifacts=str(strict_server.artifacts),
        )
    )
    try:
        (v1,) = real_versions(ws, "strict", 1)
        response = _put(strict_server, "strict", v1, require_approval=False)
        assert response.status_code == 423 and "approval" in response.json()["message"]
        with pytest.raises(BlockedError, match="requires an approval"):
            promote(ws, "strict", v1, reason="no approval asked by the client")
        url = f"{strict_server.api}/models/strict/versions/{v1}/approval"
        httpx.post(f"{url}/request", json={"actor": "alice", "reason": "r"}, headers=AUTH)
        httpx.post(f"{url}/approve", json={"actor": "bob", "reason": "ok"}, headers=AUTH)
        pointer = promote(ws, "strict", v1, reason="approved")
        assert pointer.version == v1
        event = ws.stores.models.list_audit_events("strict", alias="production")[-1]
        assert event.evidence["approval"]["approved_by"] == "bob"
    finally:
        close_clients()
