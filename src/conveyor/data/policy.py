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

ANOMALY_KINDS = frozenset(
    {
        "missing_column",
        "extra_column",
        "duplicate_columns",
        "type_mismatch",
        "nan_values",
        "inf_values",
        "null_values",
        "unseen_categories",
        "out_of_range",
        "empty_batch",
        "too_few_rows",
        "null_rate_spike",
        "constant_label",
        "duplicate_rows",
        "duplicate_keys",
        "volume_jump",
        "label_leak",
        "missing_labels",
        "label_classes",
    }
)
"""Every anomaly kind :func:`conveyor.data.validate_batch` reports; ``severities`` keys on them."""

_SEVERITY_FIELDS = (
    "extra_columns",
    "missing_columns",
    "out_of_range",
    "constant_label",
    "duplicate_rows",
    "duplicate_keys",
    "volume_jump",
    "label_leak",
)
_SHARE_FIELDS = (
    "unseen_category_share_warn",
    "unseen_category_share_error",
    "null_rate_spike",
    "duplicate_rows_share",
    "duplicate_keys_share",
    "range_quantile",
)
_COLUMN_FIELDS = frozenset(
    {
        "allow_nan",
        "unseen_category_share_warn",
        "unseen_category_share_error",
        "new_categories_max",
        "out_of_range",
        "range_slack",
        "null_rate_spike",
        "extra_columns",
        "missing_columns",
        "constant_label",
        "label_leak",
        "severities",
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
    new_categories_max : int
        Unseen values of a column that are at most this many distinct categories are a
        reviewable schema change (a warning recording the proposed categories) whatever their
        share, so a month column in monthly batches warns once per new month. Only more
        distinct unseen values over ``unseen_category_share_error`` are an error.
    out_of_range : Severity
        Severity of numeric values beyond the schema's range widened by ``range_slack``.
    range_slack : float
        A value is out of range when it lies beyond ``min_value`` or ``max_value`` by more than
        ``range_slack * (max_value - min_value)``.
    range_quantile : float
        Ranges learned from the accepted batches span their ``range_quantile`` and
        ``1 - range_quantile`` quantiles (each batch's sketch), so a rare outlier does not widen
        them; in ``[0, 0.5)``.
    min_rows : int
        Fewer rows is an error (``empty_batch`` for none, ``too_few_rows`` otherwise).
    null_rate_spike : float
        With a reference profile, a column whose missing share rises by more than this is a
        warning.
    label_required : bool
        Whether a training batch must carry the label column. Serving never requires it.
    constant_label : Severity
        Severity of a training batch whose label takes a single value.
    duplicate_rows, duplicate_rows_share : Severity, float
        Severity of a batch whose share of rows that repeat an earlier row exactly exceeds
        ``duplicate_rows_share``; ``0.0`` reports any repeat.
    duplicate_keys, duplicate_keys_share : Severity, float
        The same for rows that repeat an earlier row's key: the entity columns plus the
        timestamp column. Checked only when the schema has entity columns.
    volume_jump : Severity
        Severity of a batch whose row count lies outside ``[median / volume_ratio,
        median * volume_ratio]`` of the row counts of the project's last ``volume_window``
        accepted batches (checked only when validation is given those counts).
    volume_ratio : float
        How many times smaller or larger than the recent median a batch may be; above 1.
    volume_window : int
        How many recent accepted batches the median is taken over.
    label_leak : Severity
        Severity of a feature that alone nearly predicts the label in a training batch, far
        better than the other features do: see :func:`conveyor.data.batch_checks.find_label_leaks`.
    label_leak_auc : float
        The single-feature AUC in ``[0.5, 1.0]`` (macro one-vs-rest for a label of several
        classes) from which a feature of a class label is near-perfect.
    label_leak_rank : float
        The single-feature absolute Spearman correlation in ``[0, 1]`` from which a feature of a
        numeric label is near-perfect.
    label_leak_margin : float
        A near-perfect feature is a leak only when its error (``1 - score``) is at most this
        share of the error the rest leave: the best other feature alone and a small model on
        all the other features. Ordinary strong features, which the rest nearly match, pass.
    label_leak_min_rows : int
        Batches with fewer labelled rows are not checked for leaks.
    severities : mapping of str to Severity
        Forces the severity of every anomaly of a kind (a key of :data:`ANOMALY_KINDS`), e.g.
        ``{"inf_values": "warning"}``. A missing label column in training stays an error.
    columns : mapping of str to mapping
        Per-column overrides of ``allow_nan``, the unseen-category shares, ``out_of_range``,
        ``range_slack``, ``null_rate_spike``, ``extra_columns``, ``missing_columns``,
        ``constant_label``, ``label_leak`` and ``severities`` (merged over the global one),
        e.g. ``{"distance": {"allow_nan": True, "severities": {"out_of_range": "error"}}}``.

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
    range_quantile: float = 0.001
    new_categories_max: int = 3
    min_rows: int = 1
    null_rate_spike: float = 0.2
    label_required: bool = True
    constant_label: Severity = Severity.WARNING
    duplicate_rows: Severity = Severity.WARNING
    duplicate_rows_share: float = 0.0
    duplicate_keys: Severity = Severity.ERROR
    duplicate_keys_share: float = 0.0
    volume_jump: Severity = Severity.WARNING
    volume_ratio: float = 5.0
    volume_window: int = 5
    label_leak: Severity = Severity.ERROR
    label_leak_auc: float = 0.98
    label_leak_rank: float = 0.98
    label_leak_margin: float = 0.25
    label_leak_min_rows: int = 50
    severities: Mapping[str, Severity] = field(default_factory=dict, hash=False)
    columns: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in _SEVERITY_FIELDS:
            object.__setattr__(self, name, _as_severity(getattr(self, name), name))
        for name in _SHARE_FIELDS:
            _check_number(getattr(self, name), name, 0.0, 1.0)
        _check_number(self.range_slack, "range_slack", 0.0, math.inf)
        _check_number(self.volume_ratio, "volume_ratio", 1.0, math.inf)
        _check_number(self.label_leak_auc, "label_leak_auc", 0.5, 1.0)
        _check_number(self.label_leak_rank, "label_leak_rank", 0.0, 1.0)
        _check_number(self.label_leak_margin, "label_leak_margin", 0.0, 1.0)
        for name in ("volume_window", "label_leak_min_rows"):
            _check_int(getattr(self, name), name, 1)
        _check_int(self.new_categories_max, "new_categories_max", 0)
        if self.range_quantile >= 0.5:
            raise InvalidInputError(
                "The 'range_quantile' field of ValidationPolicy must be a number in [0, 0.5). "
                f"Got {self.range_quantile!r} instead."
            )
        object.__setattr__(self, "severities", _as_severities(self.severities))
        if self.unseen_category_share_warn > self.unseen_category_share_error:
            raise InvalidInputError(
                "The 'unseen_category_share_warn' field of ValidationPolicy must not exceed "
                f"'unseen_category_share_error' ({self.unseen_category_share_error}). "
                f"Got {self.unseen_category_share_warn} instead."
            )
        _check_int(self.min_rows, "min_rows", 0)
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
        if not override:
            return self
        severities = {**self.severities, **override.get("severities", {})}
        return replace(self, columns={}, **{**override, "severities": severities})

    def severity_of(self, kind: str, column: str | None, default: Severity) -> Severity:
        """The severity an anomaly of ``kind`` on ``column`` gets; ``default`` if not forced."""
        policy = self.for_column(column) if column is not None else self
        return policy.severities.get(kind, default)

    def to_dict(self) -> dict[str, Any]:
        """Return the policy as a JSON-able dict that :meth:`from_dict` reads back."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in _SEVERITY_FIELDS:
            data[name] = str(data[name])
        data["severities"] = {k: str(v) for k, v in self.severities.items()}
        data["columns"] = {
            col: {k: _plain(v) for k, v in over.items()} for col, over in self.columns.items()
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


def _as_severities(value: Any) -> dict[str, Severity]:
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            "The 'severities' field of ValidationPolicy must map anomaly kinds to severities. "
            f"Got {value!r} instead."
        )
    unknown = sorted(str(k) for k in set(value) - ANOMALY_KINDS)
    if unknown:
        raise InvalidInputError(
            f"The 'severities' field of ValidationPolicy names unknown anomaly kinds {unknown}; "
            f"the kinds are {sorted(ANOMALY_KINDS)}."
        )
    return {str(k): _as_severity(v, f"severities.{k}") for k, v in value.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Severity):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _check_int(value: Any, name: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInputError(
            f"The {name!r} field of ValidationPolicy must be an int in [{low}, inf). "
            f"Got {value!r} instead."
        )


def _check_number(value: Any, name: str, low: float, high: float) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high
    if not ok:
        raise InvalidInputError(
            f"The {name!r} field of ValidationPolicy must be a number in [{low}, {high}]. "
            f"Got {value!r} instead."
        )
