"""Conveyor's errors as HTTP answers, mapped once, here.

===================================================  ======  ==========================
error                                                status  meaning for the caller
===================================================  ======  ==========================
NotFoundError                                        404     no such run, version, alias
AlreadyExistsError, ConflictError                    409     a concurrent change won (a
                                                             stale ``expected_revision``,
                                                             a write-once param): re-read
InvalidInputError (Schema, DataQuality), ConfigError 422     fix the request
request body or query that does not validate         422     names the field
BlockedError (Quarantined, GateRejected)             423     stopped on purpose (an
                                                             approval is missing, the gate
                                                             said no): retrying won't help
StoreError                                           503     the server's backend failed
missing or wrong bearer token                        401
unknown ``Host`` header                              400     (TrustedHostMiddleware)
===================================================  ======  ==========================

423 (Locked) rather than 409 for a blocked action keeps "retry with fresh state" (409) apart
from "the line said no" (423). Every error body is ``{"error": <class>, "message": ...}``
(:class:`~conveyor.server.schemas.ErrorOut`); the Python client raises the named class again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from conveyor.core import errors

_STATUSES: tuple[tuple[type[errors.ConveyorError], int], ...] = (
    (errors.NotFoundError, 404),
    (errors.AlreadyExistsError, 409),
    (errors.ConflictError, 409),
    (errors.InvalidInputError, 422),
    (errors.ConfigError, 422),
    (errors.BlockedError, 423),
    (errors.StoreError, 503),
)
_HTTP_NAMES = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 405: "MethodNotAllowed"}


def status_of(exc: errors.ConveyorError) -> int:
    """The HTTP status that answers ``exc`` (500 for an error with no mapping)."""
    for cls, status in _STATUSES:
        if isinstance(exc, cls):
            return status
    return 500


def install_error_handlers(app: FastAPI) -> None:
    """Answer Conveyor errors, validation errors and HTTP errors with an ``ErrorOut`` body."""
    app.add_exception_handler(errors.ConveyorError, _conveyor_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)


async def _conveyor_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.ConveyorError)
    body: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, errors.BlockedError):
        body["evidence"] = exc.evidence
    return JSONResponse(body, status_code=status_of(exc))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = list(exc.errors())
    message = " ".join(_describe(p) for p in problems[:5])
    details = [
        {"field": _field(p.get("loc", ())), "message": p.get("msg", ""), "type": p.get("type")}
        for p in problems
    ]
    body = {"error": "InvalidInputError", "message": message, "errors": details}
    return JSONResponse(body, status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    name = _HTTP_NAMES.get(exc.status_code, f"HTTP{exc.status_code}")
    body = {"error": name, "message": str(exc.detail)}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def _describe(problem: dict[str, Any]) -> str:
    loc = problem.get("loc", ())
    where = {"body": "request body", "query": "query", "path": "path"}.get(
        str(loc[0]) if loc else "", "request"
    )
    got = problem.get("input")
    shown = "nothing" if problem.get("type") == "missing" else repr(got)[:200]
    return (
        f"The '{_field(loc)}' field of the {where} is invalid: {problem.get('msg', '')}. "
        f"Got {shown} instead."
    )


def _field(loc: Sequence[Any]) -> str:
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path") else list(loc)
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"
