"""Evaluation: metrics of predictions, candidate sanity checks and the champion/challenger gate."""

from __future__ import annotations

from conveyor.evaluation.gate import GateDecision, GatePolicy, compare_models, sanity_check
from conveyor.evaluation.metrics import (
    comparable_metrics,
    evaluate,
    higher_is_better,
    is_better,
    primary_metric,
)

__all__ = [
    "GateDecision",
    "GatePolicy",
    "comparable_metrics",
    "compare_models",
    "evaluate",
    "higher_is_better",
    "is_better",
    "primary_metric",
    "sanity_check",
]
