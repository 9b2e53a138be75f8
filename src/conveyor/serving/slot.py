"""The model slot: which model version the server scores with, swapped atomically.

The slot holds one :class:`LoadedModel` reference. A watcher polls the version that should be
served; when it differs from the loaded one it loads the new predictor in a worker thread,
warms it on a few rows the server has recently scored, checks that it returns one finite score
per row, and only then replaces the reference in a single assignment. A request reads the
reference once, so in-flight requests finish on the model they started with and no request
ever sees a half-loaded model. A failed load or warm-up keeps the current model and is retried
at the next poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio.to_thread
import numpy as np

from conveyor.core.clock import utcnow
from conveyor.core.model import Predictor
from conveyor.serving.validation import RecordValidator, ServingLimits

log = logging.getLogger(__name__)

WARMUP_ROWS = 8


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A predictor ready to serve: its version, its validator and when it was loaded."""

    version: int
    predictor: Predictor
    validator: RecordValidator
    loaded_at: datetime

    @property
    def is_binary(self) -> bool:
        """Whether scores are positive-class probabilities that get a 0/1 label."""
        return self.predictor.signature.task == "binary"


class ModelSlot:
    """Hold the served model and hot-swap it when the wanted version changes.

    Parameters
    ----------
    loader : callable
        Returns ``(version, predictor)`` of the model that should be served now; called in a
        worker thread.
    current_version : callable
        Returns the version that should be served, or ``None`` when there is none (the slot
        then keeps what it has); called in a worker thread at every poll.
    sample_records : callable, optional
        Returns stored sample request records of a version to warm it with; without it (or
        when they do not validate) the slot warms with rows it recently scored, or with
        all-missing rows.
    release_when_unset : bool
        When ``current_version`` returns ``None``, empty the slot (a canary or shadow whose
        alias was removed stops) instead of keeping the model it has (production).

    Attributes
    ----------
    model : LoadedModel or None
        The model requests are scored with; replaced in one assignment.
    swaps : int
        How many times a model was put in the slot (the first load counts).
    load_failures : int
        Loads or warm-ups that failed and left the slot unchanged.
    """

    def __init__(
        self,
        loader: Callable[[], tuple[int, Predictor]],
        current_version: Callable[[], int | None],
        *,
        sample_records: Callable[[int], Sequence[Mapping[str, Any]]] | None = None,
        release_when_unset: bool = False,
    ) -> None:
        self.loader = loader
        self.release_when_unset = release_when_unset
        self.current_version = current_version
        self.sample_records = sample_records
        self.model: LoadedModel | None = None
        self.swaps = 0
        self.load_failures = 0
        self.samples: np.ndarray | None = None
        self.limits = ServingLimits()
        self.passthrough: tuple[str, ...] = ()

    def configure(self, *, limits: ServingLimits, passthrough: Sequence[str] = ()) -> None:
        """Set the request limits and pass-through fields validators are built with."""
        self.limits = limits
        self.passthrough = tuple(passthrough)

    def refresh(self) -> bool:
        """Load the wanted version if it is not the one served; return whether it swapped.

        Blocking: call it from a worker thread. Never raises; failures are logged and counted.
        """
        try:
            wanted = self.current_version()
            current = self.model
            if wanted is None and self.release_when_unset and current is not None:
                self.model = None
                log.info("the alias was removed; version %d no longer served", current.version)
                return True
            if wanted is None or (current is not None and current.version == wanted):
                return False
            version, predictor = self.loader()
            loaded = LoadedModel(
                version=int(version),
                predictor=predictor,
                validator=RecordValidator(
                    predictor.signature, self.limits, passthrough=self.passthrough
                ),
                loaded_at=utcnow(),
            )
            self._warm(loaded, current)
        except Exception:
            self.load_failures += 1
            log.exception("loading the model to serve failed; keeping the current one")
            return False
        self.model = loaded
        self.swaps += 1
        log.info("now serving model version %d", loaded.version)
        return True

    async def watch(self, poll_interval_s: float) -> None:
        """Poll for a new version every ``poll_interval_s`` seconds until cancelled."""
        while True:
            await anyio.to_thread.run_sync(self.refresh)
            await asyncio.sleep(poll_interval_s)

    def remember(self, matrix: np.ndarray) -> None:
        """Keep a few scored rows to warm the next model with."""
        self.samples = matrix[:WARMUP_ROWS]

    def _warm(self, loaded: LoadedModel, current: LoadedModel | None) -> None:
        inputs = loaded.predictor.signature.inputs
        samples = self.samples
        same_inputs = current is not None and current.predictor.signature.inputs == inputs
        if samples is None or not same_inputs or len(samples) == 0:
            samples = np.full((WARMUP_ROWS, len(inputs)), np.nan)
        if self.sample_records is not None:
            try:
                stored = list(self.sample_records(loaded.version))[:WARMUP_ROWS]
            except Exception:  # a missing sample must not keep a good model out of service
                log.exception("reading the sample requests of version %d failed", loaded.version)
                stored = []
            batch = loaded.validator.validate(stored) if stored else None
            if batch is not None and batch.ok:
                samples = batch.matrix
        for _ in range(3):
            scores = np.asarray(loaded.predictor.predict_encoded(samples), dtype=np.float64)
        if scores.shape != (len(samples),) or not np.isfinite(scores).all():
            raise ValueError(
                f"Model version {loaded.version} failed its warm-up: expected "
                f"{len(samples)} finite scores, got shape {scores.shape} with values "
                f"{scores.ravel()[:5].tolist()}."
            )
