"""The online prediction server: a plain Starlette app with orjson bodies.

Routes
------
``POST /v1/predict``
    Body ``{"records": [{...}, ...]}``, ``{"columns": {"name": [...], ...}}`` or one record
    object; answers ``{"model_version": N, "predictions": [{"request_id", "score", "label"}]}``
    with header ``x-model-version``.
``GET /v1/health``, ``GET /v1/ready``, ``GET /v1/model``, ``GET /metrics``
    Liveness, readiness (503 until a model is loaded), the served model and its signature,
    and Prometheus counters.
``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{name}``, ``/v2/models/{name}/ready``,
``POST /v2/models/{name}/infer``
    The V2 Open Inference Protocol (see :mod:`conveyor.serving.oip`).

Statuses: 400 invalid JSON, 404 unknown model name, 413 body too large, 422 invalid records
(with the per-field error list), 503 no model loaded. Every unexpected failure is caught at the
edge, logged and counted, and answered 503 so a client retries; none escapes to kill a worker.

Every scored row is written to the prediction log, in one write per request, before the
response is sent: a prediction a client has seen is always in the log.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import anyio.to_thread
import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conveyor.serving.metrics import ServingMetrics
from conveyor.serving.oip import model_metadata, tensors_to_records
from conveyor.serving.predlog import PredictionLogWriter, iso_now
from conveyor.serving.slot import LoadedModel, ModelSlot
from conveyor.serving.validation import REQUEST_ID_FIELD, ServingLimits, columns_to_records

__all__ = ["HttpError", "ModelSlot", "create_serving_app"]

logger = logging.getLogger(__name__)

_JSON = "application/json"
_APPEND_NEWLINE = orjson.OPT_APPEND_NEWLINE

Endpoint = Callable[[Request], Awaitable[Response]]


class HttpError(Exception):
    """A request failed in a way the client can fix; carries its status and error list."""

    def __init__(
        self, status: int, message: str, errors: Sequence[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = list(errors or [])


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=_JSON)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        if int(declared) > limit:
            raise HttpError(413, f"request body of {declared} bytes exceeds the {limit}-byte limit")
        return await request.body()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, f"request body is not valid JSON: {exc}") from exc


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


class _Scorer:
    """Validate, score and log one request's records against the slot's current model."""

    def __init__(
        self,
        slot: ModelSlot,
        predlog: PredictionLogWriter,
        limits: ServingLimits,
        threshold: float,
        metrics: ServingMetrics,
    ) -> None:
        self.slot, self.predlog, self.limits = slot, predlog, limits
        self.threshold, self.metrics = threshold, metrics

    def model(self) -> LoadedModel:
        model = self.slot.model
        if model is None:
            raise HttpError(503, "no model is loaded yet")
        return model

    async def score(
        self, model: LoadedModel, records: list[Any], started: float
    ) -> tuple[list[str], list[float], list[int | None]]:
        batch = model.validator.validate(records)
        if batch.unseen:
            self.metrics.add_unseen(batch.unseen)
        if batch.errors:
            self.metrics.rejected_rows += len(records)
            raise HttpError(422, "the request has invalid records", batch.errors)
        matrix = batch.matrix
        n = len(records)
        if n <= self.limits.inline_rows:
            raw = model.predictor.predict_encoded(matrix)
        else:
            raw = await anyio.to_thread.run_sync(model.predictor.predict_encoded, matrix)
        scores: list[float] = np.asarray(raw, dtype=np.float64).tolist()
        if len(scores) != n:
            raise RuntimeError(
                f"model version {model.version} returned {len(scores)} scores for {n} rows"
            )
        if model.is_binary:
            threshold = self.threshold
            labels: list[int | None] = [1 if s >= threshold else 0 for s in scores]
        else:
            labels = [None] * n
        await self._log(model.version, records, batch.request_ids, scores, labels, started)
        if self.slot.samples is None:
            self.slot.remember(matrix)
        self.metrics.rows += n
        return batch.request_ids, scores, labels

    async def _log(
        self,
        version: int,
        records: list[dict[str, Any]],
        request_ids: list[str],
        scores: list[float],
        labels: list[int | None],
        started: float,
    ) -> None:
        ts = iso_now()
        latency_ms = round((time.perf_counter() - started) * 1000.0, 3)
        dumps = orjson.dumps
        data = b"".join(
            [
                dumps(
                    {
                        "request_id": rid,
                        "ts": ts,
                        "model_version": version,
                        "inputs": rec
                        if REQUEST_ID_FIELD not in rec
                        else {k: v for k, v in rec.items() if k != REQUEST_ID_FIELD},
                        "score": score,
                        "label": label,
                        "latency_ms": latency_ms,
                    },
                    option=_APPEND_NEWLINE,
                )
                for rid, rec, score, label in zip(request_ids, records, scores, labels, strict=True)
            ]
        )
        if self.predlog.fsync:
            await anyio.to_thread.run_sync(self.predlog.write_bytes, data)
        else:
            self.predlog.write_bytes(data)


def _guarded(
    metrics: ServingMetrics, endpoint: str, *, timed: bool = False
) -> Callable[[Endpoint], Endpoint]:
    """Answer every failure with a JSON error; count and time each request."""

    def wrap(handler: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await handler(request)
            except HttpError as exc:
                body: dict[str, Any] = {"error": exc.message}
                if exc.errors:
                    body["errors"] = exc.errors
                response = _json(body, exc.status)
            except Exception as exc:
                metrics.errors += 1
                logger.exception("unexpected error answering %s", request.url.path)
                response = _json(
                    {"error": f"the server failed to answer ({type(exc).__name__}); retry"}, 503
                )
            status = response.status_code
            metrics.observe(endpoint, status, time.perf_counter() - started if timed else None)
            return response

        return guarded

    return wrap


def create_serving_app(
    *,
    slot: ModelSlot,
    log: PredictionLogWriter,
    project: str,
    model_name: str,
    limits: ServingLimits = ServingLimits(),  # noqa: B008 - frozen, safe to share
    threshold: float = 0.5,
    poll_interval_s: float = 1.0,
    passthrough: Sequence[str] = (),
) -> Starlette:
    """Build the online prediction app.

    Parameters
    ----------
    slot : ModelSlot
        Holds the served model; its watcher runs for the app's lifetime.
    log : PredictionLogWriter
        Where every prediction is written before it is answered.
    project, model_name : str
        Shown in ``/v1/model`` and metrics; ``model_name`` is the V2 protocol model name.
    limits : ServingLimits
        Body size, rows per request and extra-field policy.
    threshold : float
        Binary tasks label a row 1 when its score is at or above this.
    poll_interval_s : float
        How often the slot checks which version should be served.
    passthrough : sequence of str
        Record fields that are not features but are accepted and logged (entity columns,
        for joining feedback by entity and time).

    Returns
    -------
    starlette.applications.Starlette
        Run it with ``uvicorn``; see the module docstring for the routes.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(
            f"The 'threshold' parameter of create_serving_app() must be a float in [0, 1]. "
            f"Got {threshold!r} instead."
        )
    if not poll_interval_s > 0:
        raise ValueError(
            "The 'poll_interval_s' parameter of create_serving_app() must be a float in "
            f"(0, inf). Got {poll_interval_s!r} instead."
        )
    slot.configure(limits=limits, passthrough=passthrough)
    metrics = ServingMetrics()
    scorer = _Scorer(slot, log, limits, threshold, metrics)
    max_body = limits.max_body_bytes

    @_guarded(metrics, "v1_predict", timed=True)
    async def predict(request: Request) -> Response:
        started = time.perf_counter()
        body = await _read_body(request, max_body)
        model = scorer.model()
        records = _v1_records(_parse_json(body))
        ids, scores, labels = await scorer.score(model, records, started)
        predictions = [
            {"request_id": r, "score": s, "label": lab}
            for r, s, lab in zip(ids, scores, labels, strict=True)
        ]
        version = model.version
        return _json(
            {"model_version": version, "predictions": predictions},
            headers={"x-model-version": str(version)},
        )

    @_guarded(metrics, "v1_health")
    async def health(request: Request) -> Response:
        return _json({"status": "ok"})

    @_guarded(metrics, "v1_ready")
    async def ready(request: Request) -> Response:
        model = scorer.model()
        return _json({"status": "ready", "model_version": model.version})

    @_guarded(metrics, "v1_model")
    async def model_info(request: Request) -> Response:
        model = scorer.model()
        return _json(
            {
                "project": project,
                "name": model_name,
                "version": model.version,
                "kind": model.predictor.kind,
                "loaded_at": model.loaded_at.isoformat(),
                "threshold": threshold if model.is_binary else None,
                "signature": model.predictor.signature.to_dict(),
            }
        )

    @_guarded(metrics, "metrics")
    async def prometheus(request: Request) -> Response:
        text = metrics.render(slot, project=project, model_name=model_name)
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    def named_model(request: Request) -> LoadedModel:
        name = request.path_params["name"]
        if name != model_name:
            raise HttpError(404, f"no model named {name!r}; this server serves {model_name!r}")
        return scorer.model()

    @_guarded(metrics, "v2_live")
    async def v2_live(request: Request) -> Response:
        return _json({"live": True})

    @_guarded(metrics, "v2_ready")
    async def v2_ready(request: Request) -> Response:
        scorer.model()
        return _json({"ready": True})

    @_guarded(metrics, "v2_model")
    async def v2_model(request: Request) -> Response:
        return _json(model_metadata(named_model(request), model_name))

    @_guarded(metrics, "v2_model_ready")
    async def v2_model_ready(request: Request) -> Response:
        named_model(request)
        return _json({"name": model_name, "ready": True})

    @_guarded(metrics, "v2_infer", timed=True)
    async def v2_infer(request: Request) -> Response:
        started = time.perf_counter()
        model = named_model(request)
        payload = _parse_json(await _read_body(request, max_body))
        records, errors = tensors_to_records(payload, model)
        if errors:
            raise HttpError(422, "the input tensors are invalid", errors)
        ids, scores, labels = await scorer.score(model, records, started)
        n = len(scores)
        outputs: list[dict[str, Any]] = [
            {"name": "score", "datatype": "FP64", "shape": [n], "data": scores}
        ]
        if model.is_binary:
            outputs.append({"name": "label", "datatype": "INT64", "shape": [n], "data": labels})
        outputs.append({"name": "request_id", "datatype": "BYTES", "shape": [n], "data": ids})
        answer = {"model_name": model_name, "model_version": str(model.version), "outputs": outputs}
        if isinstance(payload.get("id"), str):
            answer["id"] = payload["id"]
        return _json(answer, headers={"x-model-version": str(model.version)})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(slot.watch, poll_interval_s)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()
                log.close()

    routes = [
        Route("/v1/predict", predict, methods=["POST"]),
        Route("/v1/health", health, methods=["GET"]),
        Route("/v1/ready", ready, methods=["GET"]),
        Route("/v1/model", model_info, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
        Route("/v2/health/live", v2_live, methods=["GET"]),
        Route("/v2/health/ready", v2_ready, methods=["GET"]),
        Route("/v2/models/{name}", v2_model, methods=["GET"]),
        Route("/v2/models/{name}/ready", v2_model_ready, methods=["GET"]),
        Route("/v2/models/{name}/infer", v2_infer, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
