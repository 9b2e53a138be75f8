"""The online prediction server: a plain Starlette app with orjson bodies.

One server serves one or more deployments (a project's model each, see
:class:`~conveyor.serving.routing.Deployment`); the first is the default.

Routes
------
``POST /v1/predict``, ``POST /v1/models/{name}/predict``
    Body ``{"records": [{...}, ...]}``, ``{"columns": {"name": [...], ...}}``, a list of
    records or one record object; answers ``{"model_version": N, "predictions": [{"request_id",
    "score", "label"}]}`` (``label`` the class value, ``score`` P(positive) or, for multiclass,
    the label's probability, beside ``"probabilities": {class: p}``) with header
    ``x-model-version`` (the version that produced it, which under a canary may be the
    candidate's).
``GET /v1/health``, ``GET /v1/ready``, ``GET /v1/model``, ``GET /v1/models``, ``GET /metrics``
    Liveness (with the worker's process id), readiness (503 until every deployment has a
    model), the served models and their signatures, and Prometheus metrics.
``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{name}``, ``/v2/models/{name}/ready``,
``POST /v2/models/{name}/infer``
    The V2 Open Inference Protocol (see :mod:`conveyor.serving.oip`).

Every request first passes the guards of :mod:`conveyor.serving.guards` (Host allowlist, CORS,
no cross-site writes, token on writes but predictions, JSON bodies, body timeout, duplicate
keys, string length). Statuses: 400 invalid JSON or unknown ``Host``, 401 a write without the
token, 403 a cross-site write, 404 unknown model name, 408 a body that stalled, 413 body too
large, 415 a body declared as something else than JSON, 422 invalid records (with the
per-field error list), 503 no model loaded or, with ``Retry-After``, more requests in flight
than ``max_queue``, queued work past the time budget (see :mod:`conveyor.serving.admission`)
or a full prediction-log buffer. ``/v1/ready`` says ``"degraded"`` with the ``fallback`` of
each model served in place of a production version that cannot be loaded (see
:mod:`conveyor.serving.slot`). Every unexpected failure is caught at the edge, logged and
counted, and answered 503 so a client retries; none escapes to kill a worker.

Every scored row is written to the prediction log before the response is sent: a prediction a
client has seen is always in the log. The log's writer thread does the writing (grouping
concurrent requests into one write), so nothing on the event loop waits for the disk: the
liveness routes answer while the log is slow, and each route does no I/O of its own on the
loop (``/metrics`` reads the workers' files in a thread). Shadow scoring runs after the
response has been sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import anyio
import anyio.to_thread
import orjson
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conveyor.core.hosts import trusted_hosts
from conveyor.serving.admission import AdmissionConfig, AdmissionControl, QueueFullError
from conveyor.serving.batching import BatchingConfig, MicroBatcher
from conveyor.serving.guards import BodyError, GuardPolicy, RequestGuard, request_json
from conveyor.serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from conveyor.serving.metrics import ServingMetrics
from conveyor.serving.oip import model_metadata, tensors_to_records, v2_output_tensors
from conveyor.serving.outputs import ModelOutputs, with_probabilities
from conveyor.serving.predlog import PredictionLogError, PredictionLogWriter, iso_now
from conveyor.serving.routing import PRODUCTION, SHADOW, Canary, Deployment, Shadow
from conveyor.serving.slot import LoadedModel, ModelSlot
from conveyor.serving.validation import REQUEST_ID_FIELD, ServingLimits, columns_to_records

__all__ = ["Deployment", "HttpError", "ModelSlot", "create_serving_app"]

logger = logging.getLogger(__name__)

_JSON = "application/json"
_APPEND_NEWLINE = orjson.OPT_APPEND_NEWLINE
_RETRY_AFTER_S = "1"

_ENDPOINTS = {"predict": "v1_predict", "infer": "v2_infer", "feedback": "v1_feedback",
              "lookup": "v1_lookup"}  # fmt: skip

PREDICTION_PATHS = (r"/v1/predict", r"/v1/models/[^/]+/predict", r"/v2/models/[^/]+/infer")
"""The routes that score: with a token set they stay public, every other write needs it."""

Endpoint = Callable[[Request], Awaitable[Response]]


class HttpError(Exception):
    """A request failed in a way the client can fix; carries its status and error list."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: Sequence[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = list(errors or [])
        self.headers = headers


def _json(
    body: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
    background: BackgroundTask | None = None,
) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        headers=headers,
        media_type=_JSON,
        background=background,
    )


