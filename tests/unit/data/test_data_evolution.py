"""Schema diffs and evolution: what changed, and the widened schema that admits a batch."""

from __future__ import annotations

import pytest

from conveyor.core.errors import SchemaError
from conveyor.core.schema import ColumnKind, ColumnRole, ColumnSchema, Schema
from conveyor.data.evolution import diff_schemas, evolve_schema


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
