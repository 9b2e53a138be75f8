"""Run and model stores over HTTP: the ``RunStore`` and ``ModelStore`` ports spoken to a
``conveyor server`` (see :mod:`conveyor.server`), for ``CONVEYOR_TRACKING_URI=http://...``.

One :class:`HttpClient` keeps a pool of keep-alive connections with ``TCP_NODELAY`` set, so a
small request is not held back by Nagle's algorithm waiting for a delayed ACK (the ~40 ms
floor of clients that send headers and body in two writes). Every port method is one request;
the fluent API's buffer writes a flush with one ``log_batch``, so one flush is one request.

Errors come back as they were raised on the server: the body names the error class
(``{"error": "ConflictError", "message": ...}``) and the client raises that class of
:mod:`conveyor.core.errors` with the server's message. A connection that fails or times out
raises :class:`~conveyor.core.errors.StoreError`, so the tracking buffer keeps the batch and
retries it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson

from conveyor.core import errors
from conveyor.core.approval import Approval, ApprovalStatus
from conveyor.core.entities import (
    AliasPointer,
    AuditEvent,
    MetricPoint,
    ModelVersion,
    Run,
    RunId,
    RunStatus,
    VersionStatus,
)
from conveyor.core.names import NameKind, check_name, check_run_artifact_name
from conveyor.core.run_query import Expr, OrderBy, RunPage
from conveyor.store import wire

API = "/api/v1"
_ERRORS: dict[str, type[errors.ConveyorError]] = {
    cls.__name__: cls
    for cls in (
        errors.NotFoundError,
        errors.AlreadyExistsError,
        errors.ConflictError,
        errors.InvalidInputError,
        errors.SchemaError,
        errors.DataQualityError,
        errors.ConfigError,
        errors.BlockedError,
        errors.QuarantinedError,
        errors.GateRejectedError,
        errors.StoreError,
    )
}
_BY_STATUS: dict[int, type[errors.ConveyorError]] = {
    404: errors.NotFoundError,
    409: errors.ConflictError,
    422: errors.InvalidInputError,
    423: errors.BlockedError,
}


class HttpClient:
    """A keep-alive HTTP connection pool to one Conveyor server; thread-safe.

    Parameters
    ----------
    base_url : str
        The server, e.g. ``http://127.0.0.1:8710``.
    token : str, optional
        Sent as ``Authorization: Bearer <token>`` (the server's ``CONVEYOR_TOKEN``).
    timeout_s : float, default 30.0
        Per-request timeout.
    transport : httpx.BaseTransport, optional
        Replaces the default transport (keep-alive, ``TCP_NODELAY``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise errors.ConfigError(
                f"The tracking URI must be an http:// or https:// URL of a `conveyor server`. "
                f"Got {base_url!r} instead."
            )
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout_s,
            transport=transport
            or httpx.HTTPTransport(
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)], retries=1
            ),
        )

    def __repr__(self) -> str:
        return f"HttpClient({self.base_url!r})"

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send one request to ``/api/v1`` + ``path``; return the decoded JSON body (or None).

        Raises
        ------
        ConveyorError
            The error the server answered with, as its own class.
        StoreError
            If the server cannot be reached or answers something that is not Conveyor's.
        """
        content = None if json is None else orjson.dumps(json)
        headers = {"Content-Type": "application/json"} if content is not None else None
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._client.request(
                method, API + path, content=content, headers=headers, params=query
            )
        except httpx.HTTPError as exc:
            raise errors.StoreError(
                f"The Conveyor server at {self.base_url} did not answer {method} {path}: {exc}"
            ) from exc
        if response.is_success:
            return orjson.loads(response.content) if response.content else None
        raise _error(response, f"{method} {path}")

    def close(self) -> None:
        self._client.close()


def _error(response: httpx.Response, what: str) -> errors.ConveyorError:
    body: dict[str, Any] = {}
    try:
        body = orjson.loads(response.content)
        name, message = body["error"], body["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        name, message = None, response.text[:500]
    cls = _ERRORS.get(name or "") or _BY_STATUS.get(response.status_code, errors.StoreError)
    if response.status_code in (401, 403):
        cls = errors.ConfigError
        message = f"{message} (set CONVEYOR_TOKEN to the server's token)"
    text = str(message) if name else f"{what} failed with HTTP {response.status_code}: {message}"
    if issubclass(cls, errors.BlockedError):
        return cls(text, evidence=dict(body.get("evidence") or {}))
    return cls(text)


_clients: dict[tuple[str, str | None], HttpClient] = {}
_clients_lock = threading.Lock()


def open_client(base_url: str, token: str | None = None) -> HttpClient:
    """The process's :class:`HttpClient` for ``base_url`` and ``token`` (one pool each)."""
    with _clients_lock:
        client = _clients.get((base_url, token))
        if client is None:
            client = _clients[(base_url, token)] = HttpClient(base_url, token=token)
        return client