async def _request_json(request: Request, limits: ServingLimits) -> Any:
    try:
        return await request_json(
            request, max_body_bytes=limits.max_body_bytes, max_string_chars=limits.max_string_chars
        )
    except BodyError as exc:
        raise HttpError(exc.status, exc.message, exc.errors) from exc


def _v1_records(payload: Any) -> list[Any]:
    """Records of a ``/v1/predict`` body: row-wise, columnar, a bare list or one record."""
    if isinstance(payload, dict):
        if "records" in payload and len(payload) == 1:
            records = payload["records"]
            if not isinstance(records, list):
                raise HttpError(422, '"records" must be a list of objects')
            return records
        if "columns" in payload and len(payload) == 1:
            records, errors = columns_to_records(payload["columns"])
            if errors:
                raise HttpError(422, "the columns are invalid", errors)
            return records
        return [payload]
    if isinstance(payload, list):
        return payload
    raise HttpError(422, "the body must be a JSON object or a list of record objects")


def _inputs_of(rec: dict[str, Any]) -> dict[str, Any]:
    return (
        rec
        if REQUEST_ID_FIELD not in rec
        else {k: v for k, v in rec.items() if k != REQUEST_ID_FIELD}
    )


def _log_lines(
    version: int,
    records: list[dict[str, Any]],
    request_ids: list[str],
    outputs: ModelOutputs,
    latency_ms: float,
    extra: dict[str, Any] | None = None,
    posts: list[dict[str, Any]] | None = None,
) -> bytes:
    """The log lines of one request: raw outputs (the label as its class code, and a
    multiclass model's probabilities as ``proba``), and the post-processed ones as ``post``."""
    ts = iso_now()
    dumps = orjson.dumps
    tail = extra or {}
    with_post = posts is not None
    post_of = posts if posts is not None else [None] * len(request_ids)
    lines = []
    for rid, rec, fields, post in zip(
        request_ids, records, outputs.log_fields(), post_of, strict=True
    ):
        line = {
            "request_id": rid,
            "ts": ts,
            "model_version": version,
            "inputs": _inputs_of(rec),
            **fields,
            "latency_ms": latency_ms,
        }
        if with_post:
            line["post"] = post
        line.update(tail)
        lines.append(dumps(line, option=_APPEND_NEWLINE))
    return b"".join(lines)


async def _write(log: PredictionLogWriter, data: bytes) -> None:
    """Append to the log before answering; a refused or failed write is a 503, never a 200.

    The log's writer thread does the disk work; the event loop only waits on its future, so a
    slow disk delays the requests it logs and nothing else.
    """
    try:
        await asyncio.wrap_future(log.submit(data))
    except PredictionLogError as exc:
        raise HttpError(503, str(exc), headers={"retry-after": _RETRY_AFTER_S}) from exc


def _logs(dep: Deployment) -> dict[str, PredictionLogWriter]:
    """The prediction logs of a deployment by role: production's and the shadow's."""
    found = {PRODUCTION: dep.log}
    if dep.shadow is not None:
        found[SHADOW] = dep.shadow.log
    return found


def _unavailable(dep: Deployment) -> HttpError:
    fb = dep.slot.fallback
    if fb is None:
        return HttpError(503, f"no model is loaded yet for {dep.model_name!r}")
    return HttpError(
        503,
        f"version {fb.wanted} of {dep.model_name!r} cannot be served ({fb.reason}) and no "
        f"earlier production version could be loaded (tried {list(fb.tried)})",
    )


class _Scored:
    __slots__ = ("model", "outputs", "payload", "posts", "request_ids", "shadow")

    def __init__(
        self,
        payload: Any,
        model: LoadedModel,
        request_ids: list[str],
        outputs: ModelOutputs,
        shadow: BackgroundTask | None,
    ) -> None:
        self.payload, self.model, self.request_ids = payload, model, request_ids
        self.outputs, self.shadow = outputs, shadow
        self.posts: list[dict[str, Any]] | None = None


