"""Lifecycle: archive, restore, delete with a tombstone, and garbage collection of blobs."""

from __future__ import annotations

import os
import time

import pytest

from conveyor.core.entities import VersionStatus
from conveyor.core.errors import ConflictError, InvalidInputError, NotFoundError
from conveyor.registry.lifecycle import (
    archive_version,
    collect_garbage,
    delete_version,
    recent_production_versions,
    restore_version,
)
from conveyor.registry.service import get_version, promote, set_alias


def _age(ws, digest: str, seconds: float) -> None:
    """Make a local blob look ``seconds`` old."""
    path = ws.stores.artifacts.local_path(digest)
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_archived_versions_take_no_alias_and_restore_to_their_old_status(ws, register):
    v1, v2 = register(b"a"), register(b"b")
    promote(ws, "toy", v1.version, reason="first")
    with pytest.raises(ConflictError, match="production"):
        archive_version(ws, "toy", v1.version, reason="old")
    ws.stores.models.set_version_status(
        "toy", v2.version, VersionStatus.BLOCKED, actor="ops", reason="bad"
    )
    archived = archive_version(ws, "toy", v2.version, reason="retired")
    assert archived.status is VersionStatus.ARCHIVED
    assert archive_version(ws, "toy", v2.version, reason="again") == archived
    for alias in ("production", "challenger"):
        with pytest.raises(InvalidInputError, match="archived"):
            set_alias(ws, "toy", alias, v2.version, action="move", reason="r")
    restored = restore_version(ws, "toy", v2.version, reason="needed")
    assert restored.status is VersionStatus.BLOCKED, "a blocked version stays blocked"
    with pytest.raises(InvalidInputError, match="not archived"):
        restore_version(ws, "toy", v2.version, reason="again")


def test_delete_needs_archived_and_not_recent_production(ws, register):
    versions = [register(b"%d" % n) for n in range(5)]
    for v in versions[:4]:
        promote(ws, "toy", v.version, reason="ship")
    assert recent_production_versions(ws, "toy", 3) == [4, 3, 2]
    with pytest.raises(InvalidInputError, match="only an archived version"):
        delete_version(ws, "toy", 5, reason="r")
    for number in (1, 2, 5):
        archive_version(ws, "toy", number, reason="old")
    with pytest.raises(ConflictError, match=r"last 3 production versions are \[4, 3, 2\]"):
        delete_version(ws, "toy", 2, reason="r")
    removed = delete_version(ws, "toy", 1, reason="superseded")
    assert removed.version == 1
    delete_version(ws, "toy", 5, reason="never shipped")
    with pytest.raises(NotFoundError, match="deleted by"):
        get_version(ws, "toy", 1)
    assert [v.version for v in ws.stores.models.list_model_versions("toy")] == [2, 3, 4]
    assert delete_version(ws, "toy", 2, reason="r", keep_production=1).version == 2
    with pytest.raises(InvalidInputError, match="keep_production"):
        delete_version(ws, "toy", 3, reason="r", keep_production=-1)


def test_gc_frees_only_old_unreferenced_blobs_and_dry_run_deletes_nothing(ws, register):
    kept = register(b"live model", reference_profile=ws.stores.artifacts.put_bytes(b"profile"))
    orphan = ws.stores.artifacts.put_bytes(b"o" * 1000)
    young = ws.stores.artifacts.put_bytes(b"young orphan")
    for digest in (kept.artifact, kept.lineage["reference_profile"], orphan):
        _age(ws, digest, 7200)
    dry = collect_garbage(ws, dry_run=True)
    assert dry.dry_run and dry.deleted == (orphan,) and dry.bytes_freed == 1000
    assert (dry.blobs, dry.referenced, dry.young) == (4, 2, 1)
    assert ws.stores.artifacts.exists(orphan)
    done = collect_garbage(ws)
    assert done.deleted == (orphan,) and done.bytes_freed == 1000
    assert not ws.stores.artifacts.exists(orphan)
    assert ws.stores.artifacts.exists(young) and ws.stores.artifacts.exists(kept.artifact)
    assert ws.stores.artifacts.exists(kept.lineage["reference_profile"])
    assert collect_garbage(ws, min_age_s=0).deleted == (young,)
    with pytest.raises(InvalidInputError, match="min_age_s"):
        collect_garbage(ws, min_age_s=-1)


def test_gc_frees_a_deleted_versions_blob_unless_a_run_still_lists_it(ws, register, trained):
    v = register(b"one-off model")
    archive_version(ws, "toy", v.version, reason="old")
    delete_version(ws, "toy", v.version, reason="gone")
    archive_version(ws, "toy", trained.version, reason="old")
    delete_version(ws, "toy", trained.version, reason="gone")
    report = collect_garbage(ws, min_age_s=0)
    assert v.artifact in report.deleted
    assert ws.stores.artifacts.exists(trained.artifact), "its training run still lists it"
    datasets = ws.stores.datasets.list_dataset_versions("toy")
    assert all(ws.stores.artifacts.exists(d.digest) for d in datasets)
