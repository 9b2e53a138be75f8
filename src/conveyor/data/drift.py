"""Drift and skew statistics: a current batch against a reference, per feature.

Two entry points compute the same statistics with the same result layout
``{"features": {name: {...}}, "summary": {...}}``:

- :func:`compute_drift` compares two stored *profiles* (no data is read). PSI, Jensen-Shannon,
  L-infinity and the chi-square test use the aligned bin counts (the reference's histogram bins
  for numeric columns, its named values plus ``"__other__"`` for categorical ones) and are
  exact for those bins. Kolmogorov-Smirnov and Wasserstein come from the columns' KLL quantile
  sketches: exact while both sketches still hold every value, otherwise approximate, and the
  result then carries ``ks_error_bound`` (``rank_error`` of both sketches plus the grid step,
  so ``|ks - exact| <= ks_error_bound`` with 99% confidence) and
  ``wasserstein_error_bound`` (the same times the value range).
- :func:`compute_drift_frames` compares two *frames*, exactly: KS matches
  ``scipy.stats.ks_2samp``, Wasserstein ``scipy.stats.wasserstein_distance`` (both over finite
  values), chi-square ``scipy.stats.chi2_contingency`` on the 2 x k table of counts (numeric
  columns binned at deciles of the reference, categorical ones over every value seen),
  Jensen-Shannon ``scipy.spatial.distance.jensenshannon`` squared.
- :func:`compute_drift_parquet` computes the same as :func:`compute_drift_frames` from two
  Parquet datasets, reading one column of each at a time, so memory holds a few columns and
  never the tables.

:func:`compute_skew` joins training rows and served rows on entity and time keys and compares
each feature value by value (training-serving skew), plus the distribution tests.

Statistics:

- ``psi``, the population stability index, ``sum((q - p) * ln(q / p))`` with empty bins
  floored at ``eps``; by the usual rule of thumb below 0.1 is stable and above 0.2 a real shift.
- ``js``, the Jensen-Shannon divergence in base 2, in ``[0, 1]`` (the square of SciPy's
  ``jensenshannon(p, q, base=2)`` distance).
- ``linf``, the largest change of any bin's share.
- ``ks`` and ``ks_pvalue``, the two-sample Kolmogorov-Smirnov statistic and its two-sided
  p-value (SciPy's exact distribution up to 10,000 values a side, else Smirnov's asymptotic).
- ``chi2``, ``chi2_pvalue`` and ``chi2_dof``, the chi-square test of homogeneity of the
  2 x k contingency table (Yates-corrected when it has one degree of freedom, as SciPy).
- ``wasserstein``, the 1-D earth mover's distance, and ``wasserstein_norm``, the same divided
  by the reference's standard deviation (the value compared with its threshold).

- ``psi_pvalue``, PSI's p-value under no change (:func:`psi_pvalue`), and ``cramers_v``,
  the chi-square statistic as an effect size, ``sqrt(chi2 / N)``.

Judging a feature respects the sample size. A feature with fewer than ``min_rows`` values
on either side is ``insufficient`` and not judged. A test flags a judged feature only when
the change is significant (the p-value of the test's null, :data:`NULL_OF`, adjusted over
the judged features by Benjamini-Hochberg or Bonferroni, is below ``alpha``), the effect
exceeds its floor (the test's threshold; required for the distances, optional for ks and
chi2), and, given a ``yardstick``, exceeds the largest value seen between earlier windows.
When several tests decide, their distinct nulls split ``alpha`` (Bonferroni over the tests),
so deciding by more tests does not raise the rate of false alarms.
``drifted`` is true when a test in ``decide_by`` flags it (PSI by default); ``share_drifted``
leaves out the features the spec declares ``seasonal``.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
from pandas.api import types as pdt
from scipy import stats as sps

from conveyor.core.errors import InvalidInputError, NotFoundError
from conveyor.core.schema import ColumnKind, ColumnRole, Schema
from conveyor.data.profiles import OTHER, count_categories, inner_edges
from conveyor.data.schemas import parse_datetimes, to_category_strings
from conveyor.data.sketches import QuantileSketch
from conveyor.spec import DriftSpec

_DRIFT_KINDS = frozenset({ColumnKind.NUMERIC, ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN})
NUMERIC_TESTS = ("psi", "ks", "chi2", "js", "wasserstein", "linf")
CATEGORICAL_TESTS = ("psi", "chi2", "js", "linf")
PVALUE_TESTS = ("ks", "chi2")
#: The null each test's significance is judged by: its own p-value (ks, chi2), PSI's null for
#: the binned distances, KS for Wasserstein (both compare the same finite values).
NULL_OF: dict[str, str] = {
    "psi": "psi",
    "js": "psi",
    "linf": "psi",
    "wasserstein": "ks",
    "ks": "ks",
    "chi2": "chi2",
}
#: The effect each test's floor (``thresholds``) and yardstick apply to.
EFFECT_OF = {"wasserstein": "wasserstein_norm", "chi2": "cramers_v"}
PSI_PSEUDO_COUNT = 0.5
_STAT_KEYS = (
    "psi",
    "psi_pvalue",
    "js",
    "linf",
    "ks",
    "ks_pvalue",
    "chi2",
    "chi2_pvalue",
    "chi2_dof",
    "cramers_v",
    "wasserstein",
    "wasserstein_norm",
)
KS_EXACT_MAX_N = 10_000
_SKETCH_GRID = 2048
Adjustment = Literal["bh", "bonferroni", "none"]
ParquetSource: TypeAlias = "str | os.PathLike[str] | pads.Dataset"


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


def psi_pvalue(
    expected_counts: Sequence[float] | np.ndarray, actual_counts: Sequence[float] | np.ndarray
) -> float:
    """P-value of the PSI of two count vectors under the null that nothing changed.

    PSI is Jeffreys' divergence between the two binned distributions, and for samples of
    ``n`` and ``m`` values from one distribution ``PSI * n * m / (n + m)`` is asymptotically
    chi-square with ``k - 1`` degrees of freedom, ``k`` the bins holding a value on either
    side. The PSI tested adds half a count to every bin (the Haldane-Anscombe correction of a
    log ratio) instead of flooring empty bins, which would make a bin that a small sample
    misses by chance look like a large change; simulated under no change, the p-value is
    uniform from 100 values a side and conservative below.

    Parameters
    ----------
    expected_counts, actual_counts : array-like
        Counts (not shares) over the same bins.

    Returns
    -------
    float
        The p-value in [0, 1]; 1.0 when fewer than two bins hold a value.

    Raises
    ------
    InvalidInputError
        If the vectors differ in length, are empty, negative, non-finite or all zero.

    Examples
    --------
    >>> round(psi_pvalue([500, 500], [400, 600]), 6) < 1e-5, psi_pvalue([50, 50], [50, 50])
    (True, 1.0)
    """
    _shares(expected_counts, actual_counts, "psi_pvalue")  # validates
    ref = np.asarray(expected_counts, dtype=np.float64)
    cur = np.asarray(actual_counts, dtype=np.float64)
    used = (ref + cur) > 0
    if int(used.sum()) < 2:
        return 1.0
    p = ref[used] + PSI_PSEUDO_COUNT
    q = cur[used] + PSI_PSEUDO_COUNT
    p /= p.sum()
    q /= q.sum()
    smoothed = float(np.sum((q - p) * np.log(q / p)))
    scale = 1.0 / ref.sum() + 1.0 / cur.sum()
    return float(sps.chi2.sf(smoothed / scale, int(used.sum()) - 1))


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


def ks_2samp(
    reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray
) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and two-sided p-value, as SciPy's ``ks_2samp``.

    Parameters
    ----------
    reference, current : array-like
        Finite values (NaN is rejected), in any order.

    Returns
    -------
    tuple of float
        ``(statistic, pvalue)``.

    Raises
    ------
    InvalidInputError
        If a sample is empty or holds NaN.

    Examples
    --------
    >>> ks_2samp([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    (0.0, 1.0)
    """
    a = _sorted_sample(reference, "reference")
    b = _sorted_sample(current, "current")
    return _ks_sorted(a, b)


