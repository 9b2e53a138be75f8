"""In-process serving counters rendered in the Prometheus text format.

Counters are per worker process (Prometheus sums them across a server's workers); each is
a plain integer bumped on the event loop, so recording costs a few dict operations.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping

from conveyor.serving.slot import ModelSlot

LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class ServingMetrics:
    """Requests, rows, rejections, errors, unseen categories and latency of one worker."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.rows = 0
        self.rejected_rows = 0
        self.errors = 0
        self.unseen: dict[str, int] = {}
        self._buckets = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self._latency_sum_s = 0.0

    def observe(self, endpoint: str, status: int, seconds: float | None) -> None:
        """Count one answered request, and its latency when ``seconds`` is given."""
        key = (endpoint, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        if seconds is not None:
            self._buckets[bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
            self._latency_sum_s += seconds

    def add_unseen(self, unseen: Mapping[str, int]) -> None:
        """Count categorical values outside the model's categories, per field."""
        for name, count in unseen.items():
            self.unseen[name] = self.unseen.get(name, 0) + count

    def render(self, slot: ModelSlot, *, project: str, model_name: str) -> str:
        """The Prometheus text exposition of every counter and the slot's state."""
        ident = f'project="{_escape(project)}",model="{_escape(model_name)}"'
        lines = [
            "# HELP conveyor_serving_requests_total Answered requests by endpoint and status.",
            "# TYPE conveyor_serving_requests_total counter",
        ]
        for (endpoint, status), count in sorted(self.requests.items()):
            lines.append(
                f'conveyor_serving_requests_total{{{ident},endpoint="{endpoint}",'
                f'status="{status}"}} {count}'
            )
        for name, help_text, value in (
            ("rows_total", "Rows scored.", self.rows),
            ("rejected_rows_total", "Rows of requests rejected as invalid.", self.rejected_rows),
            ("errors_total", "Unexpected errors caught at the edge.", self.errors),
            ("model_swaps_total", "Models put in the slot.", slot.swaps),
            ("model_load_failures_total", "Failed model loads or warm-ups.", slot.load_failures),
        ):
            lines += [
                f"# HELP conveyor_serving_{name} {help_text}",
                f"# TYPE conveyor_serving_{name} counter",
                f"conveyor_serving_{name}{{{ident}}} {value}",
            ]
        lines += [
            "# HELP conveyor_serving_unseen_categories_total Unseen categories encoded as missing.",
            "# TYPE conveyor_serving_unseen_categories_total counter",
        ]
        for name, count in sorted(self.unseen.items()):
            lines.append(
                f'conveyor_serving_unseen_categories_total{{{ident},field="{_escape(name)}"}} '
                f"{count}"
            )
        model = slot.model
        lines += [
            "# HELP conveyor_serving_model_version Version being served (0: none loaded).",
            "# TYPE conveyor_serving_model_version gauge",
            f"conveyor_serving_model_version{{{ident}}} {model.version if model else 0}",
            "# HELP conveyor_serving_request_latency_seconds Prediction request latency.",
            "# TYPE conveyor_serving_request_latency_seconds histogram",
        ]
        cumulative = 0
        for bound, count in zip((*LATENCY_BUCKETS_S, "+Inf"), self._buckets, strict=True):
            cumulative += count
            lines.append(
                f'conveyor_serving_request_latency_seconds_bucket{{{ident},le="{bound}"}} '
                f"{cumulative}"
            )
        lines += [
            f"conveyor_serving_request_latency_seconds_sum{{{ident}}} {self._latency_sum_s:.6f}",
            f"conveyor_serving_request_latency_seconds_count{{{ident}}} {cumulative}",
        ]
        return "\n".join(lines) + "\n"
