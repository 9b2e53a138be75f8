"""The model slot: which model version the server scores with, swapped atomically.

The slot holds one :class:`LoadedModel` reference. A watcher polls the version that should be
served; when it differs from the loaded one it loads the new predictor in a worker thread,
warms it on a few rows the server has recently scored, checks that it returns one finite score
per row, and only then replaces the reference in a single assignment. A request reads the
reference once, so in-flight requests finish on the model they started with and no request
ever sees a half-loaded model. A failed load or warm-up keeps the current model and is retried
at the next poll.

When the wanted version cannot be loaded (a tampered or truncated artifact, an unsafe format)
and the slot is empty (the server starts or restarts), the slot serves the newest earlier
version it can load from ``fallback_versions`` (the production history) rather than nothing.
Either way :attr:`ModelSlot.fallback` says which version is served instead of which, and why;
the refusal and the fallback are each reported once per wanted version to ``on_alert``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio.to_thread
import numpy as np

from conveyor.core.clock import utcnow
from conveyor.core.labels import LabelCodec, Task
from conveyor.core.model import Predictor
from conveyor.serving.outputs import ModelOutputs, read_outputs
from conveyor.serving.validation import RecordValidator, ServingLimits

log = logging.getLogger(__name__)

WARMUP_ROWS = 8

MODEL_REFUSED = "model_refused"
"""Alert kind: the version that should be served could not be loaded."""
SERVING_FALLBACK = "serving_fallback"
"""Alert kind: an earlier version is served in place of one that cannot be loaded."""

AlertHook = Callable[[str, str, Mapping[str, Any]], None]
"""Called with an alert kind, a message and its evidence."""


@dataclass(frozen=True, slots=True)
class Fallback:
    """The slot serves ``serving`` (``None``: nothing) because ``wanted`` failed to load."""

    wanted: int
    serving: int | None
    reason: str
    tried: tuple[int, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "wanted": self.wanted,
            "serving": self.serving,
            "reason": self.reason,
            "tried": list(self.tried),
        }


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A predictor ready to serve: its version, its validator and when it was loaded."""

    version: int
    predictor: Predictor
    validator: RecordValidator
    loaded_at: datetime
    codec: LabelCodec = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "codec", self.predictor.signature.labels)

    @property
    def is_binary(self) -> bool:
        """Whether scores are positive-class probabilities labelled at the threshold."""
        return self.codec.task is Task.BINARY

    def outputs(self, raw: np.ndarray, threshold: float) -> ModelOutputs:
        """The scores, labels and class probabilities of this model's raw output."""
        return read_outputs(raw, self.codec, threshold=threshold)


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
    fallback_versions : callable, optional
        Given the wanted version, the earlier versions to serve instead when it cannot be
        loaded, best first (the production history, newest first).
    load_version : callable, optional
        Loads one version's predictor, for ``fallback_versions``; called in a worker thread.
    on_alert : callable, optional
        Told ``(kind, message, evidence)`` when a wanted version is refused
        (:data:`MODEL_REFUSED`) and when an earlier one is served instead
        (:data:`SERVING_FALLBACK`); once per wanted version.

    Attributes
    ----------
    model : LoadedModel or None
        The model requests are scored with; replaced in one assignment.
    swaps : int
        How many times a model was put in the slot (the first load counts).
    load_failures : int
        Loads or warm-ups that failed and left the slot unchanged.
    fallback : Fallback or None
        Set while the served version is not the wanted one because that one failed to load.
    """

    def __init__(
        self,
        loader: Callable[[], tuple[int, Predictor]],
        current_version: Callable[[], int | None],
        *,
        sample_records: Callable[[int], Sequence[Mapping[str, Any]]] | None = None,
        release_when_unset: bool = False,
        fallback_versions: Callable[[int], Sequence[int]] | None = None,
        load_version: Callable[[int], Predictor] | None = None,
        on_alert: AlertHook | None = None,
    ) -> None:
        self.loader = loader
        self.fallback_versions = fallback_versions
        self.load_version = load_version
        self.on_alert = on_alert
        self.fallback: Fallback | None = None
        self._reported: set[tuple[str, int]] = set()
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
        wanted: int | None = None
        current = self.model
        try:
            wanted = self.current_version()
            if wanted is None and self.release_when_unset and current is not None:
                self.model = None
                log.info("the alias was removed; version %d no longer served", current.version)
                return True
            if wanted is None or (current is not None and current.version == wanted):
                return False
            version, predictor = self.loader()
            loaded = self._prepare(int(version), predictor, current)
        except Exception as exc:
            self.load_failures += 1
            return self._refused(wanted, exc, current)
        self.fallback = None
        self._put(loaded)
        return True

    def _prepare(
        self, version: int, predictor: Predictor, current: LoadedModel | None
    ) -> LoadedModel:
        loaded = LoadedModel(
            version=version,
            predictor=predictor,
            validator=RecordValidator(
                predictor.signature, self.limits, passthrough=self.passthrough
            ),
            loaded_at=utcnow(),
        )
        self._warm(loaded, current)
        return loaded

    def _put(self, loaded: LoadedModel) -> None:
        self.model = loaded
        self.swaps += 1
        log.info("now serving model version %d", loaded.version)

    def _refused(self, wanted: int | None, exc: Exception, current: LoadedModel | None) -> bool:
        """Keep serving what we have, or fall back to an earlier version; report it once."""
        reason = f"{type(exc).__name__}: {exc}"
        if wanted is None:
            log.exception("loading the model to serve failed; keeping the current one")
            return False
        first = (MODEL_REFUSED, wanted) not in self._reported
        if first:
            log.error("model version %d cannot be served (%s); keeping the current one", wanted,
                      reason, exc_info=exc)  # fmt: skip
            self._alert(
                MODEL_REFUSED,
                wanted,
                f"Model version {wanted} cannot be loaded for serving and was refused: {reason}",
                {"wanted": wanted, "serving": current.version if current else None,
                 "reason": reason},
            )  # fmt: skip
        tried: list[int] = []
        swapped = False
        if current is None and self.fallback_versions is not None and self.load_version:
            for version in self.fallback_versions(wanted):
                if version == wanted or version in tried:
                    continue
                tried.append(version)
                try:
                    current = self._prepare(version, self.load_version(version), None)
                except Exception as err:  # an earlier version may be broken too: try the next
                    log.warning("fallback version %d cannot be served either: %s", version, err)
                    continue
                self._put(current)
                swapped = True
                break
        serving = current.version if current is not None else None
        self.fallback = Fallback(wanted, serving, reason, tuple(tried))
        if swapped and serving is not None:
            self._alert(
                SERVING_FALLBACK,
                wanted,
                f"Serving model version {serving} instead of {wanted}, which cannot be loaded: "
                f"{reason}",
                self.fallback.to_dict(),
            )
        return swapped

    def _alert(self, kind: str, wanted: int, message: str, evidence: Mapping[str, Any]) -> None:
        if (kind, wanted) in self._reported:
            return
        self._reported.add((kind, wanted))
        if self.on_alert is None:
            return
        try:
            self.on_alert(kind, message, evidence)
        except Exception:  # an alert store that fails must not take the model down with it
            log.exception("raising the %s alert for version %d failed", kind, wanted)

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
        try:
            loaded.outputs(scores, 0.5)  # one value per row, or one per class for multiclass
        except ValueError as exc:
            raise ValueError(f"Model version {loaded.version} failed its warm-up: {exc}") from exc
        if len(scores) != len(samples) or not np.isfinite(scores).all():
            raise ValueError(
                f"Model version {loaded.version} failed its warm-up: expected "
                f"{len(samples)} finite scores, got shape {scores.shape} with values "
                f"{scores.ravel()[:5].tolist()}."
            )
