"""Mergeable sketches that profiles keep, so the profile of a window is merged, not recomputed.

- :class:`QuantileSketch`: a KLL quantile sketch (Apache DataSketches' ``kll_doubles_sketch``,
  a C++ implementation with Python bindings). Its rank error does not depend on the
  distribution or on the order of the values: with ``k=200`` any rank query (``rank``,
  ``cdf``, ``quantiles``) is within ``rank_error`` (about 1.33% of the count) of the true
  rank with 99% confidence, and a histogram bin's share within ``pmf_error`` (about 1.65%).
  Merging sketches of disjoint batches gives a sketch of their union with the same
  guarantee. Up to roughly ``k`` values it keeps every value and is exact.
- :class:`DistinctSketch`: a HyperLogLog counter of distinct values over 64-bit hashes
  (``pandas.util.hash_array``), 4096 one-byte registers, relative standard error
  ``1.04 / sqrt(4096)`` (about 1.6%); exact for the empty set and close to exact (linear
  counting) below a few thousand values. Merging takes the register-wise maximum, so it is
  associative, commutative and idempotent.

Both serialise to JSON-able dicts (base64 bytes) for storage inside a profile.
"""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import datasketches as ds
import numpy as np
import pandas as pd

from conveyor.core.errors import InvalidInputError

DEFAULT_K = 200
HLL_BITS = 12
_HLL_M = 1 << HLL_BITS


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise InvalidInputError(f"A stored {what} must be a base64 string. Got {text!r} instead.")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise InvalidInputError(f"A stored {what} is not valid base64: {exc}.") from exc


class QuantileSketch:
    """A KLL sketch of the finite values of a numeric column.

    Parameters
    ----------
    k : int
        Accuracy parameter, in [8, 65535]; rank error shrinks about as ``1.7 / k``.

    Examples
    --------
    >>> sketch = QuantileSketch.of(np.arange(1000.0))
    >>> sketch.n, sketch.min, sketch.max
    (1000, 0.0, 999.0)
    >>> abs(sketch.quantiles([0.5])[0] - 500) <= sketch.rank_error * 1000
    True
    """

    __slots__ = ("_sketch",)

    def __init__(self, k: int = DEFAULT_K) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or not 8 <= k <= 65535:
            raise InvalidInputError(
                f"A quantile sketch's k must be an int in [8, 65535]. Got {k!r} instead."
            )
        self._sketch = ds.kll_doubles_sketch(k)

    @classmethod
    def of(cls, values: np.ndarray | Sequence[float], k: int = DEFAULT_K) -> QuantileSketch:
        """Sketch the finite values of ``values`` (NaN and infinities are left out)."""
        sketch = cls(k)
        sketch.update(values)
        return sketch

    def update(self, values: np.ndarray | Sequence[float]) -> None:
        """Add the finite values of ``values``."""
        array = np.asarray(values, dtype=np.float64).ravel()
        finite = array[np.isfinite(array)]
        if finite.size:
            self._sketch.update(np.ascontiguousarray(finite))

    def merge(self, other: QuantileSketch) -> QuantileSketch:
        """Return a new sketch of both streams; neither input changes."""
        out = QuantileSketch(max(self.k, other.k))
        out._sketch.merge(self._sketch)
        out._sketch.merge(other._sketch)
        return out

    @property
    def k(self) -> int:
        return int(self._sketch.k)

    @property
    def n(self) -> int:
        return int(self._sketch.n)

    @property
    def is_exact(self) -> bool:
        """True while the sketch still holds every value (no compaction happened)."""
        return not self._sketch.is_estimation_mode()

    @property
    def min(self) -> float | None:
        return None if self._sketch.is_empty() else float(self._sketch.get_min_value())

    @property
    def max(self) -> float | None:
        return None if self._sketch.is_empty() else float(self._sketch.get_max_value())

    @property
    def rank_error(self) -> float:
        """Normalised rank error of a single rank or quantile query (99% confidence)."""
        return 0.0 if self.is_exact else float(self._sketch.normalized_rank_error(False))

    @property
    def pmf_error(self) -> float:
        """Normalised error of a histogram bin's share (99% confidence)."""
        return 0.0 if self.is_exact else float(self._sketch.normalized_rank_error(True))

    def quantiles(self, ranks: Sequence[float]) -> list[float]:
        """Values at normalised ``ranks`` (each in [0, 1]); observed values, never interpolated."""
        if self._sketch.is_empty():
            return [math.nan] * len(ranks)
        return [float(v) for v in self._sketch.get_quantiles(list(ranks), True)]

    def cdf(self, points: Sequence[float] | np.ndarray, *, inclusive: bool = True) -> np.ndarray:
        """Share of values ``<= p`` (``< p`` when not ``inclusive``) at each sorted point."""
        pts = np.asarray(points, dtype=np.float64)
        if self._sketch.is_empty():
            return np.zeros(pts.size)
        if pts.size == 0:
            return np.zeros(0)
        unique, inverse = np.unique(pts, return_inverse=True)
        shares = np.asarray(self._sketch.get_cdf(unique.tolist(), inclusive), dtype=np.float64)
        return shares[:-1][inverse]

    def bin_counts(self, inner_edges: Sequence[float] | np.ndarray) -> np.ndarray:
        """Estimated counts of ``[e_i, e_(i+1))`` bins with infinite outer edges."""
        edges = np.asarray(inner_edges, dtype=np.float64)
        if self._sketch.is_empty():
            return np.zeros(edges.size + 1, dtype=np.int64)
        below = self.cdf(edges, inclusive=False) * self.n
        cumulative = np.concatenate([[0.0], np.rint(below), [float(self.n)]])
        return np.diff(cumulative).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "kll", "k": self.k, "n": self.n, "data": _b64(self._sketch.serialize())}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuantileSketch:
        if not isinstance(data, Mapping) or data.get("kind") != "kll":
            raise InvalidInputError(
                f"A stored quantile sketch must be a mapping with kind 'kll'. Got {data!r}."
            )
        raw = _unb64(data.get("data"), "quantile sketch")
        out = cls.__new__(cls)
        try:
            out._sketch = ds.kll_doubles_sketch.deserialize(raw)
        except (RuntimeError, ValueError, IndexError) as exc:
            raise InvalidInputError(f"A stored quantile sketch is corrupt: {exc}.") from exc
        return out