def wasserstein(
    reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray
) -> float:
    """1-D Wasserstein (earth mover's) distance, as SciPy's ``wasserstein_distance``.

    Examples
    --------
    >>> wasserstein([0.0, 1.0, 3.0], [5.0, 6.0, 8.0])
    5.0
    """
    a = _sorted_sample(reference, "reference")
    b = _sorted_sample(current, "current")
    return _ks_wasserstein_sorted(a, b)[1]


def chi2_test(
    reference_counts: Sequence[float] | np.ndarray, current_counts: Sequence[float] | np.ndarray
) -> tuple[float, float, int]:
    """Chi-square test of homogeneity of two count vectors over the same bins.

    The 2 x k contingency table drops bins empty on both sides and goes to SciPy's
    ``chi2_contingency`` (Yates' correction when one degree of freedom is left). With fewer
    than two non-empty bins the samples cannot differ: ``(0.0, 1.0, 0)``.

    Returns
    -------
    tuple
        ``(statistic, pvalue, dof)``.

    Examples
    --------
    >>> stat, p, dof = chi2_test([50, 50], [50, 50])
    >>> (stat, p, dof)
    (0.0, 1.0, 1)
    """
    p, q = _shares(reference_counts, current_counts, "chi2_test")  # validates
    del p, q
    table = np.vstack(
        [np.asarray(reference_counts, np.float64), np.asarray(current_counts, np.float64)]
    )
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0, 0
    result = sps.chi2_contingency(table)
    return float(result.statistic), float(result.pvalue), int(result.dof)


