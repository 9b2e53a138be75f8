"""Compile a run filter tree to SQLAlchemy expressions over the runs table.

Every literal becomes a bound parameter; no SQL text is ever built from a filter. A metric
compares on its latest value (highest step, then timestamp, then the point logged last), read
by a correlated subquery that the ``(run_id, key, step, ts)`` index answers; params and tags
are read the same way, so a run lacking the key yields NULL and never matches.

``LIKE`` is case-sensitive on both backends: SQLite's own LIKE ignores ASCII case, so there the
pattern is translated to an equivalent GLOB. In patterns ``%`` matches any run of characters,
``_`` one character, and a backslash makes the next character literal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from conveyor.core.run_query import (
    And,
    Attribute,
    Condition,
    Expr,
    Key,
    KeyKind,
    Operator,
    Or,
    OrderBy,
)
from conveyor.store.sql.tables import RunMetricRow, RunParamRow, RunRow, RunTagRow

_ATTRIBUTE_COLUMNS: dict[Attribute, Any] = {
    Attribute.RUN_ID: RunRow.id,
    Attribute.NAME: RunRow.name,
    Attribute.STATUS: RunRow.status,
    Attribute.EXPERIMENT: RunRow.experiment,
    Attribute.PROJECT: RunRow.project,
    Attribute.PARENT_ID: RunRow.parent_id,
    Attribute.START_TIME: RunRow.started_at,
    Attribute.END_TIME: RunRow.ended_at,
}


def key_column(key: Key) -> Any:
    """The SQL value of ``key`` for the current runs row (NULL when the run lacks it)."""
    if key.kind is KeyKind.ATTRIBUTE:
        return _ATTRIBUTE_COLUMNS[Attribute(key.name)]
    if key.kind is KeyKind.METRIC:
        return (
            sa.select(RunMetricRow.value)
            .where(RunMetricRow.run_id == RunRow.id, RunMetricRow.key == key.name)
            .order_by(RunMetricRow.step.desc(), RunMetricRow.ts.desc(), RunMetricRow.id.desc())
            .limit(1)
            .correlate(RunRow)
            .scalar_subquery()
        )
    row = RunParamRow if key.kind is KeyKind.PARAM else RunTagRow
    return (
        sa.select(row.value)
        .where(row.run_id == RunRow.id, row.key == key.name)
        .correlate(RunRow)
        .scalar_subquery()
    )


def compile_filter(expr: Expr, dialect: str) -> sa.ColumnElement[bool]:
    """The WHERE clause of ``expr`` for a database of ``dialect`` ('sqlite', 'postgresql')."""
    if isinstance(expr, And):
        return sa.and_(*(compile_filter(e, dialect) for e in expr.operands))
    if isinstance(expr, Or):
        return sa.or_(*(compile_filter(e, dialect) for e in expr.operands))
    return _compile_condition(expr, dialect)


def compile_order(order_by: Sequence[OrderBy]) -> list[Any]:
    """ORDER BY terms: each key with missing values last, then newest first, then id."""
    terms: list[Any] = []
    for item in order_by:
        column = key_column(item.key)
        terms.append(sa.case((column.is_(None), 1), else_=0))
        terms.append(column.desc() if item.descending else column.asc())
    terms.extend([RunRow.started_at.desc(), RunRow.id.desc()])
    return terms


def _compile_condition(cond: Condition, dialect: str) -> sa.ColumnElement[bool]:
    column = key_column(cond.key)
    value = cond.value
    match cond.op:
        case Operator.EQ:
            return column == value  # type: ignore[no-any-return]
        case Operator.NE:
            return column != value  # type: ignore[no-any-return]
        case Operator.LT:
            return column < value  # type: ignore[no-any-return]
        case Operator.LE:
            return column <= value  # type: ignore[no-any-return]
        case Operator.GT:
            return column > value  # type: ignore[no-any-return]
        case Operator.GE:
            return column >= value  # type: ignore[no-any-return]
        case Operator.IN:
            assert isinstance(value, tuple)
            return column.in_(list(value))  # type: ignore[no-any-return]
        case Operator.LIKE:
            assert isinstance(value, str)
            if dialect == "sqlite":
                return column.op("GLOB")(like_to_glob(value))  # type: ignore[no-any-return]
            return column.like(value, escape="\\")  # type: ignore[no-any-return]
        case Operator.ILIKE:
            assert isinstance(value, str)
            return column.ilike(value, escape="\\")  # type: ignore[no-any-return]
    raise AssertionError(f"unhandled operator {cond.op!r}")


def like_to_glob(pattern: str) -> str:
    """The GLOB pattern matching exactly what the LIKE ``pattern`` (escape ``\\``) matches.

    Examples
    --------
    >>> like_to_glob("train-%_v[1]*")
    'train-*?v[[]1][*]'
    """
    out: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            literal = next(chars, "\\")
            out.append(_glob_literal(literal))
        elif char == "%":
            out.append("*")
        elif char == "_":
            out.append("?")
        else:
            out.append(_glob_literal(char))
    return "".join(out)


def _glob_literal(char: str) -> str:
    return f"[{char}]" if char in "*?[" else char
