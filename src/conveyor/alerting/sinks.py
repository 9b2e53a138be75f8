"""Where alerts go: the log, a JSON-lines file, a webhook, or a command.

Every sink takes the same JSON payload (:func:`alert_payload`). A webhook URL is checked when
the sink is built and again before every send: its host is resolved and every address must be
public, neither loopback, private, link-local, multicast, reserved nor unspecified, unless the
sink says ``allow_private: true``. The request then goes to the address that was checked (the
host name travels in the ``Host`` header and TLS SNI), so a name that resolves differently on a
second lookup cannot steer it elsewhere. Redirects are not followed. A command hook runs its
argv with no shell, gets the payload on standard input and is killed after its timeout.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from conveyor.alerting.links import link_of
from conveyor.core.entities import Alert
from conveyor.core.errors import ConfigError, ConveyorError
from conveyor.spec import (
    CommandSinkSpec,
    FileSinkSpec,
    LogSinkSpec,
    SinkSpec,
    WebhookSinkSpec,
)

log = logging.getLogger("conveyor.alerts")

Resolver = Callable[[str, int], Sequence[str]]


class DeliveryError(ConveyorError):
    """An alert could not be delivered to a sink (refused address, timeout, failure status)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of sending one alert to one sink."""

    sink: str
    ok: bool
    detail: str


class AlertSink(Protocol):
    """Delivers alert payloads; ``send`` raises :class:`DeliveryError` when it cannot."""

    name: str

    def send(self, payload: Mapping[str, Any]) -> None: ...


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The JSON-able form of ``alert`` every sink receives."""
    return {
        "id": alert.id,
        "project": alert.project,
        "kind": alert.kind,
        "severity": str(alert.severity),
        "message": alert.message,
        "created_at": alert.created_at.isoformat(),
        "evidence": dict(alert.evidence),
        "report": link_of(alert),
    }


class LogSink:
    """Writes each alert to the ``conveyor.alerts`` logger at warning level."""

    name = "log"

    def send(self, payload: Mapping[str, Any]) -> None:
        log.warning(
            "alert %s [%s] %s: %s (report: %s)",
            payload["id"],
            payload["severity"],
            payload["kind"],
            payload["message"],
            payload.get("report"),
        )


class FileSink:
    """Appends each alert as one JSON line in a single ``os.write`` on an ``O_APPEND`` file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = f"file:{self.path}"

    def send(self, payload: Mapping[str, Any]) -> None:
        data = orjson.dumps(payload, option=orjson.OPT_APPEND_NEWLINE)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            raise DeliveryError(f"Cannot append the alert to {self.path}: {exc}") from exc


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public_address(address: str) -> bool:
    """Whether ``address`` is a routable public address (not loopback, private, link-local…).

    Examples
    --------
    >>> is_public_address("8.8.8.8"), is_public_address("127.0.0.1"), is_public_address("fe80::1")
    (True, False, False)
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def check_webhook_url(
    url: str, *, allow_private: bool, resolver: Resolver = system_resolver
) -> tuple[str, str, int, list[str]]:
    """Resolve ``url``'s host and check every address; return (scheme, host, port, addresses).

    Raises
    ------
    ConfigError
        If the URL is not http(s) with a host, the host does not resolve, or (without
        ``allow_private``) one of its addresses is not public.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"A webhook URL must be http:// or https:// with a host. Got {url!r} instead."
        )
    if parts.username or parts.password:
        raise ConfigError(f"A webhook URL must not carry credentials. Got {parts.netloc!r}.")
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = list(resolver(host, port))
    except OSError as exc:
        raise ConfigError(f"The webhook host {host!r} does not resolve: {exc}") from exc
    if not addresses:
        raise ConfigError(f"The webhook host {host!r} resolves to no address.")
    if not allow_private:
        blocked = [a for a in addresses if not is_public_address(a)]
        if blocked:
            raise ConfigError(
                f"The webhook URL {url!r} resolves to non-public address(es) "
                f"{', '.join(blocked)} (loopback, private or link-local); set "
                "'allow_private: true' on the sink to allow them."
            )
    return parts.scheme, host, port, addresses


class WebhookSink:
    """POSTs each alert as JSON to a URL checked at creation and before every send."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        allow_private: bool = False,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.allow_private = allow_private
        self.resolver = resolver
        self.name = f"webhook:{urlsplit(url).hostname}"
        check_webhook_url(url, allow_private=allow_private, resolver=resolver)

    def send(self, payload: Mapping[str, Any]) -> None:
        try:
            scheme, host, port, addresses = check_webhook_url(
                self.url, allow_private=self.allow_private, resolver=self.resolver
            )
        except ConfigError as exc:
            raise DeliveryError(str(exc)) from exc
        parts = urlsplit(self.url)
        default_port = port == (443 if scheme == "https" else 80)
        headers = {
            "Host": host if default_port else f"{host}:{port}",
            "Content-Type": "application/json",
            "User-Agent": "conveyor-alerts",
        }
        body = orjson.dumps(payload)
        failure: Exception | None = None
        with httpx.Client(timeout=self.timeout_s, follow_redirects=False) as client:
            for address in addresses:  # each one checked above; the first that connects
                literal = f"[{address}]" if ":" in address else address
                pinned = urlunsplit(
                    (scheme, f"{literal}:{port}", parts.path or "/", parts.query, "")
                )
                try:
                    response = client.post(
                        pinned,
                        content=body,
                        headers=headers,
                        extensions={"sni_hostname": host} if scheme == "https" else None,
                    )
                except httpx.ConnectError as exc:
                    failure = exc
                    continue
                except httpx.HTTPError as exc:
                    raise DeliveryError(f"The webhook {host} did not answer: {exc!r}") from exc
                if not 200 <= response.status_code < 300:
                    raise DeliveryError(f"The webhook {host} answered {response.status_code}.")
                return
        raise DeliveryError(f"Cannot connect to the webhook {host}: {failure!r}")


