"""Schema evolution: what changed between two schemas, and the schema that admits a new batch.

A project's schema is inferred from its first batch and then enforced. When the data changes
on purpose (a new sensor, a new carrier, a wider range) the schema evolves by review:
:func:`diff_schemas` says what differs, :func:`evolve_schema` builds the next version that
admits both the old data and the new batch, and the service stores it with who and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import pandas as pd

from conveyor.core.errors import SchemaError
from conveyor.core.schema import ColumnRole, ColumnSchema, Schema
from conveyor.data.schemas import infer_schema
from conveyor.spec import ProjectSpec

__all__ = [
    "SchemaChange",
    "SchemaDiff",
    "diff_schemas",
    "evolve_schema",
    "infer_project_schema",
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
