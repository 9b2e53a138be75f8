"""In-process serving counters rendered in the Prometheus text format.

Counters are per worker process (Prometheus sums them across a server's workers); each is
a plain integer bumped on the event loop, so recording costs a few dict operations. Per-model
series carry ``project`` and ``model`` labels, so one server serving several projects keeps
their figures apart.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from conveyor.serving.slot import ModelSlot

LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
BATCH_BUCKETS_ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Histogram:
    """Cumulative-bucket histogram in the Prometheus sense."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def render(self, name: str, labels: str) -> list[str]:
        """The ``_bucket``, ``_sum`` and ``_count`` lines of this histogram."""
        sep = "," if labels else ""
        lines, cumulative = [], 0
        for bound, count in zip((*self.bounds, "+Inf"), self.counts, strict=True):
            cumulative += count
            lines.append(f'{name}_bucket{{{labels}{sep}le="{bound}"}} {cumulative}')
        lines += [
            f"{name}_sum{{{labels}}} {self.total:.6f}",
            f"{name}_count{{{labels}}} {cumulative}",
        ]
        return lines


@dataclass
class ModelMetrics:
    """Counters of one served model (one project)."""

    project: str
    model: str
    rows: int = 0
    rejected_rows: int = 0
    shadow_rows: int = 0
    shadow_errors: int = 0
    routed: dict[str, int] = field(default_factory=dict)
    unseen: dict[str, int] = field(default_factory=dict)
    rejected_fields: dict[str, int] = field(default_factory=dict)
    latency: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS_S))

    @property
    def labels(self) -> str:
        """``project="…",model="…"``."""
        return f'project="{_escape(self.project)}",model="{_escape(self.model)}"'

    def add_unseen(self, unseen: Mapping[str, int]) -> None:
        """Count categorical values outside the model's categories, per field."""
        for name, count in unseen.items():
            self.unseen[name] = self.unseen.get(name, 0) + count

    def add_rejected(self, errors: Sequence[Mapping[str, object]]) -> None:
        """Count the fields named by a rejected request's errors (``-`` for the whole row)."""
        for error in errors:
            name = str(error.get("field") or "-")
            self.rejected_fields[name] = self.rejected_fields.get(name, 0) + 1

    def add_routed(self, role: str) -> None:
        """Count one request answered by the ``production`` or ``canary`` version."""
        self.routed[role] = self.routed.get(role, 0) + 1


