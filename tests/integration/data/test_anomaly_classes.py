"""Each anomaly class quarantines its batch, and no later training or cycle ever uses it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conveyor.core.entities import BatchStatus
from conveyor.core.errors import InvalidInputError
from conveyor.data.service import ingest_batch, training_window
from conveyor.pipeline.cycle import run_cycle
from conveyor.spec import parse_spec
from conveyor.training.service import train_model

from ..conftest import SPEC, make_batch

Mutate = Callable[[pd.DataFrame], pd.DataFrame]


def _duplicate_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame.iloc[:300]], ignore_index=True)


def _duplicate_keys(frame: pd.DataFrame) -> pd.DataFrame:
    copy = frame.iloc[:100].assign(hour=frame["hour"].iloc[:100] + 1.0)
    return pd.concat([frame, copy], ignore_index=True)


def _label_leak(frame: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    # 'distance' becomes the label plus a little noise: a field recorded after the outcome.
    return frame.assign(distance=frame["late"] * 2000.0 + rng.uniform(100, 900, len(frame)))


CASES: dict[str, tuple[dict[str, Any], Mutate]] = {
    # kind: (validation section of conveyor.yaml, how the third batch goes bad)
    "duplicate_rows": ({"duplicate_rows": "error", "duplicate_rows_share": 0.05}, _duplicate_rows),
    "duplicate_keys": ({}, _duplicate_keys),
    "too_few_rows": ({"min_rows": 200}, lambda f: f.iloc[:150]),
    "volume_jump": ({"volume_jump": "error", "volume_ratio": 3.0}, lambda f: f.iloc[:400]),
    "label_leak": ({}, _label_leak),
    "constant_label": ({"constant_label": "error"}, lambda f: f.assign(late=0)),
    "missing_column": ({"missing_columns": "warning"}, lambda f: f.drop(columns=["late"])),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_anomaly_quarantines_the_batch_and_training_never_uses_it(ws, kind):
    section, mutate = CASES[kind]
    spec = parse_spec({**SPEC, "validation": section})
    good = [ingest_batch(ws, spec, make_batch(w)) for w in range(2)]
    assert [r.version.status for r in good] == [BatchStatus.ACCEPTED] * 2
    bad = ingest_batch(ws, spec, mutate(make_batch(2)))
    assert bad.quarantined
    assert kind in {a.kind for a in bad.report.errors}
    assert bad.version.id not in {v.id for v in training_window(ws, spec)}
    lineage = train_model(ws, spec).version.lineage["datasets"]
    assert lineage == [r.version.id for r in good]
    with pytest.raises(InvalidInputError, match="quarantined; only accepted"):
        train_model(ws, spec, versions=[good[0].version, bad.version])


def test_a_cycle_after_a_quarantined_batch_trains_on_accepted_batches_only(ws):
    spec = parse_spec({**SPEC, "validation": {"constant_label": "error"}})
    outcome = run_cycle(ws, spec, sources=[make_batch(0), make_batch(1).assign(late=1)])
    assert [s["status"] for s in outcome.steps["ingest"]] == ["accepted", "quarantined"]
    version = ws.stores.models.get_model_version(spec.model_name, outcome.steps["train"]["version"])
    accepted = ws.stores.datasets.list_dataset_versions("toy", status=BatchStatus.ACCEPTED)
    assert version.lineage["datasets"] == [v.id for v in accepted] and len(accepted) == 1


def test_a_training_batch_without_the_label_is_an_error_whatever_the_policy(ws):
    spec = parse_spec(
        {
            **SPEC,
            "validation": {
                "missing_columns": "warning",
                "severities": {"missing_column": "warning"},
            },
        }
    )
    ingest_batch(ws, spec, make_batch(0))
    unlabelled = ingest_batch(ws, spec, make_batch(1).drop(columns=["late"]))
    assert unlabelled.quarantined
    [error] = unlabelled.report.errors
    assert (error.kind, error.column, error.details["role"]) == ("missing_column", "late", "label")
    other = ingest_batch(ws, spec, make_batch(2).drop(columns=["carrier"]))
    assert not other.quarantined
    assert [(a.kind, a.column) for a in other.report.warnings] == [("missing_column", "carrier")]


def test_per_column_override_sets_the_severity_of_one_column_only(ws):
    validation = {"out_of_range": "warning", "columns": {"distance": {"out_of_range": "error"}}}
    spec = parse_spec({**SPEC, "validation": validation})
    ingest_batch(ws, spec, make_batch(0))
    far = ingest_batch(ws, spec, make_batch(1).assign(distance=lambda f: f["distance"] * 100))
    assert far.quarantined and [a.column for a in far.report.errors] == ["distance"]
    late_hours = ingest_batch(ws, spec, make_batch(2).assign(hour=lambda f: f["hour"] * 100))
    assert not late_hours.quarantined
    assert "out_of_range" in {a.kind for a in late_hours.report.warnings}
