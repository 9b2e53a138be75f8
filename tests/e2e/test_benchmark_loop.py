"""The loop benchmark's harness on a tiny synthetic stream: a real workspace, `conveyor init` and
`conveyor serve` as subprocesses, the agent and forced cycles; nothing replaced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from benchmarks.loop import goals
from benchmarks.loop_data import LoopData, Truth
from benchmarks.loop_docs import Outcome, render
from benchmarks.loop_replay import Policy, replay

pytestmark = pytest.mark.slow


def _stream(batches: int = 4, rows: int = 800) -> LoopData:
    rng = np.random.default_rng(7)
    frames = []
    for _ in range(batches):
        x1 = rng.normal(size=rows)
        x2 = rng.uniform(size=rows)
        colour = rng.choice(["red", "green", "blue"], size=rows)
        signal = x1 + x2 + (colour == "red") + rng.normal(scale=0.8, size=rows)
        outcome = (signal > 1).astype(int)
        frames.append(pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "outcome": outcome}))
    return LoopData("tiny", Truth.BINARY, "outcome", tuple(frames), 2, "synthetic")


def test_replay_scores_each_batch_before_its_labels_are_used(tmp_path: Path) -> None:
    data = _stream()
    lines: list[str] = []
    drafted, traces = replay(data, tmp_path / "tiny", lines.append)

    assert drafted is not None and drafted.drafted["label"] == "outcome"
    by_policy = {t.policy: t for t in traces}
    assert set(by_policy) == set(Policy)
    for policy in (Policy.TRIGGERED, Policy.ALWAYS):
        trace = by_policy[policy]
        assert trace.error is None, trace.error
        assert trace.first_served_batches == 0
        assert [r.index for r in trace.records] == [2, 3]
        for rec in trace.records:
            # served, then labelled, then ingested: the live metric is prequential
            assert rec.events.index("score") < rec.events.index("feedback")
            assert rec.events.index("feedback") < rec.events.index("ingest")
            # the model that scored the batch was trained only on batches ingested before it
            assert rec.served is not None and rec.seq is not None
            assert rec.trained_through is not None and rec.trained_through < rec.seq
            assert rec.score.value is not None and 0.5 < rec.score.value <= 1.0
    always = by_policy[Policy.ALWAYS]
    assert always.retrains == 2 and all(r.trained for r in always.records)
    static = by_policy[Policy.STATIC]
    assert {r.served for r in static.records} == {by_policy[Policy.TRIGGERED].records[0].served}
    assert any(line.startswith("tiny/triggered batch 3/4") for line in lines)

    outcome = Outcome("tiny", data, drafted, by_policy, None, 1.0)
    results = goals(data, by_policy)
    assert {r.metric for r in results} >= {"first_model_batches", "retrain_share"}
    assert all(r.to_dict()["meets"] in (True, False) for r in results)
    text = render([outcome], results, ("not available", "no module"), quick=True, seconds=1.0)
    for policy in Policy:
        assert f"| {policy} | " in text
    assert "| tiny | first_model_batches (triggered) | 0.00 |" in text
