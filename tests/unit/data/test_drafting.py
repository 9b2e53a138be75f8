"""`conveyor init`'s drafting on tables shaped like public data sets: the label, the task and
positive class, ids kept out of the features, leaks excluded with a reason, windows, names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets
from tests.unit.data import drafting_shapes as shapes
from vega_datasets import data as vega

from conveyor.core.errors import ConfigError, InvalidInputError
from conveyor.data.drafting import draft_spec, project_name
from conveyor.data.windows import gate_rows


def test_bikeshare_shape_excludes_the_sum_parts_and_the_row_numbers():
    draft = draft_spec(shapes.bikeshare(), label="bikers", source_name="Bikeshare.csv")
    spec = draft.spec
    assert spec.task == "regression" and spec.label == "bikers"
    assert {"casual", "registered", "rownames"} <= set(spec.ignore)
    assert "exactly by a linear fit" in draft.excluded["casual"]
    assert any("'casual'" in note and "linear fit" in note for note in draft.notes)
    assert spec.timestamp == "time"
    assert dict(spec.timestamp_parts) == {"day_of_year": "day", "hour": "hr"}
    assert spec.project == "bikeshare-bikers"
    # Calendar fields move with the date: reported, but not counted by the drift trigger.
    assert spec.drift.seasonal == ["season", "mnth", "day", "hr", "holiday"]
    assert any(note.startswith("seasonal") for note in draft.notes)


def test_wage_shape_takes_integer_years_as_time_and_drops_logwage():
    draft = draft_spec(shapes.wage(), label="wage", source_name="Wage.csv")
    spec = draft.spec
    assert (spec.timestamp, spec.timestamp_format) == ("year", "year")
    assert "logwage" in spec.ignore and "rownames" in spec.ignore
    assert "almost perfectly" in draft.excluded["logwage"]
    assert spec.task == "regression" and "age" not in spec.ignore


def test_smarket_shape_is_binary_with_today_excluded_and_lags_kept():
    draft = draft_spec(shapes.smarket(), label="Direction", source_name="Smarket.csv")
    spec = draft.spec
    assert spec.task == "binary" and spec.positive_class in ("Up", "Down")
    assert (spec.timestamp, spec.timestamp_format) == ("Year", "year")
    assert "Today" in spec.ignore
    assert not {"Lag1", "Lag2", "Volume"} & set(spec.ignore)


def test_text_binary_label_gets_its_rarer_value_as_positive_class_printed():
    draft = draft_spec(shapes.oj(), label="Purchase", source_name="OJ.csv")
    spec = draft.spec
    assert spec.task == "binary" and spec.positive_class == "MM"
    assert "positive class: 'MM' (the rarer value; set positive_class to change)" in draft.notes
    # A store id repeats over rows: a feature, not an entity.
    assert "StoreID" not in spec.entities and "StoreID" not in spec.ignore


def test_label_named_like_one_is_found_and_yes_is_the_positive_class():
    draft = draft_spec(shapes.default(), source_name="Default.csv")
    spec = draft.spec
    assert spec.label == "default" and spec.task == "binary" and spec.positive_class == "Yes"
    assert any(n.startswith("positive class: 'Yes' (named like") for n in draft.notes)
    assert spec.project == "default"


@pytest.mark.parametrize(
    ("make", "shown"),
    [
        (shapes.bikeshare, "'bikers' (numeric)"),
        (shapes.wage, "'wage' (numeric)"),
        (shapes.smarket, "'Direction' (2 values: Down, Up)"),
        (shapes.real_estate, "'Y house price of unit area' (numeric)"),
    ],
)
def test_without_a_label_name_the_draft_stops_and_lists_candidates(make, shown):
    frame = make()
    with pytest.raises(ConfigError, match="Pass --label NAME") as caught:
        draft_spec(frame, source_name="sample.csv")
    message = str(caught.value)
    assert message.split("Candidates: ")[1].startswith(shown)
    # Ids and the time are no candidates.
    assert "'rownames'" not in message and "'No'" not in message


def test_two_columns_named_like_a_label_are_ambiguous():
    frame = pd.DataFrame({"x": range(60), "target": [0, 1] * 30, "label": [1, 0, 0] * 20})
    with pytest.raises(ConfigError, match=r"Several columns .*\['target', 'label'\]"):
        draft_spec(frame)


def test_text_class_label_is_multiclass():
    frame = vega.seattle_weather()
    draft = draft_spec(frame, label="weather", source_name="seattle-weather.csv")
    spec = draft.spec
    assert spec.task == "multiclass" and spec.positive_class is None
    assert (spec.timestamp, spec.timestamp_format) == ("date", "auto")
    assert spec.project == "seattle-weather"
    assert spec.ignore == []


def test_few_integer_classes_are_multiclass_and_many_are_regression():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "rating": rng.integers(1, 6, 300)})
    assert draft_spec(frame, label="rating").spec.task == "multiclass"
    frame["count"] = rng.poisson(40, 300)
    assert draft_spec(frame, label="count").spec.task == "regression"


def test_text_label_with_too_many_values_is_refused_clearly():
    frame = pd.DataFrame({"x": range(100), "city": [f"c{i % 50}" for i in range(100)]})
    with pytest.raises(InvalidInputError, match="'city' is text with 50 values"):
        draft_spec(frame, label="city")


def test_id_and_key_columns_become_entities_or_ignored_never_features():
    rng = np.random.default_rng(1)
    n = 200
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in rng.permutation(n)],
            "OrderID": rng.permutation(n) + 10_000,
            "day_id": np.arange(n),
            "Unnamed: 0": np.arange(n),
            "n": np.arange(5, n + 5),
            "store_id": rng.integers(1, 6, n),
            "session_id": [f"s{i}" for i in range(n - 3)] + ["s0", "s1", "s2"],
            "amount": rng.gamma(2, 30, n).round(2),
            "churn": rng.choice(["yes", "no"], n),
        }
    )
    spec = draft_spec(frame, source_name="customers.csv").spec
    assert spec.entities == ["customer_id", "OrderID", "day_id"]
    # Ids that repeat would fail the duplicate-key check: ignored, not entities.
    assert {"Unnamed: 0", "n", "session_id"} <= set(spec.ignore)
    assert "store_id" not in spec.entities + spec.ignore
    assert "amount" not in spec.ignore


def test_diamonds_strong_features_pass_while_a_copy_of_the_label_is_excluded():
    frame = shapes.diamonds()
    assert draft_spec(frame, label="price").spec.ignore == []
    leaky = frame.assign(price_eur=frame["price"] * 0.92)
    draft = draft_spec(leaky, label="price")
    assert draft.spec.ignore == ["price_eur"]


def test_training_window_is_sized_from_the_sample_and_the_gate():
    small = draft_spec(shapes.oj(), label="Purchase")
    # 900 rows: fewer than the gate's 200 test rows need (200 / 0.15, with the 10% headroom a
    # time split's ties and unlabelled rows take, as the window of rows the cycle sizes).
    assert small.spec.training.window_rows == 1467 == gate_rows(small.spec)
    big = draft_spec(shapes.default(), label="default")
    assert big.spec.training.window_rows == 2000
    assert any(n.startswith("training.window_rows: 2,000") for n in big.notes)


@pytest.mark.parametrize(
    ("file", "label", "name"),
    [
        ("week-01.csv", "late", "late"),
        ("data.csv", "price", "price"),
        ("Bikeshare.csv", "bikers", "bikeshare-bikers"),
        ("wage_2003_data.parquet", "wage", "wage"),
        ("train.csv", "Y house price of unit area", "y-house-price-of-unit-area"),
        (None, "Direction", "direction"),
    ],
)
def test_project_name_comes_from_meaningful_file_words_and_the_label(file, label, name):
    assert project_name(file, label) == name


def test_given_name_and_label_that_is_not_a_column():
    frame = shapes.default()
    assert draft_spec(frame, project="credit").spec.project == "credit"
    with pytest.raises(InvalidInputError, match="'defaulted' is not a column"):
        draft_spec(frame, label="defaulted")


@pytest.mark.parametrize(
    ("loader", "task"),
    [
        (datasets.load_iris, "multiclass"),
        (datasets.load_wine, "multiclass"),
        (datasets.load_digits, "multiclass"),
        (datasets.load_breast_cancer, "binary"),
        (datasets.load_diabetes, "regression"),
    ],
)
def test_scikit_learn_toy_sets_draft_their_task_with_nothing_flagged(loader, task):
    frame = loader(as_frame=True).frame
    spec = draft_spec(frame, source_name="toy.csv").spec
    assert (spec.label, spec.task) == ("target", task)
    # Strong honest features (petal size, tumour radius) are not leaks.
    assert spec.ignore == [] and spec.entities == []
