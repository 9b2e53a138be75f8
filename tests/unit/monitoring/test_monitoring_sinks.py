"""Alert sinks: address checks, the file sink and the command hook (real files, real processes)."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import pytest

from conveyor.alerting.sinks import (
    CommandSink,
    DeliveryError,
    FileSink,
    alert_payload,
    build_sink,
    check_webhook_url,
    deliver,
    is_public_address,
)
from conveyor.core.clock import utcnow
from conveyor.core.entities import Alert, AlertId, AlertSeverity
from conveyor.core.errors import ConfigError
from conveyor.spec import parse_spec


def make_alert(kind: str = "drift") -> Alert:
    return Alert(
        id=AlertId("al_1"),
        project="toy",
        kind=kind,
        severity=AlertSeverity.WARNING,
        message="2 feature(s) drifted",
        created_at=utcnow(),
        evidence={"report": "mr_1", "model_version": 3},
        report="/tmp/monitor.html",
    )


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("127.8.9.10", False),
        ("::1", False),
        ("10.0.0.7", False),
        ("172.20.1.1", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("fe80::1", False),
        ("fd12:3456::1", False),
        ("::ffff:10.0.0.1", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("239.1.1.1", False),
    ],
)
def test_only_public_addresses_pass(address, public):
    assert is_public_address(address) is public


def test_a_url_is_refused_when_any_resolved_address_is_private():
    def resolver(host, port):
        return ["93.184.216.34", "10.1.2.3"]

    with pytest.raises(ConfigError, match=r"10\.1\.2\.3.*allow_private"):
        check_webhook_url("https://hooks.example.org/x", allow_private=False, resolver=resolver)
    checked = check_webhook_url(
        "https://hooks.example.org/x", allow_private=True, resolver=resolver
    )
    assert checked == ("https", "hooks.example.org", 443, ["93.184.216.34", "10.1.2.3"])


@pytest.mark.parametrize(
    "url", ["ftp://example.org/", "http://user:pw@example.org/", "http:///nohost"]
)
def test_malformed_or_credentialed_urls_are_refused(url):
    with pytest.raises(ConfigError):
        check_webhook_url(url, allow_private=True, resolver=lambda h, p: ["93.184.216.34"])


def test_an_unresolvable_host_is_a_config_error():
    def resolver(host, port):
        raise OSError("Name or service not known")

    with pytest.raises(ConfigError, match="does not resolve"):
        check_webhook_url("http://nowhere.invalid/", allow_private=False, resolver=resolver)


def test_file_sink_appends_one_json_line_per_alert(tmp_path: Path):
    sink = FileSink(tmp_path / "sub" / "alerts.jsonl")
    sink.send(alert_payload(make_alert("drift")))
    sink.send(alert_payload(make_alert("bias")))
    lines = (tmp_path / "sub" / "alerts.jsonl").read_bytes().splitlines()
    assert [orjson.loads(x)["kind"] for x in lines] == ["drift", "bias"]
    assert orjson.loads(lines[0])["report"] == "/tmp/monitor.html"


def test_command_sink_gets_the_payload_on_stdin_without_a_shell(tmp_path: Path):
    out = tmp_path / "got.json"
    script = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_bytes(sys.stdin.buffer.read())"
    # A ';' or '$(...)' in an argument stays literal: there is no shell to interpret it.
    sink = CommandSink([sys.executable, "-c", script, str(out), "; touch $(pwd)/pwned"])
    sink.send(alert_payload(make_alert()))
    assert orjson.loads(out.read_bytes())["id"] == "al_1"
    assert not (tmp_path / "pwned").exists()


def test_command_sink_failures_and_timeouts_are_delivery_errors():
    failing = CommandSink([sys.executable, "-c", "import sys; sys.exit('boom')"])
    with pytest.raises(DeliveryError, match="exited with 1: boom"):
        failing.send(alert_payload(make_alert()))
    slow = CommandSink([sys.executable, "-c", "import time; time.sleep(5)"], timeout_s=0.3)
    with pytest.raises(DeliveryError, match="timeout"):
        slow.send(alert_payload(make_alert()))
    results = deliver([failing], make_alert())
    assert results[0].ok is False and "boom" in results[0].detail


def test_sinks_are_built_from_the_spec_and_relative_files_live_in_the_workspace(tmp_path):
    spec = parse_spec(
        {
            "project": "toy",
            "task": "binary",
            "label": "y",
            "alerts": {"sinks": [{"kind": "file", "path": "alerts.jsonl"}, {"kind": "log"}]},
        }
    )
    sinks = [build_sink(s, home=tmp_path) for s in spec.alerts.sinks]
    assert sinks[0].path == tmp_path / "alerts.jsonl"
    assert sinks[1].name == "log"


def test_a_webhook_to_loopback_is_refused_when_the_sink_is_built(tmp_path):
    spec = parse_spec(
        {
            "project": "toy",
            "task": "binary",
            "label": "y",
            "alerts": {"sinks": [{"kind": "webhook", "url": "http://127.0.0.1:9/hook"}]},
        }
    )
    with pytest.raises(ConfigError, match="non-public"):
        build_sink(spec.alerts.sinks[0], home=tmp_path)
