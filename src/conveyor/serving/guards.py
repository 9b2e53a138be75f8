"""The prediction server's front door: what a request must be before any route sees it.

:class:`RequestGuard` is an ASGI middleware in front of every route of the online app
(predictions, feedback, offline lookups), behind Starlette's ``TrustedHostMiddleware`` (the
``Host`` allowlist of :mod:`conveyor.core.hosts`, shared with ``conveyor server``). In order:

1. CORS preflight (``OPTIONS`` with ``Origin``): 204 with the CORS headers for an origin in
   ``cors_origins``, 403 otherwise. Answers to an allowed origin carry
   ``Access-Control-Allow-Origin: <that origin>`` and ``Vary: Origin``; credentials are never
   allowed (``Access-Control-Allow-Credentials`` is never sent) and ``*`` is refused in the
   configuration, so no page of an arbitrary origin can read an answer.
2. A write (any method but ``GET``, ``HEAD`` and ``OPTIONS``) from another site is refused
   with 403: an ``Origin`` that is neither the server's own nor in ``cors_origins``, or
   ``Sec-Fetch-Site: cross-site``/``same-site`` without an allowed ``Origin``.
3. With a token, a write needs ``Authorization: Bearer <token>`` (401), except the prediction
   routes in ``public_writes``: reads and predictions stay public.
4. A write's body must be JSON. A declared ``Content-Type`` must be ``application/json`` or
   ``...+json`` (415 otherwise, so an HTML form, which can only send form or text types,
   cannot post); a body without one (``tritonclient`` sends none) must still parse, and a
   browser sending one cross-site is refused by rule 2. The body must arrive within
   ``body_timeout_s`` (408, and the connection is closed), fit ``max_body_bytes`` (413),
   parse (400), repeat no key in any object (422 naming the key) and hold no string or key
   longer than ``max_string_chars`` (422 naming where). The parsed value is handed to the
   route (:func:`request_json`), so it is parsed once.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.core.hosts import check_origins

__all__ = [
    "BodyError",
    "GuardPolicy",
    "RequestGuard",
    "has_long_string",
    "is_authorised",
    "parse_json_body",
    "request_json",
]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CROSS_SITE = frozenset({"cross-site", "same-site"})
_PARSED = "conveyor.parsed_json"


class BodyError(Exception):
    """A request body the server refuses: its status, message and per-field errors."""

    def __init__(self, status: int, message: str, errors: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = list(errors)


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    """What :class:`RequestGuard` lets through; see the module docstring.

    Parameters
    ----------
    token : str, optional
        When set, writes other than ``public_writes`` need ``Authorization: Bearer <token>``.
    cors_origins : sequence of str
        Browser origins allowed to call the server (and to read its answers).
    public_writes : sequence of str
        Regular expressions of the paths written to without a token (the prediction routes).
    validated_strings : sequence of str
        Regular expressions of the paths whose route bounds string lengths itself (the
        prediction routes' record validator), so the body is not walked twice.
    max_body_bytes : int
        Largest body.
    max_string_chars : int
        Longest string value or object key anywhere in a body.
    body_timeout_s : float
        Longest time a client may take to send its body.
    """

    token: str | None = None
    cors_origins: tuple[str, ...] = ()
    public_writes: tuple[str, ...] = ()
    validated_strings: tuple[str, ...] = ()
    max_body_bytes: int = 16 * 1024 * 1024
    max_string_chars: int = 4096
    body_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        check_origins(self.cors_origins)


def is_authorised(headers: Headers, token: str | None) -> bool:
    """Whether a request may write: always without a token, else with ``Bearer <token>``."""
    if token is None:
        return True
    scheme, _, given = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())


def _duplicate_key(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise BodyError(
                    422,
                    f"the body repeats the key {key!r} in one object; each key may appear once",
                    [{"row": None, "field": key, "error": "duplicate key"}],
                )
            seen.add(key)
    return found


def has_long_string(value: Any, limit: int) -> bool:
    """Whether any string or object key in ``value`` (nested at any depth) is longer than
    ``limit``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            if max(map(len, item), default=0) > limit:
                return True
            values: Any = item.values()
        elif type(item) is list:
            values = item
        else:
            return type(item) is str and len(item) > limit
        for v in values:
            t = type(v)
            if t is str:
                if len(v) > limit:
                    return True
            elif t is dict or t is list:
                stack.append(v)
    return False


def _long_string(value: Any, limit: int, where: str = "") -> dict[str, Any] | None:
    """Where the first string or key longer than ``limit`` is (``records[3].carrier``)."""
    if isinstance(value, str):
        return {"field": where or "(body)", "chars": len(value)} if len(value) > limit else None
    items: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            path = f"{where}.{k}" if where else k
            if len(k) > limit:
                return {"field": f"{where or '(body)'} key {k[:40]!r}...", "chars": len(k)}
            items.append((path, v))
    elif isinstance(value, list):
        items = [(f"{where}[{i}]", v) for i, v in enumerate(value)]
    for path, v in items:
        found = _long_string(v, limit, path)
        if found is not None:
            return found
    return None


def parse_json_body(body: bytes, *, max_string_chars: int | None) -> Any:
    """Parse a request body, refusing duplicate keys and over-long strings.

    ``max_string_chars`` ``None`` leaves string lengths to the route (the prediction routes'
    record validator bounds every field it scores or logs, in the loop it runs anyway).

    Raises
    ------
    BodyError
        400 when the body is not JSON; 422 naming the key repeated in one object, or the
        field whose string (or key) is longer than ``max_string_chars``.
    """
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BodyError(400, f"request body is not valid JSON: {exc}") from exc
    # Colons are key separators or inside strings, and serialising the parsed value again
    # keeps every one of them unless a repeated key dropped its twin: the same count means no
    # key was repeated. A colon written as a \u escape would not be counted: check exactly.
    if b"\\u" in body or body.count(b":") != orjson.dumps(payload).count(b":"):
        try:
            json.loads(body, object_pairs_hook=_duplicate_key)
        except ValueError as exc:  # BodyError is no ValueError: a repeated key passes through
            raise BodyError(400, f"request body is not valid JSON: {exc}") from exc
    if (
        max_string_chars is not None
        and len(body) > max_string_chars
        and has_long_string(payload, max_string_chars)
    ):
        found = _long_string(payload, max_string_chars) or {"field": None, "chars": None}
        raise BodyError(
            422,
            f"the value of {found['field']!r} has {found['chars']} characters; at most "
            f"{max_string_chars} are allowed (serving.max_string_chars)",
            [{"row": None, "field": found["field"], "error": "string too long"}],
        )
    return payload


async def request_json(request: Request, *, max_body_bytes: int, max_string_chars: int) -> Any:
    """The JSON body of ``request``: as :class:`RequestGuard` parsed it, else read and parsed
    here with the same rules (a route mounted without the guard).

    Raises
    ------
    BodyError
        As :func:`parse_json_body`, and 413 for a body over ``max_body_bytes``.
    """
    if _PARSED in request.scope:
        return request.scope[_PARSED]
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body_bytes:
            raise BodyError(413, f"request body exceeds the {max_body_bytes}-byte limit")
        chunks.append(chunk)
    return parse_json_body(b"".join(chunks), max_string_chars=max_string_chars)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _same_origin(origin: str, headers: Headers) -> bool:
    host = headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


class RequestGuard:
    """ASGI middleware applying a :class:`GuardPolicy` to every request (module docstring).

    ``on_refused`` is told the path and status of every write it refuses (to count them).
    """

    def __init__(
        self,
        app: ASGIApp,
        policy: GuardPolicy,
        on_refused: Callable[[str, int], None] | None = None,
    ) -> None:
        self.app = app
        self.policy = policy
        self.on_refused = on_refused
        self._public = [re.compile(p) for p in policy.public_writes]
        self._validated = [re.compile(p) for p in policy.validated_strings]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy, headers, method = self.policy, Headers(scope=scope), scope["method"]
        origin = headers.get("origin")
        allowed = origin is not None and origin in policy.cors_origins
        if method == "OPTIONS" and origin is not None:
            await self._preflight(origin, allowed, send)
            return
        if method not in _SAFE_METHODS:
            try:
                body = await self._admit(scope, headers, origin, allowed, receive)
            except BodyError as exc:
                if self.on_refused is not None:
                    self.on_refused(scope["path"], exc.status)
                await _refuse(send, exc, origin if allowed else None)
                return
            receive = _replay(body, receive)
        if allowed and origin is not None:
            send = _with_cors(send, origin)
        await self.app(scope, receive, send)

    async def _admit(
        self, scope: Scope, headers: Headers, origin: str | None, allowed: bool, receive: Receive
    ) -> bytes:
        policy = self.policy
        site = headers.get("sec-fetch-site", "")
        if origin is not None and not allowed and not _same_origin(origin, headers):
            raise BodyError(403, f"cross-site writes are refused; origin {origin!r} is not "
                            "in serving.cors_origins")  # fmt: skip
        if site in _CROSS_SITE and not allowed:
            raise BodyError(403, f"cross-site writes are refused (Sec-Fetch-Site: {site})")
        path = scope["path"]
        if not any(p.fullmatch(path) for p in self._public) and not is_authorised(
            headers, policy.token
        ):
            what = "no bearer token" if "authorization" not in headers else "a wrong one"
            raise BodyError(401, f"{scope['method']} {path} needs a bearer token; got {what}")
        content_type = headers.get("content-type")
        if content_type is not None and not _is_json(content_type):
            raise BodyError(
                415, f"the body must be JSON (Content-Type: application/json); got "
                f"{content_type!r}"
            )  # fmt: skip
        body = await self._read(headers, receive)
        validated = any(p.fullmatch(path) for p in self._validated)
        limit = None if validated else policy.max_string_chars
        scope[_PARSED] = parse_json_body(body, max_string_chars=limit)
        return body

    async def _read(self, headers: Headers, receive: Receive) -> bytes:
        limit = self.policy.max_body_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise BodyError(413, f"request body of {declared} bytes exceeds the {limit}-byte limit")
        chunks: list[bytes] = []
        size = 0
        with anyio.move_on_after(self.policy.body_timeout_s):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise BodyError(400, "the client went away before sending its body")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise BodyError(413, f"request body exceeds the {limit}-byte limit")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
        raise BodyError(
            408,
            f"the request body did not arrive within {self.policy.body_timeout_s:g} s "
            "(serving.body_timeout_s)",
        )

    async def _preflight(self, origin: str, allowed: bool, send: Send) -> None:
        if not allowed:
            allowed_text = ", ".join(self.policy.cors_origins) or "none"
            await _refuse(
                send,
                BodyError(
                    403, f"origin {origin!r} is not allowed; allowed origins: {allowed_text}"
                ),
                None,
            )
            return
        headers = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
            (b"access-control-allow-headers", b"authorization, content-type"),
            (b"access-control-max-age", b"600"),
            (b"vary", b"Origin"),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _with_cors(send: Send, origin: str) -> Send:
    async def cors(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [
                *message.get("headers", []),
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"vary", b"Origin"),
            ]
        await send(message)

    return cors


async def _refuse(send: Send, exc: BodyError, origin: str | None) -> None:
    body: dict[str, Any] = {"error": exc.message}
    if exc.errors:
        body["errors"] = exc.errors
    data = orjson.dumps(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if exc.status == 408:
        headers.append((b"connection", b"close"))
    if origin is not None:
        headers += [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"vary", b"Origin"),
        ]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
