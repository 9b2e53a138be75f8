"""Train / validation / test splits: by time, at random, stratified, or keeping groups whole.

Each returns three frames that keep the input's columns and index labels, so a row can always be
traced back to the batch it came from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as pdt

from conveyor.core.errors import InvalidInputError
from conveyor.data.schemas import parse_datetimes

Fractions = tuple[float, float, float]
_PARTS = ("train", "validation", "test")


def _check_fractions(fractions: Any, func: str) -> tuple[float, float, float]:
    message = (
        f"The 'fractions' parameter of {func}() must be three numbers >= 0 summing to 1, "
        f"with a positive train fraction. Got {fractions!r} instead."
    )
    if not isinstance(fractions, Sequence) or isinstance(fractions, str) or len(fractions) != 3:
        raise InvalidInputError(message)
    values = []
    for f in fractions:
        if isinstance(f, bool) or not isinstance(f, int | float) or not math.isfinite(f) or f < 0:
            raise InvalidInputError(message)
        values.append(float(f))
    if values[0] <= 0 or not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise InvalidInputError(message)
    return values[0], values[1], values[2]


def _check_frame(frame: Any, func: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError(
            f"{func}() takes a pandas DataFrame. Got {type(frame).__name__} instead."
        )


def _too_few(func: str, have: int, need: int, what: str) -> InvalidInputError:
    return InvalidInputError(
        f"{func}() needs at least {need} {what} to fill every non-empty part. Got {have}."
    )


def time_split(
    frame: pd.DataFrame,
    *,
    time_column: str,
    fractions: Fractions = (0.7, 0.15, 0.15),
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split a frame into train, validation and test parts in time order.

    Rows are ordered by ``time_column`` (stably) and cut at the time boundaries nearest the
    requested fractions: all rows sharing a timestamp land in the same part, and every row of
    a later part is at or after every row of an earlier one.

    Parameters
    ----------
    frame : pandas.DataFrame
        The rows to split.
    time_column : str
        Datetimes, ISO 8601 text or numbers ordering the rows.
    fractions : tuple of three floats
        Target shares of rows for train, validation and test; they sum to 1, train is
        positive, validation or test may be 0 for an empty part.

    Returns
    -------
    tuple of three pandas.DataFrame
        Train, validation and test, each sorted by time with the original index labels.

    Raises
    ------
    InvalidInputError
        If the fractions are invalid, ``time_column`` is absent or has missing or unparseable
        values, or there are fewer distinct timestamps than non-empty parts.

    Examples
    --------
    >>> frame = pd.DataFrame({"t": [1, 1, 2, 3, 4, 5], "x": range(6)})
    >>> [len(p) for p in time_split(frame, time_column="t", fractions=(0.5, 0.25, 0.25))]
    [3, 1, 2]
    """
    func = "time_split"
    _check_frame(frame, func)
    shares = _check_fractions(fractions, func)
    if time_column not in frame.columns:
        raise InvalidInputError(
            f"The time column {time_column!r} is not a column of the frame. "
            f"Columns: {list(frame.columns)}."
        )
    keys = _time_keys(frame[time_column], time_column)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    n = len(ordered)
    # boundaries[k] is the position where the k-th distinct timestamp starts; the last is n.
    starts = np.flatnonzero(np.diff(ordered) != 0) + 1 if n else np.array([], dtype=np.int64)
    boundaries = np.concatenate([[0], starts, [n]]) if n else np.array([0])
    groups = len(boundaries) - 1
    needed = sum(1 for s in shares if s > 0)
    if groups < needed:
        raise _too_few(func, groups, needed, "distinct timestamps")
    k1 = _nearest(boundaries, n * shares[0])
    k2 = _nearest(boundaries, n * (shares[0] + shares[1]))
    k1 = int(np.clip(k1, 1, groups - (shares[1] > 0) - (shares[2] > 0)))
    k2 = k1 if shares[1] == 0 else int(np.clip(k2, k1 + 1, groups - (shares[2] > 0)))
    if shares[2] == 0:
        k2 = groups
    cut1, cut2 = int(boundaries[k1]), int(boundaries[k2])
    sorted_frame = frame.iloc[order]
    return sorted_frame.iloc[:cut1], sorted_frame.iloc[cut1:cut2], sorted_frame.iloc[cut2:]


def _nearest(boundaries: np.ndarray, target: float) -> int:
    return int(np.argmin(np.abs(boundaries - target)))


