"""DatasetStore contract: sequenced, content-idempotent batches and versioned schemas."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from conveyor.core.entities import BatchStatus, DatasetVersion, DatasetVersionId
from conveyor.core.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from conveyor.core.schema import ColumnKind, ColumnRole, ColumnSchema, Schema
from conveyor.store.sql.database import Database
from conveyor.store.sql.dataset_store import SqlDatasetStore

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _version(n: int, project: str = "churn", **overrides: Any) -> DatasetVersion:
    fields: dict[str, Any] = {
        "id": DatasetVersionId(f"{project}-{n}"),
        "project": project,
        "seq": 0,
        "status": BatchStatus.ACCEPTED,
        "digest": f"sha256:{n:064x}",
        "row_count": 100 * n,
        "schema_version": 1,
        "source": f"batch-{n}.csv",
        "created_at": T0 + timedelta(days=n),
        "report": {"passed": True, "anomalies": []},
        "profile": {"rows": 100 * n},
    }
    fields.update(overrides)
    return DatasetVersion(**fields)


def test_versions_get_consecutive_seq_per_project(datasets: SqlDatasetStore) -> None:
    stored = [datasets.add_dataset_version(_version(n, seq=99)) for n in (1, 2, 3)]
    assert [v.seq for v in stored] == [1, 2, 3]
    assert datasets.add_dataset_version(_version(9, "fraud")).seq == 1
    assert datasets.get_dataset_version(DatasetVersionId("churn-2")) == stored[1]


def test_fields_round_trip_with_times_in_utc(datasets: SqlDatasetStore) -> None:
    paris = timezone(timedelta(hours=1))
    version = _version(
        1,
        min_time=datetime(2023, 12, 31, 23, 0, tzinfo=paris),
        max_time=datetime(2024, 1, 1, 5, 0, tzinfo=paris),
    )
    stored = datasets.add_dataset_version(version)
    got = datasets.get_dataset_version(version.id)
    assert got == stored
    assert got.min_time == version.min_time and got.min_time is not None
    assert got.min_time.utcoffset() == timedelta(0) and got.min_time.hour == 22
    assert got.report == version.report and got.profile == version.profile
    assert got.row_count == 100 and got.source == "batch-1.csv"


def test_same_content_twice_returns_the_first_version(datasets: SqlDatasetStore) -> None:
    first = datasets.add_dataset_version(_version(1))
    again = datasets.add_dataset_version(_version(1, id=DatasetVersionId("other-id")))
    assert again == first
    assert len(datasets.list_dataset_versions("churn")) == 1


def test_reused_id_with_other_content_is_rejected(datasets: SqlDatasetStore) -> None:
    datasets.add_dataset_version(_version(1))
    with pytest.raises(AlreadyExistsError, match="'churn-1' is already used"):
        datasets.add_dataset_version(_version(2, id=DatasetVersionId("churn-1")))


def test_unknown_version_is_not_found(datasets: SqlDatasetStore) -> None:
    with pytest.raises(NotFoundError, match="'nope'"):
        datasets.get_dataset_version(DatasetVersionId("nope"))
    with pytest.raises(NotFoundError):
        datasets.set_dataset_status(DatasetVersionId("nope"), BatchStatus.ACCEPTED, note="n")


def test_listing_filters_and_keeps_the_newest(datasets: SqlDatasetStore) -> None:
    for n in range(1, 6):
        status = BatchStatus.QUARANTINED if n == 3 else BatchStatus.ACCEPTED
        datasets.add_dataset_version(_version(n, status=status))
    seqs = lambda **kw: [v.seq for v in datasets.list_dataset_versions("churn", **kw)]  # noqa: E731
    assert seqs() == [1, 2, 3, 4, 5]
    assert seqs(status=BatchStatus.ACCEPTED) == [1, 2, 4, 5]
    assert seqs(status=BatchStatus.QUARANTINED) == [3]
    assert seqs(after_seq=3) == [4, 5]
    assert seqs(limit=2) == [4, 5]
    assert seqs(limit=0) == []
    assert seqs(status=BatchStatus.ACCEPTED, after_seq=1, limit=2) == [4, 5]
    with pytest.raises(InvalidInputError, match="'limit'"):
        datasets.list_dataset_versions("churn", limit=-1)


def test_status_change_keeps_a_history_in_the_report(datasets: SqlDatasetStore) -> None:
    version = datasets.add_dataset_version(_version(1, status=BatchStatus.QUARANTINED))
    changed = datasets.set_dataset_status(version.id, BatchStatus.ACCEPTED, note="reviewed")
    assert changed.status is BatchStatus.ACCEPTED
    assert datasets.get_dataset_version(version.id) == changed
    [change] = changed.report["status_changes"]
    assert (change["from"], change["to"], change["note"]) == ("quarantined", "accepted", "reviewed")
    assert changed.report["anomalies"] == []


def _schema(*names: str) -> Schema:
    return Schema(
        columns=tuple(ColumnSchema(n, ColumnKind.NUMERIC, min_value=0.0) for n in names)
        + (ColumnSchema("y", ColumnKind.CATEGORICAL, ColumnRole.LABEL, categories=("a", "b")),)
    )


def test_schemas_are_versioned_per_project(datasets: SqlDatasetStore) -> None:
    assert datasets.find_schema("churn") is None
    first = datasets.save_schema("churn", _schema("x"))
    second = datasets.save_schema("churn", _schema("x", "z"))
    assert (first.version, second.version) == (1, 2)
    assert datasets.save_schema("fraud", _schema("q")).version == 1
    assert datasets.find_schema("churn") == second
    assert datasets.find_schema("churn", 1) == first
    assert datasets.find_schema("churn", 3) is None
    assert datasets.find_schema("churn", 1).column("y").categories == ("a", "b")  # type: ignore[union-attr]


def test_schema_history_lists_versions_with_author_and_reason(datasets: SqlDatasetStore) -> None:
    assert datasets.list_schemas("churn") == []
    first = datasets.save_schema("churn", _schema("x"))
    second = datasets.save_schema("churn", _schema("x", "z"), author="ana", reason="new sensor z")
    datasets.save_schema("fraud", _schema("q"))
    history = datasets.list_schemas("churn")
    assert [r.schema for r in history] == [first, second]
    assert [(r.version, r.author, r.reason) for r in history] == [
        (1, None, None),
        (2, "ana", "new sensor z"),
    ]
    assert history[0].created_at <= history[1].created_at
    assert history[1].created_at.utcoffset() == timedelta(0)
    assert datasets.find_schema("churn") == second


def test_status_change_can_replace_the_profile(datasets: SqlDatasetStore) -> None:
    datasets.add_dataset_version(_version(1, status=BatchStatus.QUARANTINED, profile={}))
    released = datasets.set_dataset_status(
        DatasetVersionId("churn-1"), BatchStatus.ACCEPTED, note="ok", profile={"row_count": 100}
    )
    assert released.profile == {"row_count": 100} and released.status is BatchStatus.ACCEPTED
    got = datasets.get_dataset_version(DatasetVersionId("churn-1"))
    assert got.profile == {"row_count": 100}
    kept = datasets.set_dataset_status(
        DatasetVersionId("churn-1"), BatchStatus.QUARANTINED, note="again"
    )
    assert kept.profile == {"row_count": 100}


def _add_many(index: int, url: str) -> list[int]:
    db = Database(url)
    store = SqlDatasetStore(db)
    seqs = [store.add_dataset_version(_version(index * 10 + n)).seq for n in range(5)]
    db.dispose()
    return seqs


def test_concurrent_ingests_get_distinct_consecutive_seqs(
    database: Database, in_processes: Callable[..., list[Any]]
) -> None:
    outcomes = in_processes(_add_many, 4, database.url)
    assert all(isinstance(o, list) for o in outcomes), outcomes
    assert sorted(s for o in outcomes for s in o) == list(range(1, 21))
