"""What one server serves: deployments (a project's model), and how traffic is split.

A :class:`Deployment` is one project's model behind the server: its production slot, an
optional canary (a share of the requests is answered by the version under another alias,
chosen at random or by a hash of a key field so one key always meets the same version) and an
optional shadow (the version under another alias scores every request after the answer has
left; its scores go to a separate log and are never returned).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from conveyor.serving.postprocess import PostProcessor
from conveyor.serving.predlog import PredictionLogWriter
from conveyor.serving.slot import LoadedModel, ModelSlot

__all__ = ["Canary", "Deployment", "Shadow", "canary_bucket"]

PRODUCTION = "production"
CANARY = "canary"
SHADOW = "shadow"

_BUCKETS = 10_000


def canary_bucket(key: Any) -> int:
    """A stable bucket in ``[0, 10000)`` for a sticky key value (CRC-32 of its text)."""
    return zlib.crc32(str(key).encode("utf-8")) % _BUCKETS


@dataclass(frozen=True, slots=True)
class Canary:
    """Answer ``percent`` % of the requests with the version in ``slot``.

    Parameters
    ----------
    slot : ModelSlot
        The candidate version; while it holds no model every request goes to production.
    percent : float
        Share of requests, in [0, 100].
    sticky_key : str, optional
        Record field whose value picks the version (the first record's, for a request of
        several); a request without it is split at random.
    """

    slot: ModelSlot
    percent: float
    sticky_key: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.percent <= 100.0:
            raise ValueError(
                "The 'percent' field of Canary must be a float in [0, 100]. "
                f"Got {self.percent!r} instead."
            )

    def takes(self, records: Sequence[Any]) -> bool:
        """Whether this request goes to the canary version."""
        threshold = self.percent * (_BUCKETS / 100.0)
        key = self.sticky_key
        if key is not None and records and isinstance(records[0], dict):
            value = records[0].get(key)
            if value is not None:
                return canary_bucket(value) < threshold
        return random.random() * _BUCKETS < threshold  # noqa: S311 - traffic split, not secrets


@dataclass(frozen=True, slots=True)
class Shadow:
    """Score every request with the version in ``slot`` and log it to ``log`` only."""

    slot: ModelSlot
    log: PredictionLogWriter


@dataclass(frozen=True, slots=True)
class Deployment:
    """One project's model as served.

    Parameters
    ----------
    project, model_name : str
        ``model_name`` is the name in ``/v1/models/{name}/predict`` and the V2 routes.
    slot : ModelSlot
        The production version.
    log : PredictionLogWriter
        Where every answered prediction is written before the answer is sent.
    threshold : float
        Binary tasks label a row 1 when its score is at or above this.
    passthrough : sequence of str
        Record fields that are not features but are accepted and logged.
    canary, shadow : optional
        Traffic split and mirrored scoring, see :class:`Canary` and :class:`Shadow`.
    postprocess : PostProcessor, optional
        Applied to raw outputs before they are answered; raw and processed are both logged.
    """

    project: str
    model_name: str
    slot: ModelSlot
    log: PredictionLogWriter
    threshold: float = 0.5
    passthrough: tuple[str, ...] = ()
    canary: Canary | None = None
    shadow: Shadow | None = None
    postprocess: PostProcessor | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(
                "The 'threshold' parameter of create_serving_app() must be a float in [0, 1]. "
                f"Got {self.threshold!r} instead."
            )

    def slots(self) -> dict[str, ModelSlot]:
        """Every slot of this deployment by role."""
        found = {PRODUCTION: self.slot}
        if self.canary is not None:
            found[CANARY] = self.canary.slot
        if self.shadow is not None:
            found[SHADOW] = self.shadow.slot
        return found

    def route(self, records: Sequence[Any]) -> tuple[LoadedModel | None, str]:
        """The model that answers ``records`` and its role (``production`` or ``canary``)."""
        canary = self.canary
        if canary is not None:
            candidate = canary.slot.model
            if candidate is not None and canary.takes(records):
                return candidate, CANARY
        return self.slot.model, PRODUCTION