class _Server:
    """Admit, validate, score (micro-batched), log and answer requests of every deployment."""

    def __init__(
        self,
        deployments: Sequence[Deployment],
        limits: ServingLimits,
        batching: BatchingConfig,
        max_queue: int,
        admission: AdmissionConfig,
    ) -> None:
        self.deployments = {d.model_name: d for d in deployments}
        self.default = deployments[0]
        self.limits, self.max_queue = limits, max_queue
        self.admission = AdmissionControl(admission)
        self.metrics = ServingMetrics()
        self.batcher = MicroBatcher(batching, self.metrics)
        self.model_metrics = {
            d.model_name: self.metrics.for_model(d.project, d.model_name) for d in deployments
        }

    def count_refused(self, path: str, status: int) -> None:
        """Count a request the guards refused, under the endpoint it was sent to."""
        endpoint = _ENDPOINTS.get(path.rsplit("/", 1)[-1], "other")
        name = path.split("/")[3] if path.startswith(("/v1/models/", "/v2/models/")) else None
        model = self.metrics.models.get(name or self.default.model_name)
        if endpoint in ("v1_predict", "v2_infer") and model is not None:
            self.metrics.observe(endpoint, status, model.model)
        else:
            self.metrics.observe(endpoint, status)

    def deployment(self, name: str | None) -> Deployment:
        if name is None:
            return self.default
        found = self.deployments.get(name)
        if found is None:
            served = ", ".join(sorted(self.deployments))
            raise HttpError(404, f"no model named {name!r}; this server serves: {served}")
        return found

    @staticmethod
    def production(dep: Deployment) -> LoadedModel:
        model = dep.slot.model
        if model is None:
            raise _unavailable(dep)
        return model

    async def answer(
        self,
        request: Request,
        dep: Deployment,
        parse: Callable[[Any, Deployment], list[Any]],
    ) -> _Scored:
        """Run one prediction request through admission, validation, scoring and logging."""
        metrics, batcher = self.metrics, self.batcher
        self.admit()
        started = time.perf_counter()
        metrics.in_flight += 1
        batcher.arriving()
        waiting = queued = True
        try:
            payload = await _request_json(request, self.limits)
            records = parse(payload, dep)
            model, role = dep.route(records)
            if model is None:
                raise _unavailable(dep)
            mm = self.model_metrics[dep.model_name]
            batch = model.validator.validate(records)
            if batch.unseen:
                mm.add_unseen(batch.unseen)
            if batch.errors:
                mm.rejected_rows += len(records)
                mm.add_rejected(batch.errors)
                raise HttpError(422, "the request has invalid records", batch.errors)
            batcher.arrived()
            waiting = False
            raw = await batcher.score(model, batch.matrix)
            queued = False
            self.admission.leave()
            outputs = model.outputs(raw, dep.threshold)
            n = len(outputs)
            posts = None
            if dep.postprocess is not None and not dep.postprocess.is_identity:
                posts = dep.postprocess.apply(outputs, records).outputs()
            latency_ms = round((time.perf_counter() - started) * 1000.0, 3)
            data = _log_lines(
                model.version, records, batch.request_ids, outputs, latency_ms, None, posts
            )
            await _write(dep.log, data)
            if dep.slot.samples is None:
                dep.slot.remember(batch.matrix)
            mm.rows += n
            mm.add_routed(role)
            shadow = None
            if dep.shadow is not None and dep.shadow.slot.model is not None:
                shadow = BackgroundTask(
                    self.score_shadow, dep, dep.shadow, records, batch.request_ids, model
                )
            scored = _Scored(payload, model, batch.request_ids, outputs, shadow)
            scored.posts = posts
            return scored
        finally:
            if waiting:
                batcher.arrived()
            if queued:
                self.admission.leave()
            batcher.finished()
            metrics.in_flight -= 1

    def admit(self) -> None:
        """Refuse a request (503, ``Retry-After``) past the in-flight cap or the time budget."""
        metrics = self.metrics
        reason = None
        if metrics.in_flight >= self.max_queue:
            reason = f"the server is at its limit of {self.max_queue} requests in flight"
        else:
            try:
                self.admission.admit()
            except QueueFullError as exc:
                reason = f"the server is at its queue limit: {exc}"
        if reason is not None:
            metrics.shed += 1
            raise HttpError(503, f"{reason}; retry", headers={"retry-after": _RETRY_AFTER_S})

    async def score_shadow(
        self,
        dep: Deployment,
        shadow: Shadow,
        records: list[Any],
        request_ids: list[str],
        answered_by: LoadedModel,
    ) -> None:
        """Score ``records`` with the shadow version and log it; runs after the response."""
        mm = self.model_metrics[dep.model_name]
        model = shadow.slot.model
        if model is None:
            return
        started = time.perf_counter()
        try:
            batch = model.validator.validate(records)
            if batch.errors:
                mm.shadow_errors += 1
                return
            outputs = model.outputs(await self.batcher.score(model, batch.matrix), dep.threshold)
            latency_ms = round((time.perf_counter() - started) * 1000.0, 3)
            extra = {SHADOW: True, "answered_by": answered_by.version}
            await _write(
                shadow.log,
                _log_lines(model.version, records, request_ids, outputs, latency_ms, extra),
            )
            mm.shadow_rows += len(outputs)
        except Exception:
            mm.shadow_errors += 1
            logger.exception("shadow scoring of %s failed", dep.model_name)


