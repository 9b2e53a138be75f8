"""Statistics profiles of a batch: the numbers drift, reports and data cards are computed from.

A profile is a JSON-able dict::

    {"row_count": 1000,
     "columns": {
        "distance": {"kind": "numeric", "role": "feature", "count": 990, "null_count": 10,
                     "inf_count": 0, "mean": ..., "std": ..., "min": ..., "max": ...,
                     "quantiles": {"p01": ..., ..., "p99": ...},
                     "histogram": {"edges": [-inf, e1, ..., ek, inf], "counts": [...]}},
        "carrier": {"kind": "categorical", "role": "feature", "count": 1000, "null_count": 0,
                    "distinct": 16, "values": {"UA": 320, ..., "__other__": 0}}}}

Numeric moments and quantiles are over finite values; histogram edges are observed values at
quantiles of the first profile (``method="higher"``); ``std`` is the population standard
deviation (``ddof=0``), which merges exactly. Numeric columns also keep ``neg_inf_count``,
``distinct`` (exact in one batch) and ``distinct_ratio`` (of finite values), a KLL quantile
sketch under ``"sketch"`` and a HyperLogLog distinct sketch under ``"hll"``; categorical
columns keep ``distinct_ratio`` and ``"hll"`` too (see :mod:`conveyor.data.sketches`). The
sketches are what makes profiles of a window mergeable without the data. A categorical
column whose ``values`` pool some under ``__other__`` also lists every distinct value under
``"categories"`` (up to :data:`DOMAIN_MAX`), so schemas learn complete domains from profiles.
Histogram bins are ``[edges[i], edges[i + 1])`` with infinite outer edges, so every value,
infinities included, falls in a bin. Readers accept outer edges written as ``null`` too, which
is how strict JSON encoders store infinities.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as pdt

from conveyor.core.errors import InvalidInputError
from conveyor.core.schema import ColumnKind, ColumnRole, Schema
from conveyor.data.schemas import parse_datetimes, to_category_strings
from conveyor.data.sketches import (
    DEFAULT_K,
    DistinctSketch,
    QuantileSketch,
    hash_values,
    merge_quantile_sketches,
)

OTHER = "__other__"
DOMAIN_MAX = 1_000
"""A categorical column with at most this many distinct values keeps them all (``categories``)
when ``values`` pools some under ``__other__``, so schemas learn complete domains."""
QUANTILES: dict[str, float] = {
    "p01": 0.01,
    "p05": 0.05,
    "p25": 0.25,
    "p50": 0.50,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}


def profile_frame(
    frame: pd.DataFrame,
    schema: Schema,
    *,
    reference: Mapping[str, Any] | None = None,
    bins: int = 10,
    top_k: int = 50,
    sketch_k: int = DEFAULT_K,
) -> dict[str, Any]:
    """Profile the schema's columns of a batch.

    Parameters
    ----------
    frame : pandas.DataFrame
        The batch.
    schema : Schema
        Says each column's kind; ignored columns and columns absent from ``frame`` are skipped.
    reference : mapping, optional
        A profile to compare with later: numeric histograms reuse its bin edges, and
        categorical value counts include every value it named, so the two align exactly.
    bins : int
        Number of quantile bins of a numeric column profiled without a reference (fewer when
        quantiles coincide).
    top_k : int
        Number of most frequent values counted by name; the rest are pooled in ``"__other__"``.
    sketch_k : int
        Accuracy of each numeric column's quantile sketch (see
        :class:`conveyor.data.sketches.QuantileSketch`).

    Returns
    -------
    dict
        ``{"row_count": int, "columns": {name: column_profile}}`` (see the module docstring).

    Raises
    ------
    InvalidInputError
        If ``bins`` or ``top_k`` is not a positive int.

    Examples
    --------
    >>> from conveyor.data.schemas import infer_schema
    >>> frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": ["a", "b", "a", "a"]})
    >>> profile = profile_frame(frame, infer_schema(frame, label="y"), bins=2)
    >>> profile["columns"]["x"]["histogram"]
    {'edges': [-inf, 3.0, inf], 'counts': [2, 2]}
    >>> profile["columns"]["y"]["values"]
    {'a': 3, 'b': 1, '__other__': 0}
    """
    _check_positive_int(bins, "bins")
    _check_positive_int(top_k, "top_k")
    _check_positive_int(sketch_k, "sketch_k")
    ref_columns: Mapping[str, Any] = (reference or {}).get("columns", {})
    columns: dict[str, Any] = {}
    for col in schema.columns:
        if col.role is ColumnRole.IGNORED or col.name not in frame.columns:
            continue
        values = frame[col.name]
        ref = ref_columns.get(col.name) or {}
        base: dict[str, Any] = {"kind": str(col.kind), "role": str(col.role)}
        if col.kind is ColumnKind.NUMERIC:
            edges = inner_edges(ref["histogram"]) if "histogram" in ref else None
            base.update(_profile_numeric(values, edges=edges, bins=bins, sketch_k=sketch_k))
        elif col.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
            keep = [k for k in ref.get("values", {}) if k != OTHER]
            boolean = col.kind is ColumnKind.BOOLEAN
            base.update(_profile_categorical(values, keep=keep, top_k=top_k, boolean=boolean))
        elif col.kind is ColumnKind.DATETIME:
            base.update(_profile_datetime(values))
        else:
            base.update(_profile_text(values))
        columns[col.name] = base
    return {"row_count": len(frame), "columns": columns}


def without_sketches(profile: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``profile`` without its serialised sketches, for display and comparison.

    KLL sketches compact at random, so two profiles of the same data hold different sketch
    bytes with the same guarantee; every other number of a single-batch profile is exact.

    Examples
    --------
    >>> without_sketches({"row_count": 1, "columns": {"x": {"count": 1, "sketch": {}}}})
    {'row_count': 1, 'columns': {'x': {'count': 1}}}
    """
    columns = {
        name: {k: v for k, v in column.items() if k not in _SKETCH_KEYS}
        for name, column in profile.get("columns", {}).items()
    }
    return {**profile, "columns": columns}


