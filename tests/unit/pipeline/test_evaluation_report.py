"""The evaluation report drawn from the gate's evidence."""

from __future__ import annotations

import re

import numpy as np
import pytest

from conveyor.evaluation import GatePolicy, compare_models, evaluate_test_set
from conveyor.pipeline.evaluation_report import build_evaluation_report


def _evidence(task: str) -> dict:
    rng = np.random.default_rng(0)
    n = 1500
    group = rng.choice(["JFK", "LGA", "EWR"], n)
    if task == "binary":
        y = (rng.random(n) < 0.3).astype(float)
        chal = 1 / (1 + np.exp(-(2.0 * (y - 0.5) + rng.normal(size=n))))
        prod = 1 / (1 + np.exp(-(1.5 * (y - 0.5) + rng.normal(size=n))))
    else:
        y = rng.normal(10, 2, n)
        chal, prod = y + rng.normal(0, 1, n), y + rng.normal(0, 1.2, n)
    decision = compare_models(y, chal, prod, task=task, policy=GatePolicy(n_bootstrap=50))
    kw = {"groups": {"origin": group}, "min_slice_rows": 100}
    return {
        "model": "flights",
        "challenger": 4,
        "production": 3,
        "at": "2026-01-01T00:00:00+00:00",
        "passed": decision.passed,
        "problems": ["Slice origin=JFK (500 rows): roc_auc 0.6 vs production 0.7, worse by 0.1."],
        "decision": decision.to_dict(),
        "evaluation": {
            "challenger": evaluate_test_set(task, y, chal, **kw).to_dict(),
            "production": evaluate_test_set(task, y, prod, **kw).to_dict(),
        },
        "comparison": [
            {
                "metric": decision.metric,
                "challenger": decision.challenger,
                "production": decision.production,
                "difference": decision.delta,
                "ci_low": decision.ci_low,
                "ci_high": decision.ci_high,
                "margin": 0.005,
                "decides": True,
            }
        ],
        "slices": [
            {
                "column": "origin",
                "value": "JFK",
                "rows": 500,
                "challenger": 0.6,
                "production": 0.7,
                "delta": -0.1,
                "regressed": True,
            },
        ],
        "behaviour": [
            {
                "name": "noise 0.01 x std",
                "kind": "robustness",
                "passed": True,
                "detail": "ok",
                "figures": {},
            }
        ],
        "latency": {"single_p50_ms": 0.4, "single_p99_ms": 1.2},
        "size_bytes": 123456,
        "infra": {
            "passed": True,
            "version": 4,
            "records": 50,
            "requests": 101,
            "max_abs_diff": 0.0,
            "p50_ms": 0.5,
            "p99_ms": 2.0,
            "budget_ms": 250.0,
            "problems": [],
        },
    }


def _headings(html: str) -> list[str]:
    return re.findall(r"<h2[^>]*>([^<]+)</h2>", html)


def test_binary_report_has_curves_calibration_confusion_slices_and_comparison():
    html = build_evaluation_report(_evidence("binary")).render()
    assert _headings(html) == [
        "Decision",
        "Challenger vs production",
        "ROC curve",
        "Precision-recall curve",
        "Calibration",
        "Confusion matrix",
        "Slices",
        "Behavioural tests",
        "Latency and size",
        "Infra check",
    ]
    assert html.count("<svg") == 5  # interval chart, ROC, PR, reliability, confusion matrix
    assert "v4" in html and "production v3" in html
    assert "worse by 0.1" in html  # the blocking problem is stated
    assert "Errors by true label" in html and "Reliability bins" in html


def test_regression_report_draws_residuals_instead_of_binary_charts():
    html = build_evaluation_report(_evidence("regression")).render()
    headings = _headings(html)
    assert "Residuals" in headings and "ROC curve" not in headings
    assert "Confusion matrix" not in headings and "Residual summary" in html


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_report_without_production_or_infra_still_renders(task):
    evidence = _evidence(task)
    evidence.update(production=None, comparison=[], slices=[], infra=None)
    evidence["evaluation"]["production"] = None
    html = build_evaluation_report(evidence).render()
    assert "Challenger vs production" not in _headings(html)
    assert "infra check is turned off" in html