def adjust_pvalues(pvalues: Sequence[float] | np.ndarray, method: Adjustment = "bh") -> np.ndarray:
    """Adjust p-values for multiple testing.

    Parameters
    ----------
    pvalues : array-like
        Raw p-values in [0, 1].
    method : {"bh", "bonferroni", "none"}
        Benjamini-Hochberg (false discovery rate; SciPy's ``false_discovery_control``),
        Bonferroni (family-wise error rate) or no adjustment.

    Returns
    -------
    numpy.ndarray
        Adjusted p-values, in the input order; reject where ``adjusted < alpha``.

    Raises
    ------
    InvalidInputError
        If a p-value is outside [0, 1] or ``method`` is unknown.

    Examples
    --------
    >>> adjust_pvalues([0.01, 0.04, 0.03], "bh").round(3).tolist()
    [0.03, 0.04, 0.04]
    >>> adjust_pvalues([0.01, 0.04, 0.03], "bonferroni").round(3).tolist()
    [0.03, 0.12, 0.09]
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise InvalidInputError(f"p-values must be in [0, 1]. Got {p.tolist()} instead.")
    if method == "none" or p.size == 0:
        return p.copy()
    if method == "bonferroni":
        return np.minimum(p * p.size, 1.0)
    if method == "bh":
        order = np.argsort(p, kind="stable")
        scaled = p[order] * p.size / np.arange(1, p.size + 1)
        monotone = np.minimum.accumulate(scaled[::-1])[::-1]
        out = np.empty_like(p)
        out[order] = np.minimum(monotone, 1.0)
        return out
    raise InvalidInputError(
        f"The multiple-testing method must be 'bh', 'bonferroni' or 'none'. Got {method!r}."
    )


def _sorted_sample(values: Sequence[float] | np.ndarray, side: str) -> np.ndarray:
    array = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if array.size == 0:
        raise InvalidInputError(f"The {side} sample is empty; a two-sample test needs values.")
    if np.isnan(array[-1]):
        raise InvalidInputError(f"The {side} sample holds NaN; drop missing values first.")
    return array


def _ks_wasserstein_sorted(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """KS statistic and Wasserstein distance of two sorted finite samples.

    The samples are merged in linear passes (each value's place in the other sample), and the
    running shares of each sample along the merge are the two empirical CDFs, which at the
    last of each run of equal values are the right-continuous CDFs SciPy evaluates.
    """
    n1, n2 = a.size, b.size
    pos_a = np.searchsorted(b, a, side="left")
    pos_a += np.arange(n1)
    pos_b = np.searchsorted(a, b, side="right")
    pos_b += np.arange(n2)
    merged = np.empty(n1 + n2, dtype=np.float64)
    merged[pos_a] = a
    merged[pos_b] = b
    del pos_b
    from_a = np.zeros(n1 + n2, dtype=np.int8)
    from_a[pos_a] = 1
    del pos_a
    # diff = seen_a / n1 - (k - seen_a) / n2 with k = 1, 2, ... along the merge, in place
    diff = np.cumsum(from_a, dtype=np.float64)
    del from_a
    diff *= 1.0 / n1 + 1.0 / n2
    k = np.arange(1, n1 + n2 + 1, dtype=np.float64)
    k /= n2
    diff -= k
    del k
    step = np.diff(merged)
    del merged
    ends = np.append(step != 0, True)  # last of each run of equal values
    top = float(np.max(diff, where=ends, initial=-np.inf))
    bottom = float(np.min(diff, where=ends, initial=np.inf))
    del ends
    ks = max(top, float(np.clip(-bottom, 0.0, 1.0)))
    step *= np.abs(diff[:-1], out=diff[:-1])  # in place: |F_a - F_b| times each gap
    return ks, float(np.sum(step))


def _ks_pvalue(d: float, n1: int, n2: int) -> float:
    """Smirnov's asymptotic two-sided p-value, as SciPy's ``ks_2samp(method="asymp")``."""
    big, small = float(max(n1, n2)), float(min(n1, n2))
    en = big * small / (big + small)
    return float(np.clip(sps.kstwo.sf(d, np.round(en)), 0.0, 1.0))


def _ks_sorted(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    if max(a.size, b.size) <= KS_EXACT_MAX_N:
        with warnings.catch_warnings():  # SciPy falls back to asymp when exact fails; so do we
            warnings.simplefilter("ignore", RuntimeWarning)
            result = sps.ks_2samp(a, b)
        return float(result.statistic), float(result.pvalue)
    d = _ks_wasserstein_sorted(a, b)[0]
    return d, _ks_pvalue(d, a.size, b.size)


# --------------------------------------------------------------------------------------------
# Thresholds and flags


def _resolve_spec(spec: DriftSpec | None, psi_threshold: float | None) -> DriftSpec:
    spec = spec or DriftSpec()
    if psi_threshold is None:
        return spec
    if isinstance(psi_threshold, bool) or not (
        isinstance(psi_threshold, int | float) and psi_threshold > 0
    ):
        raise InvalidInputError(
            "The 'psi_threshold' parameter of compute_drift() must be a number > 0. "
            f"Got {psi_threshold!r} instead."
        )
    thresholds = {**spec.thresholds, "psi": float(psi_threshold)}
    return spec.model_copy(update={"thresholds": thresholds})


def _empty_result(kind: Any, reason: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        **extra,
        **dict.fromkeys(_STAT_KEYS),
        "drifted": False,
        "flags": {},
        "reason": reason,
    }


Yardstick: TypeAlias = Mapping[str, Mapping[str, float]]


def _mark_insufficient(results: dict[str, dict[str, Any]], min_rows: int) -> None:
    """Give a ``reason`` to every compared column with under ``min_rows`` values on a side."""
    for result in results.values():
        if result.get("reason") is not None:
            continue
        counts = (result.get("reference_count") or 0, result.get("current_count") or 0)
        if min(counts) < min_rows:
            result.update(insufficient=True, drifted=False, flags={})
            result["reason"] = (
                f"too few values to judge drift: {counts[0]} in the reference and {counts[1]} "
                f"in the current data, {min_rows} needed on each side (drift.min_rows)"
            )


def _flag(
    result: Mapping[str, Any],
    test: str,
    alpha: float,
    floors: Mapping[Any, float],
    spread: Mapping[str, float],
) -> bool | None:
    """Whether ``test`` flags a judged column: significant, past its floor and the spread."""
    if test not in PVALUE_TESTS and test not in floors:
        return None  # a distance without a threshold measures but never flags
    effect = result.get(EFFECT_OF.get(test, test))
    adjusted = result.get(f"{NULL_OF[test]}_pvalue_adjusted")
    if effect is None or adjusted is None:
        return None
    return bool(
        adjusted < alpha
        and (test not in floors or effect > floors[test])
        and (test not in spread or effect > spread[test])
    )


def drift_share(drift: Mapping[str, Any], seasonal: Sequence[str] = ()) -> float | None:
    """The share of judged features that drifted, leaving out the ``seasonal`` ones.

    Parameters
    ----------
    drift : mapping
        A result of :func:`compute_drift` (or of the frame and Parquet variants).
    seasonal : sequence of str
        Features declared seasonal, judged and reported but not counted.

    Returns
    -------
    float or None
        Drifted over judged features (those with a ``reason``, e.g. too few values, are not
        judged); ``None`` when no feature outside ``seasonal`` was judged.

    Examples
    --------
    >>> drift = {"features": {"a": {"drifted": True, "reason": None},
    ...                       "b": {"drifted": False, "reason": None},
    ...                       "t": {"drifted": True, "reason": None}}}
    >>> drift_share(drift), drift_share(drift, ["t"])
    (0.6666666666666666, 0.5)
    """
    skip = set(seasonal)
    judged = [
        r
        for name, r in (drift.get("features") or {}).items()
        if name not in skip and r.get("reason") is None
    ]
    if not judged:
        return None
    return sum(bool(r.get("drifted")) for r in judged) / len(judged)


def _finish(
    results: dict[str, dict[str, Any]],
    spec: DriftSpec,
    exact: bool,
    yardstick: Yardstick | None = None,
) -> dict[str, Any]:
    """Judge the columns with enough values: adjust p-values over them, flag, and summarise."""
    _mark_insufficient(results, spec.min_rows)
    evaluated = [n for n, r in results.items() if r.get("reason") is None]
    for test in ("psi", *PVALUE_TESTS):
        names = [n for n in evaluated if results[n].get(f"{test}_pvalue") is not None]
        raw = [results[n][f"{test}_pvalue"] for n in names]
        for name, adjusted in zip(names, adjust_pvalues(raw, spec.adjustment), strict=True):
            results[name][f"{test}_pvalue_adjusted"] = float(adjusted)
    spreads = yardstick or {}
    # a feature drifts when any deciding test flags it: their distinct nulls share alpha
    deciding = {NULL_OF[t] for t in spec.decide_by if t in spec.tests}
    shared = spec.alpha / max(len(deciding), 1)
    alphas = {t: shared if t in spec.decide_by else spec.alpha for t in spec.tests}
    for name in evaluated:
        result = results[name]
        floors = {**spec.thresholds, **spec.columns.get(name, {})}
        spread = spreads.get(name, {})
        if spread:
            result["yardstick"] = dict(spread)
        flags: dict[str, bool] = {}
        for test in spec.tests:
            flag = _flag(result, test, alphas[test], floors, spread)
            if flag is not None:
                flags[test] = flag
        result["flags"] = flags
        result["drifted"] = any(flags.get(test, False) for test in spec.decide_by)
    drifted = [n for n in evaluated if results[n]["drifted"]]
    psis = [results[n]["psi"] for n in evaluated if results[n]["psi"] is not None]
    share = drift_share({"features": results}, spec.seasonal)
    summary = {
        "drifted_features": drifted,
        "max_psi": max(psis, default=None),
        "share_drifted": 0.0 if share is None else share,
        "psi_threshold": float(spec.thresholds.get("psi", math.inf)),
        "evaluated": len(evaluated),
        "insufficient": [n for n, r in results.items() if r.get("insufficient")],
        "min_rows": spec.min_rows,
        "seasonal": [n for n in evaluated if n in set(spec.seasonal)],
        "yardstick": bool(spreads),
        "tests": list(spec.tests),
        "decide_by": list(spec.decide_by),
        "alpha": spec.alpha,
        "adjustment": spec.adjustment,
        "flagged": {
            test: [n for n in evaluated if results[n]["flags"].get(test)] for test in spec.tests
        },
        "exact": exact,
    }
    return {"features": results, "summary": summary}


# --------------------------------------------------------------------------------------------
# Drift between profiles


def compute_drift(
    reference: Mapping[str, Any],
    current: Mapping[str, Any],
    *,
    features: Sequence[str] | None = None,
    psi_threshold: float | None = None,
    spec: DriftSpec | None = None,
    yardstick: Yardstick | None = None,
) -> dict[str, Any]:
    """Compare two profiles column by column.

    Parameters
    ----------
    reference : mapping
        Profile of the reference data (:func:`conveyor.data.profile_frame`).
    current : mapping
        Profile of the current data, computed with ``reference=reference`` (or a profile
        sharing its edges) so numeric bins and categorical values align.
    features : sequence of str, optional
        Columns to compare; by default every numeric, categorical or boolean column with role
        ``feature`` in the reference that the current profile also has.
    psi_threshold : float, optional
        A column drifted when its PSI exceeds this; overrides ``spec.thresholds["psi"]``
        (0.2 by default).
    spec : DriftSpec, optional
        Tests, thresholds, ``alpha``, the p-value adjustment, ``min_rows`` and the
        ``seasonal`` features (``drift:`` in ``conveyor.yaml``); by default
        :class:`conveyor.spec.DriftSpec` ().
    yardstick : mapping, optional
        ``{feature: {test: value}}``, the largest statistic seen between earlier windows
        (:func:`conveyor.data.drift_history.reference_spread`); a test flags a feature only
        beyond it.

    Returns
    -------
    dict
        ``{"features": {name: {"kind", "psi", "psi_pvalue", "psi_pvalue_adjusted", "js",
        "linf", "ks", "ks_pvalue", "ks_pvalue_adjusted", "chi2", "chi2_pvalue",
        "chi2_pvalue_adjusted", "chi2_dof", "cramers_v", "wasserstein", "wasserstein_norm",
        "flags", "drifted", "reference_count", "current_count", "exact"}}, "summary":
        {"drifted_features", "max_psi", "share_drifted", "psi_threshold", "evaluated",
        "insufficient", "min_rows", "seasonal", "yardstick", "tests", "decide_by", "alpha",
        "adjustment", "flagged", "exact"}}``. ``exact`` is false when KS or Wasserstein came
        from compacted sketches (see the module docstring for their error bounds). A column
        with no values on either side, or of a kind without a distribution (text,
        datetime), has ``None`` statistics, ``drifted`` false and a ``reason``; one with
        fewer than ``spec.min_rows`` values on a side keeps its statistics but is not judged
        (``insufficient`` true, a ``reason``, listed in ``summary["insufficient"]``).
        ``share_drifted`` is the drifted share of the judged features not declared
        seasonal (see :func:`drift_share`), 0.0 when there are none.

    Raises
    ------
    InvalidInputError
        If a requested column is missing from a profile, its kind differs between the
        profiles, numeric bin edges differ and the current profile has no sketch to re-bin
        it with, or ``psi_threshold`` is not positive.

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
    >>> drift["features"]["x"]["ks"] > 0.4, drift["features"]["x"]["ks_pvalue"] < 1e-9
    (True, True)
    """
    spec = _resolve_spec(spec, psi_threshold)
    ref_columns: Mapping[str, Any] = reference.get("columns", {})
    cur_columns: Mapping[str, Any] = current.get("columns", {})
    names = _select_features(ref_columns, cur_columns, features)
    results = {
        name: _column_drift(name, ref_columns[name], cur_columns[name], spec) for name in names
    }
    exact = all(r.get("exact", True) for r in results.values())
    return _finish(results, spec, exact, yardstick)


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
        edges = inner_edges(ref["histogram"])
        if edges == inner_edges(cur["histogram"]):
            return list(ref["histogram"]["counts"]), list(cur["histogram"]["counts"])
        if "sketch" not in cur:
            raise InvalidInputError(
                f"Column {name!r} has different histogram edges in the two profiles and the "
                "current one has no quantile sketch; profile the current data with "
                "profile_frame(..., reference=reference)."
            )
        # Re-bin the current column on the reference's edges from its sketch (approximate).
        counts = QuantileSketch.from_dict(cur["sketch"]).bin_counts(edges)
        neg_inf = int(cur.get("neg_inf_count", 0))
        counts[0] += neg_inf
        counts[-1] += int(cur.get("inf_count", 0)) - neg_inf
        return list(ref["histogram"]["counts"]), [float(c) for c in counts]
    keys = [k for k in ref["values"] if k != OTHER]
    ref_counts = [ref["values"][k] for k in keys] + [ref["values"].get(OTHER, 0)]
    cur_values = cur["values"]
    known = set(keys)
    pooled = sum(c for k, c in cur_values.items() if k not in known)
    cur_counts = [cur_values.get(k, 0) for k in keys] + [pooled]
    return ref_counts, cur_counts


def _binned_stats(
    ref_counts: Sequence[float] | np.ndarray,
    cur_counts: Sequence[float] | np.ndarray,
    tests: Sequence[str],
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "psi": psi(ref_counts, cur_counts),
        "psi_pvalue": psi_pvalue(ref_counts, cur_counts),
        "js": jensen_shannon(ref_counts, cur_counts),
        "linf": linf(ref_counts, cur_counts),
    }
    if "chi2" in tests:
        out["chi2"], out["chi2_pvalue"], out["chi2_dof"] = chi2_test(ref_counts, cur_counts)
        total = float(np.sum(ref_counts)) + float(np.sum(cur_counts))
        out["cramers_v"] = math.sqrt(out["chi2"] / total)  # a 2 x k table: min(2, k) - 1 = 1
    return out


def _column_drift(
    name: str, ref: Mapping[str, Any], cur: Mapping[str, Any], spec: DriftSpec
) -> dict[str, Any]:
    if ref.get("kind") != cur.get("kind"):
        raise InvalidInputError(
            f"Column {name!r} is {ref.get('kind')} in the reference profile and "
            f"{cur.get('kind')} in the current one; they must match."
        )
    if ref.get("kind") not in _DRIFT_KINDS:
        return _empty_result(
            ref.get("kind"), f"{ref.get('kind')} columns have no distribution to compare"
        )
    ref_counts, cur_counts = _aligned_counts(name, ref, cur)
    counts = {"reference_count": int(sum(ref_counts)), "current_count": int(sum(cur_counts))}
    if not sum(ref_counts) or not sum(cur_counts):
        side = "reference" if not sum(ref_counts) else "current"
        return _empty_result(ref["kind"], f"no values in the {side}", **counts)
    result: dict[str, Any] = {
        "kind": ref["kind"],
        **counts,
        **dict.fromkeys(_STAT_KEYS),
        "exact": True,
        "reason": None,
    }
    result.update(_binned_stats(ref_counts, cur_counts, spec.tests))
    if ref["kind"] == ColumnKind.NUMERIC and inner_edges(ref["histogram"]) != inner_edges(
        cur["histogram"]
    ):
        result.update(exact=False, rebinned=True)
    if ref["kind"] == ColumnKind.NUMERIC and "sketch" in ref and "sketch" in cur:
        wanted = {"ks", "wasserstein"} & set(spec.tests)
        if wanted:
            result.update(_sketch_stats(ref, cur))
    return result


def _sketch_values(sketch: QuantileSketch) -> np.ndarray:
    """Every value of an exact (uncompacted) sketch, sorted."""
    ranks = (np.arange(sketch.n) + 0.5) / sketch.n  # mid-ranks: no rounding onto a neighbour
    return np.asarray(sketch.quantiles(ranks.tolist()), dtype=np.float64)


def _sketch_stats(ref: Mapping[str, Any], cur: Mapping[str, Any]) -> dict[str, Any]:
    a = QuantileSketch.from_dict(ref["sketch"])
    b = QuantileSketch.from_dict(cur["sketch"])
    out: dict[str, Any] = {}
    if not a.n or not b.n:
        return out
    std = ref.get("std")
    if a.is_exact and b.is_exact:
        values_a, values_b = _sketch_values(a), _sketch_values(b)
        ks, ks_p = _ks_sorted(values_a, values_b)
        w = _ks_wasserstein_sorted(values_a, values_b)[1]
    else:
        grid = (np.arange(_SKETCH_GRID) + 0.5) / _SKETCH_GRID
        ends = [a.min, a.max, b.min, b.max]
        points = np.unique(
            np.concatenate([a.quantiles(grid.tolist()), b.quantiles(grid.tolist()), ends])
        )
        diff = a.cdf(points) - b.cdf(points)
        ks = float(np.max(np.abs(diff)))
        w = float(np.sum(np.abs(diff[:-1]) * np.diff(points)))
        ks_p = _ks_pvalue(ks, a.n, b.n)
        bound = a.rank_error + b.rank_error + 2.0 / _SKETCH_GRID
        out.update(
            exact=False,
            ks_error_bound=bound,
            wasserstein_error_bound=bound * float(points[-1] - points[0]),
        )
    out.update(ks=ks, ks_pvalue=ks_p, wasserstein=w, wasserstein_norm=_normed(w, std))
    return out


def _normed(w: float, std: Any) -> float:
    scale = float(std) if std is not None and float(std) > 0 else 1.0
    return w / scale


# --------------------------------------------------------------------------------------------
# Drift between frames (exact)


def compute_drift_frames(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    schema: Schema | None = None,
    features: Sequence[str] | None = None,
    spec: DriftSpec | None = None,
    bins: int = 10,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
    yardstick: Yardstick | None = None,
) -> dict[str, Any]:
    """Compare two frames column by column with exact statistics.

    Parameters
    ----------
    reference, current : pandas.DataFrame
        The reference data and the current data.
    schema : Schema, optional
        Says each column's kind and role; without it, bool, string, object and category
        columns are categorical and other numeric columns numeric.
    features : sequence of str, optional
        Columns to compare; by default the schema's features of a kind with a distribution
        (or, without a schema, every column the frames share).
    spec : DriftSpec, optional
        Tests, thresholds, ``alpha`` and adjustment; :class:`conveyor.spec.DriftSpec` () by default.
    bins : int
        Quantile bins of the reference that PSI, Jensen-Shannon, L-infinity and chi-square
        use for a numeric column (edges are observed values, as in profiles).
    workers : int, optional
        Threads computing columns in parallel (NumPy releases the GIL while sorting);
        by default ``min(4, os.cpu_count())``.
    progress : callable, optional
        Called with a short message as each column finishes.
    yardstick : mapping, optional
        As for :func:`compute_drift`.

    Returns
    -------
    dict
        The layout of :func:`compute_drift`, with ``exact`` true.

    Raises
    ------
    InvalidInputError
        If a requested column is missing from a frame or ``bins`` is not a positive int.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"x": rng.normal(size=2000), "c": rng.choice(["a", "b"], 2000)})
    >>> cur = pd.DataFrame({"x": rng.normal(1.0, size=2000), "c": rng.choice(["a", "b"], 2000)})
    >>> drift = compute_drift_frames(ref, cur)
    >>> drift["summary"]["drifted_features"], drift["features"]["c"]["drifted"]
    (['x'], False)
    """
    spec = spec or DriftSpec()
    _check_bins(bins)
    kinds = _frame_kinds(reference, current, schema, features)

    def one(name: str) -> dict[str, Any]:
        return _series_drift(kinds[name], reference[name], current[name], spec, bins)

    return _finish(_run_columns(list(kinds), one, workers, progress), spec, True, yardstick)


def compute_drift_parquet(
    reference: ParquetSource,
    current: ParquetSource,
    *,
    schema: Schema | None = None,
    features: Sequence[str] | None = None,
    spec: DriftSpec | None = None,
    bins: int = 10,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Compare two Parquet datasets column by column, reading one column at a time.

    The statistics and the result are those of :func:`compute_drift_frames` on the two
    datasets read whole (``pandas.read_parquet``), but each worker reads a single column from
    both sides, compares it and lets it go, so memory holds ``workers`` columns, never the
    tables. Text columns are read dictionary-encoded (each distinct value once).

    Parameters
    ----------
    reference, current : str, os.PathLike or pyarrow.dataset.Dataset
        A Parquet file, a directory of Parquet files, or an opened dataset.
    schema, features, spec, bins, progress
        As for :func:`compute_drift_frames`.
    workers : int, optional
        Columns compared at once, each holding both sides of its column; by default one,
        so memory holds a single column pair (two workers are about 1.7x faster on two cores
        at a third more peak memory).

    Returns
    -------
    dict
        The layout of :func:`compute_drift`, with ``exact`` true.

    Raises
    ------
    NotFoundError
        If a path does not exist.
    InvalidInputError
        If a source is not readable Parquet, a requested column is missing from a side, or
        ``bins`` is not a positive int.

    Examples
    --------
    >>> import tempfile
    >>> rng = np.random.default_rng(0)
    >>> tmp = tempfile.mkdtemp()
    >>> pd.DataFrame({"x": rng.normal(size=2000)}).to_parquet(f"{tmp}/ref.parquet")
    >>> pd.DataFrame({"x": rng.normal(1.0, size=2000)}).to_parquet(f"{tmp}/cur.parquet")
    >>> drift = compute_drift_parquet(f"{tmp}/ref.parquet", f"{tmp}/cur.parquet")
    >>> drift["summary"]["drifted_features"]
    ['x']
    """
    spec = spec or DriftSpec()
    _check_bins(bins)
    sides = {
        "reference": _open_parquet(reference, "reference"),
        "current": _open_parquet(current, "current"),
    }
    columns = {side: _parquet_columns(data) for side, data in sides.items()}
    kinds = _select_kinds(columns["reference"], columns["current"], schema, features, "dataset")

    def one(name: str) -> dict[str, Any]:
        kind = kinds[name]
        ref = _read_column(sides["reference"], name, kind, "reference")
        kind = kind or _guess_kind(ref)
        # a column of a kind without a distribution is not read from the current side
        cur = _read_column(sides["current"], name, kind, "current") if kind in _DRIFT_KINDS else ref
        return _series_drift(kind, ref, cur, spec, bins)

    return _finish(_run_columns(list(kinds), one, workers or 1, progress), spec, exact=True)


