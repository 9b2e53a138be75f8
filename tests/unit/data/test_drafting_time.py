"""The time in any common form: found by `conveyor init`, read by ingestion, split on by
training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.unit.data import drafting_shapes as shapes

from conveyor.config import Settings
from conveyor.core.errors import ConfigError, InvalidInputError
from conveyor.data.column_roles import find_time
from conveyor.data.drafting import draft_spec
from conveyor.data.service import ingest_batch, load_content
from conveyor.data.sources import read_frame
from conveyor.data.splits import time_split
from conveyor.data.timestamps import TimeColumn, parse_times
from conveyor.spec import parse_spec
from conveyor.workspace import Workspace


def _labelled(time: dict[str, object], n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({**time, "x": rng.normal(size=n), "y": rng.normal(size=n)})


@pytest.mark.parametrize(
    ("columns", "name", "fmt"),
    [
        ({"when": pd.date_range("2024-01-01", periods=50, freq="h")}, "when", "auto"),
        ({"order_date": [f"2024-03-{d:02d}" for d in range(1, 26)] * 2}, "order_date", "auto"),
        ({"day": [f"{d:02d}/03/2024" for d in range(1, 26)] * 2}, "day", "auto"),
        ({"created_ts": 1_700_000_000 + np.arange(50) * 3600}, "created_ts", "epoch_s"),
        ({"event_time": 1_700_000_000_000 + np.arange(50) * 60_000}, "event_time", "epoch_ms"),
        ({"Year": np.repeat(np.arange(2001, 2006), 10)}, "Year", "year"),
        ({"yr": np.repeat(np.arange(1990, 2000), 5)}, "yr", "year"),
        ({"X1 transaction date": 2012.667 + np.arange(50) % 12 / 12}, "X1 transaction date",
         "fractional_year"),
    ],
)  # fmt: skip
def test_time_is_found_in_each_common_form(columns, name, fmt):
    frame = _labelled(columns, 50)
    spec = draft_spec(frame, label="y").spec
    assert (spec.timestamp, spec.timestamp_format) == (name, fmt)
    assert name not in spec.ignore and name not in spec.entities


def test_numbers_that_are_not_named_like_years_are_not_time():
    frame = _labelled({"price": np.arange(1990, 2040)}, 50)
    assert find_time(frame) is None
    words = _labelled({"mnth": ["Jan", "Feb"] * 25}, 50)
    assert find_time(words) is None


def test_year_month_day_hour_columns_make_one_time():
    frame = _labelled(
        {
            "year": np.repeat([2011, 2012], 25),
            "month": np.tile(np.arange(1, 6), 10),
            "day": np.tile(np.arange(1, 26), 2),
            "hour": np.arange(50) % 24,
        },
        50,
    )
    spec = draft_spec(frame, label="y").spec
    assert spec.timestamp == "time"
    assert dict(spec.timestamp_parts) == {
        "year": "year",
        "month": "month",
        "day": "day",
        "hour": "hour",
    }


def test_each_format_reads_as_utc_datetimes():
    years = parse_times(pd.Series([2013.25, 2014.0, np.nan]), "fractional_year")
    assert str(years.dt.tz) == "UTC" and years.iloc[0].strftime("%Y-%m-%d") == "2013-04-02"
    assert pd.isna(years.iloc[2])
    assert parse_times(pd.Series([1999]), "year").iloc[0] == pd.Timestamp("1999-01-01", tz="UTC")
    assert parse_times(pd.Series([0]), "epoch_s").iloc[0] == pd.Timestamp("1970-01-01", tz="UTC")
    assert parse_times(pd.Series([86_400_000]), "epoch_ms").iloc[0].day == 2
    with pytest.raises(InvalidInputError, match=r"'yr' .*not times of format 'year'"):
        parse_times(pd.Series([2013.5]), "year", name="yr")
    with pytest.raises(InvalidInputError, match="holds numbers, not dates"):
        parse_times(pd.Series([2013]), "auto", name="Year")


def test_reading_a_batch_builds_the_time_from_its_parts(tmp_path: Path):
    shapes.bikeshare(days=3).to_csv(tmp_path / "b.csv", index=False)
    time = TimeColumn("time", parts={"day_of_year": "day", "hour": "hr"})
    frame, _ = read_frame(tmp_path / "b.csv", timestamp=time)
    assert frame["time"].iloc[0] == pd.Timestamp("2000-01-01 00:00", tz="UTC")
    assert frame["time"].iloc[-1] == pd.Timestamp("2000-01-03 23:00", tz="UTC")
    assert {"day", "hr"} <= set(frame.columns)


def test_a_day_drafted_from_january_as_day_of_month_reads_later_days_of_the_year(tmp_path: Path):
    # A January sample cannot tell a day of the month from a day of the year (ISLP's
    # Bikeshare counts days of the year beside a month name); later batches must still read.
    later = pd.DataFrame({"day": [43, 60, 61, 365], "hr": [1, 2, 3, 4]})
    later["mnth"] = ["Feb", "Mar", "Mar", "Dec"]
    later.to_csv(tmp_path / "b.csv", index=False)
    time = TimeColumn("time", parts={"month": "mnth", "day": "day", "hour": "hr"})
    frame, _ = read_frame(tmp_path / "b.csv", timestamp=time)
    assert frame["time"].dt.strftime("%m-%d %H").tolist() == [
        "02-12 01",
        "03-01 02",
        "03-02 03",
        "12-31 04",
    ]


@pytest.mark.parametrize(
    ("make", "label"),
    [
        (shapes.real_estate, "Y house price of unit area"),
        (shapes.wage, "wage"),
        (lambda: shapes.bikeshare(days=10), "bikers"),
    ],
)
def test_a_drafted_numeric_time_ingests_and_splits_by_time(tmp_path: Path, make, label):
    frame = make()
    spec = draft_spec(frame, label=label, source_name="sample.csv").spec
    spec = parse_spec({**spec.model_dump(mode="json"), "validation": {"out_of_range": "warning"}})
    frame.to_csv(tmp_path / "batch.csv", index=False)
    ws = Workspace.open(Settings(home=tmp_path / "ws"))
    result = ingest_batch(ws, spec, tmp_path / "batch.csv")
    assert not result.quarantined, result.report.to_dict()
    stored = load_content(ws, result.version)
    times = stored[spec.timestamp]
    assert pd.api.types.is_datetime64_any_dtype(times.dtype)
    assert times.min().year >= 2000 and times.nunique() > 1
    train, _, test = time_split(stored, time_column=spec.timestamp, fractions=(0.7, 0.15, 0.15))
    assert train[spec.timestamp].max() <= test[spec.timestamp].min()


def test_spec_refuses_time_parts_without_the_column_they_build():
    base = {"project": "p", "task": "regression", "label": "y"}
    with pytest.raises(ConfigError, match="'timestamp_parts' .*needs 'timestamp'"):
        parse_spec({**base, "timestamp_parts": {"hour": "hr"}})
    with pytest.raises(ConfigError, match="must not use the 'timestamp' column 'hr'"):
        parse_spec({**base, "timestamp": "hr", "timestamp_parts": {"hour": "hr"}})
    with pytest.raises(ConfigError, match="'timestamp_format' must be one of"):
        parse_spec({**base, "timestamp": "t", "timestamp_format": "weekly"})
