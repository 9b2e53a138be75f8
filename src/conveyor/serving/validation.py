"""Check parsed JSON records against a model signature and encode them, without pandas.

This is the hot path of online serving: one tight loop over precomputed
``(name, kind, category index, nullable, column)`` tuples per record, calling
:func:`conveyor.core.signature.encode_value`, the one feature encoding shared with training.

Policies
--------
- A field missing or ``null`` is encoded as missing when the input is nullable, else it is an
  error for that row.
- A string or a boolean where a number is expected, a number where a category is expected,
  NaN and infinity are errors (JSON has no NaN; the V2 protocol's tensors could carry one).
- Fields the model does not take are errors unless ``allow_extra_fields`` is set or the field
  is one of the pass-through fields (``request_id``, entity columns), which are kept in the
  prediction log but never reach the model.
- An unseen category is accepted and encoded as missing (the model treats it as missing), and
  counted per field in :attr:`ValidatedBatch.unseen`.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from conveyor.core.schema import ColumnKind
from conveyor.core.signature import Signature, encode_value
from conveyor.serving.guards import has_long_string

REQUEST_ID_FIELD = "request_id"
"""The record field that carries a client-supplied request id; it is never a feature."""

_MAX_REQUEST_ID_CHARS = 128
_NOT_FINITE = "NaN and infinity are not allowed"


@dataclass(frozen=True, slots=True)
class ServingLimits:
    """Bounds on what one request may ask of the server.

    Parameters
    ----------
    max_rows : int
        Most records in one request; more is rejected with a 422.
    max_body_bytes : int
        Largest request body; larger is rejected with a 413 before it is parsed.
    max_errors : int
        Most per-field errors returned for one request; the rest are summarised.
    allow_extra_fields : bool
        Accept (and ignore for scoring) fields the model does not take.
    inline_rows : int
        Requests of at most this many rows are scored on the event loop; larger ones in a
        worker thread so they never stall other requests.
    max_string_chars : int
        Longest string value (or object key) anywhere in a request body; longer is a 422
        naming the field.
    body_timeout_s : float
        Longest time a client may take to send a request body; slower is a 408.
    """

    max_rows: int = 10_000
    max_body_bytes: int = 16 * 1024 * 1024
    max_errors: int = 100
    allow_extra_fields: bool = False
    inline_rows: int = 256
    max_string_chars: int = 4096
    body_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not (isinstance(self.body_timeout_s, int | float) and self.body_timeout_s > 0):
            raise ValueError(
                "The 'body_timeout_s' field of ServingLimits must be a float in (0, inf). "
                f"Got {self.body_timeout_s!r} instead."
            )
        for name in ("max_rows", "max_body_bytes", "max_errors", "inline_rows", "max_string_chars"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"The {name!r} field of ServingLimits must be an int in [1, inf). "
                    f"Got {value!r} instead."
                )


@dataclass(frozen=True, slots=True)
class ValidatedBatch:
    """The outcome of validating one request's records.

    Attributes
    ----------
    matrix : numpy.ndarray
        Encoded float64 rows in signature order (meaningless when ``errors`` is not empty).
    request_ids : list of str
        One id per row: the client's ``request_id`` field or a new uuid4 hex.
    errors : list of dict
        ``{"row": int | None, "field": str | None, "error": str}`` per problem found.
    unseen : dict of str to int
        Per categorical field, how many values were outside the model's categories.
    """

    matrix: np.ndarray
    request_ids: list[str]
    errors: list[dict[str, Any]]
    unseen: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every record passed."""
        return not self.errors


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_time(value: str) -> float:
    """Epoch seconds of an ISO-8601 time; naive times are UTC, as in ``encode_frame``."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


class RecordValidator:
    """Validate and encode JSON records for one signature.

    Parameters
    ----------
    signature : Signature
        The model's inputs.
    limits : ServingLimits
        Row and error limits, and whether extra fields are accepted.
    passthrough : sequence of str
        Fields accepted besides the features and ``request_id`` (entity columns the
        prediction log keeps so feedback can be joined by entity and time).

    Examples
    --------
    >>> from conveyor.core.schema import ColumnKind, ColumnSchema
    >>> sig = Signature((ColumnSchema("distance", ColumnKind.NUMERIC),))
    >>> batch = RecordValidator(sig).validate([{"distance": "abc"}])
    >>> batch.errors
    [{'row': 0, 'field': 'distance', 'error': "expected a number, got 'abc'"}]
    """

    def __init__(
        self,
        signature: Signature,
        limits: ServingLimits | None = None,
        *,
        passthrough: Sequence[str] = (),
    ) -> None:
        self.signature = signature
        self.limits = limits or ServingLimits()
        index = signature.category_index()
        self._fields = tuple(
            (col.name, col.kind, index[j], col.nullable, j)
            for j, col in enumerate(signature.inputs)
        )
        self._width = len(self._fields)
        self._known = frozenset(signature.names) | {REQUEST_ID_FIELD} | frozenset(passthrough)
        self._passthrough = tuple(p for p in passthrough if p not in signature.names)
        self._allowed_text = ", ".join(sorted(self._known))

    def validate(self, records: Sequence[Any]) -> ValidatedBatch:
        """Check ``records`` and encode them into a float64 matrix in signature order.

        Parameters
        ----------
        records : sequence
            Parsed JSON values, each expected to be an object.

        Returns
        -------
        ValidatedBatch
            The matrix, one request id per row, and every error found (up to
            ``limits.max_errors``, then one summary error).
        """
        n = len(records)
        errors: list[dict[str, Any]] = []
        if n == 0:
            errors.append({"row": None, "field": None, "error": "no records to score"})
        if n > self.limits.max_rows:
            errors.append(
                {
                    "row": None,
                    "field": None,
                    "error": f"too many rows: {n}; at most {self.limits.max_rows} are allowed "
                    "in one request",
                }
            )
        if errors:
            return ValidatedBatch(np.empty((0, self._width)), [], errors)
        rows: list[list[float]] = []
        request_ids: list[str] = []
        unseen: dict[str, int] = {}
        known = self._known
        strict = not self.limits.allow_extra_fields
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                kind = type(rec).__name__ if rec is not None else "null"
                errors.append({"row": i, "field": None, "error": f"expected an object, got {kind}"})
                continue
            given = rec.get(REQUEST_ID_FIELD)
            request_ids.append(new_request_id() if given is None else _check_id(given, i, errors))
            rows.append(self._encode(rec, i, errors, unseen))
            if strict and not known.issuperset(rec):
                self._check_extra(rec, i, errors)
            else:
                self._check_logged(rec, i, errors)
        if len(errors) > self.limits.max_errors:
            extra = len(errors) - self.limits.max_errors
            errors = errors[: self.limits.max_errors]
            errors.append({"row": None, "field": None, "error": f"... and {extra} more errors"})
        matrix = np.array(rows, dtype=np.float64) if rows else np.empty((0, self._width))
        return ValidatedBatch(matrix, request_ids, errors, unseen)

    def _encode(
        self,
        rec: Mapping[str, Any],
        i: int,
        errors: list[dict[str, Any]],
        unseen: dict[str, int],
    ) -> list[float]:
        row = [math.nan] * self._width
        for name, kind, index, nullable, j in self._fields:
            value = rec.get(name)
            if type(value) is float and index is None:
                # The common case, inlined: encode_value() maps a float to itself here.
                if value - value == 0.0:  # finite; NaN and +-inf give NaN
                    row[j] = value
                else:
                    errors.append({"row": i, "field": name, "error": _NOT_FINITE})
                continue
            if value is None:
                if not nullable:
                    missing = "missing required field" if name not in rec else "null not allowed"
                    errors.append({"row": i, "field": name, "error": missing})
                continue
            if value is True or value is False:
                if kind is ColumnKind.NUMERIC:  # JSON true/false is no number, though bool is
                    errors.append(
                        {"row": i, "field": name, "error": f"expected a number, got {value!r}"}
                    )
                    continue
            elif type(value) is str and len(value) > self.limits.max_string_chars:
                errors.append({"row": i, "field": name, "error": self._too_long(value)})
                continue
            elif kind is ColumnKind.DATETIME and isinstance(value, str):
                try:
                    value = _parse_time(value)
                except ValueError:
                    errors.append(
                        {
                            "row": i,
                            "field": name,
                            "error": f"expected an ISO-8601 time, got {_describe(value)}",
                        }
                    )
                    continue
            try:
                code = encode_value(value, kind, index)
            except (TypeError, OverflowError) as exc:
                errors.append({"row": i, "field": name, "error": f"{exc}, got {_describe(value)}"})
                continue
            if not math.isfinite(code):
                if index is None:
                    errors.append({"row": i, "field": name, "error": _NOT_FINITE})
                    continue
                unseen[name] = unseen.get(name, 0) + 1
            row[j] = code
        return row

    def _too_long(self, value: str) -> str:
        return (
            f"a string of {len(value)} characters; at most {self.limits.max_string_chars} are "
            "allowed (serving.max_string_chars)"
        )

    def _check_logged(self, rec: Mapping[str, Any], row: int, errors: list[dict[str, Any]]) -> None:
        """Bound the strings of the fields logged but not scored (pass-through and extra)."""
        limit = self.limits.max_string_chars
        names: Any = self._passthrough
        if not self._known.issuperset(rec):
            names = (*names, *(k for k in rec if k not in self._known))
        for name in names:
            value = rec.get(name)
            if value is None or type(value) in (int, float, bool):
                continue
            if len(name) > limit or has_long_string(value, limit):
                errors.append(
                    {"row": row, "field": name[:80], "error": "a string or key longer than "
                     f"{limit} characters (serving.max_string_chars)"}
                )  # fmt: skip

    def _check_extra(self, rec: Mapping[str, Any], row: int, errors: list[dict[str, Any]]) -> None:
        for key in rec:
            if key not in self._known:
                errors.append(
                    {
                        "row": row,
                        "field": key if len(key) <= self.limits.max_string_chars else key[:80],
                        "error": f"unexpected field; the model takes: {self._allowed_text}",
                    }
                )


def _check_id(given: Any, row: int, errors: list[dict[str, Any]]) -> str:
    if not isinstance(given, str) or not 0 < len(given) <= _MAX_REQUEST_ID_CHARS:
        errors.append(
            {
                "row": row,
                "field": REQUEST_ID_FIELD,
                "error": "expected a non-empty string of at most "
                f"{_MAX_REQUEST_ID_CHARS} characters, got {_describe(given)}",
            }
        )
        return ""
    return given


class _RequestIds:
    """uuid4 hex ids cut from a pool of random bytes: one ``os.urandom`` per 1024 ids."""

    _POOL = 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()
        os.register_at_fork(after_in_child=self.reset)  # a child must never repeat our ids

    def reset(self) -> None:
        self._pool = b""
        self._next = 0

    def __call__(self) -> str:
        with self._lock:
            if self._next >= len(self._pool):
                self._pool = os.urandom(16 * self._POOL)
                self._next = 0
            raw = bytearray(self._pool[self._next : self._next + 16])
            self._next += 16
        raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
        return raw.hex()


new_request_id = _RequestIds()
"""Return a new random request id (uuid4, 32 hex digits)."""


def columns_to_records(columns: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Turn a columnar body ``{"name": [v0, v1, ...], ...}`` into records.

    Returns
    -------
    records, errors
        The records, and errors when ``columns`` is not an object of equally long lists.
    """
    if not isinstance(columns, dict) or not columns:
        return [], [
            {"row": None, "field": None, "error": '"columns" must be a non-empty object of lists'}
        ]
    lengths: dict[int, list[str]] = {}
    errors: list[dict[str, Any]] = []
    for name, values in columns.items():
        if not isinstance(values, list):
            errors.append(
                {"row": None, "field": name, "error": f"expected a list, got {_describe(values)}"}
            )
        else:
            lengths.setdefault(len(values), []).append(name)
    if len(lengths) > 1:
        found = "; ".join(f"{k} rows: {', '.join(v)}" for k, v in sorted(lengths.items()))
        errors.append({"row": None, "field": None, "error": f"columns differ in length ({found})"})
    if errors:
        return [], errors
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)], []