def merge_quantile_sketches(sketches: Iterable[QuantileSketch]) -> QuantileSketch | None:
    """Merge sketches of disjoint batches; ``None`` when there are none."""
    out: QuantileSketch | None = None
    for sketch in sketches:
        out = sketch if out is None else out.merge(sketch)
    return out


def hash_values(values: np.ndarray | pd.Index | Sequence[Any]) -> np.ndarray:
    """64-bit hashes used by :class:`DistinctSketch` (stable across processes and versions).

    Numbers hash as float64 (so ``1`` and ``1.0`` are the same value), anything else as its
    string.
    """
    array = np.asarray(values)
    if array.dtype.kind in "biuf":
        floats = array.astype(np.float64) + 0.0  # -0.0 becomes 0.0
        return np.asarray(pd.util.hash_array(floats), dtype=np.uint64)
    strings = np.asarray([str(v) for v in array.ravel()], dtype=object)
    return np.asarray(pd.util.hash_array(strings, categorize=False), dtype=np.uint64)


class DistinctSketch:
    """HyperLogLog estimate of the number of distinct values.

    Examples
    --------
    >>> sketch = DistinctSketch.of(np.arange(10_000) % 500)
    >>> abs(sketch.estimate() - 500) < 10
    True
    """

    __slots__ = ("registers",)

    def __init__(self, registers: np.ndarray | None = None) -> None:
        if registers is None:
            registers = np.zeros(_HLL_M, dtype=np.uint8)
        self.registers = registers

    @classmethod
    def of(cls, values: np.ndarray | pd.Index | Sequence[Any]) -> DistinctSketch:
        sketch = cls()
        sketch.update_hashes(hash_values(values))
        return sketch

    def update_hashes(self, hashes: np.ndarray) -> None:
        """Add values by their 64-bit hashes (see :func:`hash_values`)."""
        h = np.asarray(hashes, dtype=np.uint64)
        if not h.size:
            return
        index = (h >> np.uint64(64 - HLL_BITS)).astype(np.intp)
        rest = (h & np.uint64((1 << (64 - HLL_BITS)) - 1)).astype(np.float64)  # < 2**52: exact
        _, exponent = np.frexp(rest)
        rank = (64 - HLL_BITS + 1 - exponent).astype(np.uint8)
        np.maximum.at(self.registers, index, rank)

    def merge(self, other: DistinctSketch) -> DistinctSketch:
        return DistinctSketch(np.maximum(self.registers, other.registers))

    def estimate(self) -> float:
        m = float(_HLL_M)
        zeros = int(np.count_nonzero(self.registers == 0))
        if zeros == _HLL_M:
            return 0.0
        alpha = 0.7213 / (1.0 + 1.079 / m)
        raw = alpha * m * m / float(np.sum(np.ldexp(1.0, -self.registers.astype(np.int64))))
        if raw <= 2.5 * m and zeros:
            return m * math.log(m / zeros)
        return raw

    def to_dict(self) -> dict[str, Any]:
        packed = zlib.compress(self.registers.tobytes(), 6)
        return {"kind": "hll", "bits": HLL_BITS, "data": _b64(packed)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DistinctSketch:
        if not isinstance(data, Mapping) or data.get("kind") != "hll":
            raise InvalidInputError(
                f"A stored distinct sketch must be a mapping with kind 'hll'. Got {data!r}."
            )
        if data.get("bits") != HLL_BITS:
            raise InvalidInputError(
                f"A stored distinct sketch has {data.get('bits')!r} index bits; "
                f"this version reads {HLL_BITS}."
            )
        try:
            raw = zlib.decompress(_unb64(data.get("data"), "distinct sketch"))
        except zlib.error as exc:
            raise InvalidInputError(f"A stored distinct sketch is corrupt: {exc}.") from exc
        if len(raw) != _HLL_M:
            raise InvalidInputError(
                f"A stored distinct sketch has {len(raw)} registers; expected {_HLL_M}."
            )
        return cls(np.frombuffer(raw, dtype=np.uint8).copy())
