"""Where alerts go; moved to :mod:`conveyor.alerting.sinks`, names kept here."""

from __future__ import annotations

from conveyor.alerting.sinks import (
    AlertSink,
    CommandSink,
    Delivery,
    DeliveryError,
    FileSink,
    LogSink,
    Resolver,
    WebhookSink,
    alert_payload,
    build_sink,
    check_webhook_url,
    deliver,
    is_public_address,
    system_resolver,
)

__all__ = [
    "AlertSink",
    "CommandSink",
    "Delivery",
    "DeliveryError",
    "FileSink",
    "LogSink",
    "Resolver",
    "WebhookSink",
    "alert_payload",
    "build_sink",
    "check_webhook_url",
    "deliver",
    "is_public_address",
    "system_resolver",
]
