"""Serving counters read from a server's Prometheus ``/metrics`` page.

Rejected requests and errors never reach the prediction log (nothing was predicted), so a
monitoring job reads them from the counters the serving app keeps. Counters only grow while a
server runs; a window's figures are the difference from the snapshot stored with the previous
report, or the snapshot itself when a counter went down (the server restarted).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx

from conveyor.core.errors import InvalidInputError

_LINE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)$"
)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_counters(text: str, *, model: str | None = None) -> dict[str, float]:
    """Totals of the serving counters in a Prometheus text page.

    With ``model``, lines labelled with another model are left out (a server may serve
    several); unlabelled lines always count.

    Returns ``requests``, ``requests_4xx``, ``requests_5xx`` (prediction endpoints only),
    ``rows``, ``rejected_rows``, ``errors`` and ``unseen_categories``.

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
    simple = {
        "conveyor_serving_rows_total": "rows",
        "conveyor_serving_rejected_rows_total": "rejected_rows",
        "conveyor_serving_errors_total": "errors",
        "conveyor_serving_unseen_categories_total": "unseen_categories",
    }
    for raw in text.splitlines():
        match = _LINE.match(raw.strip())
        if not match:
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        name = match["name"]
        labels = dict(_LABEL.findall(match["labels"] or ""))
        if model is not None and labels.get("model", model) != model:
            continue
        if name in simple:
            totals[simple[name]] += value
        elif name == "conveyor_serving_requests_total":
            if labels.get("endpoint") not in ("v1_predict", "v2_infer"):
                continue
            totals["requests"] += value
            status = labels.get("status", "")
            if status.startswith("4"):
                totals["requests_4xx"] += value
            elif status.startswith("5"):
                totals["requests_5xx"] += value
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