def _open_parquet(source: ParquetSource, side: str) -> pads.Dataset:
    if isinstance(source, pads.Dataset):
        return source
    if not isinstance(source, str | os.PathLike):
        raise InvalidInputError(
            f"The {side} source must be a Parquet path or a pyarrow.dataset.Dataset. "
            f"Got {type(source).__name__} instead."
        )
    path = Path(source)
    if not path.exists():
        raise NotFoundError(f"The {side} Parquet source '{path}' does not exist.")
    try:
        return pads.dataset(str(path), format="parquet")
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidInputError(
            f"The {side} source '{path}' is not readable Parquet: {exc}"
        ) from exc


def _parquet_columns(data: pads.Dataset) -> list[str]:
    """Column names as pandas reads them (the stored pandas index left out)."""
    meta = data.schema.pandas_metadata or {}
    index = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
    return [n for n in data.schema.names if n not in index]


def _read_column(data: pads.Dataset, name: str, kind: ColumnKind | None, side: str) -> pd.Series:
    try:
        values = data.to_table(columns=[name], use_threads=False).column(0)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidInputError(
            f"Column {name!r} of the {side} dataset is not readable: {exc}"
        ) from exc
    text = pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
    if text and kind in (None, ColumnKind.CATEGORICAL):
        values = values.dictionary_encode()
    series: pd.Series = values.to_pandas()
    return series.rename(name)


