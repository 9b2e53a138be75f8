"""Alembic environment: runs on the connection that ``Database.upgrade()`` hands over."""

from __future__ import annotations

from typing import Any

from alembic import context

from conveyor.store.sql.tables import Base


def run_migrations(connection: Any) -> None:
    """Apply the pending migrations on ``connection``, inside its transaction."""
    if connection is None:
        raise RuntimeError(
            "Conveyor's migrations run through conveyor.store.sql.database.Database.upgrade(), "
            "which passes an open connection; offline mode and the alembic CLI are not supported."
        )
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


# Alembic executes this file with ``context.config`` set; a plain import (doctest collection)
# finds no config and does nothing.
_config = getattr(context, "config", None)
if _config is not None:
    run_migrations(_config.attributes.get("connection"))
