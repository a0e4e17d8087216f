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

import sqlalchemy as sa
from alembic import op

from wesctl.db.engine import is_mysql
from wesctl.db.tables import INDEXES, IndexSpec

revision = "0004_history_indexes"
down_revision = "0003_mysql_claim_lock"

REPLACED = "ix_workflow_runs_wesctl_state"


def _index_names(table: str) -> set[str]:
    return {str(index["name"]) for index in sa.inspect(op.get_bind()).get_indexes(table)}


def _create(spec: IndexSpec, *, mysql: bool) -> None:
    if mysql:
        if spec.mysql_columns is not None:
            op.create_index(spec.name, spec.table, list(spec.mysql_columns))
        return
    where = sa.text(spec.where) if spec.where is not None else None
    op.create_index(
        spec.name, spec.table, list(spec.columns), postgresql_where=where, sqlite_where=where
    )


def upgrade() -> None:
    mysql = is_mysql(op.get_bind().dialect)
    for spec in INDEXES:
        if spec.name not in _index_names(spec.table):
            _create(spec, mysql=mysql)
    if REPLACED in _index_names("workflow_runs"):
        op.drop_index(REPLACED, table_name="workflow_runs")


def downgrade() -> None:
    if REPLACED not in _index_names("workflow_runs"):
        op.create_index(REPLACED, "workflow_runs", ["state"])
    for spec in reversed(INDEXES):
        if spec.name in _index_names(spec.table):
            op.drop_index(spec.name, table_name=spec.table)
