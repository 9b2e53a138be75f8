"""Initial schema: datasets, runs, registry, monitoring and pipeline tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
ID = sa.String(64)
NAME = sa.String(255)
DIGEST = sa.String(80)


def _col(name: str, type_: Any, *args: Any, null: bool = False, **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, *args, nullable=null, **kw)


def upgrade() -> None:
    op.create_table(
        "dataset_versions",
        _col("id", ID, primary_key=True),
        _col("project", NAME),
        _col("seq", sa.Integer()),
        _col("status", sa.String(32)),
        _col("digest", DIGEST),
        _col("row_count", sa.BigInteger()),
        _col("schema_version", sa.Integer()),
        _col("source", sa.Text()),
        _col("created_at", TS),
        _col("min_time", TS, null=True),
        _col("max_time", TS, null=True),
        _col("report", sa.JSON()),
        _col("profile", sa.JSON()),
        sa.UniqueConstraint("project", "seq", name="uq_dataset_versions_project_seq"),
        sa.UniqueConstraint("project", "digest", name="uq_dataset_versions_project_digest"),
    )
    op.create_table(
        "schemas",
        _col("project", NAME, primary_key=True),
        _col("version", sa.Integer(), primary_key=True),
        _col("columns", sa.JSON()),
        _col("created_at", TS),
    )
    op.create_table(
        "runs",
        _col("id", ID, primary_key=True),
        _col("project", NAME),
        _col("experiment", NAME),
        _col("name", NAME),
        _col("status", sa.String(32)),
        _col("started_at", TS),
        _col("ended_at", TS, null=True),
        _col("parent_id", ID, sa.ForeignKey("runs.id"), null=True),
        _col("latest_metrics", sa.JSON()),
    )
    op.create_index("ix_runs_project_experiment", "runs", ["project", "experiment"])
    op.create_table(
        "run_params",
        _col("run_id", ID, sa.ForeignKey("runs.id"), primary_key=True),
        _col("key", NAME, primary_key=True),
        _col("value", sa.Text()),
    )
    op.create_table(
        "run_metrics",
        _col(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        _col("run_id", ID, sa.ForeignKey("runs.id")),
        _col("key", NAME),
        _col("step", sa.BigInteger()),
        _col("ts", TS),
        _col("value", sa.Float(), null=True),
    )
    op.create_index("ix_run_metrics_run_key_step", "run_metrics", ["run_id", "key", "step", "ts"])
    op.create_table(
        "run_tags",
        _col("run_id", ID, sa.ForeignKey("runs.id"), primary_key=True),
        _col("key", NAME, primary_key=True),
        _col("value", sa.Text()),
    )
    op.create_table(
        "run_artifacts",
        _col("run_id", ID, sa.ForeignKey("runs.id"), primary_key=True),
        _col("name", NAME, primary_key=True),
        _col("digest", DIGEST),
    )
    op.create_table(
        "run_datasets",
        _col("run_id", ID, sa.ForeignKey("runs.id"), primary_key=True),
        _col("dataset_id", ID, primary_key=True),
        _col("position", sa.Integer()),
    )
    op.create_table(
        "registered_models",
        _col("name", NAME, primary_key=True),
        _col("last_version", sa.Integer()),
        _col("created_at", TS),
    )
    op.create_table(
        "model_versions",
        _col("id", sa.Integer(), primary_key=True, autoincrement=True),
        _col("model", NAME),
        _col("version", sa.Integer()),
        _col("artifact", DIGEST),
        _col("run_id", ID, null=True),
        _col("created_at", TS),
        _col("status", sa.String(32)),
        _col("signature", sa.JSON()),
        _col("lineage", sa.JSON()),
        _col("metrics", sa.JSON()),
        _col("tags", sa.JSON()),
        sa.UniqueConstraint("model", "version", name="uq_model_versions_version"),
    )
    op.create_table(
        "aliases",
        _col("id", sa.Integer(), primary_key=True, autoincrement=True),
        _col("model", NAME),
        _col("alias", NAME),
        _col("version", sa.Integer()),
        _col("revision", sa.Integer()),
        _col("updated_at", TS),
        sa.UniqueConstraint("model", "alias", name="uq_aliases_model_alias"),
    )
    op.create_table(
        "audit_events",
        _col("id", sa.Integer(), primary_key=True, autoincrement=True),
        _col("model", NAME),
        _col("action", sa.String(64)),
        _col("actor", NAME),
        _col("reason", sa.Text()),
        _col("at", TS),
        _col("alias", NAME, null=True),
        _col("from_version", sa.Integer(), null=True),
        _col("to_version", sa.Integer(), null=True),
        _col("evidence", sa.JSON()),
    )
    op.create_index("ix_audit_events_model_alias", "audit_events", ["model", "alias"])
    op.create_table(
        "monitor_reports",
        _col("id", ID, primary_key=True),
        _col("project", NAME),
        _col("model_version", sa.Integer(), null=True),
        _col("window_start", TS),
        _col("window_end", TS),
        _col("created_at", TS),
        _col("stats", sa.JSON()),
    )
    op.create_index(
        "ix_monitor_reports_project_window", "monitor_reports", ["project", "window_end"]
    )
    op.create_table(
        "alerts",
        _col("id", ID, primary_key=True),
        _col("project", NAME),
        _col("kind", sa.String(64)),
        _col("severity", sa.String(32)),
        _col("message", sa.Text()),
        _col("created_at", TS),
        _col("evidence", sa.JSON()),
        _col("report", ID, null=True),
    )
    op.create_index("ix_alerts_project_kind", "alerts", ["project", "kind"])
    op.create_table(
        "pipeline_runs",
        _col("id", ID, primary_key=True),
        _col("project", NAME),
        _col("trigger", sa.String(64)),
        _col("status", sa.String(32)),
        _col("started_at", TS),
        _col("ended_at", TS, null=True),
        _col("evidence", sa.JSON()),
        _col("steps", sa.JSON()),
    )
    op.create_index("ix_pipeline_runs_project", "pipeline_runs", ["project", "started_at"])
    op.create_table(
        "leases",
        _col("name", NAME, primary_key=True),
        _col("holder", NAME),
        _col("expires_at", TS),
    )
    op.create_table(
        "step_cache",
        _col("key", sa.String(128), primary_key=True),
        _col("result", sa.JSON()),
        _col("created_at", TS),
    )


def downgrade() -> None:
    for table in (
        "step_cache",
        "leases",
        "pipeline_runs",
        "alerts",
        "monitor_reports",
        "audit_events",
        "aliases",
        "model_versions",
        "registered_models",
        "run_datasets",
        "run_artifacts",
        "run_tags",
        "run_metrics",
        "run_params",
        "runs",
        "schemas",
        "dataset_versions",
    ):
        op.drop_table(table)