def _check_bins(bins: Any) -> None:
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise InvalidInputError(f"'bins' must be an int in [1, inf). Got {bins!r} instead.")


def _series_drift(
    kind: ColumnKind, reference: pd.Series, current: pd.Series, spec: DriftSpec, bins: int
) -> dict[str, Any]:
    """Exact drift of one column, given both sides' values."""
    if kind is ColumnKind.NUMERIC:
        return _numeric_frame_drift(reference, current, spec, bins)
    if kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
        return _categorical_frame_drift(reference, current, kind, spec)
    return _empty_result(str(kind), f"{kind} columns have no distribution to compare")


def _run_columns(
    names: Sequence[str],
    one: Callable[[str], dict[str, Any]],
    workers: int | None,
    progress: Callable[[str], None] | None,
) -> dict[str, dict[str, Any]]:
    say = progress or (lambda _msg: None)

    def run(name: str) -> tuple[str, dict[str, Any]]:
        result = one(name)
        say(f"drift: {name}")
        return name, result

    threads = workers or min(4, os.cpu_count() or 1)
    if threads > 1 and len(names) > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return dict(pool.map(run, names))
    return dict(run(name) for name in names)


def _frame_kinds(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    schema: Schema | None,
    features: Sequence[str] | None,
) -> dict[str, ColumnKind]:
    kinds = _select_kinds(list(reference.columns), list(current.columns), schema, features, "frame")
    return {n: k or _guess_kind(reference[n]) for n, k in kinds.items()}


