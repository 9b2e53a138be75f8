"""Shadow and production predictions joined with feedback, scored side by side."""

from __future__ import annotations

import numpy as np

from conveyor.serving.feedback import FeedbackLog
from conveyor.serving.predlog import PredictionLogWriter, iso_now
from conveyor.serving.service import SHADOW_KIND, compare_shadow


def entries(ids, scores, version):
    ts = iso_now()
    return [
        {"request_id": rid, "ts": ts, "model_version": version, "inputs": {"x": 1.0},
         "score": float(s), "label": int(s >= 0.5), "latency_ms": 0.5}
        for rid, s in zip(ids, scores, strict=True)
    ]  # fmt: skip


def test_compare_shadow_scores_both_versions_on_the_same_labelled_requests(ws, spec):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    ids = [f"r{i}" for i in range(300)]
    production = np.clip(0.5 + (labels - 0.5) * 0.2 + rng.normal(0, 0.3, 300), 0, 1)
    shadow = np.clip(0.5 + (labels - 0.5) * 0.8 + rng.normal(0, 0.1, 300), 0, 1)
    answered = PredictionLogWriter(ws.project_dir(spec.project, "predictions"))
    answered.write(entries(ids, production, 4))
    mirrored = PredictionLogWriter(ws.project_dir(spec.project, SHADOW_KIND))
    mirrored.write(entries(ids[:250], shadow[:250], 5))  # the shadow missed a few requests
    feedback = FeedbackLog(ws.project_dir(spec.project, "feedback"))
    feedback.record(
        [{"request_id": r, "label": int(y)} for r, y in zip(ids[:200], labels[:200], strict=True)]
    )
    result = compare_shadow(ws, spec)
    assert result["rows"] == 200
    assert result["production"]["versions"] == [4] and result["shadow"]["versions"] == [5]
    assert result["shadow"]["metrics"]["roc_auc"] > result["production"]["metrics"]["roc_auc"]
    assert result["shadow"]["metrics"]["roc_auc"] > 0.95


def test_compare_shadow_without_labels_reports_no_metrics(ws, spec):
    PredictionLogWriter(ws.project_dir(spec.project, "predictions")).write(entries(["a"], [0.3], 1))
    result = compare_shadow(ws, spec)
    assert result == {
        "rows": 0,
        "production": {"versions": [], "metrics": {}},
        "shadow": {"versions": [], "metrics": {}},
    }
