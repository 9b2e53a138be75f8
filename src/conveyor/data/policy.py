"""Validation policy: what validation treats as an error, a warning or fine.

Built from the ``validation`` section of ``conveyor.yaml``; per-column overrides relax or tighten
single columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from conveyor.core.errors import InvalidInputError
from conveyor.core.schema import Severity

_SEVERITY_FIELDS = ("extra_columns", "missing_columns", "out_of_range", "constant_label")
_SHARE_FIELDS = ("unseen_category_share_warn", "unseen_category_share_error", "null_rate_spike")
_COLUMN_FIELDS = frozenset(
    {
        "allow_nan",
        "unseen_category_share_warn",
        "unseen_category_share_error",
        "out_of_range",
        "range_slack",
        "null_rate_spike",
    }
)


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """What validation treats as an error, a warning or fine.

    Parameters
    ----------
    extra_columns, missing_columns : Severity
        Severity of a batch column the schema does not know, and of a schema column the batch
        lacks.
    allow_nan : bool
        Allow missing values (NaN, None) in columns the schema marks non-nullable. Infinite
        values in numeric columns are an error whatever this says.
    unseen_category_share_warn, unseen_category_share_error : float
        A categorical column whose share of non-missing values outside the schema's categories
        exceeds the first is a warning, exceeds the second an error. ``0.0`` warns on any
        unseen value.
    out_of_range : Severity
        Severity of numeric values beyond the schema's range widened by ``range_slack``.
    range_slack : float
        A value is out of range when it lies beyond ``min_value`` or ``max_value`` by more than
        ``range_slack * (max_value - min_value)``.
    min_rows : int
        Fewer rows is an error (``empty_batch`` for none, ``too_few_rows`` otherwise).
    null_rate_spike : float
        With a reference profile, a column whose missing share rises by more than this is a
        warning.
    label_required : bool
        Whether a training batch must carry the label column. Serving never requires it.
    constant_label : Severity
        Severity of a training batch whose label takes a single value.
    columns : mapping of str to mapping
        Per-column overrides of ``allow_nan``, the unseen-category shares, ``out_of_range``,
        ``range_slack`` and ``null_rate_spike``, e.g. ``{"distance": {"allow_nan": True}}``.

    Raises
    ------
    InvalidInputError
        If a field is out of its range or an override names an unknown field.

    Examples
    --------
    >>> policy = ValidationPolicy(columns={"distance": {"allow_nan": True}})
    >>> policy.for_column("distance").allow_nan, policy.for_column("speed").allow_nan
    (True, False)
    """

    extra_columns: Severity = Severity.ERROR
    missing_columns: Severity = Severity.ERROR
    allow_nan: bool = False
    unseen_category_share_warn: float = 0.0
    unseen_category_share_error: float = 0.2
    out_of_range: Severity = Severity.WARNING
    range_slack: float = 0.5
    min_rows: int = 1
    null_rate_spike: float = 0.2
    label_required: bool = True
    constant_label: Severity = Severity.WARNING
    columns: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in _SEVERITY_FIELDS:
            object.__setattr__(self, name, _as_severity(getattr(self, name), name))
        for name in _SHARE_FIELDS:
            _check_number(getattr(self, name), name, 0.0, 1.0)
        _check_number(self.range_slack, "range_slack", 0.0, math.inf)
        if self.unseen_category_share_warn > self.unseen_category_share_error:
            raise InvalidInputError(
                "The 'unseen_category_share_warn' field of ValidationPolicy must not exceed "
                f"'unseen_category_share_error' ({self.unseen_category_share_error}). "
                f"Got {self.unseen_category_share_warn} instead."
            )
        if isinstance(self.min_rows, bool) or not isinstance(self.min_rows, int):
            raise InvalidInputError(
                "The 'min_rows' field of ValidationPolicy must be an int in [0, inf). "
                f"Got {self.min_rows!r} instead."
            )
        _check_number(self.min_rows, "min_rows", 0, math.inf)
        overrides = {str(k): dict(v) for k, v in self.columns.items()}
        for column, override in overrides.items():
            unknown = sorted(set(override) - _COLUMN_FIELDS)
            if unknown:
                raise InvalidInputError(
                    f"The override for column {column!r} in ValidationPolicy sets {unknown}; "
                    f"a column may override only {sorted(_COLUMN_FIELDS)}."
                )
            replace(self, columns={}, **override)  # validates the overridden values
        object.__setattr__(self, "columns", overrides)

    def for_column(self, name: str) -> ValidationPolicy:
        """Return the policy with the overrides of column ``name`` applied."""
        override = self.columns.get(name)
        return replace(self, columns={}, **override) if override else self

    def to_dict(self) -> dict[str, Any]:
        """Return the policy as a JSON-able dict that :meth:`from_dict` reads back."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in _SEVERITY_FIELDS:
            data[name] = str(data[name])
        data["columns"] = {
            col: {k: str(v) if isinstance(v, Severity) else v for k, v in over.items()}
            for col, over in self.columns.items()
        }
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValidationPolicy:
        """Build a policy from a mapping such as the ``validation`` section of a project file.

        Raises
        ------
        InvalidInputError
            If a key is not a field of the policy or a value is out of range.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(
                f"ValidationPolicy has no fields {unknown}; the fields are {sorted(known)}."
            )
        return cls(**dict(data))


def _as_severity(value: Any, name: str) -> Severity:
    try:
        return Severity(value)
    except ValueError as exc:
        raise InvalidInputError(
            f"The {name!r} field of ValidationPolicy must be one of "
            f"{[str(s) for s in Severity]}. Got {value!r} instead."
        ) from exc


def _check_number(value: Any, name: str, low: float, high: float) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high
    if not ok:
        raise InvalidInputError(
            f"The {name!r} field of ValidationPolicy must be a number in [{low}, {high}]. "
            f"Got {value!r} instead."
        )