def _select_kinds(
    ref_columns: Sequence[Any],
    cur_columns: Sequence[Any],
    schema: Schema | None,
    features: Sequence[str] | None,
    what: str,
) -> dict[str, ColumnKind | None]:
    """The columns to compare and their kinds from the schema (``None``: guess from values)."""
    if isinstance(features, str):
        features = [features]
    if features is not None:
        for name in features:
            for side, columns in (("reference", ref_columns), ("current", cur_columns)):
                if name not in columns:
                    raise InvalidInputError(
                        f"Column {name!r} is not in the {side} {what}. "
                        f"Columns: {sorted(map(str, columns))}."
                    )
    if schema is not None:
        by_name = {c.name: c for c in schema.columns}
        names = features or [
            c.name
            for c in schema.columns
            if c.role is ColumnRole.FEATURE
            and c.kind in _DRIFT_KINDS
            and c.name in ref_columns
            and c.name in cur_columns
        ]
        return {n: by_name[n].kind if n in by_name else None for n in names}
    names = features or [c for c in ref_columns if c in cur_columns]
    return dict.fromkeys(names)


def _guess_kind(values: pd.Series) -> ColumnKind:
    if pdt.is_bool_dtype(values.dtype):
        return ColumnKind.BOOLEAN
    if pdt.is_numeric_dtype(values.dtype):
        return ColumnKind.NUMERIC
    if pdt.is_datetime64_any_dtype(values.dtype):
        return ColumnKind.DATETIME
    return ColumnKind.CATEGORICAL