_SKETCH_KEYS = frozenset({"sketch", "hll"})


def _check_positive_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(
            f"The {name!r} parameter of profile_frame() must be an int in [1, inf). "
            f"Got {value!r} instead."
        )


def inner_edges(histogram: Mapping[str, Any]) -> list[float]:
    """Return the finite bin edges of a profile histogram (its outer edges are infinite).

    Examples
    --------
    >>> inner_edges({"edges": [float("-inf"), 1.0, 2.0, None], "counts": [0, 1, 0]})
    [1.0, 2.0]
    """
    return [float(e) for e in histogram["edges"] if e is not None and math.isfinite(e)]


def _full_edges(inner: Sequence[float]) -> list[float]:
    return [-math.inf, *inner, math.inf]


def _to_numbers(values: pd.Series) -> np.ndarray:
    numbers: np.ndarray
    if pdt.is_numeric_dtype(values.dtype) or pdt.is_bool_dtype(values.dtype):
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
    elif pdt.is_datetime64_any_dtype(values.dtype) or pdt.is_timedelta64_dtype(values.dtype):
        numbers = np.full(len(values), np.nan)
    else:
        coerced = pd.to_numeric(values, errors="coerce")
        numbers = coerced.to_numpy(dtype=np.float64, na_value=np.nan)
    return numbers


def _profile_numeric(
    values: pd.Series, *, edges: list[float] | None, bins: int, sketch_k: int
) -> dict[str, Any]:
    numbers = _to_numbers(values)
    present = numbers[~np.isnan(numbers)]
    finite = np.sort(present[np.isfinite(present)])
    if edges is None:
        if finite.size:
            cuts = np.linspace(0.0, 1.0, bins + 1)[1:-1]
            # Edges are observed values, so a discrete value never straddles two bins.
            edges = [float(e) for e in np.unique(np.quantile(finite, cuts, method="higher"))]
        else:
            edges = []
    edge_array = np.asarray(edges, dtype=np.float64)
    # finite is sorted, so bin counts are differences of its ranks at the edges.
    ranks = np.searchsorted(finite, edge_array, side="left")
    counts = np.diff(np.concatenate([[0], ranks, [finite.size]]))
    neg_inf = int(np.count_nonzero(present == -np.inf))
    counts[0] += neg_inf
    counts[-1] += int(present.size - finite.size) - neg_inf
    stats: dict[str, Any] = {
        "count": int(present.size),
        "null_count": len(numbers) - int(present.size),
        "inf_count": int(present.size - finite.size),
        "neg_inf_count": neg_inf,
    }
    if finite.size:
        quantiles = np.quantile(finite, list(QUANTILES.values()))
        changes = np.flatnonzero(finite[1:] != finite[:-1]) + 1
        uniques = finite[np.concatenate([[0], changes])]
        distinct = DistinctSketch()
        distinct.update_hashes(hash_values(uniques))
        stats.update(
            mean=float(finite.mean()),
            std=float(finite.std()),
            min=float(finite[0]),
            max=float(finite[-1]),
            quantiles={k: float(q) for k, q in zip(QUANTILES, quantiles, strict=True)},
            distinct=int(uniques.size),
        )
    else:
        distinct = DistinctSketch()
        stats.update(
            mean=None,
            std=None,
            min=None,
            max=None,
            quantiles=dict.fromkeys(QUANTILES),
            distinct=0,
        )
    stats["distinct_ratio"] = stats["distinct"] / finite.size if finite.size else None
    stats["histogram"] = {"edges": _full_edges(edges), "counts": [int(c) for c in counts]}
    stats["sketch"] = QuantileSketch.of(finite, k=sketch_k).to_dict()
    stats["hll"] = distinct.to_dict()
    return stats


