"""open_stores: one migrated database per URL, every port wired to it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.core.errors import ConfigError
from conveyor.store import base
from conveyor.store.factory import Stores, close_databases, open_stores
from conveyor.store.sql.database import Database


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    close_databases()
    yield
    close_databases()


def test_open_stores_wires_every_port_to_one_database(db_url: str, tmp_path: Path) -> None:
    stores = open_stores(db_url, str(tmp_path / "artifacts"))
    assert isinstance(stores, Stores)
    assert stores.database.current_revision() == Database.head_revision()
    for name, port in [
        ("datasets", base.DatasetStore),
        ("runs", base.RunStore),
        ("models", base.ModelStore),
        ("monitor", base.MonitorStore),
        ("pipeline", base.PipelineStore),
        ("artifacts", base.ArtifactStore),
    ]:
        store = getattr(stores, name)
        missing = [m for m in port.__dict__ if not m.startswith("_") and not hasattr(store, m)]
        assert missing == [], f"{name} lacks {missing}"
        if name != "artifacts":
            assert store.database is stores.database
    digest = stores.artifacts.put_bytes(b"x")
    assert (tmp_path / "artifacts" / "sha256" / digest[7:9] / digest[9:]).is_file()
    with pytest.raises(dataclasses.FrozenInstanceError):
        stores.runs = stores.runs  # type: ignore[misc]


def test_database_is_cached_per_url(db_url: str, tmp_path: Path) -> None:
    first = open_stores(db_url, str(tmp_path / "a"))
    second = open_stores(db_url, str(tmp_path / "b"))
    assert first.database is second.database
    run = first.runs.create_run("p", "e", "r")
    assert second.runs.get_run(run.id) == run
    other = open_stores(f"sqlite:///{tmp_path / 'other.db'}", str(tmp_path / "a"))
    assert other.database is not first.database


def test_bad_database_url_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'mysql"):
        open_stores("mysql://root@localhost/x", str(tmp_path))
