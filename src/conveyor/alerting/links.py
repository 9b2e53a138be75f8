"""Where an alert leads: a report path, a URL or a command that opens its evidence.

One rule for every alert, whoever raises it. :func:`alert_link` derives the link of an alert
kind from its evidence; :func:`link_of` gives a stored alert's link (the one stored with it,
else the derived one), so an alert raised without a link, or stored before links existed,
still leads somewhere. Sinks, ``conveyor alerts list`` and the monitoring report all show
:func:`link_of`.

====================  =====================================================================
kind                  link
====================  =====================================================================
drift, bias, decay,   the monitoring job's HTML report when it wrote one, else the command
threshold:<metric>    that writes the history page from the alert's window on
gate_rejected         ``conveyor models report <model> <challenger> --out ...`` (evaluation)
rollback,             ``conveyor history`` (every move of production with its reason)
promotion_conflict
anything else         ``conveyor --json alerts list --kind <kind>`` (the alert's evidence)
====================  =====================================================================
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from conveyor.core.clock import as_utc
from conveyor.core.entities import Alert

MONITORING_KINDS = ("drift", "bias", "decay")
"""Kinds raised by a monitoring job's rules (``threshold:<metric>`` ones too)."""

HISTORY_KINDS = ("rollback", "promotion_conflict")
"""Kinds about a move of production, which ``conveyor history`` lists with its reason."""


def _command(*words: str) -> str:
    return " ".join(shlex.quote(w) for w in words)


def _cli_time(iso: str) -> str:
    """An ISO time as the CLI's ``--since`` reads it: UTC, to the second, without offset."""
    return f"{as_utc(datetime.fromisoformat(iso)):%Y-%m-%dT%H:%M:%S}"


def alert_link(
    kind: str, evidence: Mapping[str, Any], *, model: str, page: str | None = None
) -> str:
    """The link of an alert of ``kind`` with ``evidence``, about ``model`` (never empty).

    ``page`` is the HTML report written with the alert, if any; it is the link of a
    monitoring alert.

    Examples
    --------
    >>> alert_link("gate_rejected", {"challenger": 7}, model="churn")
    'conveyor models report churn 7 --out churn-v7-evaluation.html'
    >>> alert_link("rollback", {}, model="churn")
    'conveyor history'
    >>> alert_link("promotion_conflict", {"challenger": 7}, model="churn")
    'conveyor history'
    >>> alert_link("drift", {"window_start": "2013-01-07T00:00:00+00:00"}, model="churn")
    'conveyor monitor --report monitoring.html --since 2013-01-07T00:00:00'
    >>> alert_link("model_refused", {}, model="churn")
    'conveyor --json alerts list --kind model_refused'
    """
    if kind in MONITORING_KINDS or kind.startswith("threshold:"):
        if page:
            return page
        start = evidence.get("window_start")
        since = ("--since", _cli_time(str(start))) if start else ()
        return _command("conveyor", "monitor", "--report", "monitoring.html", *since)
    if kind == "gate_rejected" and evidence.get("challenger") is not None:
        version = str(evidence["challenger"])
        return _command(
            "conveyor", "models", "report", model, version, "--out",
            f"{model}-v{version}-evaluation.html",
        )  # fmt: skip
    if kind in HISTORY_KINDS:
        return "conveyor history"
    return _command("conveyor", "--json", "alerts", "list", "--kind", kind)


def link_of(alert: Alert) -> str:
    """The alert's stored link, or the one :func:`alert_link` derives (the model is the
    project's)."""
    return alert.report or alert_link(alert.kind, alert.evidence, model=alert.project)
