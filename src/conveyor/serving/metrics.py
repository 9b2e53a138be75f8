"""Serving counters kept with ``prometheus_client``, right across a server's worker processes.

Every family has a HELP line and one label set. When the environment names a multiprocess
directory (``PROMETHEUS_MULTIPROC_DIR``, set per run by :func:`conveyor.serving.service.serve`
before its workers start), each worker writes its values to memory-mapped files there and a
scrape, whichever worker answers it, adds up every worker's files: a counter is the server's
total, never one worker's. Without it (one process, tests) the values live in the app's own
registry.

Request-path figures are recorded as they happen. Figures owned by other objects (the model
slots' swaps and versions, the prediction logs' sink counters) are sampled into the families by
:meth:`ServingMetrics.sample`, which the app calls every poll interval and before each scrape.

Per-model families carry ``project`` and ``model`` labels, so one server serving several
projects keeps their figures apart.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector

from conveyor.serving.routing import PRODUCTION

if TYPE_CHECKING:
    from conveyor.serving.predlog import PredictionLogWriter
    from conveyor.serving.slot import ModelSlot

__all__ = ["CONTENT_TYPE", "ModelMetrics", "ServingMetrics", "is_multiprocess"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The media type of :meth:`ServingMetrics.render`'s page."""

LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
BATCH_BUCKETS_ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_MODEL = ("project", "model")
_LOG_COUNTERS = ("written_writes", "failed_writes", "rejected_writes", "group_commits")
_LOG_HELP = {
    "written_writes": "Prediction log writes that reached the log.",
    "failed_writes": "Prediction log writes the disk refused (answered 503).",
    "rejected_writes": "Prediction log writes refused because its buffer was full (503).",
    "group_commits": "Group writes of the prediction log (one os.write each).",
}
_SLOT_COUNTERS = {
    "swaps": ("model_swaps", "Models put in the production slot."),
    "load_failures": ("model_load_failures", "Failed model loads or warm-ups."),
}


def is_multiprocess() -> bool:
    """Whether ``prometheus_client`` keeps its values in a multiprocess directory here.

    ``prometheus_client`` decides it once, when first imported, from the environment.
    """
    return values.ValueClass is not values.MutexValue


