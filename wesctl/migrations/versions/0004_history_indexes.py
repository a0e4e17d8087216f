"""Indexes that keep every command's cost independent of the finished runs.

A WES database only grows. Each query of `status`, `sync-status`, `submit-queued`, `runs show`
and `runs list` is served by one of `wesctl.db.tables.INDEXES`: partial indexes over the runs
not finished (or the stops still pending, or the states that are not exact) on PostgreSQL and
SQLite; on MySQL/MariaDB, which has no partial indexes, indexes led by `state`, whose ranges skip
the finished runs. Also an index on `task_logs.run_id` (InnoDB has one for the API's foreign key
already) and one on the history's time. They are wesctl's to add on the API's tables, under
names of their own (`ix_wesctl_...`); the API's columns and data are not touched.
`ix_workflow_runs_wesctl_state` is dropped: `ix_wesctl_runs_queue` starts with the same column.

Building them reads each table once and blocks writes to it meanwhile (seconds per million
runs on PostgreSQL).
"""

from __future__ import annotations

from alembic import op

from wesctl.db.tables import INDEXES
from wesctl.migrations.indexes import create_missing, drop_present, index_names

revision = "0004_history_indexes"
down_revision = "0003_mysql_claim_lock"

REPLACED = "ix_workflow_runs_wesctl_state"


def upgrade() -> None:
    create_missing(INDEXES)
    if REPLACED in index_names("workflow_runs"):
        op.drop_index(REPLACED, table_name="workflow_runs")


def downgrade() -> None:
    if REPLACED not in index_names("workflow_runs"):
        op.create_index(REPLACED, "workflow_runs", ["state"])
    drop_present(INDEXES)
