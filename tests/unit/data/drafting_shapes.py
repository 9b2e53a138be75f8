"""Small tables with the shapes of public data sets (ISLP's Bikeshare, Wage, Smarket, OJ,
Default; a house-price table with a fractional-year date; diamonds), built here so the tests
need no data package. Each keeps what matters to ``conveyor init``: column names, dtypes,
id and time columns, and how the label depends on the features."""

from __future__ import annotations

import numpy as np
import pandas as pd

MONTHS = ["Jan", "Feb", "March", "April", "May", "June", "July", "Aug", "Sept", "Oct", "Nov", "Dec"]


def bikeshare(days: int = 60, seed: int = 0) -> pd.DataFrame:
    """Hourly rentals: day of the year and hour, no date; bikers = casual + registered."""
    rng = np.random.default_rng(seed)
    day = np.repeat(np.arange(1, days + 1), 24)
    hr = np.tile(np.arange(24), days)
    temp = np.round(0.3 + 0.4 * np.sin(day / 58) + rng.normal(0, 0.05, day.size), 2)
    rush = np.isin(hr, [8, 17, 18]) * 150
    registered = rng.poisson(20 + rush + 80 * temp)
    casual = rng.poisson(5 + 40 * temp * (hr > 9) * (hr < 20))
    return pd.DataFrame(
        {
            "rownames": np.arange(1, day.size + 1),
            "season": 1 + (day // 92),
            "mnth": [MONTHS[min((d - 1) // 31, 11)] for d in day],
            "day": day,
            "hr": hr,
            "holiday": (day % 30 == 0).astype(int),
            "weathersit": rng.choice(["clear", "cloudy/misty", "light rain/snow"], day.size),
            "temp": temp,
            "hum": np.round(rng.uniform(0.2, 1.0, day.size), 2),
            "casual": casual,
            "registered": registered,
            "bikers": casual + registered,
        }
    )


def wage(n: int = 1200, seed: int = 1) -> pd.DataFrame:
    """Wages by year 2003..2009; logwage is log(wage)."""
    rng = np.random.default_rng(seed)
    education = rng.choice(["1. < HS Grad", "2. HS Grad", "3. Some College", "4. College Grad"], n)
    age = rng.integers(18, 80, n)
    level = np.array([int(e[0]) for e in education])
    wage_ = np.exp(4.0 + 0.15 * level + 0.004 * age + rng.normal(0, 0.3, n))
    return pd.DataFrame(
        {
            "rownames": np.arange(1, n + 1),
            "year": rng.integers(2003, 2010, n),
            "age": age,
            "education": education,
            "jobclass": rng.choice(["1. Industrial", "2. Information"], n),
            "logwage": np.log(wage_),
            "wage": wage_,
        }
    )


def smarket(n: int = 1000, seed: int = 2) -> pd.DataFrame:
    """Daily returns: Direction is whether Today's return is positive."""
    rng = np.random.default_rng(seed)
    today = np.round(rng.normal(0, 1.1, n + 5), 3)
    frame = pd.DataFrame(
        {
            "rownames": np.arange(1, n + 1),
            "Year": np.repeat(np.arange(2001, 2006), n // 5),
            **{f"Lag{k}": today[5 - k : 5 - k + n] for k in range(1, 6)},
            "Volume": np.round(rng.uniform(0.4, 3.2, n), 4),
            "Today": today[5:],
        }
    )
    frame["Direction"] = np.where(frame["Today"] > 0, "Up", "Down")
    return frame


def oj(n: int = 900, seed: int = 3) -> pd.DataFrame:
    """Orange-juice purchases: CH (more common) or MM, a store id repeated over rows."""
    rng = np.random.default_rng(seed)
    loyal = rng.uniform(0, 1, n)
    price_diff = np.round(rng.normal(0.15, 0.2, n), 2)
    p_mm = 1 / (1 + np.exp(4 * (loyal - 0.35) + 2 * price_diff))
    return pd.DataFrame(
        {
            "Purchase": np.where(rng.uniform(0, 1, n) < p_mm, "MM", "CH"),
            "WeekofPurchase": rng.integers(227, 279, n),
            "StoreID": rng.integers(1, 8, n),
            "LoyalCH": np.round(loyal, 4),
            "PriceDiff": price_diff,
            "Store7": rng.choice(["No", "Yes"], n),
        }
    )


def default(n: int = 2000, seed: int = 4) -> pd.DataFrame:
    """Credit defaults: the label is named ``default`` and is 'Yes' for the rare defaulters."""
    rng = np.random.default_rng(seed)
    balance = rng.gamma(2.0, 400.0, n)
    p = 1 / (1 + np.exp(-(balance - 1800) / 150))
    return pd.DataFrame(
        {
            "default": np.where(rng.uniform(0, 1, n) < p, "Yes", "No"),
            "student": rng.choice(["No", "Yes"], n),
            "balance": balance,
            "income": rng.normal(33000, 13000, n),
        }
    )


def real_estate(n: int = 400, seed: int = 5) -> pd.DataFrame:
    """House prices with a fractional-year transaction date and a latitude (not the label)."""
    rng = np.random.default_rng(seed)
    date = np.round(2012.667 + rng.integers(0, 12, n) / 12, 3)
    distance = rng.gamma(1.5, 800, n)
    return pd.DataFrame(
        {
            "No": np.arange(1, n + 1),
            "X1 transaction date": date,
            "X2 house age": np.round(rng.uniform(0, 43, n), 1),
            "X3 distance to the nearest MRT station": distance,
            "X5 latitude": np.round(24.97 + rng.normal(0, 0.01, n), 5),
            "Y house price of unit area": np.round(50 - distance / 150 + rng.normal(0, 6, n), 1),
        }
    )


def diamonds(n: int = 3000, seed: int = 6) -> pd.DataFrame:
    """Diamond prices: carat and the sizes x, y, z all track price closely, none leaks it."""
    rng = np.random.default_rng(seed)
    carat = np.round(rng.lognormal(-0.4, 0.55, n), 2)
    size = 6.4 * carat ** (1 / 3)
    cut = rng.choice(["Fair", "Good", "Very Good", "Premium", "Ideal"], n)
    price = np.round(4000 * carat**1.7 * np.exp(rng.normal(0, 0.12, n)))
    return pd.DataFrame(
        {
            "carat": carat,
            "cut": cut,
            "x": np.round(size * rng.normal(1, 0.01, n), 2),
            "y": np.round(size * rng.normal(1, 0.01, n), 2),
            "z": np.round(0.62 * size * rng.normal(1, 0.01, n), 2),
            "price": price,
        }
    )