class _Counted:
    """An int attribute mirrored into a counter: ``x.rows += n`` also adds ``n`` to it."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        return self if obj is None else obj.counts[self.name]

    def __set__(self, obj: Any, value: int) -> None:
        delta = value - obj.counts[self.name]
        if delta < 0:
            raise ValueError(
                f"The counter '{self.name}' can only grow. Got {value!r} after "
                f"{obj.counts[self.name]!r} instead."
            )
        obj.counts[self.name] = value
        obj.children[self.name].inc(delta)


class _Families:
    """Every metric family of a server, registered in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
            return Counter(f"conveyor_serving_{name}", doc, labels, registry=registry)

        self.requests = counter(
            "requests", "Answered requests by model (empty: none), endpoint and status.",
            ("model", "endpoint", "status"),
        )  # fmt: skip
        self.errors = counter("errors", "Unexpected errors caught at the edge.")
        self.shed = counter("shed", "Requests refused with 503 past the queue limits.")
        self.in_flight = Gauge(
            "conveyor_serving_in_flight",
            "Prediction requests being answered.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.batch_rows = Histogram(
            "conveyor_serving_batch_rows",
            "Rows per predict call (micro-batches).",
            buckets=BATCH_BUCKETS_ROWS,
            registry=registry,
        )
        self.batch_requests = Histogram(
            "conveyor_serving_batch_requests",
            "Requests coalesced into one predict call.",
            buckets=BATCH_BUCKETS_ROWS,
            registry=registry,
        )
        self.rows = counter("rows", "Rows scored.", _MODEL)
        self.rejected_rows = counter(
            "rejected_rows", "Rows of requests rejected as invalid.", _MODEL
        )
        self.shadow_rows = counter("shadow_rows", "Rows scored by the shadow version.", _MODEL)
        self.shadow_errors = counter("shadow_errors", "Shadow scorings that failed.", _MODEL)
        self.routed = counter(
            "routed", "Requests answered, by the role of the version.", (*_MODEL, "role")
        )
        self.rejected_fields = counter(
            "rejected_fields", "Errors in rejected requests, by field.", (*_MODEL, "field")
        )
        self.unseen = counter(
            "unseen_categories", "Unseen categories encoded as missing.", (*_MODEL, "field")
        )
        self.latency = Histogram(
            "conveyor_serving_request_latency_seconds",
            "Prediction request latency.",
            _MODEL,
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.slot = {
            attr: counter(name, doc, _MODEL) for attr, (name, doc) in _SLOT_COUNTERS.items()
        }
        self.model_version = Gauge(
            "conveyor_serving_model_version",
            "Version in service per role (0: none loaded); the latest any worker reported.",
            (*_MODEL, "role"),
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.fallback = Gauge(
            "conveyor_serving_model_fallback",
            "Production version per role that cannot be loaded, while an earlier one is served "
            "in its place (0: the wanted version is served); the latest any worker reported.",
            (*_MODEL, "role"),
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.log = {
            name: Counter(
                f"conveyor_predlog_{name}", _LOG_HELP[name], (*_MODEL, "role"), registry=registry
            )
            for name in _LOG_COUNTERS
        }
        self.log_queued = Gauge(
            "conveyor_predlog_queued_bytes",
            "Bytes waiting for the prediction log's writer.",
            (*_MODEL, "role"),
            registry=registry,
            multiprocess_mode="livesum",
        )


class ModelMetrics:
    """Counters of one served model (one project).

    ``rows``, ``rejected_rows``, ``shadow_rows`` and ``shadow_errors`` read as ints and only
    grow; ``latency`` is the model's request latency histogram.
    """

    rows = _Counted()
    rejected_rows = _Counted()
    shadow_rows = _Counted()
    shadow_errors = _Counted()

    def __init__(self, families: _Families, project: str, model: str) -> None:
        self.project, self.model = project, model
        self._families = families
        self.counts = dict.fromkeys(("rows", "rejected_rows", "shadow_rows", "shadow_errors"), 0)
        self.children = {
            name: getattr(families, name).labels(project, model) for name in self.counts
        }
        self.latency = families.latency.labels(project, model)

    def add_unseen(self, unseen: Mapping[str, int]) -> None:
        """Count categorical values outside the model's categories, per field."""
        for name, count in unseen.items():
            self._families.unseen.labels(self.project, self.model, name).inc(count)

    def add_rejected(self, errors: Sequence[Mapping[str, object]]) -> None:
        """Count the fields named by a rejected request's errors (``-`` for the whole row)."""
        family = self._families.rejected_fields
        for error in errors:
            family.labels(self.project, self.model, str(error.get("field") or "-")).inc()

    def add_routed(self, role: str) -> None:
        """Count one request answered by the ``production`` or ``canary`` version."""
        self._families.routed.labels(self.project, self.model, role).inc()


class ServingMetrics:
    """Every figure of one server: requests by endpoint and status, per-model figures, shed
    requests, unexpected errors, the micro-batch sizes and the prediction logs' sink.

    ``errors`` and ``shed`` read as ints and only grow; ``in_flight`` is a gauge.

    Parameters
    ----------
    registry : CollectorRegistry, optional
        Where the families are registered; a new one of this server by default.
    """

    errors = _Counted()
    shed = _Counted()

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        self._families = families = _Families(self.registry)
        self.counts = {"errors": 0, "shed": 0}
        self.children: dict[str, Any] = {"errors": families.errors, "shed": families.shed}
        self._in_flight = 0
        self.models: dict[str, ModelMetrics] = {}
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._sampled: dict[tuple[str, ...], int] = {}
        self._sampling = threading.Lock()

    @property
    def in_flight(self) -> int:
        """Prediction requests being answered by this worker."""
        return self._in_flight

    @in_flight.setter
    def in_flight(self, value: int) -> None:
        self._in_flight = value
        self._families.in_flight.set(value)

    def for_model(self, project: str, model: str) -> ModelMetrics:
        """The counters of ``model``, created on first use."""
        found = self.models.get(model)
        if found is None:
            found = self.models[model] = ModelMetrics(self._families, project, model)
        return found

    def observe(self, endpoint: str, status: int, model: str = "") -> None:
        """Count one answered request."""
        key = (model, endpoint, status)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = self._families.requests.labels(
                model, endpoint, str(status)
            )
        child.inc()

    def observe_batch(self, rows: int, requests: int) -> None:
        """Count one predict call of ``rows`` rows coalesced from ``requests`` requests."""
        self._families.batch_rows.observe(rows)
        self._families.batch_requests.observe(requests)

    def sample(
        self,
        slots: Mapping[str, Mapping[str, ModelSlot]],
        logs: Mapping[str, Mapping[str, PredictionLogWriter]] | None = None,
    ) -> None:
        """Copy the slots' and logs' own figures into their families (thread-safe).

        Parameters
        ----------
        slots : mapping
            Per model name, its slots by role (``production``, ``canary``, ``shadow``).
        logs : mapping, optional
            Per model name, its prediction logs by role (``production``, ``shadow``).
        """
        families = self._families
        with self._sampling:
            for name, roles in slots.items():
                project = self.models[name].project if name in self.models else ""
                for role, slot in roles.items():
                    loaded = slot.model
                    version = loaded.version if loaded is not None else 0
                    families.model_version.labels(project, name, role).set(version)
                    wanted = slot.fallback.wanted if slot.fallback is not None else 0
                    families.fallback.labels(project, name, role).set(wanted)
                production = roles.get(PRODUCTION)
                if production is not None:
                    for attr, family in families.slot.items():
                        child = family.labels(project, name)
                        self._grow(child, (name, attr), getattr(production, attr))
            for name, writers in (logs or {}).items():
                project = self.models[name].project if name in self.models else ""
                for role, writer in writers.items():
                    stats = writer.stats()
                    for stat in _LOG_COUNTERS:
                        child = families.log[stat].labels(project, name, role)
                        self._grow(child, (name, role, stat), stats[stat])
                    families.log_queued.labels(project, name, role).set(stats["queued_bytes"])

    def _grow(self, child: Any, key: tuple[str, ...], value: int) -> None:
        delta = value - self._sampled.get(key, 0)
        if delta > 0:
            child.inc(delta)
            self._sampled[key] = value

    def render(
        self,
        slots: Mapping[str, Mapping[str, ModelSlot]] | None = None,
        logs: Mapping[str, Mapping[str, PredictionLogWriter]] | None = None,
    ) -> str:
        """The Prometheus text exposition of the whole server (every worker's figures).

        Blocking in multiprocess mode (reads every worker's files): call it from a thread.
        """
        self.sample(slots or {}, logs)
        if is_multiprocess():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry).decode()
        return generate_latest(self.registry).decode()
