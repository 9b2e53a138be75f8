"""Drift statistics between a reference profile and a current one.

Distances are computed on counts over aligned bins: the reference's histogram bins for numeric
columns, the reference's named values plus ``"__other__"`` for categorical and boolean ones.

- PSI, the population stability index, ``sum((q - p) * ln(q / p))`` with empty bins floored at
  ``eps``; by the usual rule of thumb below 0.1 is stable and above 0.2 a real shift.
- Jensen-Shannon divergence in base 2, in ``[0, 1]`` (the square of SciPy's
  ``jensenshannon(p, q, base=2)`` distance).
- L-infinity distance, the largest change of any bin's share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from conveyor.core.errors import InvalidInputError
from conveyor.core.schema import ColumnKind, ColumnRole
from conveyor.data.profiles import OTHER, inner_edges

_DRIFT_KINDS = frozenset({ColumnKind.NUMERIC, ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN})


def _shares(
    first: Sequence[float] | np.ndarray, second: Sequence[float] | np.ndarray, func: str
) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(first, dtype=np.float64)
    q = np.asarray(second, dtype=np.float64)
    if p.ndim != 1 or p.shape != q.shape or p.size == 0:
        raise InvalidInputError(
            f"{func}() takes two non-empty 1-D count vectors of the same length. "
            f"Got shapes {p.shape} and {q.shape} instead."
        )
    for vec in (p, q):
        if not np.isfinite(vec).all() or (vec < 0).any():
            raise InvalidInputError(
                f"{func}() takes finite non-negative counts. Got {vec.tolist()} instead."
            )
        if vec.sum() == 0:
            raise InvalidInputError(
                f"{func}() needs counts with a positive total. Got {vec.tolist()} instead."
            )
    return p / p.sum(), q / q.sum()


def psi(
    expected_counts: Sequence[float] | np.ndarray,
    actual_counts: Sequence[float] | np.ndarray,
    eps: float = 1e-4,
) -> float:
    """Population stability index of ``actual_counts`` against ``expected_counts``.

    Parameters
    ----------
    expected_counts, actual_counts : array-like
        Counts (or shares) over the same bins.
    eps : float
        Floor of a bin's share, so an empty bin contributes a large but finite amount.

    Returns
    -------
    float
        ``sum((a - e) * ln(a / e))`` over bins of shares ``e`` and ``a``; 0 for identical
        distributions.

    Raises
    ------
    InvalidInputError
        If the vectors differ in length, are empty, negative, non-finite or all zero, or
        ``eps`` is not positive.

    Examples
    --------
    >>> round(psi([50, 50], [40, 60]), 6)
    0.040547
    """
    if not eps > 0:
        raise InvalidInputError(f"The 'eps' parameter of psi() must be > 0. Got {eps!r} instead.")
    p, q = _shares(expected_counts, actual_counts, "psi")
    p, q = np.maximum(p, eps), np.maximum(q, eps)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(
    p_counts: Sequence[float] | np.ndarray, q_counts: Sequence[float] | np.ndarray
) -> float:
    """Jensen-Shannon divergence in base 2 between two count vectors, in ``[0, 1]``.

    Examples
    --------
    >>> jensen_shannon([1, 0], [0, 1]), jensen_shannon([3, 1], [6, 2])
    (1.0, 0.0)
    """
    p, q = _shares(p_counts, q_counts, "jensen_shannon")
    m = 0.5 * (p + q)

    def _kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return float(min(max(0.5 * _kl(p) + 0.5 * _kl(q), 0.0), 1.0))


def linf(p_counts: Sequence[float] | np.ndarray, q_counts: Sequence[float] | np.ndarray) -> float:
    """L-infinity distance between the shares of two count vectors, in ``[0, 1]``.

    Examples
    --------
    >>> linf([1, 1], [3, 1])
    0.25
    """
    p, q = _shares(p_counts, q_counts, "linf")
    return float(np.max(np.abs(p - q)))


def compute_drift(
    reference: Mapping[str, Any],
    current: Mapping[str, Any],
    *,
    features: Sequence[str] | None = None,
    psi_threshold: float = 0.2,
) -> dict[str, Any]:
    """Compare two profiles column by column.

    Parameters
    ----------
    reference : mapping
        Profile of the reference data (:func:`conveyor.data.profile_frame`).
    current : mapping
        Profile of the current data, computed with ``reference=reference`` so numeric bins and
        categorical values align.
    features : sequence of str, optional
        Columns to compare; by default every numeric, categorical or boolean column with role
        ``feature`` in the reference that the current profile also has.
    psi_threshold : float
        A column drifted when its PSI exceeds this.

    Returns
    -------
    dict
        ``{"features": {name: {"kind", "psi", "js", "linf", "drifted", "reference_count",
        "current_count"}}, "summary": {"drifted_features", "max_psi", "share_drifted",
        "psi_threshold", "evaluated"}}``. A column with no values on either side, or of a
        kind without a distribution (text, datetime), has ``None`` distances, ``drifted``
        false and a ``reason``; ``share_drifted`` counts evaluated columns only.

    Raises
    ------
    InvalidInputError
        If a requested column is missing from a profile, its kind differs between the
        profiles, numeric bin edges differ, or ``psi_threshold`` is not positive.

    Examples
    --------
    >>> import pandas as pd
    >>> from conveyor.data.profiles import profile_frame
    >>> from conveyor.data.schemas import infer_schema
    >>> ref_frame = pd.DataFrame({"x": range(1000), "y": 0})
    >>> schema = infer_schema(ref_frame, label="y")
    >>> ref = profile_frame(ref_frame, schema)
    >>> cur = profile_frame(ref_frame.assign(x=ref_frame.x + 500), schema, reference=ref)
    >>> drift = compute_drift(ref, cur)
    >>> drift["summary"]["drifted_features"], drift["features"]["x"]["psi"] > 0.2
    (['x'], True)
    """
    if isinstance(psi_threshold, bool) or not (
        isinstance(psi_threshold, int | float) and psi_threshold > 0
    ):
        raise InvalidInputError(
            "The 'psi_threshold' parameter of compute_drift() must be a number > 0. "
            f"Got {psi_threshold!r} instead."
        )
    ref_columns: Mapping[str, Any] = reference.get("columns", {})
    cur_columns: Mapping[str, Any] = current.get("columns", {})
    names = _select_features(ref_columns, cur_columns, features)
    results = {
        name: _column_drift(name, ref_columns[name], cur_columns[name], psi_threshold)
        for name in names
    }
    evaluated = [n for n, r in results.items() if r["psi"] is not None]
    drifted = [n for n, r in results.items() if r["drifted"]]
    summary = {
        "drifted_features": drifted,
        "max_psi": max((results[n]["psi"] for n in evaluated), default=None),
        "share_drifted": len(drifted) / len(evaluated) if evaluated else 0.0,
        "psi_threshold": float(psi_threshold),
        "evaluated": len(evaluated),
    }
    return {"features": results, "summary": summary}


def _select_features(
    ref_columns: Mapping[str, Any],
    cur_columns: Mapping[str, Any],
    features: Sequence[str] | None,
) -> list[str]:
    if features is None:
        return [
            name
            for name, col in ref_columns.items()
            if col.get("role", ColumnRole.FEATURE) == ColumnRole.FEATURE
            and col.get("kind") in _DRIFT_KINDS
            and name in cur_columns
        ]
    if isinstance(features, str):
        features = [features]
    for name in features:
        for side, columns in (("reference", ref_columns), ("current", cur_columns)):
            if name not in columns:
                raise InvalidInputError(
                    f"Column {name!r} is not in the {side} profile. "
                    f"Profiled columns: {sorted(columns)}."
                )
    return list(features)


def _aligned_counts(
    name: str, ref: Mapping[str, Any], cur: Mapping[str, Any]
) -> tuple[list[float], list[float]]:
    if ref["kind"] == ColumnKind.NUMERIC:
        if inner_edges(ref["histogram"]) != inner_edges(cur["histogram"]):
            raise InvalidInputError(
                f"Column {name!r} has different histogram edges in the two profiles; profile "
                "the current data with profile_frame(..., reference=reference)."
            )
        return list(ref["histogram"]["counts"]), list(cur["histogram"]["counts"])
    keys = [k for k in ref["values"] if k != OTHER]
    ref_counts = [ref["values"][k] for k in keys] + [ref["values"].get(OTHER, 0)]
    cur_values = cur["values"]
    known = set(keys)
    pooled = sum(c for k, c in cur_values.items() if k not in known)
    cur_counts = [cur_values.get(k, 0) for k in keys] + [pooled]
    return ref_counts, cur_counts


def _column_drift(
    name: str, ref: Mapping[str, Any], cur: Mapping[str, Any], psi_threshold: float
) -> dict[str, Any]:
    if ref.get("kind") != cur.get("kind"):
        raise InvalidInputError(
            f"Column {name!r} is {ref.get('kind')} in the reference profile and "
            f"{cur.get('kind')} in the current one; they must match."
        )
    if ref.get("kind") not in _DRIFT_KINDS:
        return {
            "kind": ref.get("kind"),
            "psi": None,
            "js": None,
            "linf": None,
            "drifted": False,
            "reason": f"{ref.get('kind')} columns have no distribution to compare",
        }
    ref_counts, cur_counts = _aligned_counts(name, ref, cur)
    result: dict[str, Any] = {
        "kind": ref["kind"],
        "reference_count": int(sum(ref_counts)),
        "current_count": int(sum(cur_counts)),
    }
    if not sum(ref_counts) or not sum(cur_counts):
        side = "reference" if not sum(ref_counts) else "current"
        result.update(
            psi=None, js=None, linf=None, drifted=False, reason=f"no values in the {side}"
        )
        return result
    value = psi(ref_counts, cur_counts)
    result.update(
        psi=value,
        js=jensen_shannon(ref_counts, cur_counts),
        linf=linf(ref_counts, cur_counts),
        drifted=value > psi_threshold,
    )
    return result
