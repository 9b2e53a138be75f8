"""Serving counters from a Prometheus page, and their per-window differences."""

from __future__ import annotations

import pytest

from conveyor.monitoring.scrape import parse_counters, window_counters

PAGE = """# HELP conveyor_serving_requests_total Answered requests by endpoint and status.
# TYPE conveyor_serving_requests_total counter
conveyor_serving_requests_total{project="p",model="p",endpoint="v1_predict",status="200"} 90
conveyor_serving_requests_total{project="p",model="p",endpoint="v1_predict",status="422"} 6
conveyor_serving_requests_total{project="p",model="p",endpoint="v2_infer",status="500"} 4
conveyor_serving_requests_total{project="p",model="p",endpoint="metrics",status="200"} 50
conveyor_serving_rows_total{project="p",model="p"} 900
conveyor_serving_rejected_rows_total{project="p",model="p"} 12
conveyor_serving_errors_total{project="p",model="p"} 4
conveyor_serving_unseen_categories_total{project="p",model="p",field="carrier"} 3
conveyor_serving_unseen_categories_total{project="p",model="p",field="origin"} 2
"""


def test_counters_sum_prediction_endpoints_only():
    c = parse_counters(PAGE)
    assert c["requests"] == 100
    assert c["requests_4xx"] == 6
    assert c["requests_5xx"] == 4
    assert c["rows"] == 900 and c["rejected_rows"] == 12
    assert c["unseen_categories"] == 5


def test_a_window_is_the_difference_from_the_previous_snapshot():
    before = parse_counters(PAGE)
    after = {**before, "requests": 200.0, "requests_4xx": 26.0, "requests_5xx": 4.0}
    w = window_counters(after, before)
    assert w["requests"] == 100 and w["requests_4xx"] == 20
    assert w["rejected_share"] == pytest.approx(0.2)
    assert w["error_rate"] == 0.0
    assert w["restarted"] is False


def test_a_restarted_server_counts_from_zero():
    before = parse_counters(PAGE)
    after = {**before, "requests": 10.0, "requests_4xx": 1.0, "requests_5xx": 0.0}
    w = window_counters(after, before)
    assert w["restarted"] is True
    assert w["requests"] == 10 and w["rejected_share"] == pytest.approx(0.1)


def test_lines_of_other_models_are_left_out():
    page = (
        'conveyor_serving_requests_total{model="a",endpoint="v1_predict",status="200"} 5\n'
        'conveyor_serving_requests_total{model="b",endpoint="v1_predict",status="500"} 9\n'
        "conveyor_serving_errors_total 1\n"
    )
    c = parse_counters(page, model="a")
    assert c["requests"] == 5 and c["requests_5xx"] == 0 and c["errors"] == 1
