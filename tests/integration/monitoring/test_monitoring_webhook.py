"""The webhook sink against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from conveyor.alerting.sinks import DeliveryError, WebhookSink, alert_payload
from conveyor.core.clock import utcnow
from conveyor.core.entities import Alert, AlertId, AlertSeverity
from conveyor.core.errors import ConfigError


class Hook:
    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.status = 200
        self.delay_s = 0.0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(hook.delay_s)
                hook.received.append((self.path, dict(self.headers), body))
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/conveyor?team=ml"


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    thread = threading.Thread(target=h.server.serve_forever, daemon=True)
    thread.start()
    yield h
    h.server.shutdown()
    h.server.server_close()


def payload() -> dict:
    return alert_payload(
        Alert(
            id=AlertId("al_42"),
            project="toy",
            kind="decay",
            severity=AlertSeverity.CRITICAL,
            message="Live roc_auc 0.61 under the floor 0.7",
            created_at=utcnow(),
            evidence={"model_version": 2},
            report="/ws/projects/toy/reports/monitor-job.html",
        )
    )


def test_a_loopback_webhook_is_refused_by_default(hook: Hook):
    with pytest.raises(ConfigError, match="127.0.0.1.*allow_private"):
        WebhookSink(hook.url)
    assert hook.received == []


def test_a_loopback_webhook_is_reached_when_allowed(hook: Hook):
    WebhookSink(hook.url, allow_private=True).send(payload())
    [(path, headers, body)] = hook.received
    assert path == "/hooks/conveyor?team=ml"
    assert headers["Host"] == f"127.0.0.1:{hook.port}"
    assert headers["Content-Type"] == "application/json"
    sent = orjson.loads(body)
    assert sent["id"] == "al_42" and sent["report"].endswith("monitor-job.html")


def test_localhost_by_name_is_reached_through_a_checked_address(hook: Hook):
    WebhookSink(f"http://localhost:{hook.port}/x", allow_private=True).send(payload())
    assert hook.received[0][1]["Host"] == f"localhost:{hook.port}"


def test_the_address_is_checked_again_at_send_time(hook: Hook):
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])  # public at creation, then rebinds

    def resolver(host: str, port: int) -> list[str]:
        return next(answers)

    sink = WebhookSink(f"http://hooks.example.org:{hook.port}/x", resolver=resolver)
    with pytest.raises(DeliveryError, match="non-public"):
        sink.send(payload())
    assert hook.received == []


def test_failure_statuses_and_slow_hooks_are_delivery_errors(hook: Hook):
    hook.status = 503
    with pytest.raises(DeliveryError, match="answered 503"):
        WebhookSink(hook.url, allow_private=True).send(payload())
    hook.status, hook.delay_s = 200, 1.5
    with pytest.raises(DeliveryError, match="did not answer"):
        WebhookSink(hook.url, allow_private=True, timeout_s=0.3).send(payload())