def _time_keys(values: pd.Series, name: str) -> np.ndarray:
    if pdt.is_bool_dtype(values.dtype):
        raise InvalidInputError(
            f"The time column {name!r} holds booleans; it must hold datetimes or numbers."
        )
    missing = int(values.isna().sum())
    if missing:
        raise InvalidInputError(
            f"The time column {name!r} has {missing} missing values; every row needs a time "
            "to be placed in a split."
        )
    keys: np.ndarray
    if pdt.is_numeric_dtype(values.dtype):
        keys = values.to_numpy(dtype=np.float64)
        return keys
    parsed = parse_datetimes(values)
    unparsed = parsed.isna()
    if unparsed.any():
        raise InvalidInputError(
            f"The time column {name!r} has {int(unparsed.sum())} values that are not dates, "
            f"e.g. {values[unparsed].iloc[0]!r}."
        )
    keys = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return keys


def random_split(
    frame: pd.DataFrame,
    *,
    fractions: Fractions = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split a frame into train, validation and test parts at random.

    Part sizes are the fractions of the row count rounded by largest remainder (so they add
    up to the row count), with at least one row in every part whose fraction is positive.

    Parameters
    ----------
    frame : pandas.DataFrame
        The rows to split.
    fractions : tuple of three floats
        Shares of rows for train, validation and test; see :func:`time_split`.
    seed : int
        Seed of the permutation; the same seed gives the same split.

    Returns
    -------
    tuple of three pandas.DataFrame
        Train, validation and test, each in the input's row order with its index labels.

    Raises
    ------
    InvalidInputError
        If the fractions or the seed are invalid, or there are fewer rows than non-empty
        parts.

    Examples
    --------
    >>> parts = random_split(pd.DataFrame({"x": range(10)}), fractions=(0.6, 0.2, 0.2), seed=1)
    >>> [len(p) for p in parts]
    [6, 2, 2]
    """
    func = "random_split"
    _check_frame(frame, func)
    shares = _check_fractions(fractions, func)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidInputError(
            f"The 'seed' parameter of random_split() must be an int >= 0. Got {seed!r} instead."
        )
    n = len(frame)
    needed = sum(1 for s in shares if s > 0)
    if n < needed:
        raise _too_few(func, n, needed, "rows")
    sizes = _allocate(n, shares)
    positions = np.random.default_rng(int(seed)).permutation(n)
    cuts = np.cumsum(sizes)[:-1]
    train, valid, test = (frame.iloc[np.sort(part)] for part in np.split(positions, cuts))
    return train, valid, test


def _allocate(n: int, shares: tuple[float, float, float]) -> list[int]:
    exact = [n * s for s in shares]
    sizes = [math.floor(x) for x in exact]
    by_remainder = sorted(range(3), key=lambda i: exact[i] - sizes[i], reverse=True)
    for i in by_remainder[: n - sum(sizes)]:
        sizes[i] += 1
    for i in range(3):
        if shares[i] > 0 and sizes[i] == 0:
            donor = max(range(3), key=lambda j: sizes[j])
            sizes[donor] -= 1
            sizes[i] += 1
    return sizes


def _check_seed(seed: Any, func: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidInputError(
            f"The 'seed' parameter of {func}() must be an int >= 0. Got {seed!r} instead."
        )
    return int(seed)


def _check_column(frame: pd.DataFrame, column: str, role: str, func: str) -> pd.Series:
    if column not in frame.columns:
        raise InvalidInputError(
            f"The {role} column {column!r} of {func}() is not a column of the frame. "
            f"Columns: {list(frame.columns)}."
        )
    values = frame[column]
    missing = int(values.isna().sum())
    if missing:
        raise InvalidInputError(
            f"The {role} column {column!r} has {missing} missing values; {func}() needs one "
            "on every row."
        )
    return values


def stratified_split(
    frame: pd.DataFrame,
    *,
    label_column: str,
    fractions: Fractions = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split a frame at random so that every part keeps the label's class shares.

    Each class is split on its own with :func:`random_split`'s largest-remainder sizes, so a
    rare class lands in every part it can fill (a class with fewer rows than non-empty parts
    fills the earliest parts first).

    Parameters
    ----------
    frame : pandas.DataFrame
        The rows to split.
    label_column : str
        The column whose values are the strata (class labels, or any discrete column).
    fractions : tuple of three floats
        Shares of rows for train, validation and test; see :func:`time_split`.
    seed : int
        Seed of the permutations.

    Returns
    -------
    tuple of three pandas.DataFrame
        Train, validation and test in the input's row order with its index labels.

    Raises
    ------
    InvalidInputError
        If the fractions or the seed are invalid, the label column is absent or has missing
        values, or there are fewer rows than non-empty parts.

    Examples
    --------
    >>> frame = pd.DataFrame({"y": [0] * 80 + [1] * 20})
    >>> parts = stratified_split(frame, label_column="y", fractions=(0.5, 0.25, 0.25))
    >>> [int(p["y"].sum()) for p in parts]
    [10, 5, 5]
    """
    func = "stratified_split"
    _check_frame(frame, func)
    shares = _check_fractions(fractions, func)
    rng = np.random.default_rng(_check_seed(seed, func))
    labels = _check_column(frame, label_column, "label", func)
    needed = sum(1 for s in shares if s > 0)
    if len(frame) < needed:
        raise _too_few(func, len(frame), needed, "rows")
    codes, _ = pd.factorize(labels, sort=True)
    parts: list[list[np.ndarray]] = [[], [], []]
    for code in range(int(codes.max()) + 1 if len(codes) else 0):
        members = np.flatnonzero(codes == code)
        sizes = _allocate_stratum(len(members), shares)
        cuts = np.cumsum(sizes)[:-1]
        for i, chunk in enumerate(np.split(rng.permutation(members), cuts)):
            parts[i].append(chunk)
    train, valid, test = (
        frame.iloc[np.sort(np.concatenate(p)) if p else np.array([], dtype=np.int64)] for p in parts
    )
    return train, valid, test


def _allocate_stratum(n: int, shares: tuple[float, float, float]) -> list[int]:
    needed = sum(1 for s in shares if s > 0)
    if n >= needed:
        return _allocate(n, shares)
    sizes = [0, 0, 0]
    for i in range(3):
        if shares[i] > 0 and n > 0:
            sizes[i] = 1
            n -= 1
    return sizes


def group_split(
    frame: pd.DataFrame,
    *,
    group_column: str,
    fractions: Fractions = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split a frame so that all rows of a group land in the same part.

    Groups (customers, flights, patients) are shuffled with ``seed`` and dealt to the part
    furthest below its target row share, so parts hold close to the requested shares of rows
    and no group leaks between training and evaluation.

    Parameters
    ----------
    frame : pandas.DataFrame
        The rows to split.
    group_column : str
        The column naming each row's group.
    fractions : tuple of three floats
        Target shares of rows; see :func:`time_split`.
    seed : int
        Seed of the group shuffle.

    Returns
    -------
    tuple of three pandas.DataFrame
        Train, validation and test in the input's row order with its index labels.

    Raises
    ------
    InvalidInputError
        If the fractions or the seed are invalid, the group column is absent or has missing
        values, or there are fewer groups than non-empty parts.

    Examples
    --------
    >>> frame = pd.DataFrame({"g": [i // 2 for i in range(20)]})
    >>> parts = group_split(frame, group_column="g", fractions=(0.6, 0.2, 0.2), seed=0)
    >>> [len(p) for p in parts]
    [12, 4, 4]
    """
    func = "group_split"
    _check_frame(frame, func)
    shares = _check_fractions(fractions, func)
    rng = np.random.default_rng(_check_seed(seed, func))
    groups = _check_column(frame, group_column, "group", func)
    codes, uniques = pd.factorize(groups, sort=True)
    needed = sum(1 for s in shares if s > 0)
    if len(uniques) < needed:
        raise _too_few(func, len(uniques), needed, "groups")
    counts = np.bincount(codes, minlength=len(uniques))
    order = rng.permutation(len(uniques))
    assigned = np.empty(len(uniques), dtype=np.int64)
    filled = np.zeros(3)
    targets = np.asarray(shares) * len(frame)
    active = [i for i in range(3) if shares[i] > 0]
    # Seed every non-empty part with one group, then deal the rest to the neediest part.
    for k, part in enumerate(active):
        assigned[order[k]] = part
        filled[part] += counts[order[k]]
    for g in order[len(active) :]:
        deficit = [(targets[i] - filled[i]) / targets[i] for i in active]
        part = active[int(np.argmax(deficit))]
        assigned[g] = part
        filled[part] += counts[g]
    row_part = assigned[codes]
    train, valid, test = (frame.iloc[np.flatnonzero(row_part == i)] for i in range(3))
    return train, valid, test
