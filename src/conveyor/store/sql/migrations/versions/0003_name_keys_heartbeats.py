"""Case-insensitive model names and run heartbeats.

``registered_models.name_key`` holds the case-folded NFC name (see
:func:`conveyor.core.names.name_key`) under a unique constraint, so ``Model`` and ``model``
are one model. ``runs.heartbeat_at`` is the last time the run's client was heard from; a
running run not heard from for longer than the configured timeout is ended ``failed``.

Revision ID: 0003_names
Revises: 0002_registry
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from conveyor.core.names import name_key

revision = "0003_names"
down_revision = "0002_registry"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
NAME = sa.String(255)


def upgrade() -> None:
    with op.batch_alter_table("registered_models") as batch:
        batch.add_column(sa.Column("name_key", NAME, nullable=True))
    models = sa.table("registered_models", sa.column("name", NAME), sa.column("name_key", NAME))
    connection = op.get_bind()
    taken: set[str] = set()
    for (name,) in connection.execute(sa.select(models.c.name).order_by(models.c.name)):
        key = name_key(name)
        # Spellings that were stored apart before keep their versions; '#' is never in a
        # valid name, so these keys cannot clash with a real one.
        while key in taken:
            key = f"{key}#"
        taken.add(key)
        connection.execute(models.update().where(models.c.name == name).values(name_key=key))
    with op.batch_alter_table("registered_models") as batch:
        batch.alter_column("name_key", existing_type=NAME, nullable=False)
        batch.create_unique_constraint("uq_registered_models_name_key", ["name_key"])
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("heartbeat_at", TS, nullable=True))
    op.create_index("ix_runs_status", "runs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_runs_status", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("heartbeat_at")
    with op.batch_alter_table("registered_models") as batch:
        batch.drop_constraint("uq_registered_models_name_key", type_="unique")
        batch.drop_column("name_key")
