"""Migration 0003 on a database that holds names stored apart before names were case-insensitive."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command

from conveyor.core.entities import RunId, RunStatus
from conveyor.store.sql.database import Database, _alembic_config
from conveyor.store.sql.model_store import SqlModelStore
from conveyor.store.sql.run_store import SqlRunStore

OLD = datetime(2026, 1, 1, tzinfo=UTC)


def test_upgrade_keys_old_models_apart_and_ends_old_stuck_runs(db_url: str) -> None:
    database = Database(db_url)
    try:
        with database._write_engine.begin() as conn:
            config = _alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, "0002_registry")
            for name in ("Model", "model", "other"):
                conn.execute(
                    sa.text(
                        "INSERT INTO registered_models (name, last_version, created_at) "
                        "VALUES (:n, 0, :t)"
                    ),
                    {"n": name, "t": OLD},
                )
            conn.execute(
                sa.text(
                    "INSERT INTO runs (id, project, experiment, name, status, started_at, "
                    "latest_metrics) VALUES ('stuck', 'p', 'e', 'r', 'running', :t, '{}')"
                ),
                {"t": OLD.replace(tzinfo=None) if database.dialect == "sqlite" else OLD},
            )
        database.upgrade()
        assert database.current_revision() == Database.head_revision()
        with database.engine.connect() as conn:
            keys = dict(conn.execute(sa.text("SELECT name, name_key FROM registered_models")).all())
        assert keys["other"] == "other"
        assert sorted([keys["Model"], keys["model"]]) == ["model", "model#"]
        # Both old spellings keep their counters; a new spelling of either is refused.
        models = SqlModelStore(database)
        registered = models.create_model_version(
            "other",
            artifact="sha256:" + "c" * 64,
            run_id=None,
            signature={},
            lineage={},
            metrics={},
            actor="ci",
        )
        assert registered.version == 1
        stuck = SqlRunStore(database, stale_after_s=60).get_run(RunId("stuck"))
        assert stuck.status is RunStatus.FAILED and stuck.heartbeat_at is None
    finally:
        database.dispose()
