"""The metadata database: migrations, transactions, error mapping and concurrent opening."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from conveyor.core.errors import ConfigError, ConflictError, StoreError
from conveyor.store.sql.database import Database
from conveyor.store.sql.tables import Base, LeaseRow, StepCacheRow


def test_upgrade_creates_every_table_at_head(database: Database) -> None:
    assert database.current_revision() == Database.head_revision() is not None
    names = set(sa.inspect(database.engine).get_table_names())
    assert set(Base.metadata.tables) <= names
    assert "alembic_version" in names


def test_migrations_match_the_orm_tables(database: Database) -> None:
    with database.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_upgrade_twice_changes_nothing(database: Database) -> None:
    with database.session() as session:
        session.add(StepCacheRow(key="k", result={"a": 1}, created_at=datetime.now(UTC)))
    database.upgrade()
    with database.session(write=False) as session:
        assert session.get(StepCacheRow, "k") is not None


def test_session_rolls_back_when_the_block_raises(database: Database) -> None:
    with pytest.raises(RuntimeError), database.session() as session:
        session.add(StepCacheRow(key="lost", result={}, created_at=datetime.now(UTC)))
        session.flush()
        raise RuntimeError("boom")
    with database.session(write=False) as session:
        assert session.get(StepCacheRow, "lost") is None


def test_duplicate_key_becomes_conflict_error(database: Database) -> None:
    row = {"key": "dup", "result": {}, "created_at": datetime.now(UTC)}
    with database.session() as session:
        session.add(StepCacheRow(**row))
    with pytest.raises(ConflictError, match="conflicted") as info, database.session() as session:
        session.add(StepCacheRow(**row))
    assert isinstance(info.value.__cause__, sa.exc.IntegrityError)


def test_backend_failure_becomes_store_error(database: Database) -> None:
    with pytest.raises(StoreError, match="failed") as info, database.session() as session:
        session.execute(sa.text("SELECT * FROM no_such_table"))
    assert isinstance(info.value.__cause__, sa.exc.SQLAlchemyError)


def test_datetimes_come_back_as_aware_utc(database: Database) -> None:
    tokyo = timezone(timedelta(hours=9))
    local = datetime(2024, 3, 1, 9, 30, 15, 123456, tzinfo=tokyo)
    with database.session() as session:
        session.add(LeaseRow(name="l", holder="h", expires_at=local))
    with database.session(write=False) as session:
        stored = session.get(LeaseRow, "l")
        assert stored is not None
        assert stored.expires_at.tzinfo is not None
        assert stored.expires_at.utcoffset() == timedelta(0)
        assert stored.expires_at == local
        assert stored.expires_at.hour == 0


def test_json_columns_store_non_finite_and_numpy_numbers(database: Database) -> None:
    result = {"nan": math.nan, "inf": [math.inf], "n": np.int64(3), "x": np.float64(0.5)}
    with database.session() as session:
        session.add(StepCacheRow(key="j", result=result, created_at=datetime.now(UTC)))
    with database.session(write=False) as session:
        stored = session.get(StepCacheRow, "j")
        assert stored is not None
        assert stored.result == {"nan": None, "inf": [None], "n": 3, "x": 0.5}


@pytest.mark.parametrize(
    "url", ["mysql://root@localhost/db", "not a url", "oracle+cx_oracle://x@y/z"]
)
def test_unsupported_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="sqlite"):
        Database(url)


def test_password_is_hidden_in_messages() -> None:
    db = Database("postgresql://alice:s3cret@127.0.0.1:1/nothing")
    assert "s3cret" not in db.safe_url and "s3cret" not in repr(db)
    assert db.dialect == "postgresql"
    db.dispose()


def test_unreachable_database_is_a_store_error(tmp_path: Path) -> None:
    db = Database("postgresql+psycopg://nobody@127.0.0.1:1/nothing?connect_timeout=2")
    with pytest.raises(StoreError, match="127.0.0.1"):
        db.upgrade()
    db.dispose()


def test_in_memory_sqlite_keeps_one_database() -> None:
    db = Database("sqlite://")
    db.upgrade()
    with db.session() as session:
        session.add(LeaseRow(name="m", holder="h", expires_at=datetime.now(UTC)))
    with db.session(write=False) as session:
        assert session.get(LeaseRow, "m") is not None
    db.dispose()


def test_sqlite_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'nested' / 'meta.db'}")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    db.dispose()


def _open_and_write(index: int, url: str) -> str | None:
    db = Database(url)
    db.upgrade()
    with db.session() as session:
        session.add(LeaseRow(name=f"p{index}", holder=str(index), expires_at=datetime.now(UTC)))
    revision = db.current_revision()
    db.dispose()
    return revision


def test_processes_opening_a_new_workspace_at_once_all_succeed(
    db_url: str, in_processes: object
) -> None:
    outcomes = in_processes(_open_and_write, 4, db_url)  # type: ignore[operator]
    assert outcomes == [Database.head_revision()] * 4
    db = Database(db_url)
    with db.session(write=False) as session:
        names = session.scalars(sa.select(LeaseRow.name).order_by(LeaseRow.name)).all()
    db.dispose()
    assert names == ["p0", "p1", "p2", "p3"]