def _finite_sorted(values: pd.Series) -> tuple[np.ndarray, int, int, int]:
    """Sorted finite values, and the counts of -inf, +inf and missing values."""
    if pdt.is_numeric_dtype(values.dtype) and not pdt.is_bool_dtype(values.dtype):
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    else:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64, na_value=np.nan)
    numbers.sort()  # NaN sorts last, infinities at the ends
    missing = int(np.count_nonzero(np.isnan(numbers)))
    present = numbers[: numbers.size - missing]
    lo = int(np.searchsorted(present, -np.inf, side="right"))
    hi = int(present.size - np.searchsorted(present, np.inf, side="left"))
    return present[lo : present.size - hi], lo, hi, missing


def _numeric_frame_drift(
    reference: pd.Series, current: pd.Series, spec: DriftSpec, bins: int
) -> dict[str, Any]:
    a, a_lo, a_hi, _ = _finite_sorted(reference)
    b, b_lo, b_hi, _ = _finite_sorted(current)
    counts = {
        "reference_count": int(a.size + a_lo + a_hi),
        "current_count": int(b.size + b_lo + b_hi),
    }
    if not a.size or not b.size:
        side = "reference" if not a.size else "current"
        return _empty_result(str(ColumnKind.NUMERIC), f"no values in the {side}", **counts)
    cuts = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    edges = np.unique(a[np.ceil(cuts * (a.size - 1)).astype(np.intp)])  # method="higher"

    def binned(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
        ranks = np.searchsorted(x, edges, side="left")
        out = np.diff(np.concatenate([[0], ranks, [x.size]]))
        out[0] += lo
        out[-1] += hi
        return out

    result: dict[str, Any] = {
        "kind": str(ColumnKind.NUMERIC),
        **counts,
        **dict.fromkeys(_STAT_KEYS),
        "exact": True,
        "reason": None,
    }
    result.update(_binned_stats(binned(a, a_lo, a_hi), binned(b, b_lo, b_hi), spec.tests))
    if {"ks", "wasserstein"} & set(spec.tests):
        if max(a.size, b.size) <= KS_EXACT_MAX_N:
            ks, ks_p = _ks_sorted(a, b)
            w = _ks_wasserstein_sorted(a, b)[1]
        else:
            ks, w = _ks_wasserstein_sorted(a, b)
            ks_p = _ks_pvalue(ks, a.size, b.size)
        result.update(
            ks=ks, ks_pvalue=ks_p, wasserstein=w, wasserstein_norm=_normed(w, float(a.std()))
        )
    return result


def _categorical_frame_drift(
    reference: pd.Series, current: pd.Series, kind: ColumnKind, spec: DriftSpec
) -> dict[str, Any]:
    boolean = kind is ColumnKind.BOOLEAN
    ref = count_categories(reference, boolean=boolean)
    cur = count_categories(current, boolean=boolean)
    counts = {"reference_count": int(ref.sum()), "current_count": int(cur.sum())}
    if not counts["reference_count"] or not counts["current_count"]:
        side = "reference" if not counts["reference_count"] else "current"
        return _empty_result(str(kind), f"no values in the {side}", **counts)
    keys = ref.index.union(cur.index)
    ref_counts = ref.reindex(keys, fill_value=0).to_numpy()
    cur_counts = cur.reindex(keys, fill_value=0).to_numpy()
    result: dict[str, Any] = {
        "kind": str(kind),
        **counts,
        **dict.fromkeys(_STAT_KEYS),
        "exact": True,
        "reason": None,
    }
    result.update(_binned_stats(ref_counts, cur_counts, spec.tests))
    result["unseen_share"] = float(cur_counts[ref_counts == 0].sum() / counts["current_count"])
    return result


# --------------------------------------------------------------------------------------------
# Training-serving skew


def compute_skew(
    training: pd.DataFrame,
    served: pd.DataFrame,
    *,
    keys: Sequence[str],
    features: Sequence[str] | None = None,
    schema: Schema | None = None,
    tolerance: float = 1e-9,
    max_mismatch_rate: float = 0.0,
    spec: DriftSpec | None = None,
) -> dict[str, Any]:
    """Training-serving skew: the same rows' features as trained on and as served.

    Rows are joined on ``keys`` (entity ids and the event time); for each feature the joined
    pairs are compared value by value, and the distribution tests of
    :func:`compute_drift_frames` run on the joined rows (training as the reference).

    Parameters
    ----------
    training : pandas.DataFrame
        Feature rows as the training data holds them.
    served : pandas.DataFrame
        Feature rows as the serving path computed them (e.g. the prediction log's inputs).
    keys : sequence of str
        Join columns, unique on each side; datetime keys are compared as UTC instants.
    features : sequence of str, optional
        Columns to compare; by default those both frames share besides ``keys`` (or the
        schema's features when ``schema`` is given).
    schema : Schema, optional
        Column kinds; guessed from dtypes without it.
    tolerance : float
        Numbers match when ``|a - b| <= tolerance * (1 + |a|)``; missing matches missing.
    max_mismatch_rate : float
        A feature is skewed when more than this share of joined pairs mismatch.
    spec : DriftSpec, optional
        For the distribution tests.

    Returns
    -------
    dict
        ``{"features": {name: {"kind", "compared", "mismatches", "mismatch_rate",
        "max_abs_diff", "skewed", "drift": {...one compute_drift_frames feature...}}},
        "summary": {"training_rows", "served_rows", "joined_rows", "unmatched_training",
        "unmatched_served", "skewed_features", "max_mismatch_rate", "drifted_features"}}``.
        ``max_abs_diff`` is ``None`` for categorical features.

    Raises
    ------
    InvalidInputError
        If ``keys`` is empty, a key or feature is missing from a frame, keys repeat on a side,
        or ``tolerance``/``max_mismatch_rate`` is negative.

    Examples
    --------
    >>> train = pd.DataFrame({"id": [1, 2, 3], "x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]})
    >>> served = pd.DataFrame({"id": [3, 2, 1], "x": [3.0, 2.5, 1.0], "c": ["a", "b", "a"]})
    >>> skew = compute_skew(train, served, keys=["id"])
    >>> skew["summary"]["skewed_features"], skew["features"]["x"]["max_abs_diff"]
    (['x'], 0.5)
    """
    keys = [keys] if isinstance(keys, str) else list(keys)
    if not keys:
        raise InvalidInputError("compute_skew() needs at least one join key. Got none.")
    for name, value in (("tolerance", tolerance), ("max_mismatch_rate", max_mismatch_rate)):
        if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
            raise InvalidInputError(f"'{name}' must be a number >= 0. Got {value!r} instead.")
    time_keys = [
        k
        for k in keys
        if any(
            k in f.columns and pdt.is_datetime64_any_dtype(f[k].dtype) for f in (training, served)
        )
    ]
    left = _keyed(training, keys, time_keys, "training")
    right = _keyed(served, keys, time_keys, "served")
    shared = [c for c in training.columns if c in served.columns and c not in keys]
    if features is None and schema is not None:
        names = [
            c.name for c in schema.columns if c.role is ColumnRole.FEATURE and c.name in shared
        ]
    else:
        names = list(features) if features is not None else shared
    kinds = _frame_kinds(training, served, schema, names)
    joined = left[keys + names].merge(
        right[keys + names], on=keys, how="inner", suffixes=("__t", "__s")
    )
    train_side = joined[[f"{n}__t" for n in names]].set_axis(names, axis=1)
    served_side = joined[[f"{n}__s" for n in names]].set_axis(names, axis=1)
    drift = (
        compute_drift_frames(train_side, served_side, schema=schema, features=names, spec=spec)
        if len(joined)
        else {"features": {}, "summary": {"drifted_features": []}}
    )
    results: dict[str, Any] = {}
    for name in names:
        kind = kinds[name]
        t, s = train_side[name], served_side[name]
        if kind is ColumnKind.NUMERIC:
            a = pd.to_numeric(t, errors="coerce").to_numpy(np.float64, na_value=np.nan)
            b = pd.to_numeric(s, errors="coerce").to_numpy(np.float64, na_value=np.nan)
            both_missing = np.isnan(a) & np.isnan(b)
            with np.errstate(invalid="ignore"):
                gap = np.abs(a - b)
            close = (gap <= tolerance * (1.0 + np.abs(a))) | (a == b) | both_missing
            finite_gap = gap[np.isfinite(gap)]
            max_diff: float | None = float(finite_gap.max()) if finite_gap.size else None
        else:
            ta, sa = t.isna().to_numpy(), s.isna().to_numpy()
            left_text = to_category_strings(t).fillna("").to_numpy(dtype=object)
            right_text = to_category_strings(s).fillna("").to_numpy(dtype=object)
            close = (ta & sa) | (~ta & ~sa & (left_text == right_text))
            max_diff = None
        mismatches = int(close.size - np.count_nonzero(close))
        rate = mismatches / close.size if close.size else 0.0
        results[name] = {
            "kind": str(kind),
            "compared": int(close.size),
            "mismatches": mismatches,
            "mismatch_rate": rate,
            "max_abs_diff": max_diff,
            "skewed": rate > max_mismatch_rate,
            "drift": drift["features"].get(name),
        }
    summary = {
        "training_rows": len(training),
        "served_rows": len(served),
        "joined_rows": len(joined),
        "unmatched_training": len(left) - len(joined),
        "unmatched_served": len(right) - len(joined),
        "skewed_features": [n for n, r in results.items() if r["skewed"]],
        "max_mismatch_rate": max((r["mismatch_rate"] for r in results.values()), default=0.0),
        "drifted_features": list(drift["summary"]["drifted_features"]),
    }
    return {"features": results, "summary": summary}


def _keyed(
    frame: pd.DataFrame, keys: Sequence[str], time_keys: Sequence[str], side: str
) -> pd.DataFrame:
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        raise InvalidInputError(
            f"Join key(s) {missing} are not in the {side} frame. "
            f"Columns: {sorted(map(str, frame.columns))}."
        )
    out = frame.copy(deep=False)
    for key in time_keys:
        out[key] = parse_datetimes(out[key])
    repeated = int(out.duplicated(subset=list(keys)).sum())
    if repeated:
        raise InvalidInputError(
            f"The {side} frame repeats {repeated} key(s) {list(keys)}; each row must have a "
            "unique key to be compared with its counterpart."
        )
    return out
