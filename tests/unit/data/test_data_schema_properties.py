"""Property-based tests of schema inference: what it records is what the frame holds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import pandas as hpd

from conveyor.core.schema import ColumnKind, Schema
from conveyor.data import infer_schema, profile_frame
from conveyor.data.schemas import inferred_range

_frames = hpd.data_frames(
    [
        hpd.column("num", elements=st.one_of(st.just(np.nan), st.floats(-1e9, 1e9)), dtype=float),
        hpd.column("word", elements=st.one_of(st.none(), st.sampled_from("abcde")), dtype=object),
        hpd.column("y", elements=st.integers(0, 1), dtype=np.int64),
    ],
    index=hpd.range_indexes(min_size=1, max_size=40),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=_frames)
def test_inferred_ranges_domains_and_nullability_match_the_frame(frame: pd.DataFrame):
    schema = infer_schema(frame, label="y", max_categories=10)
    by_name = {c.name: c for c in schema.columns}
    num, word = by_name["num"], by_name["word"]
    assert num.kind is ColumnKind.NUMERIC
    assert num.nullable == bool(frame["num"].isna().any())
    finite = frame["num"].dropna()
    if len(finite):
        assert (num.min_value, num.max_value) == inferred_range(finite.min(), finite.max())
        assert num.min_value is not None and num.max_value is not None
        assert num.min_value <= finite.min() and num.max_value >= finite.max()
        assert num.max_value > num.min_value  # never zero-width
        assert (num.min_value == 0.0) == (finite.min() >= 0)
    else:
        assert num.min_value is None and num.max_value is None
    present = sorted(set(frame["word"].dropna()))
    if present:
        assert word.kind is ColumnKind.CATEGORICAL
        assert sorted(word.categories or []) == present
    assert word.nullable == bool(frame["word"].isna().any())
    assert Schema.from_dict(schema.to_dict()) == schema
    # the profile of the same frame agrees with the schema
    profile = profile_frame(frame, schema)["columns"]
    assert profile["num"]["null_count"] == int(frame["num"].isna().sum())
    if len(finite):
        assert math.isclose(profile["num"]["min"], finite.min(), abs_tol=0.0)
        assert profile["num"]["distinct"] == finite.nunique()
