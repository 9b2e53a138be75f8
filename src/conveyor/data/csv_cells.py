"""Cells of exported CSV files that a spreadsheet would run as formulas are escaped.

A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula by Excel, LibreOffice and Google Sheets (CSV injection, OWASP "CSV Injection"). Every
CSV that Conveyor writes from data it did not make (input columns passed through batch
scoring, categories, identifiers) goes through :func:`escape_formula_cells`, which prefixes
such cells with ``'``: spreadsheets show the text and run nothing. Numbers are written as
numbers and are left alone; only text columns change.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

_FORMULA_PATTERN = "^[=+\\-@\t\r]"


def escape_formula_cells(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Return ``batch`` with every text cell that starts like a formula prefixed with ``'``.

    Dictionary-encoded text columns come back as plain text columns; other columns, and the
    batch's metadata, are unchanged.

    Examples
    --------
    >>> batch = pa.RecordBatch.from_pydict({"c": ["=1+1", "ok", None, "-2"], "n": [1, -2, 3, 4]})
    >>> escape_formula_cells(batch).to_pydict()
    {'c': ["'=1+1", 'ok', None, "'-2"], 'n': [1, -2, 3, 4]}
    """
    columns = []
    fields = []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        kind = field.type
        if pa.types.is_dictionary(kind) and _is_text(kind.value_type):
            kind = kind.value_type
            column = column.cast(kind)
        if _is_text(kind):
            risky = pc.match_substring_regex(column, _FORMULA_PATTERN)
            quote = pa.scalar("'", type=kind)
            escaped = pc.binary_join_element_wise(quote, column, pa.scalar("", type=kind))
            column = pc.if_else(risky, escaped, column)
        columns.append(column)
        fields.append(field.with_type(kind))
    schema = pa.schema(fields, metadata=batch.schema.metadata)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))
