"""The /metrics page: every family has HELP and one label set, and the slots' and logs'
figures are on it; the admission controller refuses by expected wait."""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from conveyor.monitoring.scrape import sample_value
from conveyor.serving.admission import AdmissionConfig, AdmissionControl, QueueFullError
from conveyor.serving.app import create_serving_app


def wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def assert_well_formed(page: str) -> None:
    """HELP on every family, and one set of label names per family (``le`` aside)."""
    families = list(text_string_to_metric_families(page))
    assert families
    for family in families:
        assert family.documentation, f"{family.name} has no HELP"
        label_sets = {
            frozenset(k for k in s.labels if k not in ("le", "quantile")) for s in family.samples
        }
        assert len(label_sets) <= 1, (family.name, label_sets)


def test_every_family_has_help_and_one_label_set(slot, predlog, record):
    app = create_serving_app(
        slot=slot, log=predlog, project="flights", model_name="delays", poll_interval_s=0.05
    )
    with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as client:
        wait_for(lambda: client.get("/v1/ready").status_code == 200)
        assert client.post("/v1/predict", json=record(carrier="ZZ")).status_code == 200
        assert client.post("/v1/predict", json=record(distance="far")).status_code == 422
        assert client.get("/v1/health").status_code == 200
        page = client.get("/metrics").text
    assert_well_formed(page)
    requests = "conveyor_serving_requests_total"
    # endpoints of no model carry model="" rather than a smaller label set
    assert sample_value(page, requests, model="", endpoint="v1_health", status="200") == 1
    assert sample_value(page, requests, model="delays", endpoint="v1_predict", status="422") == 1
    written = sample_value(page, "conveyor_predlog_written_writes_total", role="production")
    assert written == 1
    assert sample_value(page, "conveyor_serving_model_version", role="production") == 1


def test_admission_refuses_once_the_queued_work_exceeds_the_budget():
    control = AdmissionControl(AdmissionConfig(max_wait_s=0.05))
    for _ in range(20):  # nothing measured yet: a cold server admits
        control.admit()
    assert control.estimated_wait_s() == 0.0
    for _ in range(20):
        control.leave()
    assert control.seconds_per_request > 0.0
    control.seconds_per_request = 0.02  # as if each request took 20 ms to clear
    control.admit()
    control.admit()
    control.admit()
    with pytest.raises(QueueFullError, match="past the 50 ms limit"):
        control.admit()
    control.leave()
    control.leave()
    control.admit()  # room again once the queue drained


@pytest.mark.parametrize("value", [0.0, -1.0, 601.0])
def test_admission_config_refuses_a_budget_outside_its_range(value):
    with pytest.raises(ValueError, match="'max_wait_s' field of AdmissionConfig"):
        AdmissionConfig(max_wait_s=value)
