"""wesctl's first schema: the WES API's tables when absent, wesctl's columns and history table.

On a database the WES API already created, only additions are made: its tables, data and its own
`alembic_version` table are left as they are. Every step checks what exists first, so running it
against a database that already has some of these objects changes nothing.

When this revision creates both of the API's tables, it creates them exactly as the API's first
revision does and records that revision in the API's `alembic_version` (never replacing a revision
already there): that revision creates the tables unconditionally, so otherwise the API's own
migration would fail on them and the API would never start.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from alembic import op

from wesctl.db.tables import PRECISE_DATETIME

revision = "0001_wesctl_initial"
down_revision = None

logger = logging.getLogger("wesctl.migrations")

# The WES API's Alembic version table and its first revision, the one that creates its tables.
API_VERSION_TABLE = "alembic_version"
API_FIRST_REVISION = "65510080a98b"


def wesctl_run_columns() -> tuple[sa.Column[Any], ...]:
    """Fresh Column objects each call: a Column can belong to only one table."""
    return (
        sa.Column("provider_type", sa.String(50), nullable=True),
        sa.Column("provider_id", sa.String(100), nullable=True),
        sa.Column("provider_status", sa.String(50), nullable=True),
        sa.Column("provider_metadata", sa.JSON(), nullable=True),
        sa.Column("outputs", sa.JSON(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("submission_key", sa.String(128), nullable=True),
        sa.Column("submit_attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("claimed_by", sa.String(100), nullable=True),
        sa.Column("claim_expires_at", PRECISE_DATETIME, nullable=True),
        sa.Column("submitted_at", PRECISE_DATETIME, nullable=True),
        sa.Column("status_checked_at", PRECISE_DATETIME, nullable=True),
        sa.Column("provider_changed_at", PRECISE_DATETIME, nullable=True),
        sa.Column("not_found_count", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("cancel_sent_at", PRECISE_DATETIME, nullable=True),
    )


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    tables = set(inspector.get_table_names())
    creates_api_tables = not {"workflow_runs", "task_logs"} & tables
    if "workflow_runs" not in tables:
        # Exactly the WES API's layout (its revision 65510080a98b).
        op.create_table(
            "workflow_runs",
            sa.Column("run_id", sa.String(36), primary_key=True),
            sa.Column("state", sa.String(20), nullable=False),
            sa.Column("workflow_params", sa.JSON(), nullable=True),
            sa.Column("workflow_type", sa.String(50), nullable=False),
            sa.Column("workflow_type_version", sa.String(20), nullable=False),
            sa.Column("workflow_engine", sa.String(50), nullable=True),
            sa.Column("workflow_engine_version", sa.String(20), nullable=True),
            sa.Column("workflow_url", sa.String(500), nullable=False),
            sa.Column("tags", sa.JSON(), nullable=True),
            sa.Column("start_time", sa.DateTime(), nullable=True),
            sa.Column("end_time", sa.DateTime(), nullable=True),
        )
    if "task_logs" not in tables:
        op.create_table(
            "task_logs",
            sa.Column("id", sa.String(36), primary_key=True),
            sa.Column("run_id", sa.String(36), sa.ForeignKey("workflow_runs.run_id")),
            sa.Column("name", sa.String(200), nullable=False),
            sa.Column("cmd", sa.JSON(), nullable=True),
            sa.Column("start_time", sa.DateTime(), nullable=True),
            sa.Column("end_time", sa.DateTime(), nullable=True),
            sa.Column("stdout", sa.String(500), nullable=True),
            sa.Column("stderr", sa.String(500), nullable=True),
            sa.Column("exit_code", sa.Integer(), nullable=True),
            sa.Column("system_logs", sa.JSON(), nullable=True),
        )
    if creates_api_tables:
        record_api_first_revision(has_version_table=API_VERSION_TABLE in tables)

    existing = {column["name"] for column in inspector.get_columns("workflow_runs")}
    for column in wesctl_run_columns():
        if column.name not in existing:
            op.add_column("workflow_runs", column)
    indexes = {index["name"] for index in inspector.get_indexes("workflow_runs")}
    if "ix_workflow_runs_wesctl_state" not in indexes:
        op.create_index("ix_workflow_runs_wesctl_state", "workflow_runs", ["state"])

    if "run_state_history" not in tables:
        op.create_table(
            "run_state_history",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("run_id", sa.String(36), nullable=False),
            sa.Column("at", PRECISE_DATETIME, nullable=False),
            sa.Column("from_state", sa.String(20), nullable=True),
            sa.Column("to_state", sa.String(20), nullable=False),
            sa.Column("reason", sa.Text(), nullable=True),
            sa.Column("actor", sa.String(100), nullable=False),
            mysql_engine="InnoDB",
            mysql_charset="utf8mb4",
        )
        op.create_index("ix_run_state_history_run_id", "run_state_history", ["run_id"])


def record_api_first_revision(*, has_version_table: bool) -> None:
    """Mark the API's first revision as done, as Alembic would, unless a revision is recorded."""
    version = sa.table(API_VERSION_TABLE, sa.column("version_num", sa.String(32)))
    if not has_version_table:
        op.create_table(
            API_VERSION_TABLE,
            sa.Column("version_num", sa.String(32), nullable=False),
            sa.PrimaryKeyConstraint("version_num", name=f"{API_VERSION_TABLE}_pkc"),
        )
    elif op.get_bind().execute(sa.select(version.c.version_num).limit(1)).first() is not None:
        return
    op.get_bind().execute(version.insert().values(version_num=API_FIRST_REVISION))
    logger.info(
        "created the WES API's tables; recorded its revision %s in %s",
        API_FIRST_REVISION,
        API_VERSION_TABLE,
    )


def downgrade() -> None:
    # Only wesctl's own additions are removed; the WES API's tables and data stay.
    op.drop_index("ix_run_state_history_run_id", table_name="run_state_history")
    op.drop_table("run_state_history")
    op.drop_index("ix_workflow_runs_wesctl_state", table_name="workflow_runs")
    with op.batch_alter_table("workflow_runs") as batch:
        for column in reversed(wesctl_run_columns()):
            batch.drop_column(column.name)
