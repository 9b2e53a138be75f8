"""Raise an alert: build it with its link, store it, send it to the project's sinks.

:func:`raise_alert` is the one way every layer raises an alert (monitoring rules, the gate,
the release watch, retention, the prediction server), so no alert is stored without being sent
or sent without its link. Delivery never fails the caller: a sink that cannot be built (a
webhook host that does not resolve) or cannot send is logged and reported as a failed
:class:`~conveyor.alerting.sinks.Delivery`. With ``background=True`` the sinks run on a worker
thread, so a slow webhook or command never holds up the caller (the prediction server's model
loading); the interpreter waits for queued deliveries when it exits.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from conveyor.alerting.links import alert_link
from conveyor.alerting.sinks import AlertSink, Delivery, DeliveryError, build_sink, deliver
from conveyor.core.clock import new_id, utcnow
from conveyor.core.entities import Alert, AlertId, AlertSeverity
from conveyor.core.errors import ConfigError
from conveyor.spec import ProjectSpec
from conveyor.workspace import Workspace

_delivery_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class RaisedAlert:
    """A stored alert and its deliveries (done, or under way on the delivery thread)."""

    alert: Alert
    delivered: Future[list[Delivery]]

    @property
    def deliveries(self) -> list[Delivery]:
        """One :class:`Delivery` per sink, waiting for a background delivery to end."""
        return self.delivered.result()


class RefusedSink:
    """A configured sink that could not be built: every send fails with the reason."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def send(self, payload: Mapping[str, Any]) -> None:
        """Refuse, with the reason the sink could not be built.

        Raises
        ------
        DeliveryError
            Always.
        """
        raise DeliveryError(f"The sink {self.name} is not usable: {self.reason}")


def build_sinks(ws: Workspace, spec: ProjectSpec, *, strict: bool = False) -> list[AlertSink]:
    """The project's configured sinks, in order.

    A sink that cannot be built (a refused webhook URL, see
    :func:`~conveyor.alerting.sinks.check_webhook_url`) fails each send with the reason, or,
    with ``strict`` (``conveyor alerts test-sink``), raises it.

    Raises
    ------
    ConfigError
        With ``strict``, if a configured sink cannot be built.
    """
    sinks: list[AlertSink] = []
    for sink_spec in spec.alerts.sinks:
        try:
            sinks.append(build_sink(sink_spec, home=ws.home))
        except ConfigError as exc:
            if strict:
                raise
            sinks.append(RefusedSink(sink_spec.kind, str(exc)))
    return sinks


def notify(ws: Workspace, spec: ProjectSpec, alert: Alert) -> list[Delivery]:
    """Send an alert already stored to the project's sinks (never raises)."""
    return deliver(build_sinks(ws, spec), alert)


def _pool() -> ThreadPoolExecutor:
    global _delivery_pool
    with _pool_lock:
        if _delivery_pool is None:
            _delivery_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="conveyor-alerts")
        return _delivery_pool


def _forget_pool() -> None:
    """A forked child has no delivery thread: it starts its own when it first needs one."""
    global _delivery_pool, _pool_lock
    _delivery_pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def _send(
    ws: Workspace, spec: ProjectSpec, sinks: Sequence[AlertSink] | None, alert: Alert
) -> list[Delivery]:
    return notify(ws, spec, alert) if sinks is None else deliver(sinks, alert)


def raise_alert(
    ws: Workspace,
    spec: ProjectSpec,
    *,
    kind: str,
    message: str,
    evidence: Mapping[str, Any],
    severity: AlertSeverity,
    page: str | None = None,
    sinks: Sequence[AlertSink] | None = None,
    now: datetime | None = None,
    background: bool = False,
) -> RaisedAlert:
    """Store an alert of ``kind`` about ``spec``'s project and send it to its sinks.

    Parameters
    ----------
    ws, spec : Workspace, ProjectSpec
        Where the alert is stored, and the project whose ``alerts.sinks`` receive it.
    kind, message, evidence, severity
        What the alert says; its link is :func:`~conveyor.alerting.links.alert_link` of
        ``kind`` and ``evidence``.
    page : str, optional
        The HTML report written with the alert (a monitoring window's), its link if given.
    sinks : sequence of AlertSink, optional
        The sinks to send to; the project's configured ones by default.
    now : datetime, optional
        The alert's time; the current time by default.
    background : bool
        Build the sinks and send on the delivery thread, and return at once (the result's
        ``delivered`` future completes when every sink was tried): neither a webhook host's
        name lookup nor a slow sink then holds up the caller.

    Returns
    -------
    RaisedAlert
        The stored alert and one delivery result per sink.

    Raises
    ------
    StoreError
        If the alert cannot be stored (it is then not sent). A sink never raises.
    """
    alert = Alert(
        id=AlertId(new_id("al_")),
        project=spec.project,
        kind=kind,
        severity=severity,
        message=message,
        created_at=now or utcnow(),
        evidence=dict(evidence),
        report=alert_link(kind, evidence, model=spec.model_name, page=page),
    )
    ws.stores.monitor.add_alert(alert)
    if background and (sinks or (sinks is None and spec.alerts.sinks)):
        return RaisedAlert(alert, _pool().submit(_send, ws, spec, sinks, alert))
    done: Future[list[Delivery]] = Future()
    done.set_result(_send(ws, spec, sinks, alert))
    return RaisedAlert(alert, done)


__all__ = ["RaisedAlert", "RefusedSink", "build_sinks", "notify", "raise_alert"]
