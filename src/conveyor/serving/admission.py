"""Admission control: a request is let in only when it can be scored within a time budget.

A count of requests in flight says little about how long a new one will wait: a request of one
row and one of a thousand differ, and so do models and machines. The controller estimates the
wait instead. It measures how fast the server clears the requests that are between admission
and their scores (reading, validation, micro-batched scoring), as seconds per cleared request
while that stage is busy, smoothed over recent work; a new request would wait about
``queued * seconds_per_request``. When that exceeds ``max_wait_s`` the request is refused at
once (the server answers 503 with ``Retry-After``), so an accepted request never waits
seconds behind a backlog and the event loop stays free for liveness probes. The server keeps
a hard cap on the requests in flight on top (memory), whatever the estimate.

Until the first requests have been measured the estimate is zero, so a cold server admits up
to that cap. Waiting for the prediction log is not part of the stage: a slow log is
bounded by the log writer's own buffer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["AdmissionConfig", "AdmissionControl", "QueueFullError"]

_SAMPLE_REQUESTS = 8
_SAMPLE_S = 0.05
_SMOOTHING = 0.3


class QueueFullError(Exception):
    """A request was refused: the queued requests hold more work than the time budget."""


@dataclass(frozen=True, slots=True)
class AdmissionConfig:
    """How much work a server lets wait.

    Parameters
    ----------
    max_wait_s : float
        Longest a newly admitted request is expected to wait for its scores; past it new
        requests are refused.
    """

    max_wait_s: float = 0.25

    def __post_init__(self) -> None:
        if not 0.0 < self.max_wait_s <= 600.0:
            raise ValueError(
                "The 'max_wait_s' field of AdmissionConfig must be a float in (0, 600]. "
                f"Got {self.max_wait_s!r} instead."
            )


class AdmissionControl:
    """Admit requests while the expected wait stays under the budget; measure the service rate.

    Used from one event loop (no locking). Bracket the stage of every admitted request with
    :meth:`admit` and :meth:`leave`.

    Parameters
    ----------
    config : AdmissionConfig
        The budget.

    Examples
    --------
    >>> control = AdmissionControl(AdmissionConfig(max_wait_s=0.1))
    >>> control.seconds_per_request = 0.03  # as measured: 30 ms to clear a request
    >>> for _ in range(4):
    ...     control.admit()
    >>> try:
    ...     control.admit()
    ... except QueueFullError as exc:
    ...     print(exc)
    the queued requests need about 120 ms, past the 100 ms limit
    """

    def __init__(self, config: AdmissionConfig) -> None:
        self.config = config
        self.queued = 0
        self.seconds_per_request = 0.0
        self._changed_at = time.perf_counter()
        self._busy_s = 0.0
        self._cleared = 0

    def estimated_wait_s(self) -> float:
        """Seconds a request admitted now is expected to wait behind the queued ones."""
        return self.queued * self.seconds_per_request

    def admit(self) -> None:
        """Let one request in, or refuse it.

        Raises
        ------
        QueueFullError
            When the estimated wait exceeds ``max_wait_s``.
        """
        config = self.config
        wait = self.estimated_wait_s()
        if wait > config.max_wait_s:
            raise QueueFullError(
                f"the queued requests need about {wait * 1000:.0f} ms, past the "
                f"{config.max_wait_s * 1000:.0f} ms limit"
            )
        self._tick()
        self.queued += 1

    def leave(self) -> None:
        """One admitted request got its scores, or failed before; measure the stage's rate."""
        self._tick()
        self.queued -= 1
        self._cleared += 1
        if self._cleared >= _SAMPLE_REQUESTS or self._busy_s >= _SAMPLE_S:
            sample = self._busy_s / self._cleared
            previous = self.seconds_per_request
            self.seconds_per_request = (
                sample if previous == 0.0 else previous + _SMOOTHING * (sample - previous)
            )
            self._busy_s, self._cleared = 0.0, 0

    def _tick(self) -> None:
        now = time.perf_counter()
        if self.queued > 0:
            self._busy_s += now - self._changed_at
        self._changed_at = now
