"""Where an alert leads; moved to :mod:`conveyor.alerting.links`, names kept here."""

from __future__ import annotations

from conveyor.alerting.links import HISTORY_KINDS, MONITORING_KINDS, alert_link, link_of

__all__ = ["HISTORY_KINDS", "MONITORING_KINDS", "alert_link", "link_of"]