def _guarded(
    metrics: ServingMetrics, endpoint: str, *, default_model: str | None = None
) -> Callable[[Endpoint], Endpoint]:
    """Answer every failure with a JSON error; count each request.

    With ``default_model`` the endpoint scores a model (named in the path, else the default):
    its count carries the model's name and its latency goes to the model's histogram.
    """

    def wrap(handler: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await handler(request)
            except HttpError as exc:
                body: dict[str, Any] = {"error": exc.message}
                if exc.errors:
                    body["errors"] = exc.errors
                response = _json(body, exc.status, headers=exc.headers)
            except Exception as exc:
                metrics.errors += 1
                logger.exception("unexpected error answering %s", request.url.path)
                response = _json(
                    {"error": f"the server failed to answer ({type(exc).__name__}); retry"}, 503
                )
            model = (
                None
                if default_model is None
                else metrics.models.get(request.path_params.get("name", default_model))
            )
            if model is not None:
                model.latency.observe(time.perf_counter() - started)
                metrics.observe(endpoint, response.status_code, model.model)
            else:
                metrics.observe(endpoint, response.status_code)
            return response

        return guarded

    return wrap


def _fallbacks(served: Sequence[Deployment]) -> dict[str, dict[str, Any]]:
    """Per model name, the production slot's fallback (served version, wanted one, why)."""
    return {d.model_name: d.slot.fallback.to_dict() for d in served if d.slot.fallback}


def _model_info(dep: Deployment, model: LoadedModel) -> dict[str, Any]:
    return {
        "project": dep.project,
        "name": dep.model_name,
        "version": model.version,
        "kind": model.predictor.kind,
        "loaded_at": model.loaded_at.isoformat(),
        "threshold": dep.threshold if model.is_binary else None,
        "signature": model.predictor.signature.to_dict(),
        "canary": None
        if dep.canary is None
        else {
            "percent": dep.canary.percent,
            "sticky_key": dep.canary.sticky_key,
            "version": dep.canary.slot.model.version if dep.canary.slot.model else None,
        },
        "shadow": None
        if dep.shadow is None
        else {"version": dep.shadow.slot.model.version if dep.shadow.slot.model else None},
    }


def _v1_body(scored: _Scored) -> dict[str, Any]:
    answers = scored.outputs.answers()
    if scored.posts is not None:
        posts = scored.posts
        answers = [with_probabilities(p, a) for a, p in zip(answers, posts, strict=True)]
    predictions = [{"request_id": r, **a} for r, a in zip(scored.request_ids, answers, strict=True)]
    return {"model_version": scored.model.version, "predictions": predictions}


def _v2_body(model_name: str, scored: _Scored) -> dict[str, Any]:
    outputs = v2_output_tensors(scored.outputs, scored.posts)
    outputs.append(
        {"name": "request_id", "datatype": "BYTES", "shape": [len(scored.outputs)],
         "data": scored.request_ids}
    )  # fmt: skip
    body = {
        "model_name": model_name,
        "model_version": str(scored.model.version),
        "outputs": outputs,
    }
    if isinstance(scored.payload.get("id"), str):
        body["id"] = scored.payload["id"]
    return body


def _v2_records(payload: Any, dep: Deployment) -> list[Any]:
    model = _Server.production(dep)
    records, errors = tensors_to_records(payload, model)
    if errors:
        raise HttpError(422, "the input tensors are invalid", errors)
    return records


def create_serving_app(
    *,
    slot: ModelSlot | None = None,
    log: PredictionLogWriter | None = None,
    project: str = "",
    model_name: str = "",
    limits: ServingLimits = ServingLimits(),  # noqa: B008 - frozen, safe to share
    threshold: float = 0.5,
    poll_interval_s: float = 1.0,
    passthrough: Sequence[str] = (),
    canary: Canary | None = None,
    shadow: Shadow | None = None,
    deployments: Sequence[Deployment] = (),
    batching: BatchingConfig | None = None,
    max_queue: int = 1024,
    admission: AdmissionConfig | None = None,
    host: str = "127.0.0.1",
    allowed_hosts: Sequence[str] = (),
    cors_origins: Sequence[str] = (),
    token: str | None = None,
) -> Starlette:
    """Build the online prediction app.

    Parameters
    ----------
    slot : ModelSlot, optional
        The production model of the default deployment (with ``log``, ``project``,
        ``model_name``, ``threshold``, ``passthrough``, ``canary`` and ``shadow``); leave it
        out to serve only ``deployments``.
    log : PredictionLogWriter
        Where every prediction is written before it is answered.
    project, model_name : str
        Shown in ``/v1/model`` and metrics; ``model_name`` names the model in
        ``/v1/models/{name}/predict`` and the V2 protocol.
    limits : ServingLimits
        Body size, rows per request and extra-field policy (for every deployment).
    threshold : float
        Binary tasks label a row 1 when its score is at or above this.
    poll_interval_s : float
        How often each slot checks which version should be served.
    passthrough : sequence of str
        Record fields that are not features but are accepted and logged (entity columns,
        for joining feedback by entity and time).
    canary, shadow : optional
        Traffic split to a candidate version and mirrored scoring by a shadow version.
    deployments : sequence of Deployment
        More (or, without ``slot``, all) projects' models served side by side.
    batching : BatchingConfig, optional
        Micro-batching; by default on, with ``inline_rows`` from ``limits``.
    max_queue : int
        Prediction requests in flight past which new ones get 503 with ``Retry-After``.
    admission : AdmissionConfig, optional
        The time budget of the queue: past it new requests get 503 with ``Retry-After``
        (see :mod:`conveyor.serving.admission`); by default 250 ms.
    host, allowed_hosts : str, sequence of str
        The bind address and more names answered in the ``Host`` header (besides the
        loopback names); any other ``Host`` gets 400 (DNS rebinding).
    cors_origins : sequence of str
        Browser origins allowed to call the server (never ``*``); others cannot write.
    token : str, optional
        When set, every write but the prediction routes needs ``Authorization: Bearer``.

    Returns
    -------
    starlette.applications.Starlette
        Run it with ``uvicorn``; see the module docstring for the routes.
    """
    if not poll_interval_s > 0:
        raise ValueError(
            "The 'poll_interval_s' parameter of create_serving_app() must be a float in "
            f"(0, inf). Got {poll_interval_s!r} instead."
        )
    if not isinstance(max_queue, int) or max_queue < 1:
        raise ValueError(
            "The 'max_queue' parameter of create_serving_app() must be an int in [1, inf). "
            f"Got {max_queue!r} instead."
        )
    served = list(deployments)
    if slot is not None:
        if log is None:
            raise ValueError("create_serving_app() needs 'log' with 'slot'.")
        served.insert(
            0,
            Deployment(
                project=project,
                model_name=model_name,
                slot=slot,
                log=log,
                threshold=threshold,
                passthrough=tuple(passthrough),
                canary=canary,
                shadow=shadow,
            ),
        )
    names = [d.model_name for d in served]
    if not served or len(set(names)) != len(names):
        raise ValueError(
            "create_serving_app() needs at least one deployment and unique model names. "
            f"Got {names!r} instead."
        )
    for dep in served:
        for each in dep.slots().values():
            each.configure(limits=limits, passthrough=dep.passthrough)
    server = _Server(
        served,
        limits,
        batching or BatchingConfig(inline_rows=limits.inline_rows),
        max_queue,
        admission or AdmissionConfig(),
    )
    metrics = server.metrics

    async def _predict(request: Request, dep: Deployment, v1: bool) -> Response:
        scored = await server.answer(
            request, dep, (lambda p, _d: _v1_records(p)) if v1 else _v2_records
        )
        body = _v1_body(scored) if v1 else _v2_body(dep.model_name, scored)
        headers = {"x-model-version": str(scored.model.version)}
        return _json(body, headers=headers, background=scored.shadow)

    @_guarded(metrics, "v1_predict", default_model=server.default.model_name)
    async def predict(request: Request) -> Response:
        return await _predict(request, server.deployment(request.path_params.get("name")), True)

    @_guarded(metrics, "v1_health")
    async def health(request: Request) -> Response:
        return _json({"status": "ok", "pid": os.getpid()})

    @_guarded(metrics, "v1_ready")
    async def ready(request: Request) -> Response:
        versions = {d.model_name: server.production(d).version for d in served}
        body: dict[str, Any] = {
            "status": "ready",
            "model_version": versions[server.default.model_name],
            "models": versions,
        }
        fallbacks = _fallbacks(served)
        if fallbacks:
            body["status"], body["fallback"] = "degraded", fallbacks
        return _json(body)

    @_guarded(metrics, "v1_model")
    async def model_info(request: Request) -> Response:
        dep = server.deployment(request.path_params.get("name"))
        return _json(_model_info(dep, server.production(dep)))

    @_guarded(metrics, "v1_models")
    async def models(request: Request) -> Response:
        return _json(
            {
                "default": server.default.model_name,
                "models": [
                    {
                        "project": d.project,
                        "name": d.model_name,
                        "version": d.slot.model.version if d.slot.model else None,
                    }
                    for d in served
                ],
            }
        )

    def sample_metrics() -> None:
        metrics.sample(
            {d.model_name: d.slots() for d in served},
            {d.model_name: _logs(d) for d in served},
        )

    def render_metrics() -> str:
        sample_metrics()
        return metrics.render()

    @_guarded(metrics, "metrics")
    async def prometheus(request: Request) -> Response:
        # every worker's figures are read from files: off the event loop
        text = await anyio.to_thread.run_sync(render_metrics)
        return Response(text, media_type=METRICS_CONTENT_TYPE)

    async def sample_periodically() -> None:
        while True:  # so a scrape answered by another worker sees this one's slots and logs
            await anyio.to_thread.run_sync(sample_metrics)
            await anyio.sleep(poll_interval_s)

    def named_model(request: Request) -> tuple[Deployment, LoadedModel]:
        dep = server.deployment(request.path_params["name"])
        return dep, server.production(dep)

    @_guarded(metrics, "v2_live")
    async def v2_live(request: Request) -> Response:
        return _json({"live": True})

    @_guarded(metrics, "v2_ready")
    async def v2_ready(request: Request) -> Response:
        for dep in served:
            server.production(dep)
        return _json({"ready": True})

    @_guarded(metrics, "v2_model")
    async def v2_model(request: Request) -> Response:
        dep, model = named_model(request)
        return _json(model_metadata(model, dep.model_name))

    @_guarded(metrics, "v2_model_ready")
    async def v2_model_ready(request: Request) -> Response:
        dep, _ = named_model(request)
        return _json({"name": dep.model_name, "ready": True})

    @_guarded(metrics, "v2_infer", default_model=server.default.model_name)
    async def v2_infer(request: Request) -> Response:
        dep = server.deployment(request.path_params["name"])
        response = await _predict(request, dep, False)
        return response

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Load (and warm) every model before this worker accepts a connection, so a worker
        # that has just started never answers 503 while its siblings serve; a failed load is
        # logged and counted, and the watcher retries it.
        for dep in served:
            for each in dep.slots().values():
                await anyio.to_thread.run_sync(each.refresh)
        async with anyio.create_task_group() as tasks:
            for dep in served:
                for each in dep.slots().values():
                    tasks.start_soon(each.watch, poll_interval_s)
            tasks.start_soon(sample_periodically)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()
        with anyio.CancelScope(shield=True):  # write what is buffered, off the event loop
            for dep in served:
                for each_log in _logs(dep).values():
                    await anyio.to_thread.run_sync(each_log.close)

    routes = [
        Route("/v1/predict", predict, methods=["POST"]),
        Route("/v1/models/{name}/predict", predict, methods=["POST"]),
        Route("/v1/health", health, methods=["GET"]),
        Route("/v1/ready", ready, methods=["GET"]),
        Route("/v1/model", model_info, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{name}", model_info, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
        Route("/v2/health/live", v2_live, methods=["GET"]),
        Route("/v2/health/ready", v2_ready, methods=["GET"]),
        Route("/v2/models/{name}", v2_model, methods=["GET"]),
        Route("/v2/models/{name}/ready", v2_model_ready, methods=["GET"]),
        Route("/v2/models/{name}/infer", v2_infer, methods=["POST"]),
    ]
    policy = GuardPolicy(
        token=token,
        cors_origins=tuple(cors_origins),
        public_writes=PREDICTION_PATHS,
        validated_strings=PREDICTION_PATHS,
        max_body_bytes=limits.max_body_bytes,
        max_string_chars=limits.max_string_chars,
        body_timeout_s=limits.body_timeout_s,
    )
    middleware = [
        Middleware(TrustedHostMiddleware, allowed_hosts=trusted_hosts(host, allowed_hosts)),
        Middleware(RequestGuard, policy=policy, on_refused=server.count_refused),
    ]
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
