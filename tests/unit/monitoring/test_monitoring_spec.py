"""The `alerts:` and `monitoring:` sections of conveyor.yaml reject what cannot work."""

from __future__ import annotations

import pytest

from conveyor.core.errors import ConfigError
from conveyor.spec import parse_spec


def spec_with(**sections):
    return parse_spec({"project": "toy", "task": "binary", "label": "y", **sections})


@pytest.mark.parametrize(
    ("alerts", "message"),
    [
        ({"thresholds": [{"metric": "bias"}]}, "needs 'min', 'max' or both"),
        ({"thresholds": [{"metric": "bias", "min": 1, "max": 0}]}, "must not exceed"),
        ({"thresholds": [{"metric": "auc", "min": 0.7}]}, "'alerts.thresholds.0.metric'"),
        ({"sinks": [{"kind": "email", "to": "x"}]}, "'log', 'file', 'webhook', 'command'"),
        ({"sinks": [{"kind": "webhook", "url": "file:///etc/passwd"}]}, "alerts.sinks.0"),
        ({"sinks": [{"kind": "command", "argv": []}]}, "alerts.sinks.0.command.argv"),
        ({"cooldown_hours": -1}, "alerts.cooldown_hours"),
    ],
)
def test_invalid_alert_settings_name_the_field(alerts, message):
    with pytest.raises(ConfigError, match=message):
        spec_with(alerts=alerts)


def test_defaults_log_alerts_and_monitor_since_the_last_report():
    spec = spec_with()
    assert [s.kind for s in spec.alerts.sinks] == ["log"]
    assert spec.alerts.cooldown_hours == 6.0
    assert spec.monitoring.window == "since_last" and spec.monitoring.metrics_url is None
    day = spec_with(monitoring={"window": "day"})
    assert day.monitoring.window == "day"
