"""Evaluation: metrics of predictions, test-set analysis, behavioural tests, candidate sanity
checks and the champion/challenger gate."""

from __future__ import annotations

from conveyor.evaluation.analysis import TestEvaluation, evaluate_test_set, reliability
from conveyor.evaluation.behaviour import (
    BehaviourResult,
    measure_latency,
    run_behaviour_tests,
)
from conveyor.evaluation.gate import (
    GateDecision,
    GatePolicy,
    check_floors,
    compare_models,
    compare_slices,
    sanity_check,
)
from conveyor.evaluation.metrics import (
    comparable_metrics,
    evaluate,
    higher_is_better,
    is_better,
    primary_metric,
)
from conveyor.evaluation.paired import McNemarResult, mcnemar_test, paired_bootstrap

__all__ = [
    "BehaviourResult",
    "GateDecision",
    "GatePolicy",
    "McNemarResult",
    "TestEvaluation",
    "check_floors",
    "comparable_metrics",
    "compare_models",
    "compare_slices",
    "evaluate",
    "evaluate_test_set",
    "higher_is_better",
    "is_better",
    "mcnemar_test",
    "measure_latency",
    "paired_bootstrap",
    "primary_metric",
    "reliability",
    "run_behaviour_tests",
    "sanity_check",
]
