"""Sampling rows: reservoir, stratified, weighted and importance samples, and class rebalancing.

Every function takes a seed and returns rows of its input with their index labels, so a sample
can be traced back to its batch. Rebalancing (:func:`rebalance`, :func:`class_weights`) is for
training rows only: validation and test rows keep the distribution the model will meet.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import pandas as pd

from conveyor.core.errors import InvalidInputError

RebalanceMethod = Literal["downsample", "upsample"]


def _seed(seed: Any, func: str) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidInputError(
            f"The 'seed' parameter of {func}() must be an int >= 0. Got {seed!r} instead."
        )
    return np.random.default_rng(int(seed))


def _count(n: Any, func: str, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise InvalidInputError(
            f"The {name!r} parameter of {func}() must be an int >= 0. Got {n!r} instead."
        )
    return int(n)


def _frame(frame: Any, func: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError(
            f"{func}() takes a pandas DataFrame. Got {type(frame).__name__} instead."
        )
    return frame


def _column(frame: pd.DataFrame, column: str, func: str) -> pd.Series:
    if column not in frame.columns:
        raise InvalidInputError(
            f"The column {column!r} of {func}() is not a column of the frame. "
            f"Columns: {list(frame.columns)}."
        )
    values = frame[column]
    if values.isna().any():
        raise InvalidInputError(
            f"The column {column!r} of {func}() has {int(values.isna().sum())} missing values; "
            "every row needs a stratum."
        )
    return values


def reservoir_sample(chunks: Iterable[pd.DataFrame], n: int, *, seed: int = 0) -> pd.DataFrame:
    """A uniform sample of ``n`` rows from a stream of frames, holding at most ``n`` rows.

    Algorithm L (Li, 1994) skips ahead geometrically, so a long stream costs O(n log(N/n))
    random draws; every row of the stream has the same chance ``n / N`` to be kept.

    Parameters
    ----------
    chunks : iterable of pandas.DataFrame
        The stream, e.g. the chunks of a large file; all with the same columns.
    n : int
        The sample size; a stream of fewer rows is returned whole.
    seed : int

    Returns
    -------
    pandas.DataFrame
        The sampled rows in stream order, with their index labels.

    Raises
    ------
    InvalidInputError
        If ``n`` or the seed is invalid, or a chunk is not a DataFrame.

    Examples
    --------
    >>> stream = (pd.DataFrame({"x": range(i, i + 100)}) for i in range(0, 1000, 100))
    >>> len(reservoir_sample(stream, 10, seed=0))
    10
    """
    func = "reservoir_sample"
    size = _count(n, func)
    rng = _seed(seed, func)
    kept: list[tuple[int, pd.DataFrame, int]] = []  # (stream position, chunk, row)
    seen = 0
    w = math.exp(math.log(rng.random()) / size) if size else 0.0
    next_pick = size + int(math.floor(math.log(rng.random()) / math.log(1 - w))) if size else 0
    for chunk in chunks:
        chunk = _frame(chunk, func)
        start, stop = seen, seen + len(chunk)
        while len(kept) < size and seen < stop:
            kept.append((seen, chunk, seen - start))
            seen += 1
        while size and next_pick < stop:
            slot = int(rng.integers(size))
            kept[slot] = (next_pick, chunk, next_pick - start)
            w *= math.exp(math.log(rng.random()) / size)
            next_pick += int(math.floor(math.log(rng.random()) / math.log(1 - w))) + 1
        seen = stop
    if not kept:
        return pd.DataFrame()
    kept.sort(key=lambda item: item[0])
    # One slice per chunk (in stream order), not one per row.
    parts: list[pd.DataFrame] = []
    i = 0
    while i < len(kept):
        chunk = kept[i][1]
        rows = []
        while i < len(kept) and kept[i][1] is chunk:
            rows.append(kept[i][2])
            i += 1
        parts.append(chunk.iloc[rows])
    return pd.concat(parts)


def stratified_sample(
    frame: pd.DataFrame,
    *,
    column: str,
    n: int | None = None,
    fraction: float | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """A sample that keeps ``column``'s shares: each stratum gives its share of the rows.

    Exactly one of ``n`` and ``fraction`` is given. Per-stratum sizes are rounded by largest
    remainder so they add up to ``n`` (or ``round(fraction * len(frame))``).

    Raises
    ------
    InvalidInputError
        If both or neither of ``n`` and ``fraction`` are given, either is out of range, or the
        column is absent or has missing values.

    Examples
    --------
    >>> frame = pd.DataFrame({"y": [0] * 90 + [1] * 10})
    >>> stratified_sample(frame, column="y", n=20)["y"].value_counts().sort_index().tolist()
    [18, 2]
    """
    func = "stratified_sample"
    frame = _frame(frame, func)
    rng = _seed(seed, func)
    total = _sample_size(len(frame), n, fraction, func)
    codes, _ = pd.factorize(_column(frame, column, func), sort=True)
    counts = np.bincount(codes) if len(codes) else np.zeros(0, dtype=np.int64)
    exact = counts * (total / max(len(frame), 1))
    sizes = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - sizes), kind="stable")[: total - int(sizes.sum())]:
        sizes[i] += 1
    picks = [
        rng.choice(np.flatnonzero(codes == k), size=int(s), replace=False)
        for k, s in enumerate(sizes)
    ]
    chosen = np.sort(np.concatenate(picks)) if picks else np.array([], dtype=np.int64)
    return frame.iloc[chosen]


def _sample_size(rows: int, n: int | None, fraction: float | None, func: str) -> int:
    if (n is None) == (fraction is None):
        raise InvalidInputError(
            f"{func}() takes exactly one of 'n' and 'fraction'. Got n={n!r}, "
            f"fraction={fraction!r} instead."
        )
    if n is not None:
        size = _count(n, func)
        if size > rows:
            raise InvalidInputError(
                f"The 'n' parameter of {func}() must be at most the {rows} rows of the frame. "
                f"Got {size} instead."
            )
        return size
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, int | float)
        or not 0.0 <= fraction <= 1.0
    ):
        raise InvalidInputError(
            f"The 'fraction' parameter of {func}() must be a float in [0, 1]. "
            f"Got {fraction!r} instead."
        )
    return int(round(fraction * rows))


def _weights(frame: pd.DataFrame, weights: Any, func: str, name: str) -> np.ndarray:
    raw = frame[weights] if isinstance(weights, str) and weights in frame.columns else weights
    try:
        w = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"The {name!r} of {func}() must be a column name or one number per row. "
            f"Got {weights!r} instead."
        ) from exc
    if w.shape != (len(frame),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise InvalidInputError(
            f"The {name!r} of {func}() must be {len(frame)} finite numbers >= 0 with a positive "
            f"sum (or the name of such a column). Got shape {w.shape} with min "
            f"{np.nanmin(w) if w.size else 'n/a'} instead."
        )
    return w


def weighted_sample(
    frame: pd.DataFrame,
    weights: str | Any,
    n: int,
    *,
    replace: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """``n`` rows drawn with probability proportional to ``weights``.

    Without replacement this is the Efraimidis–Spirakis scheme (keys ``u ** (1 / w)``), whose
    first draw follows the weights exactly; with replacement, independent draws.

    Parameters
    ----------
    frame : pandas.DataFrame
    weights : str or array-like
        A column of ``frame`` or one non-negative number per row.
    n : int
        Rows to draw; without replacement at most the number of rows with positive weight.
    replace : bool, default False
    seed : int

    Raises
    ------
    InvalidInputError
        If the weights are not one finite non-negative number per row with a positive sum, or
        ``n`` is too large.

    Examples
    --------
    >>> frame = pd.DataFrame({"w": [0.0, 0.0, 1.0, 1.0]})
    >>> sorted(weighted_sample(frame, "w", 2).index.tolist())
    [2, 3]
    """
    func = "weighted_sample"
    frame = _frame(frame, func)
    rng = _seed(seed, func)
    size = _count(n, func)
    w = _weights(frame, weights, func, "weights")
    if replace:
        chosen = rng.choice(len(frame), size=size, replace=True, p=w / w.sum())
        return frame.iloc[np.sort(chosen)]
    positive = int((w > 0).sum())
    if size > positive:
        raise InvalidInputError(
            f"The 'n' parameter of weighted_sample() without replacement must be at most the "
            f"{positive} rows of positive weight. Got {size} instead."
        )
    with np.errstate(divide="ignore"):
        keys = np.where(w > 0, np.log(rng.random(len(frame))) / np.where(w > 0, w, 1.0), -np.inf)
    chosen = np.argsort(-keys, kind="stable")[:size]
    return frame.iloc[np.sort(chosen)]


def importance_sample(
    frame: pd.DataFrame,
    proposal: str | Any,
    n: int,
    *,
    target: str | Any | None = None,
    weight_column: str = "importance_weight",
    seed: int = 0,
) -> pd.DataFrame:
    """Rows drawn from a ``proposal`` distribution, with weights that correct back to ``target``.

    Rows are drawn with replacement with probability ``q_i = proposal_i / sum(proposal)``; each
    drawn row carries ``weight_column = p_i / (n * q_i)`` where ``p`` is the target
    distribution (uniform over rows by default), so a weighted sum over the sample is an
    unbiased estimate of the target sum over the frame (Horvitz–Thompson).

    Raises
    ------
    InvalidInputError
        If ``proposal`` or ``target`` is not one finite non-negative number per row with a
        positive sum, a row has target mass but no proposal mass, or ``weight_column`` is
        already a column.

    Examples
    --------
    >>> frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "q": [4.0, 3.0, 2.0, 1.0]})
    >>> s = importance_sample(frame, "q", 20000, seed=0)
    >>> round(float((s["x"] * s["importance_weight"]).sum()), 1)  # the mean of x is 2.5
    2.5
    """
    func = "importance_sample"
    frame = _frame(frame, func)
    rng = _seed(seed, func)
    size = _count(n, func)
    if weight_column in frame.columns:
        raise InvalidInputError(
            f"The 'weight_column' {weight_column!r} of {func}() is already a column of the frame."
        )
    q = _weights(frame, proposal, func, "proposal")
    q = q / q.sum()
    p = (
        np.full(len(frame), 1.0 / len(frame))
        if target is None
        else _weights(frame, target, func, "target")
    )
    p = p / p.sum()
    uncovered = (p > 0) & (q == 0)
    if uncovered.any():
        raise InvalidInputError(
            f"The 'proposal' of {func}() must give every row of positive target mass a positive "
            f"chance. Got {int(uncovered.sum())} rows with none."
        )
    chosen = np.sort(rng.choice(len(frame), size=size, replace=True, p=q))
    out = frame.iloc[chosen].copy()
    out[weight_column] = p[chosen] / (size * q[chosen]) if size else np.zeros(0)
    return out


def class_weights(labels: Any) -> np.ndarray:
    """Per-row weights that give every class the same total weight, averaging 1 over the rows.

    The "balanced" heuristic of scikit-learn: ``n / (k * count(class))``.

    Raises
    ------
    InvalidInputError
        If ``labels`` is empty or has missing values.

    Examples
    --------
    >>> class_weights(np.array([0, 0, 0, 1])).tolist()
    [0.6666666666666666, 0.6666666666666666, 0.6666666666666666, 2.0]
    """
    values = pd.Series(np.asarray(labels))
    if len(values) == 0 or values.isna().any():
        raise InvalidInputError(
            f"class_weights() needs labels without missing values. Got {len(values)} labels "
            f"with {int(values.isna().sum())} missing."
        )
    codes, uniques = pd.factorize(values)
    counts = np.bincount(codes)
    return np.asarray(len(values) / (len(uniques) * counts[codes]), dtype=np.float64)


def rebalance(
    frame: pd.DataFrame,
    *,
    label_column: str,
    method: RebalanceMethod,
    ratio: float = 1.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Training rows with the classes rebalanced by sampling.

    ``downsample`` keeps every row of the rarest class and a random ``1 / ratio`` multiple
    of it from each other class; ``upsample`` keeps every row and draws extra rows (with
    replacement) of each smaller class up to ``ratio`` times the largest class. Use it on
    training rows only.

    Parameters
    ----------
    frame : pandas.DataFrame
    label_column : str
    method : {"downsample", "upsample"}
    ratio : float, default 1.0
        Target size of a resampled class relative to the rarest (downsample: a class keeps
        at most ``count(rarest) / ratio`` rows) or to the largest (upsample: a class grows to
        at least ``ratio * count(largest)``). In (0, 1].
    seed : int

    Returns
    -------
    pandas.DataFrame
        The rows in input order (duplicates of a row are adjacent), with their index labels.

    Raises
    ------
    InvalidInputError
        If the method or ratio is invalid, or the label column is absent or has missing values.

    Examples
    --------
    >>> frame = pd.DataFrame({"y": [0] * 90 + [1] * 10})
    >>> rebalance(frame, label_column="y", method="downsample")["y"].value_counts().tolist()
    [10, 10]
    """
    func = "rebalance"
    frame = _frame(frame, func)
    rng = _seed(seed, func)
    if method not in ("downsample", "upsample"):
        raise InvalidInputError(
            f"The 'method' parameter of {func}() must be 'downsample' or 'upsample'. "
            f"Got {method!r} instead."
        )
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio <= 1:
        raise InvalidInputError(
            f"The 'ratio' parameter of {func}() must be a float in (0, 1]. Got {ratio!r} instead."
        )
    codes, _ = pd.factorize(_column(frame, label_column, func))
    if len(codes) == 0:
        return frame
    counts = np.bincount(codes)
    picks: list[np.ndarray] = []
    for k, count in enumerate(counts):
        members = np.flatnonzero(codes == k)
        if method == "downsample":
            keep = min(count, max(1, int(round(counts.min() / ratio))))
            picks.append(rng.choice(members, size=keep, replace=False))
        else:
            want = max(count, int(round(counts.max() * ratio)))
            extra = rng.choice(members, size=want - count, replace=True)
            picks.append(np.concatenate([members, extra]))
    return frame.iloc[np.sort(np.concatenate(picks), kind="stable")]
