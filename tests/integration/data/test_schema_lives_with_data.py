"""The schema lives with the data: learned domains, ignored columns, labels and re-validation,
through the services on real SQLite workspaces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conveyor.core.entities import BatchStatus
from conveyor.core.errors import ConflictError
from conveyor.core.schema import ColumnRole
from conveyor.data.cards import build_data_card
from conveyor.data.service import (
    accept_proposed_schema,
    get_schema_record,
    ingest_batch,
    load_versions,
    project_schema,
    proposed_schema_change,
    revalidate_batches,
    training_window,
)
from conveyor.spec import ProjectSpec, parse_spec
from conveyor.training.service import signature_of, split_window

from ..conftest import SPEC, make_batch

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _spec(**changes: object) -> ProjectSpec:
    return parse_spec({**SPEC, **changes})


def _kinds(result, kind: str) -> list:
    return [a for a in result.report.anomalies if a.kind == kind]


def _month_batch(year: int, month: int, rows: int = 300) -> pd.DataFrame:
    """A month of data: a month column and a seasonal temperature beside the toy columns."""
    frame = make_batch(year * 12 + month, rows=rows)
    rng = np.random.default_rng(1000 + year * 12 + month)
    season = 15.0 - 12.0 * np.cos(2 * np.pi * month / 12)
    return frame.assign(month=MONTHS[month], temp=season + rng.normal(0.0, 2.0, rows))


def test_an_ignored_column_full_of_garbage_never_quarantines(ws):
    spec = _spec(ignore=["notes"])
    ingest_batch(ws, spec, make_batch(0).assign(notes=1.5))
    garbage = make_batch(1).assign(notes=["#!", None, "inf", "x" * 50, ""] * 300)
    garbage["notes"] = garbage["notes"].where(garbage.index % 3 != 0, None)
    result = ingest_batch(ws, spec, garbage)
    assert result.version.status is BatchStatus.ACCEPTED, result.report.summary()
    assert not [a for a in result.report.anomalies if a.column == "notes"]
    echo = make_batch(2)
    result = ingest_batch(ws, spec, echo.assign(notes=echo["late"] * 2.0))  # a perfect leak
    assert result.version.status is BatchStatus.ACCEPTED
    assert not [a for a in result.report.anomalies if a.column == "notes"]


@pytest.mark.slow
def test_a_month_column_warns_once_per_new_month_then_is_quiet_after_accepting(ws):
    spec = _spec(categorical=["carrier", "month"])
    new_months = []
    for month in range(12):
        result = ingest_batch(ws, spec, _month_batch(0, month))
        assert result.version.status is BatchStatus.ACCEPTED, result.report.summary()
        for a in _kinds(result, "unseen_categories"):
            assert a.column == "month" and a.severity == "warning"
            new_months += a.details["proposed"]["added"]
    assert new_months == MONTHS[1:]  # once per new value, never again
    # Models encode every month seen, reviewed or not: nothing becomes "unknown" to them.
    [month_input] = [
        c for c in signature_of(project_schema(ws, spec), "binary").inputs if c.name == "month"
    ]
    assert set(month_input.categories) == set(MONTHS)
    proposed = proposed_schema_change(ws, spec)
    months = next(c for c in proposed.changes if c.column == "month")
    assert months.change == "categories" and months.details["added"] == sorted(MONTHS[1:])
    record, accepted = accept_proposed_schema(ws, spec, reason="the months of a year")
    assert record.version == 2 and accepted.to_version == 2
    assert set(record.schema.column("month").categories) == set(MONTHS)
    assert proposed_schema_change(ws, spec).is_empty
    for month in range(12):
        result = ingest_batch(ws, spec, _month_batch(1, month))
        assert result.version.status is BatchStatus.ACCEPTED
        assert not _kinds(result, "unseen_categories")
        assert not _kinds(result, "out_of_range"), result.report.summary()
        assert result.version.schema_version == 2


def test_ranges_are_learned_from_every_accepted_batch_by_quantiles(ws, spec):
    ingest_batch(ws, spec, make_batch(0))
    far = make_batch(1).assign(distance=lambda f: f["distance"] * 3 + 5000)
    far.loc[far.index[0], "distance"] = 1e6  # one outlier does not stretch the range
    first = ingest_batch(ws, spec, far)
    assert first.version.status is BatchStatus.ACCEPTED
    [warned] = _kinds(first, "out_of_range")
    assert warned.details["proposed"]["change"] == "range"
    learned = project_schema(ws, spec).column("distance")
    assert far["distance"].quantile(0.99) < learned.max_value < 1e6
    again = ingest_batch(
        ws, spec, make_batch(2).assign(distance=lambda f: f["distance"] * 3 + 5000)
    )
    assert not _kinds(again, "out_of_range"), again.report.summary()


def test_missing_labels_are_counted_reported_and_left_out_of_training(ws, spec):
    ingest_batch(ws, spec, make_batch(0))
    batch = make_batch(1)
    batch["late"] = batch["late"].astype("float64")
    batch.loc[batch.index[:37], "late"] = np.nan
    result = ingest_batch(ws, spec, batch)
    assert result.version.status is BatchStatus.ACCEPTED, result.report.summary()
    assert result.missing_labels == 37
    [found] = _kinds(result, "missing_labels")
    assert found.severity == "warning" and "left out of training" in found.message
    card = build_data_card(ws, spec, result.version.seq)
    assert card["labels"]["missing"] == 37 and card["labels"]["labelled"] == 1500 - 37
    train, val, test = split_window(load_versions(ws, training_window(ws, spec)), spec)
    assert len(train) + len(val) + len(test) == 3000 - 37


def test_text_labels_of_a_binary_task_and_a_third_value(ws):
    spec = _spec(label="outcome", positive_class="yes")

    def text_batch(week: int) -> pd.DataFrame:
        frame = make_batch(week)
        outcome = np.where(frame["late"] == 1, "yes", "no")
        return frame.drop(columns=["late"]).assign(outcome=outcome)

    assert not ingest_batch(ws, spec, text_batch(0)).quarantined
    assert not ingest_batch(ws, spec, text_batch(1)).quarantined
    third = text_batch(2)
    third.loc[third.index[:30], "outcome"] = "maybe"
    result = ingest_batch(ws, spec, third)
    assert result.quarantined
    [error] = _kinds(result, "label_classes")
    assert "'maybe'" in error.message and "binary" in error.message
    wrong = _spec(label="outcome", positive_class="ok")
    [error] = _kinds(ingest_batch(ws, wrong, text_batch(3)), "label_classes")
    assert "'ok'" in error.message


def test_a_new_class_of_a_multiclass_label_is_a_proposed_change(ws):
    spec = _spec(task="multiclass", label="size", categorical=["carrier", "size"])
    sizes = np.array(["S", "M", "L"])
    ingest_batch(ws, spec, make_batch(0).assign(size=sizes[np.arange(1500) % 3]))
    later = make_batch(1).assign(size=np.array(["S", "M", "L", "XL"])[np.arange(1500) % 4])
    result = ingest_batch(ws, spec, later)
    assert not result.quarantined
    [warned] = _kinds(result, "unseen_categories")
    assert warned.column == "size" and warned.details["proposed"]["added"] == ["XL"]


def test_quarantine_then_fix_the_spec_then_revalidate_makes_batches_trainable(ws, spec):
    ingest_batch(ws, spec, make_batch(0))
    bad = [
        ingest_batch(ws, spec, make_batch(w).assign(comment=[f"c{i}" for i in range(1500)]))
        for w in (1, 2)
    ]
    assert all(r.quarantined for r in bad)
    assert revalidate_batches(ws, spec) and all(
        not o.accepted for o in revalidate_batches(ws, spec)
    )
    fixed = _spec(ignore=["comment"])
    outcomes = revalidate_batches(ws, fixed)
    assert [(o.version.seq, o.accepted) for o in outcomes] == [(2, True), (3, True)]
    history = outcomes[0].version.report["status_changes"]
    assert history[-1]["from"] == "quarantined" and "re-validated" in history[-1]["note"]
    record = get_schema_record(ws, fixed)
    assert record.schema.column("comment").role is ColumnRole.IGNORED
    assert "conveyor.yaml changed" in (record.reason or "")
    assert revalidate_batches(ws, fixed) == []  # twice is the same as once
    again = ws.stores.datasets.get_dataset_version(outcomes[0].version.id)
    assert again.report["status_changes"] == history
    window = training_window(ws, fixed)
    assert {r.version.id for r in bad} <= {v.id for v in window}
    frame = load_versions(ws, window)
    assert len(frame) == 4500 and sum(len(p) for p in split_window(frame, fixed)) == 4500
    with pytest.raises(ConflictError, match="only quarantined batches"):
        revalidate_batches(ws, fixed, [bad[0].version.id])


def test_a_changed_label_column_is_picked_up_without_a_new_workspace(ws, spec):
    def with_other(week: int) -> pd.DataFrame:
        frame = make_batch(week)
        return frame.assign(other=np.random.default_rng(week).integers(0, 2, len(frame)))

    ingest_batch(ws, spec, with_other(0))
    relabelled = _spec(label="other")
    result = ingest_batch(ws, relabelled, with_other(1))
    assert not result.quarantined, result.report.summary()
    schema = get_schema_record(ws, relabelled).schema
    assert schema.column("other").role is ColumnRole.LABEL
    assert schema.column("late").role is ColumnRole.FEATURE
    assert result.version.schema_version == 2
