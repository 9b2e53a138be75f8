"""The model registry over a real `conveyor server`: aliases by compare-and-swap, approvals."""

from __future__ import annotations

import multiprocessing
import queue
from typing import Any

import httpx
import pytest

from conveyor.core.approval import ApprovalStatus
from conveyor.core.entities import VersionStatus
from conveyor.core.errors import BlockedError, ConflictError
from conveyor.registry import approvals, lifecycle
from conveyor.registry.service import promote
from conveyor.store.http import HttpClient, HttpModelStore
from conveyor.workspace import Workspace

from .conftest import TOKEN, Server
from .real_models import real_versions


def _register(ws: Workspace, model: str, count: int) -> list[int]:
    return real_versions(ws, model, count)


def test_register_promote_and_stale_revision_is_409(
    server: Server, remote_ws: Workspace, auth: dict[str, str]
) -> None:
    v1, v2 = _register(remote_ws, "churn", 2)
    pointer = promote(remote_ws, "churn", v1, reason="first")
    assert (pointer.version, pointer.revision) == (v1, 1)

    moved = promote(remote_ws, "churn", v2, reason="better")
    assert (moved.version, moved.revision) == (v2, 2)
    stale = {"version": v1, "expected_revision": 1, "actor": "eve", "reason": "stale"}
    response = httpx.put(f"{server.api}/models/churn/aliases/production", json=stale, headers=auth)
    assert response.status_code == 409
    assert response.json()["error"] == "ConflictError"
    with pytest.raises(ConflictError, match="revision"):
        remote_ws.stores.models.move_alias(
            "churn", "production", v1, expected_revision=1, action="promote", actor="eve", reason=""
        )

    current = httpx.get(f"{server.api}/models/churn/aliases/production").json()
    assert (current["version"], current["revision"]) == (v2, 2)
    events = remote_ws.stores.models.list_audit_events("churn", alias="production")
    assert [(e.from_version, e.to_version) for e in events] == [(None, v1), (v1, v2)]
    assert remote_ws.stores.models.find_alias("churn", "shadow") is None
    assert [v.version for v in remote_ws.stores.models.list_model_versions("churn")] == [v1, v2]


def _promote_at_once(index: int, url: str, versions: list[int], revision: int) -> str:
    store = HttpModelStore(HttpClient(url, token=TOKEN))
    try:
        store.move_alias(
            "race",
            "production",
            versions[index],
            expected_revision=revision,
            action="promote",
            actor=f"proc-{index}",
            reason="race",
        )
    except ConflictError:
        return "409"
    return "ok"


def _child(index: int, args: tuple[Any, ...], barrier: Any, results: Any) -> None:
    try:
        barrier.wait(timeout=60)
        results.put((index, _promote_at_once(index, *args)))
    except BaseException as exc:  # reported to the parent, which fails the test
        results.put((index, repr(exc)))


def test_two_processes_promoting_at_once_one_wins_one_gets_409(
    server: Server, remote_ws: Workspace
) -> None:
    versions = _register(remote_ws, "race", 3)
    base = promote(remote_ws, "race", versions[2], reason="start")
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    args = (server.url, versions[:2], base.revision)
    processes = [context.Process(target=_child, args=(i, args, barrier, results)) for i in range(2)]
    for process in processes:
        process.start()
    try:
        outcomes = dict(results.get(timeout=60) for _ in processes)
    except queue.Empty:
        pytest.fail("the racing processes did not report")
    finally:
        for process in processes:
            process.join(timeout=10)

    assert sorted(outcomes.values()) == ["409", "ok"], outcomes
    winner = next(i for i, outcome in outcomes.items() if outcome == "ok")
    pointer = remote_ws.stores.models.find_alias("race", "production")
    assert pointer is not None
    assert (pointer.version, pointer.revision) == (versions[winner], base.revision + 1)
    moves = remote_ws.stores.models.list_audit_events("race", alias="production")
    assert [e.actor for e in moves][-1] == f"proc-{winner}" and len(moves) == 2


def test_approvals_and_archive_over_http(server: Server, remote_ws: Workspace) -> None:
    (v1,) = _register(remote_ws, "gov", 1)
    with pytest.raises(BlockedError, match="approval"):
        promote(remote_ws, "gov", v1, reason="no approval", require_approval=True)
    pending = approvals.request_approval(remote_ws, "gov", v1, reason="ready", actor="alice")
    assert pending.status is ApprovalStatus.PENDING and pending.requested_by == "alice"
    with pytest.raises(ConflictError):
        approvals.request_approval(remote_ws, "gov", v1, reason="again", actor="alice")
    approved = approvals.approve(remote_ws, "gov", v1, reason="looks fine", actor="bob")
    assert approved.decided_by == "bob" and approved.is_approved
    assert promote(remote_ws, "gov", v1, reason="ok", require_approval=True).version == v1

    with pytest.raises(ConflictError, match="production"):
        lifecycle.archive_version(remote_ws, "gov", v1, reason="retire")
    (v2,) = _register(remote_ws, "gov", 1)
    archived = lifecycle.archive_version(remote_ws, "gov", v2, reason="unused")
    assert archived.status is VersionStatus.ARCHIVED
    doc = httpx.get(f"{server.api}/models/gov/versions/{v2}").json()
    assert doc["status"] == "archived"
    actions = [e.action for e in remote_ws.stores.models.list_audit_events("gov")]
    assert {"request_approval", "approve", "promote", "set_status"} <= set(actions)


def test_approve_route_enforces_four_eyes(
    server: Server, remote_ws: Workspace, auth: dict[str, str]
) -> None:
    (v1,) = _register(remote_ws, "eyes", 1)
    url = f"{server.api}/models/eyes/versions/{v1}/approval"
    request = {"actor": "alice", "reason": "ship it"}
    assert httpx.post(f"{url}/request", json=request, headers=auth).status_code == 200
    self_approval = {**request, "distinct_actor": True}
    response = httpx.post(f"{url}/approve", json=self_approval, headers=auth)
    assert response.status_code == 422 and "four-eyes" in response.json()["message"]
    response = httpx.post(f"{url}/archive".replace("/approval", ""), json=request, headers=auth)
    assert response.status_code == 200 and response.json()["status"] == "archived"
