"""Retention deletes what conveyor.yaml no longer keeps, and never a model's lineage."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conveyor.core.clock import utcnow
from conveyor.core.entities import BatchStatus, DatasetVersion
from conveyor.core.errors import InvalidInputError
from conveyor.data.cards import build_data_card
from conveyor.data.service import ingest_batch, load_versions, training_window
from conveyor.pipeline.retention import enforce_retention
from conveyor.registry.service import register_version
from conveyor.spec import ProjectSpec, parse_spec
from conveyor.workspace import Workspace

from ..conftest import SPEC, make_batch


def _spec(**retention: Any) -> ProjectSpec:
    return parse_spec({**SPEC, "retention": retention})


def _ingest(ws: Workspace, spec: ProjectSpec, weeks: int) -> list[DatasetVersion]:
    return [ingest_batch(ws, spec, make_batch(w, rows=300)).version for w in range(weeks)]


def _register_on(ws: Workspace, spec: ProjectSpec, batches: list[DatasetVersion]) -> None:
    register_version(
        ws,
        spec.model_name,
        artifact=ws.stores.artifacts.put_bytes(b"model bytes"),
        run_id=None,
        signature={},
        lineage={"datasets": [v.id for v in batches], "dataset_seqs": [v.seq for v in batches]},
        metrics={},
    )


def _status(ws: Workspace, version: DatasetVersion) -> BatchStatus:
    return ws.stores.datasets.get_dataset_version(version.id).status


def test_keep_batches_deletes_old_content_but_never_lineage(ws: Workspace) -> None:
    spec = _spec(keep_batches=2)
    batches = _ingest(ws, spec, 6)
    _register_on(ws, spec, batches[:2])  # a model trained on batches 1 and 2
    report = enforce_retention(ws, spec)
    doomed = {i.name for i in report.deleted}
    assert doomed == {batches[2].id, batches[3].id}
    assert set(report.protected) == {batches[0].id, batches[1].id}
    assert "toy v1" in report.protected[batches[0].id]
    for v in batches[2:4]:
        assert _status(ws, v) is BatchStatus.EXPIRED
        assert not ws.stores.artifacts.exists(v.digest)
    for v in [*batches[:2], *batches[4:]]:
        assert _status(ws, v) is BatchStatus.ACCEPTED
        assert ws.stores.artifacts.exists(v.digest)
    assert report.bytes_freed == sum(i.size_bytes for i in report.deleted) > 0
    # The lineage-protected batches still load for a model's test rows; expired ones never.
    assert len(load_versions(ws, batches[:2])) == 600
    with pytest.raises(InvalidInputError, match="expired"):
        load_versions(ws, [batches[2]])
    assert [v.seq for v in training_window(ws, spec)] == [1, 2, 5, 6]
    alert = ws.stores.monitor.list_alerts(spec.project, kind="retention")[-1]
    assert alert.evidence["actor"] == ws.actor
    assert {i["name"] for i in alert.evidence["items"]} == doomed


def test_dry_run_lists_with_sizes_and_deletes_nothing(ws: Workspace) -> None:
    spec = _spec(keep_batches=1)
    batches = _ingest(ws, spec, 3)
    report = enforce_retention(ws, spec, dry_run=True)
    assert [i.name for i in report.items] == [batches[0].id, batches[1].id]
    assert all(i.size_bytes > 0 for i in report.items)
    assert all(_status(ws, v) is BatchStatus.ACCEPTED for v in batches)
    assert all(ws.stores.artifacts.exists(v.digest) for v in batches)
    assert ws.stores.monitor.list_alerts(spec.project, kind="retention") == []


def test_age_and_count_bounds_both_have_to_be_exceeded(ws: Workspace) -> None:
    spec = _spec(keep_batches=1, max_age_days=30)
    batches = _ingest(ws, spec, 3)
    assert enforce_retention(ws, spec, dry_run=True).items == ()
    later = utcnow() + timedelta(days=31)
    report = enforce_retention(ws, spec, now=later, dry_run=True)
    assert [i.name for i in report.items] == [batches[0].id, batches[1].id]
    assert "days old" in report.items[0].reason


def test_quarantined_batches_have_their_own_bounds(ws: Workspace) -> None:
    spec = _spec(quarantine_keep=0)
    good = _ingest(ws, spec, 2)
    bad = make_batch(5, rows=300)
    bad.loc[:20, "distance"] = float("nan")
    quarantined = ingest_batch(ws, spec, bad).version
    assert quarantined.status is BatchStatus.QUARANTINED
    report = enforce_retention(ws, spec)
    assert [(i.kind, i.name) for i in report.deleted] == [("quarantined", quarantined.id)]
    assert _status(ws, quarantined) is BatchStatus.EXPIRED
    assert all(_status(ws, v) is BatchStatus.ACCEPTED for v in good)
    # The card of an expired batch still reads: its report and history were kept.
    card = build_data_card(ws, spec, quarantined.id)
    assert card["dataset"]["status"] == "expired" and not card["dataset"]["content_available"]
    assert card["validation"]["status_changes"][-1]["to"] == "expired"


def test_reingesting_expired_content_brings_the_version_back(ws: Workspace) -> None:
    spec = _spec(keep_batches=1)
    _ingest(ws, spec, 2)
    enforce_retention(ws, spec)
    again = ingest_batch(ws, spec, make_batch(0, rows=300))
    assert not again.created and again.version.seq == 1
    assert again.version.status is BatchStatus.ACCEPTED
    assert ws.stores.artifacts.exists(again.version.digest)
    assert len(load_versions(ws, [again.version])) == 300


def _log_day(directory: Path, day: str) -> Path:
    part = directory / f"date={day}" / "part-seg.parquet"
    part.parent.mkdir(parents=True)
    ts = pd.Timestamp(day, tz="UTC")
    pq.write_table(pa.table({"request_id": ["r1"], "ts": [ts]}), part)
    return part


def test_prediction_log_days_past_the_age_limit_are_deleted(ws: Workspace) -> None:
    spec = _spec(predictions_max_age_days=10)
    directory = ws.project_dir(spec.project, "predictions")
    today = utcnow()
    old = _log_day(directory, (today - timedelta(days=12)).strftime("%Y-%m-%d"))
    recent = _log_day(directory, (today - timedelta(days=3)).strftime("%Y-%m-%d"))
    dry = enforce_retention(ws, spec, dry_run=True)
    assert [i.kind for i in dry.items] == ["predictions"] and old.exists()
    report = enforce_retention(ws, spec)
    assert [i.name for i in report.deleted] == [f"predictions/{old.parent.name}"]
    assert report.deleted[0].size_bytes == dry.items[0].size_bytes > 0
    assert not old.parent.exists() and recent.exists()
    assert not any(p.name.startswith(".deleting") for p in directory.iterdir())


def test_nothing_is_deleted_without_a_retention_section(ws: Workspace) -> None:
    spec = parse_spec(SPEC)
    batches = _ingest(ws, spec, 3)
    assert enforce_retention(ws, spec, now=utcnow() + timedelta(days=3650)).items == ()
    assert all(ws.stores.artifacts.exists(v.digest) for v in batches)


def test_an_interrupted_expiry_is_finished_by_the_next_run(ws: Workspace) -> None:
    spec = _spec(keep_batches=5)
    batches = _ingest(ws, spec, 2)
    # A run that crashed after marking the batch expired, before deleting its content.
    ws.stores.datasets.set_dataset_status(batches[0].id, BatchStatus.EXPIRED, note="crash test")
    report = enforce_retention(ws, spec)
    assert [i.name for i in report.deleted] == [batches[0].id]
    assert not ws.stores.artifacts.exists(batches[0].digest)
    assert ws.stores.artifacts.exists(batches[1].digest)
    assert enforce_retention(ws, spec).items == ()
