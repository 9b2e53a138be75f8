"""The post-processing chain: thresholds, clipping, rules, filters and re-ranking, vectorised."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml

from conveyor.core.errors import ConfigError, InvalidInputError
from conveyor.serving.postprocess import PostProcessor
from conveyor.spec import PostprocessSpec, parse_spec


def chain(*steps: dict, **kwargs) -> PostProcessor:
    return PostProcessor(PostprocessSpec.model_validate({"steps": list(steps)}), **kwargs)


ROWS = [
    {"carrier": "AA", "distance": 50.0, "user": "u1"},
    {"carrier": "UA", "distance": 900.0, "user": "u1"},
    {"carrier": "XX", "distance": 1200.0, "user": "u2"},
    {"carrier": "DL", "user": "u2"},
]
SCORES = np.array([0.95, 0.55, 0.7, 0.2])


def test_empty_chain_keeps_raw_outputs_with_binary_labels():
    result = chain(threshold=0.6).apply(SCORES, ROWS)
    assert result.scores.tolist() == SCORES.tolist()
    assert result.labels.tolist() == [1, 0, 1, 0]
    assert not result.withheld.any() and result.ranks is None


def test_clip_then_threshold_labels_from_the_highest_cutoff():
    pp = chain(
        {"kind": "clip", "min": 0.3, "max": 0.9},
        {"kind": "threshold", "cutoffs": [[0.5, "mid"], [0.8, "high"]], "default": "low"},
    )
    result = pp.apply(SCORES, ROWS)
    assert result.scores.tolist() == [0.9, 0.55, 0.7, 0.3]
    assert result.labels.tolist() == ["high", "mid", "mid", "low"]
    assert result.raw_scores.tolist() == SCORES.tolist()
    assert result.raw_labels.tolist() == [1, 1, 1, 0]


def test_rules_override_on_input_fields_and_missing_fields_are_null():
    pp = chain(
        {"kind": "rule", "when": [{"field": "distance", "op": "lt", "value": 100}],
         "set_score": 0.0, "set_label": 0},
        {"kind": "rule", "when": [{"field": "distance", "op": "is_null"}], "set_label": -1},
    )  # fmt: skip
    result = pp.apply(SCORES, ROWS)
    assert result.scores.tolist() == [0.0, 0.55, 0.7, 0.2]
    assert result.labels.tolist() == [0, 1, 1, -1]


def test_filters_withhold_outputs_with_a_reason():
    pp = chain(
        {"kind": "filter", "when": [{"field": "carrier", "op": "in", "value": ["XX", "YY"]}],
         "reason": "carrier not served"},
        {"kind": "filter", "when": [{"field": "score", "op": "lt", "value": 0.3}]},
    )  # fmt: skip
    result = pp.apply(SCORES, ROWS)
    assert result.withheld.tolist() == [False, False, True, True]
    assert result.reasons.tolist() == [None, None, "carrier not served", "withheld by policy"]
    out = result.output(2)
    assert out == {"score": None, "label": None, "withheld": True, "reason": "carrier not served"}


def test_rerank_per_group_with_boosts_and_top_k():
    pp = chain(
        {"kind": "rerank", "group": "user", "top_k": 1,
         "boosts": [[0.5, [{"field": "carrier", "op": "eq", "value": "UA"}]]]},
    )  # fmt: skip
    result = pp.apply(SCORES, ROWS)
    # u1: UA 0.55 + 0.5 beats AA 0.95; u2: XX 0.7 beats DL 0.2
    assert result.ranks.tolist() == [2, 1, 1, 2]
    assert result.withheld.tolist() == [True, False, False, True]


def test_same_result_for_records_dataframe_and_arrow():
    pp = chain(
        {"kind": "filter", "when": [{"field": "carrier", "op": "ne", "value": "AA"},
                                    {"field": "distance", "op": "ge", "value": 1000}]},
    )  # fmt: skip
    frame = pd.DataFrame(ROWS)
    expected = [False, False, True, False]
    assert pp.apply(SCORES, ROWS).withheld.tolist() == expected
    assert pp.apply(SCORES, frame).withheld.tolist() == expected
    assert pp.apply(SCORES, pa.Table.from_pandas(frame)).withheld.tolist() == expected


def test_regression_has_no_labels_until_a_step_sets_them():
    result = chain({"kind": "clip", "min": 0}, task="regression").apply([-3.0, 2.0], [{}, {}])
    assert result.labels.tolist() == [None, None] and result.scores.tolist() == [0.0, 2.0]


def test_vectorised_over_a_large_batch():
    n = 100_000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"carrier": rng.choice(["AA", "XX"], n)})
    scores = rng.random(n)
    pp = chain({"kind": "filter", "when": [{"field": "carrier", "op": "eq", "value": "XX"}]})
    result = pp.apply(scores, frame)
    assert result.withheld.sum() == (frame["carrier"] == "XX").sum()


def test_bad_chains_are_config_errors():
    with pytest.raises(ConfigError, match="needs a number"):
        chain({"kind": "rule", "when": [{"field": "x", "op": "lt", "value": "a"}], "set_label": 1})
    with pytest.raises(ConfigError, match="'min' must not exceed 'max'"):
        chain({"kind": "clip", "min": 1.0, "max": 0.0})
    with pytest.raises(ConfigError, match="postprocess"):
        parse_spec({"project": "p", "task": "binary", "label": "y",
                    "postprocess": {"steps": [{"kind": "explode"}]}})  # fmt: skip


def test_length_mismatch_is_invalid_input():
    with pytest.raises(InvalidInputError, match="2 scores for 1 rows"):
        chain().apply([0.1, 0.2], [{}])


def test_the_chain_round_trips_through_conveyor_yaml():
    spec = parse_spec(
        {
            "project": "p",
            "task": "binary",
            "label": "y",
            "postprocess": {
                "steps": [
                    {"kind": "threshold", "cutoffs": [[0.8, "high"]], "default": "low"},
                    {"kind": "rerank", "boosts": [[0.1, [{"field": "c", "op": "eq", "value": 1}]]]},
                ]
            },
            "offline": {"key": "id", "max_age_s": 60},
        }
    )
    assert parse_spec(yaml.safe_load(spec.to_yaml())) == spec
    assert PostProcessor(spec.postprocess).label_type == pa.string()
