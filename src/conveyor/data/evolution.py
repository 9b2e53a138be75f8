"""Schema evolution: what changed between two schemas, and the schema that admits a new batch.

A project's schema is inferred from its first batch and then lives with the data. Validation
checks a batch against the *learned* schema (:func:`learn_schema`): the newest reviewed
version widened by the categories and the quantile ranges of every accepted batch, so a month
column warns once per new month and a seasonal range once per new extreme, never every batch.
What the learned schema adds to the reviewed one is a proposed change, which
``conveyor schema diff --proposed`` shows and ``conveyor schema accept`` stores. The roles
always follow ``conveyor.yaml`` (:func:`apply_spec`), so a changed ignore list or label
column needs no new workspace. :func:`diff_schemas` says what differs between two schemas and
:func:`evolve_schema` builds the version that admits both the old data and a new batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import pandas as pd

from conveyor.core.errors import ConfigError, SchemaError
from conveyor.core.labels import label_key
from conveyor.core.schema import ColumnKind, ColumnRole, ColumnSchema, Schema
from conveyor.data.profiles import observed_categories
from conveyor.data.schemas import infer_schema
from conveyor.data.sketches import QuantileSketch
from conveyor.spec import ProjectSpec

__all__ = [
    "SchemaChange",
    "SchemaDiff",
    "apply_spec",
    "diff_schemas",
    "evolve_schema",
    "infer_project_schema",
    "learn_schema",
    "learned_label_classes",
]

ChangeKind = Literal["added", "removed", "kind", "role", "nullability", "range", "categories"]


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """One difference in one column; ``before``/``after`` are JSON-able."""

    column: str
    change: ChangeKind
    before: Any
    after: Any
    details: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """One readable line, e.g. ``range of 'distance': [0, 100] -> [0, 250]``."""
        if self.change == "added":
            return f"column {self.column!r} added ({self.after})"
        if self.change == "removed":
            return f"column {self.column!r} removed (was {self.before})"
        if self.change == "categories":
            parts = [f"+{self.details['added']}"] if self.details.get("added") else []
            parts += [f"-{self.details['removed']}"] if self.details.get("removed") else []
            return f"categories of {self.column!r}: {' '.join(parts)}"
        return f"{self.change} of {self.column!r}: {self.before} -> {self.after}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "change": self.change,
            "before": self.before,
            "after": self.after,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class SchemaDiff:
    """The changes from schema version ``from_version`` to ``to_version`` (None: a batch)."""

    from_version: int
    to_version: int | None
    changes: tuple[SchemaChange, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.changes

    @property
    def is_breaking(self) -> bool:
        """Whether :func:`evolve_schema` cannot absorb it: a column changed kind."""
        return any(c.change == "kind" for c in self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "from_version": self.from_version,
            "to_version": self.to_version,
            "breaking": self.is_breaking,
            "changes": [c.to_dict() for c in self.changes],
        }


def infer_project_schema(frame: pd.DataFrame, spec: ProjectSpec) -> Schema:
    """Infer a schema from ``frame`` with the roles ``spec`` declares.

    Columns outside ``spec.features`` (when it lists them) and in ``spec.ignore`` are
    ``ignored``; ``spec.categorical`` columns are categorical whatever their dtype.

    Raises
    ------
    SchemaError
        If a declared column (label, timestamp, entity) is not in ``frame``.
    """
    declared = {spec.label, spec.timestamp, *spec.entities}
    unlisted = [
        c
        for c in frame.columns
        if spec.features is not None and c not in spec.features and c not in declared
    ]
    present = set(frame.columns)
    return infer_schema(
        frame,
        label=spec.label,
        timestamp=spec.timestamp,
        entities=spec.entities,
        ignore=list(dict.fromkeys(unlisted + [c for c in spec.ignore if c in present])),
        categorical=[c for c in spec.categorical if c in present],
    )


def spec_role(name: str, spec: ProjectSpec) -> ColumnRole:
    """The role ``conveyor.yaml`` gives column ``name`` (see :func:`infer_project_schema`)."""
    if name == spec.label:
        return ColumnRole.LABEL
    if name == spec.timestamp:
        return ColumnRole.TIMESTAMP
    if name in spec.entities:
        return ColumnRole.ENTITY
    if name in spec.ignore or (spec.features is not None and name not in spec.features):
        return ColumnRole.IGNORED
    return ColumnRole.FEATURE


def apply_spec(schema: Schema, spec: ProjectSpec) -> Schema:
    """``schema`` with the roles and categorical columns ``conveyor.yaml`` declares now.

    A stored schema keeps the roles of the spec it was inferred under; this brings it up to
    date after the spec changed: columns take their declared role, a column newly declared
    categorical becomes categorical (its domain then learned from the batches), and an ignored
    column the schema does not know is added (text, nullable) so a batch may carry it. The
    version is kept; the service stores a changed schema as the next version.

    Raises
    ------
    ConfigError
        If the label, timestamp or an entity column of the spec is not in the schema.

    Examples
    --------
    >>> from conveyor.spec import ProjectSpec
    >>> schema = Schema((ColumnSchema("x", ColumnKind.NUMERIC),
    ...                  ColumnSchema("y", ColumnKind.NUMERIC, ColumnRole.LABEL)))
    >>> spec = ProjectSpec(project="p", task="regression", label="y", ignore=["x", "note"])
    >>> [(c.name, str(c.role)) for c in apply_spec(schema, spec).columns]
    [('x', 'ignored'), ('y', 'label'), ('note', 'ignored')]
    """
    known = set(schema.names)
    for what, names in (
        ("label", [spec.label]),
        ("timestamp", [spec.timestamp] if spec.timestamp else []),
        ("entity", list(spec.entities)),
    ):
        for name in names:
            if name not in known:
                raise ConfigError(
                    f"conveyor.yaml names {name!r} as the {what} column, but the project's "
                    f"schema has no such column; its columns are {schema.names}."
                )
    columns = []
    for col in schema.columns:
        role = spec_role(col.name, spec)
        if col.name in spec.categorical and col.kind is not ColumnKind.CATEGORICAL:
            col = ColumnSchema(col.name, ColumnKind.CATEGORICAL, role, col.nullable)
        columns.append(col if col.role is role else replace(col, role=role))
    for name in dict.fromkeys(spec.ignore):
        if name not in known:
            columns.append(ColumnSchema(name, ColumnKind.TEXT, ColumnRole.IGNORED, nullable=True))
    return Schema(columns=tuple(columns), version=schema.version)


def learn_schema(
    reviewed: Schema, profiles: Sequence[Mapping[str, Any]], *, range_quantile: float = 0.001
) -> Schema:
    """The reviewed schema widened by what the accepted batches held.

    Parameters
    ----------
    reviewed : Schema
        The newest stored schema version.
    profiles : sequence of mapping
        Profiles of the project's accepted batches (:func:`conveyor.data.profile_frame`).
    range_quantile : float
        A numeric range grows to the lowest ``range_quantile`` and the highest
        ``1 - range_quantile`` quantile of the batches (each from its quantile sketch), so a
        rare outlier does not stretch it.

    Returns
    -------
    Schema
        Same version as ``reviewed``; categorical domains are the union of the reviewed one and
        every category seen, numeric ranges never narrower than the reviewed one. Ignored
        columns are left as they are.

    Examples
    --------
    >>> import pandas as pd
    >>> from conveyor.data.profiles import profile_frame
    >>> from conveyor.data.schemas import infer_schema
    >>> jan = pd.DataFrame({"month": ["jan"] * 3, "t": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    >>> schema = infer_schema(jan, label="y")
    >>> feb = jan.assign(month="feb", t=[30.0, 31.0, 32.0])
    >>> learned = learn_schema(schema, [profile_frame(df, schema) for df in (jan, feb)])
    >>> learned.column("month").categories, learned.column("t").max_value
    (('feb', 'jan'), 32.0)
    """
    columns = []
    for col in reviewed.columns:
        parts = [
            p["columns"][col.name]
            for p in profiles
            if col.name in p.get("columns", {}) and p["columns"][col.name].get("kind") == col.kind
        ]
        if col.role is ColumnRole.IGNORED or not parts:
            columns.append(col)
        elif col.kind is ColumnKind.NUMERIC:
            columns.append(_learn_range(col, parts, range_quantile))
        elif col.kind is ColumnKind.CATEGORICAL:
            # A column declared categorical after the fact has no reviewed domain yet.
            seen: set[str] = set(col.categories or ())
            for part in parts:
                seen |= observed_categories(part) or set()
            columns.append(replace(col, categories=tuple(sorted(seen))))
        else:
            columns.append(col)
    return Schema(columns=tuple(columns), version=reviewed.version)


def _learn_range(
    col: ColumnSchema, parts: Sequence[Mapping[str, Any]], quantile: float
) -> ColumnSchema:
    # Each batch's own sketch is queried, never a merge: merging compacts at random, and a
    # learned range must come out the same every time it is computed, or accepting it would
    # never leave the proposal empty.
    lows, highs = [], []
    for part in parts:
        sketch = QuantileSketch.from_dict(part["sketch"]) if "sketch" in part else None
        if sketch is not None and sketch.n:
            low, high = sketch.quantiles([quantile, 1.0 - quantile])
        elif part.get("min") is not None and part.get("max") is not None:
            low, high = float(part["min"]), float(part["max"])
        else:
            continue
        lows.append(low)
        highs.append(high)
    if not lows:
        return col
    low, high = min(lows), max(highs)
    if col.min_value is not None and col.max_value is not None:
        low, high = min(low, float(col.min_value)), max(high, float(col.max_value))
    return replace(col, min_value=low, max_value=high)


def learned_label_classes(schema: Schema, profiles: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """Canonical keys of the label values the accepted batches held, first seen first.

    A categorical label gives its profiled categories; a numeric one with at most two distinct
    values its minimum and maximum.
    """
    labels = schema.with_role(ColumnRole.LABEL)
    if len(labels) != 1:
        return ()
    name, keys = labels[0].name, list[str]()
    for profile in profiles:
        part = profile.get("columns", {}).get(name)
        if not part:
            continue
        if part.get("kind") == ColumnKind.CATEGORICAL:
            keys += [label_key(k) for k in sorted(observed_categories(part) or ())]
        elif part.get("kind") == ColumnKind.NUMERIC and int(part.get("distinct") or 0) <= 2:
            keys += [label_key(float(part[k])) for k in ("min", "max") if part.get(k) is not None]
    return tuple(dict.fromkeys(keys))


def diff_schemas(old: Schema, new: Schema, *, sample: bool = False) -> SchemaDiff:
    """List what differs from ``old`` to ``new``, column by column, in ``old``'s order.

    Parameters
    ----------
    old, new : Schema
        The schemas to compare.
    sample : bool
        ``new`` was inferred from one batch: a narrower range or fewer categories is then
        what a sample looks like, not a change, so only widening is reported.

    Returns
    -------
    SchemaDiff
        ``to_version`` is None when ``sample`` is true.

    Examples
    --------
    >>> from conveyor.core.schema import ColumnKind
    >>> old = Schema((ColumnSchema("x", ColumnKind.NUMERIC, min_value=0.0, max_value=1.0),))
    >>> new = Schema((ColumnSchema("x", ColumnKind.NUMERIC, min_value=0.0, max_value=3.0),
    ...               ColumnSchema("z", ColumnKind.NUMERIC)), version=2)
    >>> for change in diff_schemas(old, new).changes:
    ...     print(change.describe())
    range of 'x': [0.0, 1.0] -> [0.0, 3.0]
    column 'z' added (numeric feature)
    """
    changes: list[SchemaChange] = []
    new_names = set(new.names)
    for col in old.columns:
        if col.name not in new_names:
            changes.append(SchemaChange(col.name, "removed", _label(col), None))
            continue
        changes += _column_changes(col, new.column(col.name), sample=sample)
    old_names = set(old.names)
    for col in new.columns:
        if col.name not in old_names:
            changes.append(SchemaChange(col.name, "added", None, _label(col)))
    return SchemaDiff(old.version, None if sample else new.version, tuple(changes))


def evolve_schema(current: Schema, candidate: Schema) -> Schema:
    """The schema that admits the data ``current`` admits and the batch ``candidate`` describes.

    Ranges widen to cover both, categories are united, nullability is kept if either allows
    missing values, and columns new in ``candidate`` are appended as nullable (optional)
    features, or with the role the project gives them. Columns absent from ``candidate`` stay.
    The result keeps ``current.version``; the store numbers the next version.

    Raises
    ------
    SchemaError
        If a column changed kind (say numeric to categorical): that needs a decision about the
        data, not a wider schema.

    Examples
    --------
    >>> from conveyor.core.schema import ColumnKind
    >>> current = Schema((ColumnSchema("c", ColumnKind.CATEGORICAL, categories=("a",)),))
    >>> batch = Schema((ColumnSchema("c", ColumnKind.CATEGORICAL, categories=("b",)),
    ...                 ColumnSchema("n", ColumnKind.NUMERIC, nullable=False)))
    >>> evolved = evolve_schema(current, batch)
    >>> evolved.column("c").categories, evolved.column("n").nullable
    (('a', 'b'), True)
    """
    wanted = {c.name: c for c in candidate.columns}
    columns = []
    for col in current.columns:
        other = wanted.get(col.name)
        columns.append(col if other is None else _widen(col, other))
    known = set(current.names)
    for col in candidate.columns:
        if col.name not in known:
            role = ColumnRole.FEATURE if col.role is ColumnRole.LABEL else col.role
            columns.append(replace(col, role=role, nullable=True))
    return Schema(columns=tuple(columns), version=current.version)


def _label(col: ColumnSchema) -> str:
    return f"{col.kind} {col.role}"


def _widen(col: ColumnSchema, other: ColumnSchema) -> ColumnSchema:
    if other.kind is not col.kind:
        raise SchemaError(
            f"Column {col.name!r} is {col.kind} in the schema and {other.kind} in the batch; "
            "a schema evolves only by widening ranges, adding categories and adding columns. "
            "Fix the batch, or declare the column's kind in conveyor.yaml (categorical)."
        )
    low, high = _bounds(col, other, min), _bounds(col, other, max)
    categories = col.categories
    if col.categories is not None and other.categories is not None:
        categories = tuple(sorted(set(col.categories) | set(other.categories)))
    return replace(
        col,
        nullable=col.nullable or other.nullable,
        min_value=low,
        max_value=high,
        categories=categories,
    )


def _bounds(col: ColumnSchema, other: ColumnSchema, pick: Any) -> float | None:
    attr = "min_value" if pick is min else "max_value"
    values = [v for v in (getattr(col, attr), getattr(other, attr)) if v is not None]
    return float(pick(values)) if values else None


def _column_changes(old: ColumnSchema, new: ColumnSchema, *, sample: bool) -> list[SchemaChange]:
    name = old.name
    changes = []
    if old.kind is not new.kind:
        changes.append(SchemaChange(name, "kind", str(old.kind), str(new.kind)))
    if old.role is not new.role:
        changes.append(SchemaChange(name, "role", str(old.role), str(new.role)))
    if old.nullable != new.nullable and not (sample and old.nullable):
        changes.append(SchemaChange(name, "nullability", old.nullable, new.nullable))
    changes += _range_change(old, new, sample=sample)
    if old.categories is not None and new.categories is not None:
        added = sorted(set(new.categories) - set(old.categories))
        removed = [] if sample else sorted(set(old.categories) - set(new.categories))
        if added or removed:
            details = {"added": added, "removed": removed}
            before, after = list(old.categories), list(new.categories)
            changes.append(SchemaChange(name, "categories", before, after, details))
    return changes


def _range_change(old: ColumnSchema, new: ColumnSchema, *, sample: bool) -> list[SchemaChange]:
    before, after = [old.min_value, old.max_value], [new.min_value, new.max_value]
    if before == after or None in after:
        return []
    if sample and None not in before:
        widened = new.min_value < old.min_value or new.max_value > old.max_value  # type: ignore[operator]
        if not widened:
            return []
    return [SchemaChange(old.name, "range", before, after)]
