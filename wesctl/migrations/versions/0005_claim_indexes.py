"""Indexes that keep a claim's cost independent of the queue's length.

Each claim transaction reads the queued runs an interrupted submission left with a provider id
(recoveries, rare) and counts the runs holding a concurrency slot. Through the indexes of 0004
both walked every queued run. `wesctl.db.tables.CLAIM_INDEXES` serves them: on PostgreSQL and
SQLite partial indexes over exactly those runs; on MySQL/MariaDB one index whose leading
columns (state, submitted_at, provider_id, claimed_by) give ranges holding only them.

Building them reads workflow_runs once and blocks writes to it meanwhile (seconds per million
runs on PostgreSQL).

Revision ID: 0005_claim_indexes
Revises: 0004_history_indexes
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from wesctl.db.engine import is_mysql
from wesctl.db.tables import CLAIM_INDEXES, IndexSpec

revision = "0005_claim_indexes"
down_revision = "0004_history_indexes"
branch_labels = None
depends_on = None


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
    for spec in CLAIM_INDEXES:
        if spec.name not in _index_names(spec.table):
            _create(spec, mysql=mysql)


def downgrade() -> None:
    for spec in reversed(CLAIM_INDEXES):
        if spec.name in _index_names(spec.table):
            op.drop_index(spec.name, table_name=spec.table)
