"""The benchmarks' own bookkeeping: streams that are what they claim, results that serialise."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from benchmarks.ct import CtResult, Stream, Trace, _results, agrawal_stream
from benchmarks.loop import LoopResult


def test_agrawal_batches_of_one_concept_are_new_rows() -> None:
    stream = agrawal_stream(quick=True)
    first, second = stream.batches[0], stream.batches[1]
    assert len(first) == len(second) == 500
    assert len(pd.concat([first, second]).drop_duplicates()) == 1000


def test_ct_results_name_their_stream_and_serialise() -> None:
    batches = [pd.DataFrame({"x": [0.0], "y": [0]})] * 8
    stream = Stream("toy", batches, ["x"], [], drift_points=(5,))
    traces = {
        "static": Trace(auc=[0.6, 0.6, 0.5, 0.5], retrained_after=[]),
        "triggered": Trace(auc=[0.6, 0.6, 0.5, 0.7], retrained_after=[5]),
        "always": Trace(auc=[0.6, 0.6, 0.6, 0.7], retrained_after=[4, 5, 6]),
    }
    results = _results(stream, traces)
    assert results and all(isinstance(r, CtResult) for r in results)
    for r in results:
        data = json.loads(json.dumps(r.to_dict()))
        assert data["dataset"] == "toy" and "goal" not in data
    delay = next(r for r in results if r.metric == "detection_delay_1")
    assert (delay.conveyor, delay.policy) == (1.0, "triggered")


@pytest.mark.parametrize("kind", [CtResult, LoopResult])
def test_a_dataset_given_by_position_is_refused_not_taken_for_the_goal(kind: type) -> None:
    with pytest.raises(TypeError):
        kind("b", "m", "u", 1.0, "peer", 1.0, "higher", "toy", "static")
