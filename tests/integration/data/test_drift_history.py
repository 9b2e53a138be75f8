"""Drift stored at ingestion and drift between stored versions, on a real workspace."""

from __future__ import annotations

import pytest

from conveyor.core.entities import BatchStatus
from conveyor.core.errors import InvalidInputError, NotFoundError
from conveyor.data.drift_history import batch_drift, dataset_drift, dataset_profile
from conveyor.data.service import ingest_batch
from conveyor.spec import ProjectSpec
from conveyor.workspace import Workspace

from ..conftest import make_batch


def test_ingestion_stores_drift_against_the_previous_batch(ws: Workspace, spec: ProjectSpec):
    first = ingest_batch(ws, spec, make_batch(0, rows=1200)).version
    second = ingest_batch(ws, spec, make_batch(1, rows=1200)).version
    shifted = ingest_batch(ws, spec, make_batch(2, rows=1200, shift=2.0)).version
    assert "drift" not in first.profile
    assert second.profile["drift"]["seq"] == first.seq
    assert second.profile["drift"]["summary"]["drifted_features"] == []
    stored = shifted.profile["drift"]
    assert (stored["against"], stored["version"]) == ("previous", str(second.id))
    assert stored["summary"]["drifted_features"] == ["distance"]

    by_number = dataset_drift(ws, spec, str(shifted.seq), against="reference")
    assert by_number["baseline"] == {"id": str(first.id), "seq": first.seq}
    assert by_number["summary"]["drifted_features"] == ["distance"]
    pair = dataset_drift(ws, spec, str(first.id), str(second.id))
    assert pair["features"]["distance"]["drifted"] is False
    assert dataset_profile(ws, spec, str(second.seq)).id == second.id

    with pytest.raises(InvalidInputError, match="no accepted batch before it"):
        dataset_drift(ws, spec, str(first.seq))
    with pytest.raises(InvalidInputError, match="'against' must be"):
        dataset_drift(ws, spec, str(shifted.seq), against="oldest")
    with pytest.raises(NotFoundError, match="no dataset version number 42"):
        dataset_drift(ws, spec, "42")


def test_a_quarantined_batch_has_no_profile_to_compare(ws: Workspace, spec: ProjectSpec):
    ingest_batch(ws, spec, make_batch(0, rows=600))
    bad = ingest_batch(ws, spec, make_batch(1, rows=600).drop(columns=["distance"])).version
    assert bad.status is BatchStatus.QUARANTINED
    with pytest.raises(InvalidInputError, match="has no profile: it is quarantined"):
        dataset_profile(ws, spec, str(bad.seq))


def test_batch_drift_never_raises_and_picks_its_baseline(ws: Workspace, spec: ProjectSpec):
    versions = [ingest_batch(ws, spec, make_batch(w, rows=600)).version for w in range(3)]
    current = versions[2].profile
    assert batch_drift(current, [], spec.drift) is None
    previous = batch_drift(current, versions[:2], spec.drift)
    assert previous is not None and previous["seq"] == versions[1].seq
    reference = batch_drift(
        current, versions[:2], spec.drift.model_copy(update={"against": "reference"})
    )
    assert reference is not None and reference["seq"] == versions[0].seq
    broken = {"columns": {"distance": {**current["columns"]["distance"], "kind": "categorical"}}}
    failed = batch_drift(broken, versions[:2], spec.drift)
    assert failed is not None and "must match" in failed["error"]
