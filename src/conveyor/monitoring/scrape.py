"""Serving counters read from a server's Prometheus ``/metrics`` page.

Rejected requests and errors never reach the prediction log (nothing was predicted), so a
monitoring job reads them from the counters the serving app keeps. Counters only grow while a
server runs; a window's figures are the difference from the snapshot stored with the previous
report, or the snapshot itself when a counter went down (the server restarted).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from conveyor.core.errors import InvalidInputError

_SIMPLE = {
    "conveyor_serving_rows_total": "rows",
    "conveyor_serving_rejected_rows_total": "rejected_rows",
    "conveyor_serving_errors_total": "errors",
    "conveyor_serving_unseen_categories_total": "unseen_categories",
}
_PREDICT_ENDPOINTS = ("v1_predict", "v2_infer")


def iter_samples(text: str) -> Iterator[Sample]:
    """Every sample of a Prometheus text page, parsed by ``prometheus_client``.

    Raises
    ------
    InvalidInputError
        If the page is not in the Prometheus text format.
    """
    try:
        for family in text_string_to_metric_families(text):
            yield from family.samples
    except ValueError as exc:
        raise InvalidInputError(
            f"The metrics page is not in the Prometheus text format: {exc}"
        ) from exc


def sample_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels`` (0 if none).

    Examples
    --------
    >>> page = 'c_total{model="a",status="200"} 3\\nc_total{model="b",status="200"} 4\\n'
    >>> sample_value(page, "c_total"), sample_value(page, "c_total", model="b")
    (7.0, 4.0)
    """
    return float(
        sum(
            s.value
            for s in iter_samples(text)
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )
    )


def parse_counters(text: str, *, model: str | None = None) -> dict[str, float]:
    """Totals of the serving counters in a Prometheus text page.

    With ``model``, samples labelled with another model are left out (a server may serve
    several); samples without a model label always count.

    Returns ``requests``, ``requests_4xx``, ``requests_5xx`` (prediction endpoints only),
    ``rows``, ``rejected_rows``, ``errors`` and ``unseen_categories``.

    Raises
    ------
    InvalidInputError
        If the page is not in the Prometheus text format.

    Examples
    --------
    >>> page = '''conveyor_serving_requests_total{endpoint="v1_predict",status="200"} 8
    ... conveyor_serving_requests_total{endpoint="v1_predict",status="422"} 2
    ... conveyor_serving_requests_total{endpoint="v1_health",status="200"} 5
    ... conveyor_serving_rejected_rows_total{project="p"} 3'''
    >>> c = parse_counters(page)
    >>> c["requests"], c["requests_4xx"], c["rejected_rows"]
    (10.0, 2.0, 3.0)
    """
    totals = dict.fromkeys(
        ("requests", "requests_4xx", "requests_5xx", "rows", "rejected_rows", "errors",
         "unseen_categories"),
        0.0,
    )  # fmt: skip
    for sample in iter_samples(text):
        labels = sample.labels
        if model is not None and labels.get("model") not in (None, "", model):
            continue
        key = _SIMPLE.get(sample.name)
        if key is not None:
            totals[key] += sample.value
        elif sample.name == "conveyor_serving_requests_total":
            if labels.get("endpoint") not in _PREDICT_ENDPOINTS:
                continue
            totals["requests"] += sample.value
            status = labels.get("status", "")
            if status.startswith("4"):
                totals["requests_4xx"] += sample.value
            elif status.startswith("5"):
                totals["requests_5xx"] += sample.value
    return totals


def read_counters(
    url: str, *, model: str | None = None, timeout_s: float = 5.0
) -> dict[str, float]:
    """Fetch and parse ``url`` (a serving server's ``/metrics``).

    Raises
    ------
    InvalidInputError
        If the page cannot be fetched.
    """
    try:
        response = httpx.get(url, timeout=timeout_s, follow_redirects=False)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise InvalidInputError(f"Cannot read serving metrics from {url!r}: {exc}") from exc
    return parse_counters(response.text, model=model)


def window_counters(
    snapshot: Mapping[str, float], previous: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The window's share of rejected requests and error rate from two snapshots.

    Examples
    --------
    >>> w = window_counters({"requests": 30, "requests_4xx": 3, "requests_5xx": 0, "errors": 0,
    ...                      "rows": 100, "rejected_rows": 5, "unseen_categories": 0},
    ...                     {"requests": 10, "requests_4xx": 1, "requests_5xx": 0, "errors": 0,
    ...                      "rows": 50, "rejected_rows": 0, "unseen_categories": 0})
    >>> w["requests"], w["rejected_share"], w["restarted"]
    (20.0, 0.1, False)
    """
    prev = previous or {}
    restarted = any(float(snapshot[k]) < float(prev.get(k, 0.0)) for k in snapshot)
    delta = {
        k: float(v) - (0.0 if restarted else float(prev.get(k, 0.0))) for k, v in snapshot.items()
    }
    requests = delta["requests"]
    return {
        **delta,
        "restarted": restarted,
        "rejected_share": delta["requests_4xx"] / requests if requests else 0.0,
        "error_rate": (delta["requests_5xx"] + 0.0) / requests if requests else 0.0,
        "snapshot": dict(snapshot),
    }