def close_clients() -> None:
    """Close every cached client's connections; for tests and exit."""
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


class HttpRunStore:
    """:class:`~conveyor.store.base.RunStore` over the server's ``/api/v1/runs`` routes."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"HttpRunStore({self.client.base_url!r})"

    def create_run(
        self,
        project: str,
        experiment: str,
        name: str,
        *,
        parent_id: RunId | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Run:
        # Checked here too, so a bad name fails before a request and never reaches a URL.
        body = {
            "project": check_name(project, NameKind.PROJECT),
            "experiment": check_name(experiment, NameKind.EXPERIMENT),
            "name": check_name(name, NameKind.RUN),
            "parent_id": parent_id,
            "tags": dict(tags or {}),
        }
        return wire.run_from_json(self.client.request("POST", "/runs", json=body))

    def log_params(self, run_id: RunId, params: Mapping[str, str]) -> None:
        self.log_batch(run_id, params=params)

    def log_metrics(self, run_id: RunId, points: Sequence[MetricPoint]) -> None:
        self.log_batch(run_id, metrics=points)

    def set_tags(self, run_id: RunId, tags: Mapping[str, str]) -> None:
        self.log_batch(run_id, tags=tags)

    def log_batch(
        self,
        run_id: RunId,
        *,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        metrics: Sequence[MetricPoint] = (),
    ) -> None:
        body = {
            "params": dict(params or {}),
            "tags": dict(tags or {}),
            "metrics": [wire.point_to_json(p) for p in metrics],
        }
        self.client.request("POST", f"/runs/{run_id}/batch", json=body)

    def log_artifact(self, run_id: RunId, name: str, digest: str) -> None:
        body = {"name": check_run_artifact_name(name), "digest": digest}
        self.client.request("POST", f"/runs/{run_id}/artifacts", json=body)

    def log_datasets(self, run_id: RunId, dataset_ids: Sequence[str]) -> None:
        body = {"dataset_ids": list(dataset_ids)}
        self.client.request("POST", f"/runs/{run_id}/datasets", json=body)

    def end_run(self, run_id: RunId, status: RunStatus) -> Run:
        doc = self.client.request("POST", f"/runs/{run_id}/end", json={"status": str(status)})
        return wire.run_from_json(doc)

    def heartbeat(self, run_id: RunId) -> None:
        self.client.request("POST", f"/runs/{run_id}/heartbeat", json={})

    def get_run(self, run_id: RunId) -> Run:
        return wire.run_from_json(self.client.request("GET", f"/runs/{run_id}"))

    def list_runs(self, project: str, *, experiment: str | None = None) -> list[Run]:
        params = {"project": project, "experiment": experiment}
        docs = self.client.request("GET", "/runs", params=params)
        return [wire.run_from_json(d) for d in docs]

    def get_metric_history(self, run_id: RunId, key: str) -> list[MetricPoint]:
        docs = self.client.request("GET", f"/runs/{run_id}/metric-history", params={"key": key})
        return [wire.point_from_json(d) for d in docs]

    def search_runs(
        self,
        *,
        project: str | None = None,
        where: Expr | None = None,
        order_by: Sequence[OrderBy] = (),
        limit: int = 100,
        page_token: str | None = None,
    ) -> RunPage:
        body = {
            "project": project,
            "where": wire.expr_to_json(where) if where is not None else None,
            "order": [wire.order_to_json(o) for o in order_by],
            "limit": limit,
            "page_token": page_token,
        }
        doc = self.client.request("POST", "/runs/search", json=body)
        runs = tuple(wire.run_from_json(d) for d in doc["runs"])
        return RunPage(runs, doc.get("next_page_token"))


class HttpModelStore:
    """:class:`~conveyor.store.base.ModelStore` over the server's ``/api/v1/models`` routes."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"HttpModelStore({self.client.base_url!r})"

    def create_model_version(
        self,
        model: str,
        *,
        artifact: str,
        run_id: RunId | None,
        signature: Mapping[str, Any],
        lineage: Mapping[str, Any],
        metrics: Mapping[str, Any],
        tags: Mapping[str, str] | None = None,
        actor: str,
    ) -> ModelVersion:
        body = {
            "artifact": artifact,
            "run_id": run_id,
            "signature": dict(signature),
            "lineage": dict(lineage),
            "metrics": dict(metrics),
            "tags": dict(tags or {}),
            "actor": actor,
        }
        model = check_name(model, NameKind.MODEL)
        doc = self.client.request("POST", f"/models/{model}/versions", json=body)
        return wire.model_version_from_json(doc)

    def get_model_version(self, model: str, version: int) -> ModelVersion:
        doc = self.client.request("GET", f"/models/{model}/versions/{version}")
        return wire.model_version_from_json(doc)

    def list_model_versions(self, model: str) -> list[ModelVersion]:
        docs = self.client.request("GET", f"/models/{model}/versions")
        return [wire.model_version_from_json(d) for d in docs]

    def set_version_status(
        self, model: str, version: int, status: VersionStatus, *, actor: str, reason: str
    ) -> ModelVersion:
        body = {"status": str(status), "actor": actor, "reason": reason}
        doc = self.client.request("POST", f"/models/{model}/versions/{version}/status", json=body)
        return wire.model_version_from_json(doc)

    def update_version_metrics(
        self, model: str, version: int, metrics: Mapping[str, Any]
    ) -> ModelVersion:
        body = {"metrics": dict(metrics)}
        doc = self.client.request("POST", f"/models/{model}/versions/{version}/metrics", json=body)
        return wire.model_version_from_json(doc)

    def find_alias(self, model: str, alias: str) -> AliasPointer | None:
        try:
            doc = self.client.request("GET", f"/models/{model}/aliases/{alias}")
        except errors.NotFoundError:
            return None
        return wire.alias_from_json(doc)

    def list_aliases(self, model: str) -> list[AliasPointer]:
        docs = self.client.request("GET", f"/models/{model}/aliases")
        return [wire.alias_from_json(d) for d in docs]

    def move_alias(
        self,
        model: str,
        alias: str,
        version: int,
        *,
        expected_revision: int | None,
        action: str,
        actor: str,
        reason: str,
        evidence: Mapping[str, Any] | None = None,
        require_approval: bool = False,
    ) -> AliasPointer:
        body = {
            "version": version,
            "expected_revision": expected_revision,
            "action": action,
            "actor": actor,
            "reason": reason,
            "evidence": dict(evidence or {}),
            "require_approval": require_approval,
        }
        doc = self.client.request("PUT", f"/models/{model}/aliases/{alias}", json=body)
        return wire.alias_from_json(doc)

    def list_audit_events(self, model: str, *, alias: str | None = None) -> list[AuditEvent]:
        docs = self.client.request("GET", f"/models/{model}/audit", params={"alias": alias})
        return [wire.audit_event_from_json(d) for d in docs]

    def request_approval(self, model: str, version: int, *, actor: str, reason: str) -> Approval:
        return self._approval(model, version, "request", actor=actor, reason=reason)

    def decide_approval(
        self, model: str, version: int, status: ApprovalStatus, *, actor: str, reason: str
    ) -> Approval:
        status = ApprovalStatus(status)
        if status is ApprovalStatus.PENDING:
            raise errors.InvalidInputError(
                f"A decision on an approval must be 'approved' or 'rejected'. Got {status!r}."
            )
        verb = "approve" if status is ApprovalStatus.APPROVED else "reject"
        return self._approval(model, version, verb, actor=actor, reason=reason)

    def find_approval(self, model: str, version: int) -> Approval | None:
        try:
            doc = self.client.request("GET", f"/models/{model}/versions/{version}/approval")
        except errors.NotFoundError:
            return None
        return wire.approval_from_json(doc)

    def list_approvals(self, model: str, *, status: ApprovalStatus | None = None) -> list[Approval]:
        params = {"status": str(status) if status else None}
        docs = self.client.request("GET", f"/models/{model}/approvals", params=params)
        return [wire.approval_from_json(d) for d in docs]

    def delete_model_version(
        self, model: str, version: int, *, actor: str, reason: str
    ) -> ModelVersion:
        params = {"actor": actor, "reason": reason}
        doc = self.client.request("DELETE", f"/models/{model}/versions/{version}", params=params)
        return wire.model_version_from_json(doc)

    def list_referenced_digests(self) -> set[str]:
        return set(self.client.request("GET", "/artifacts/referenced"))

    def _approval(
        self, model: str, version: int, verb: str, *, actor: str, reason: str
    ) -> Approval:
        body = {"actor": actor, "reason": reason}
        path = f"/models/{model}/versions/{version}/approval/{verb}"
        return wire.approval_from_json(self.client.request("POST", path, json=body))