class CommandSink:
    """Runs ``argv`` (no shell) with the alert as JSON on standard input."""

    def __init__(self, argv: Sequence[str], *, timeout_s: float = 10.0) -> None:
        if not argv or not all(isinstance(a, str) and a for a in argv):
            raise ConfigError(
                f"A command sink needs a non-empty list of non-empty strings. Got {argv!r}."
            )
        self.argv = list(argv)
        self.timeout_s = timeout_s
        self.name = f"command:{Path(self.argv[0]).name}"

    def send(self, payload: Mapping[str, Any]) -> None:
        env = {
            **os.environ,
            "CONVEYOR_ALERT_ID": str(payload["id"]),
            "CONVEYOR_ALERT_KIND": str(payload["kind"]),
            "CONVEYOR_ALERT_REPORT": str(payload.get("report") or ""),
        }
        try:
            done = subprocess.run(  # noqa: S603 - argv from the project's own config, no shell
                self.argv,
                input=orjson.dumps(payload),
                capture_output=True,
                timeout=self.timeout_s,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DeliveryError(
                f"The alert command {self.argv[0]!r} ran past its {self.timeout_s} s timeout."
            ) from exc
        except OSError as exc:
            raise DeliveryError(f"Cannot run the alert command {self.argv[0]!r}: {exc}") from exc
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip()[-300:]
            raise DeliveryError(
                f"The alert command {self.argv[0]!r} exited with {done.returncode}: {tail}"
            )


def build_sink(spec: SinkSpec, *, home: Path, resolver: Resolver = system_resolver) -> AlertSink:
    """The sink a ``alerts.sinks`` entry describes; relative file paths are under ``home``.

    Raises
    ------
    ConfigError
        If a webhook URL is refused (see :func:`check_webhook_url`) or a command is empty.
    """
    if isinstance(spec, LogSinkSpec):
        return LogSink()
    if isinstance(spec, FileSinkSpec):
        path = Path(spec.path).expanduser()
        return FileSink(path if path.is_absolute() else home / path)
    if isinstance(spec, WebhookSinkSpec):
        return WebhookSink(
            spec.url, timeout_s=spec.timeout_s, allow_private=spec.allow_private, resolver=resolver
        )
    if isinstance(spec, CommandSinkSpec):
        return CommandSink(spec.argv, timeout_s=spec.timeout_s)
    raise ConfigError(f"Unknown alert sink {spec!r}.")


def deliver(sinks: Sequence[AlertSink], alert: Alert) -> list[Delivery]:
    """Send ``alert`` to every sink; a failing sink is logged and reported, never raised.

    A sink that fails in an unexpected way (not a :class:`DeliveryError`) is reported the
    same way, with its traceback in the log, so no sink can fail the code raising the alert.
    """
    payload = alert_payload(alert)
    results = []
    for sink in sinks:
        try:
            sink.send(payload)
        except DeliveryError as exc:
            log.error("alert %s not delivered to %s: %s", alert.id, sink.name, exc)
            results.append(Delivery(sink.name, False, str(exc)))
        except Exception as exc:  # a sink's own bug must not fail whoever raised the alert
            log.exception("alert %s not delivered to %s", alert.id, sink.name)
            results.append(Delivery(sink.name, False, f"{type(exc).__name__}: {exc}"))
        else:
            results.append(Delivery(sink.name, True, "sent"))
    return results