def _bool_label(value: Any) -> str:
    if isinstance(value, bool | np.bool_) or (
        isinstance(value, int | float | np.integer | np.floating) and value in (0, 1)
    ):
        return str(bool(value))
    return str(value)


def count_categories(values: pd.Series, *, boolean: bool = False) -> pd.Series:
    """Counts of a categorical column's present values by their string label.

    Labels are what schemas and profiles compare: ``to_category_strings`` of the values, or
    ``"True"``/``"False"`` for a boolean column (0 and 1 included). Sorted by count, then label.

    Examples
    --------
    >>> count_categories(pd.Series(["b", "a", None, "b"])).to_dict()
    {'b': 2, 'a': 1}
    """
    raw = values.value_counts(dropna=True, sort=False)
    raw = raw[raw > 0]
    if boolean:
        labels = [_bool_label(v) for v in raw.index]
    else:
        labels = [str(v) for v in to_category_strings(raw.index)]
    counts = pd.Series(raw.to_numpy(), index=labels, dtype="int64").groupby(level=0).sum()
    return counts.sort_index().sort_values(ascending=False, kind="stable")


def _profile_categorical(
    values: pd.Series, *, keep: Sequence[str], top_k: int, boolean: bool
) -> dict[str, Any]:
    nulls = int(values.isna().sum())
    counts = count_categories(values, boolean=boolean)
    named = list(counts.index[:top_k]) + [k for k in keep if k in counts.index]
    named = list(dict.fromkeys(named))
    out = {str(k): int(counts[k]) for k in named}
    for k in keep:
        out.setdefault(str(k), 0)
    out[OTHER] = int(counts.sum()) - sum(out.values())
    present = len(values) - nulls
    profile: dict[str, Any] = {
        "count": present,
        "null_count": nulls,
        "distinct": len(counts),
        "distinct_ratio": len(counts) / present if present else None,
        "values": out,
        "hll": DistinctSketch.of(np.asarray(counts.index, dtype=object)).to_dict(),
    }
    if out[OTHER] and len(counts) <= DOMAIN_MAX:
        profile["categories"] = sorted(str(k) for k in counts.index)
    return profile


def observed_categories(column: Mapping[str, Any]) -> set[str] | None:
    """The categories a categorical column profile saw; None when it cannot tell them all.

    Examples
    --------
    >>> sorted(observed_categories({"values": {"a": 3, "b": 0, "__other__": 0}}))
    ['a']
    >>> observed_categories({"values": {"a": 3, "__other__": 2}}) is None
    True
    """
    if "categories" in column:
        return {str(c) for c in column["categories"]}
    values = column.get("values", {})
    if int(values.get(OTHER, 0) or 0) > 0:
        return None
    return {str(k) for k, n in values.items() if k != OTHER and int(n) > 0}


def _profile_datetime(values: pd.Series) -> dict[str, Any]:
    if pdt.is_numeric_dtype(values.dtype) or pdt.is_bool_dtype(values.dtype):
        parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    else:
        parsed = parse_datetimes(values)
    present = parsed.dropna()
    return {
        "count": int(present.size),
        "null_count": len(values) - int(present.size),
        "min": present.min().isoformat() if present.size else None,
        "max": present.max().isoformat() if present.size else None,
    }