class ServingMetrics:
    """Every counter of one worker: requests by endpoint and status, per-model figures,
    shed requests, unexpected errors and the micro-batch size histogram."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        self.errors = 0
        self.shed = 0
        self.in_flight = 0
        self.batch_rows = Histogram(BATCH_BUCKETS_ROWS)
        self.batch_requests = Histogram(BATCH_BUCKETS_ROWS)
        self.models: dict[str, ModelMetrics] = {}

    def for_model(self, project: str, model: str) -> ModelMetrics:
        """The counters of ``model``, created on first use."""
        found = self.models.get(model)
        if found is None:
            found = self.models[model] = ModelMetrics(project, model)
        return found

    def observe(self, endpoint: str, status: int, model: str = "") -> None:
        """Count one answered request."""
        key = (model, endpoint, status)
        self.requests[key] = self.requests.get(key, 0) + 1

    def observe_batch(self, rows: int, requests: int) -> None:
        """Count one predict call of ``rows`` rows coalesced from ``requests`` requests."""
        self.batch_rows.observe(rows)
        self.batch_requests.observe(requests)

    def render(self, slots: Mapping[str, Mapping[str, ModelSlot]]) -> str:
        """The Prometheus text exposition.

        Parameters
        ----------
        slots : mapping
            Per model name, its slots by role (``production``, ``canary``, ``shadow``).
        """
        lines = [
            "# HELP conveyor_serving_requests_total Answered requests by endpoint and status.",
            "# TYPE conveyor_serving_requests_total counter",
        ]
        for (model, endpoint, status), count in sorted(self.requests.items()):
            label = f'model="{_escape(model)}",' if model else ""
            lines.append(
                f'conveyor_serving_requests_total{{{label}endpoint="{endpoint}",'
                f'status="{status}"}} {count}'
            )
        for name, help_text, value in (
            ("errors_total", "Unexpected errors caught at the edge.", self.errors),
            ("shed_total", "Requests refused with 503 past the queue limit.", self.shed),
        ):
            lines += [
                f"# HELP conveyor_serving_{name} {help_text}",
                f"# TYPE conveyor_serving_{name} counter",
                f"conveyor_serving_{name} {value}",
            ]
        lines += [
            "# HELP conveyor_serving_in_flight Prediction requests being answered.",
            "# TYPE conveyor_serving_in_flight gauge",
            f"conveyor_serving_in_flight {self.in_flight}",
            "# HELP conveyor_serving_batch_rows Rows per predict call (micro-batches).",
            "# TYPE conveyor_serving_batch_rows histogram",
            *self.batch_rows.render("conveyor_serving_batch_rows", ""),
            "# HELP conveyor_serving_batch_requests Requests coalesced into one predict call.",
            "# TYPE conveyor_serving_batch_requests histogram",
            *self.batch_requests.render("conveyor_serving_batch_requests", ""),
        ]
        models = [self.models[m] for m in sorted(self.models)]
        lines += self._per_model(models, slots)
        return "\n".join(lines) + "\n"

    @staticmethod
    def _per_model(
        models: Sequence[ModelMetrics], slots: Mapping[str, Mapping[str, ModelSlot]]
    ) -> list[str]:
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            lines.extend(
                [
                    f"# HELP conveyor_serving_{name} {help_text}",
                    f"# TYPE conveyor_serving_{name} {kind}",
                ]
            )

        for name, help_text, attr in (
            ("rows_total", "Rows scored.", "rows"),
            ("rejected_rows_total", "Rows of requests rejected as invalid.", "rejected_rows"),
            ("shadow_rows_total", "Rows scored by the shadow version.", "shadow_rows"),
            ("shadow_errors_total", "Shadow scorings that failed.", "shadow_errors"),
        ):
            family(name, "counter", help_text)
            lines += [f"conveyor_serving_{name}{{{m.labels}}} {getattr(m, attr)}" for m in models]
        family("routed_total", "counter", "Requests answered, by the role of the version.")
        for m in models:
            lines += [
                f'conveyor_serving_routed_total{{{m.labels},role="{role}"}} {count}'
                for role, count in sorted(m.routed.items())
            ]
        family("rejected_fields_total", "counter", "Errors in rejected requests, by field.")
        for m in models:
            lines += [
                f'conveyor_serving_rejected_fields_total{{{m.labels},field="{_escape(f)}"}} {c}'
                for f, c in sorted(m.rejected_fields.items())
            ]
        family("unseen_categories_total", "counter", "Unseen categories encoded as missing.")
        for m in models:
            lines += [
                f'conveyor_serving_unseen_categories_total{{{m.labels},field="{_escape(f)}"}} {c}'
                for f, c in sorted(m.unseen.items())
            ]
        for name, help_text, attr in (
            ("model_swaps_total", "Models put in the slot.", "swaps"),
            ("model_load_failures_total", "Failed model loads or warm-ups.", "load_failures"),
        ):
            family(name, "counter", help_text)
            for m in models:
                production = slots.get(m.model, {}).get("production")
                value = getattr(production, attr) if production is not None else 0
                lines.append(f"conveyor_serving_{name}{{{m.labels}}} {value}")
        family("model_version", "gauge", "Version in service per role (0: none loaded).")
        for m in models:
            for role, slot in sorted(slots.get(m.model, {}).items()):
                loaded = slot.model
                lines.append(
                    f'conveyor_serving_model_version{{{m.labels},role="{role}"}} '
                    f"{loaded.version if loaded else 0}"
                )
        family("request_latency_seconds", "histogram", "Prediction request latency.")
        for m in models:
            lines += m.latency.render("conveyor_serving_request_latency_seconds", m.labels)
        return lines
