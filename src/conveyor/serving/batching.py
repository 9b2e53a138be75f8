"""Adaptive micro-batching: coalesce concurrent requests into one predict call.

A request that finds no other prediction request in progress is scored at once, so a lone
client pays nothing for batching. When others are in progress, the request queues its rows
and the flush is deferred to the next turn of the event loop: every request whose bytes
arrived in the same turn reaches the queue first, and all of them are scored in one
``predict_encoded`` call per model. While requests are still being read the flush waits for
them, at most ``max_wait_s`` after the first row queued; it never waits past
``max_batch_rows``. Batches of up to ``inline_rows`` rows are scored on the event loop (a
thread hop costs more than a small LightGBM call); larger ones in a worker thread.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import anyio.to_thread
import numpy as np

from conveyor.serving.metrics import ServingMetrics
from conveyor.serving.slot import LoadedModel

__all__ = ["BatchingConfig", "MicroBatcher"]

_RECHECK_S = 0.0002


@dataclass(frozen=True, slots=True)
class BatchingConfig:
    """How requests are coalesced.

    Parameters
    ----------
    enabled : bool
        Coalesce concurrent requests; when off every request is its own predict call.
    max_batch_rows : int
        Most rows in one predict call.
    max_wait_s : float
        Longest a queued request waits for requests still being read to join it.
    inline_rows : int
        Predict calls of at most this many rows run on the event loop.
    """

    enabled: bool = True
    max_batch_rows: int = 256
    max_wait_s: float = 0.002
    inline_rows: int = 256

    def __post_init__(self) -> None:
        if not isinstance(self.max_batch_rows, int) or self.max_batch_rows < 1:
            raise ValueError(
                "The 'max_batch_rows' field of BatchingConfig must be an int in [1, inf). "
                f"Got {self.max_batch_rows!r} instead."
            )
        if not 0.0 <= self.max_wait_s <= 1.0:
            raise ValueError(
                "The 'max_wait_s' field of BatchingConfig must be a float in [0, 1]. "
                f"Got {self.max_wait_s!r} instead."
            )


def _predict(model: LoadedModel, matrix: np.ndarray) -> np.ndarray:
    scores = np.asarray(model.predictor.predict_encoded(matrix), dtype=np.float64)
    if scores.ndim == 2 and scores.shape[1] == 1:
        scores = scores[:, 0]
    if len(scores) != len(matrix):
        raise RuntimeError(
            f"model version {model.version} returned {len(scores)} scores for {len(matrix)} rows"
        )
    return scores


class _Queued:
    __slots__ = ("future", "matrix", "model")

    def __init__(self, model: LoadedModel, matrix: np.ndarray, future: asyncio.Future[np.ndarray]):
        self.model, self.matrix, self.future = model, matrix, future


class MicroBatcher:
    """Score matrices for concurrent requests, coalescing them per model.

    Callers bracket the reading and validating of a request with :meth:`arriving` /
    :meth:`arrived` so the batcher knows whether more rows are on their way.

    Parameters
    ----------
    config : BatchingConfig
        Limits and whether batching is on.
    metrics : ServingMetrics
        Receives the size of every predict call.
    """

    def __init__(self, config: BatchingConfig, metrics: ServingMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.reading = 0
        self.active = 0
        self._queue: list[_Queued] = []
        self._rows = 0
        self._first_at = 0.0
        self._scheduled = False

    def arriving(self) -> None:
        """A request started; its rows may come."""
        self.reading += 1
        self.active += 1

    def arrived(self) -> None:
        """The request's rows were queued, or it failed before it had any."""
        self.reading -= 1

    def finished(self) -> None:
        """The request was answered."""
        self.active -= 1

    async def score(self, model: LoadedModel, matrix: np.ndarray) -> np.ndarray:
        """Scores of ``matrix`` by ``model``, one per row, possibly in a shared call."""
        n = len(matrix)
        config = self.config
        if n > config.inline_rows:
            self.metrics.observe_batch(n, 1)
            return await anyio.to_thread.run_sync(_predict, model, matrix)
        if not config.enabled:
            self.metrics.observe_batch(n, 1)
            return _predict(model, matrix)
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        if not self._queue:
            self._first_at = time.perf_counter()
        self._queue.append(_Queued(model, matrix, future))
        self._rows += n
        if self._rows >= config.max_batch_rows:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._maybe_flush)
        return await future

    def _maybe_flush(self) -> None:
        self._scheduled = False
        if not self._queue:
            return
        waited = time.perf_counter() - self._first_at
        if self.reading > 0 and waited < self.config.max_wait_s:
            self._scheduled = True
            delay = min(_RECHECK_S, self.config.max_wait_s - waited)
            asyncio.get_running_loop().call_later(delay, self._maybe_flush)
            return
        self._flush()

    def _flush(self) -> None:
        queue, self._queue, self._rows = self._queue, [], 0
        groups: dict[int, list[_Queued]] = {}
        for item in queue:
            groups.setdefault(id(item.model), []).append(item)
        for items in groups.values():
            matrices = [item.matrix for item in items]
            matrix = matrices[0] if len(matrices) == 1 else np.concatenate(matrices)
            self.metrics.observe_batch(len(matrix), len(items))
            try:
                scores = _predict(items[0].model, matrix)
            except Exception as exc:
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            start = 0
            for item in items:
                end = start + len(item.matrix)
                if not item.future.done():  # the request may have been cancelled
                    item.future.set_result(scores[start:end])
                start = end
