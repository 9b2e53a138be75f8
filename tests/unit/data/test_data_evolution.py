"""Schema diffs and evolution: what changed, and the widened schema that admits a batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conveyor.core.errors import ConfigError, SchemaError
from conveyor.core.schema import ColumnKind, ColumnRole, ColumnSchema, Schema
from conveyor.data.evolution import apply_spec, diff_schemas, evolve_schema, learn_schema
from conveyor.data.profiles import profile_frame
from conveyor.data.schemas import infer_schema
from conveyor.spec import ProjectSpec


def _schema(*columns: ColumnSchema, version: int = 1) -> Schema:
    label = ColumnSchema("y", ColumnKind.NUMERIC, ColumnRole.LABEL, nullable=False)
    return Schema((*columns, label), version=version)


NUM = ColumnSchema("d", ColumnKind.NUMERIC, nullable=False, min_value=0.0, max_value=10.0)
CAT = ColumnSchema("c", ColumnKind.CATEGORICAL, nullable=False, categories=("a", "b"))


def test_diff_lists_every_change_between_versions():
    new = _schema(
        ColumnSchema("d", ColumnKind.NUMERIC, nullable=True, min_value=0.0, max_value=5.0),
        ColumnSchema("c", ColumnKind.CATEGORICAL, nullable=False, categories=("b", "z")),
        ColumnSchema("e", ColumnKind.BOOLEAN),
        version=2,
    )
    diff = diff_schemas(_schema(NUM, CAT), new)
    assert [(c.column, c.change) for c in diff.changes] == [
        ("d", "nullability"),
        ("d", "range"),
        ("c", "categories"),
        ("e", "added"),
    ]
    assert diff.changes[2].details == {"added": ["z"], "removed": ["a"]}
    assert (diff.from_version, diff.to_version, diff.is_breaking) == (1, 2, False)
    assert diff_schemas(new, _schema(NUM, CAT)).changes[-1].change == "removed"
    assert diff_schemas(new, new).is_empty


def test_a_sample_reports_widening_only():
    narrow = _schema(
        ColumnSchema("d", ColumnKind.NUMERIC, nullable=False, min_value=2.0, max_value=8.0),
        ColumnSchema("c", ColumnKind.CATEGORICAL, nullable=False, categories=("a",)),
    )
    assert diff_schemas(_schema(NUM, CAT), narrow, sample=True).is_empty
    wide = _schema(
        ColumnSchema("d", ColumnKind.NUMERIC, nullable=False, min_value=2.0, max_value=80.0),
        ColumnSchema("c", ColumnKind.CATEGORICAL, nullable=False, categories=("a", "q")),
    )
    diff = diff_schemas(_schema(NUM, CAT), wide, sample=True)
    assert [(c.column, c.change) for c in diff.changes] == [("d", "range"), ("c", "categories")]
    assert diff.to_version is None


def test_evolve_widens_unites_and_adds_optional_features():
    batch = _schema(
        ColumnSchema("d", ColumnKind.NUMERIC, nullable=True, min_value=-5.0, max_value=3.0),
        ColumnSchema("c", ColumnKind.CATEGORICAL, nullable=False, categories=("z",)),
        ColumnSchema("e", ColumnKind.NUMERIC, nullable=False, min_value=1.0, max_value=2.0),
    )
    evolved = evolve_schema(_schema(NUM, CAT, version=4), batch)
    assert evolved.version == 4 and evolved.names == ["d", "c", "y", "e"]
    d, c, e = evolved.column("d"), evolved.column("c"), evolved.column("e")
    assert (d.min_value, d.max_value, d.nullable) == (-5.0, 10.0, True)
    assert c.categories == ("a", "b", "z") and not c.nullable
    assert e.role is ColumnRole.FEATURE and e.nullable
    assert evolve_schema(evolved, batch) == evolved


def test_evolve_refuses_a_kind_change():
    batch = _schema(ColumnSchema("d", ColumnKind.TEXT))
    with pytest.raises(SchemaError, match="'d' is numeric in the schema and text in the batch"):
        evolve_schema(_schema(NUM), batch)
    assert diff_schemas(_schema(NUM), batch, sample=True).is_breaking


def _profiles(schema: Schema, *frames: pd.DataFrame) -> list[dict]:
    return [profile_frame(f, schema) for f in frames]


def test_learned_domains_are_complete_beyond_the_profiled_top_values():
    first = pd.DataFrame({"c": ["a", "b"] * 50, "d": np.linspace(0, 10, 100), "y": 0})
    schema = infer_schema(first, label="y")
    many = [f"v{i:02d}" for i in range(60)]  # more than the 50 values a profile counts by name
    later = pd.DataFrame({"c": many * 2, "d": np.linspace(0, 10, 120), "y": 1})
    learned = learn_schema(schema, _profiles(schema, first, later))
    assert learned.column("c").categories == tuple(sorted({"a", "b", *many}))
    assert learned.version == schema.version


def test_learned_ranges_take_quantiles_so_one_outlier_does_not_stretch_them():
    first = pd.DataFrame({"d": np.linspace(0, 10, 5000), "y": 0})
    schema = infer_schema(first, label="y")
    wide = pd.DataFrame({"d": np.r_[np.linspace(0, 30, 4999), 1e9], "y": 1})
    learned = learn_schema(schema, _profiles(schema, first, wide)).column("d")
    assert 29.0 < learned.max_value < 31.0 and learned.min_value == 0.0
    again = learn_schema(schema, _profiles(schema, first, wide)).column("d")
    assert again == learned  # the same every time it is computed
    tight = learn_schema(schema, _profiles(schema, first), range_quantile=0.1)
    assert tight.column("d") == schema.column("d")  # never narrower than the reviewed range


def test_ignored_columns_learn_nothing():
    first = pd.DataFrame({"c": ["a"] * 10, "y": 0})
    schema = infer_schema(first, label="y", ignore=["c"])
    learned = learn_schema(schema, _profiles(schema, first.assign(c="z")))
    assert learned.column("c") == schema.column("c")


def test_apply_spec_brings_roles_up_to_date_with_the_spec():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [0, 1], "code": [3, 4], "y": [0, 1]})
    schema = infer_schema(frame, label="y")
    spec = ProjectSpec(
        project="p", task="binary", label="b", ignore=["a", "late_col"], categorical=["code"]
    )
    updated = apply_spec(schema, spec)
    roles = {c.name: str(c.role) for c in updated.columns}
    assert roles == {
        "a": "ignored",
        "b": "label",
        "code": "feature",
        "y": "feature",
        "late_col": "ignored",
    }
    assert updated.column("code").kind is ColumnKind.CATEGORICAL
    assert apply_spec(updated, spec) == updated
    with pytest.raises(ConfigError, match="'nope' as the label column"):
        apply_spec(schema, ProjectSpec(project="p", task="binary", label="nope"))
