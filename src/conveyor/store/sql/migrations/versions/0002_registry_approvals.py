"""Registry approvals: the current approval state of each model version.

Revision ID: 0002_registry
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_registry"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
NAME = sa.String(255)


def upgrade() -> None:
    op.create_table(
        "model_approvals",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True, nullable=False),
        sa.Column("model", NAME, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("requested_by", NAME, nullable=False),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("request_reason", sa.Text(), nullable=False),
        sa.Column("decided_by", NAME, nullable=True),
        sa.Column("decided_at", TS, nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.UniqueConstraint("model", "version", name="uq_model_approvals_version"),
    )
    op.create_index("ix_model_approvals_model_status", "model_approvals", ["model", "status"])


def downgrade() -> None:
    op.drop_index("ix_model_approvals_model_status", table_name="model_approvals")
    op.drop_table("model_approvals")