def _profile_text(values: pd.Series) -> dict[str, Any]:
    nulls = int(values.isna().sum())
    return {
        "count": len(values) - nulls,
        "null_count": nulls,
        "distinct": int(values.nunique(dropna=True)),
    }


def merge_profiles(profiles: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge profiles of disjoint batches into the profile of their union.

    Counts, value counts and histograms add; means and standard deviations combine exactly
    (Chan's parallel formula). Quantile sketches merge, and quantiles come from the merged
    sketch (within its rank error, see :mod:`conveyor.data.sketches`); profiles without
    sketches interpolate them from the merged histogram. When histogram edges differ, the
    histogram is rebuilt on the first profile's edges from the merged sketch (bin counts
    within the sketch's ``pmf_error`` times the count). ``distinct`` is the HyperLogLog
    estimate of the merged distinct sketches (about 1.6% standard error), and never below
    the largest part's; a category counted by name in every part has an exact merged count.

    Parameters
    ----------
    profiles : sequence of mapping
        Profiles from :func:`profile_frame`; numeric columns share histogram edges when
        later batches are profiled with ``reference=`` the first, else they need sketches.

    Returns
    -------
    dict
        The merged profile, in the same format.

    Raises
    ------
    InvalidInputError
        If ``profiles`` is empty, a column's kind differs, or histogram edges differ and a
        profile has no quantile sketch.

    Examples
    --------
    >>> from conveyor.data.schemas import infer_schema
    >>> first = pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]})
    >>> schema = infer_schema(first, label="y")
    >>> a = profile_frame(first, schema)
    >>> b = profile_frame(pd.DataFrame({"x": [3.0, 4.0], "y": [1, 1]}), schema, reference=a)
    >>> merged = merge_profiles([a, b])
    >>> merged["row_count"], merged["columns"]["x"]["mean"], merged["columns"]["x"]["std"]
    (4, 2.5, 1.118033988749895)
    """
    if not profiles:
        raise InvalidInputError("merge_profiles() needs at least one profile. Got none.")
    by_column: dict[str, list[Mapping[str, Any]]] = {}
    for profile in profiles:
        for name, column in profile.get("columns", {}).items():
            by_column.setdefault(name, []).append(column)
    columns = {}
    for name, parts in by_column.items():
        kinds = {p["kind"] for p in parts}
        if len(kinds) > 1:
            raise InvalidInputError(
                f"Column {name!r} has different kinds {sorted(kinds)} in the profiles; "
                "only profiles of the same schema merge."
            )
        kind = ColumnKind(parts[0]["kind"])
        merged: dict[str, Any] = {"kind": str(kind), "role": parts[0].get("role", "feature")}
        merged["count"] = sum(int(p["count"]) for p in parts)
        merged["null_count"] = sum(int(p["null_count"]) for p in parts)
        if kind is ColumnKind.NUMERIC:
            merged.update(_merge_numeric(name, parts))
        elif kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
            merged.update(_merge_categorical(parts))
        elif kind is ColumnKind.DATETIME:
            merged.update(_merge_datetime(parts))
        else:
            merged["distinct"] = max(int(p.get("distinct", 0)) for p in parts)
        columns[name] = merged
    return {"row_count": sum(int(p.get("row_count", 0)) for p in profiles), "columns": columns}


def _merge_numeric(name: str, parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    edges = inner_edges(parts[0]["histogram"])
    sketches = [QuantileSketch.from_dict(p["sketch"]) for p in parts if "sketch" in p]
    sketch = merge_quantile_sketches(sketches) if len(sketches) == len(parts) else None
    counts = np.zeros(len(edges) + 1, dtype=np.int64)
    same_edges = all(inner_edges(part["histogram"]) == edges for part in parts)
    if same_edges:
        for part in parts:
            counts += np.asarray(part["histogram"]["counts"], dtype=np.int64)
    elif sketch is not None:
        counts += sketch.bin_counts(edges)
        counts[0] += sum(int(p.get("neg_inf_count", 0)) for p in parts)
        counts[-1] += sum(
            int(p.get("inf_count", 0)) - int(p.get("neg_inf_count", 0)) for p in parts
        )
    else:
        raise InvalidInputError(
            f"Column {name!r} has different histogram edges in the profiles and they carry no "
            "quantile sketch; profile every batch with reference= the same profile to merge them."
        )
    n, mean, m2 = 0, 0.0, 0.0
    for part in parts:
        n_b = int(part["count"]) - int(part.get("inf_count", 0))
        if n_b == 0 or part.get("mean") is None:
            continue
        mean_b, m2_b = float(part["mean"]), float(part["std"]) ** 2 * n_b
        delta = mean_b - mean
        total = n + n_b
        mean += delta * n_b / total
        m2 += m2_b + delta * delta * n * n_b / total
        n = total
    lows = [float(p["min"]) for p in parts if p.get("min") is not None]
    highs = [float(p["max"]) for p in parts if p.get("max") is not None]
    low, high = (min(lows), max(highs)) if lows else (None, None)
    out: dict[str, Any] = {
        "inf_count": sum(int(p.get("inf_count", 0)) for p in parts),
        "neg_inf_count": sum(int(p.get("neg_inf_count", 0)) for p in parts),
        "mean": mean if n else None,
        "std": math.sqrt(m2 / n) if n else None,
        "min": low,
        "max": high,
    }
    if sketch is not None and sketch.n:
        values = sketch.quantiles(list(QUANTILES.values()))
        out["quantiles"] = dict(zip(QUANTILES, values, strict=True))
    else:
        out["quantiles"] = _histogram_quantiles(edges, counts, low, high)
    hlls = [DistinctSketch.from_dict(p["hll"]) for p in parts if "hll" in p]
    if len(hlls) == len(parts):
        merged_hll = hlls[0]
        for other in hlls[1:]:
            merged_hll = merged_hll.merge(other)
        distinct = min(round(merged_hll.estimate()), n)
        out["distinct"] = max([distinct, *(int(p.get("distinct", 0)) for p in parts)])
        out["distinct_ratio"] = out["distinct"] / n if n else None
        out["hll"] = merged_hll.to_dict()
    out["histogram"] = {"edges": _full_edges(edges), "counts": [int(c) for c in counts]}
    if sketch is not None:
        out["sketch"] = sketch.to_dict()
    return out


def _histogram_quantiles(
    edges: Sequence[float], counts: np.ndarray, low: float | None, high: float | None
) -> dict[str, float | None]:
    total = int(counts.sum())
    if total == 0 or low is None or high is None:
        return dict.fromkeys(QUANTILES)
    bounds = np.clip(np.asarray([low, *edges, high], dtype=np.float64), low, high)
    cumulative = np.concatenate([[0], np.cumsum(counts)])
    out: dict[str, float | None] = {}
    for key, q in QUANTILES.items():
        target = q * total
        j = int(np.searchsorted(cumulative, target, side="left"))
        j = min(max(j, 1), len(counts))
        inside = (target - cumulative[j - 1]) / counts[j - 1] if counts[j - 1] else 0.0
        out[key] = float(bounds[j - 1] + inside * (bounds[j] - bounds[j - 1]))
    return out


def _merge_categorical(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    totals: dict[str, int] = {}
    for part in parts:
        for value, count in part.get("values", {}).items():
            totals[value] = totals.get(value, 0) + int(count)
    other = totals.pop(OTHER, 0)
    ordered = dict(sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])))
    ordered[OTHER] = other
    named = sum(1 for c in totals.values() if c > 0)
    lower = max([named, *(int(p.get("distinct", 0)) for p in parts)])
    out: dict[str, Any] = {"distinct": lower, "values": ordered}
    domains = [observed_categories(p) for p in parts]
    if other and all(d is not None for d in domains):
        union = set().union(*(d for d in domains if d is not None))
        if len(union) <= DOMAIN_MAX:
            out["categories"] = sorted(union)
    hlls = [DistinctSketch.from_dict(p["hll"]) for p in parts if "hll" in p]
    if len(hlls) == len(parts):
        merged = hlls[0]
        for sketch in hlls[1:]:
            merged = merged.merge(sketch)
        present = sum(int(p["count"]) for p in parts)
        out["distinct"] = max(lower, min(round(merged.estimate()), present))
        out["distinct_ratio"] = out["distinct"] / present if present else None
        out["hll"] = merged.to_dict()
    return out


def _merge_datetime(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    lows = [pd.Timestamp(p["min"]) for p in parts if p.get("min")]
    highs = [pd.Timestamp(p["max"]) for p in parts if p.get("max")]
    return {
        "min": min(lows).isoformat() if lows else None,
        "max": max(highs).isoformat() if highs else None,
    }
