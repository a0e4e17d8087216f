"""Creating and dropping the indexes wesctl declares (`wesctl.db.tables.IndexSpec`), shared by
the revisions that add them: each creates only what is missing and drops only what exists, so a
database the WES API created, or one upgraded halfway by hand, upgrades cleanly."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from wesctl.db.engine import is_mysql
from wesctl.db.tables import IndexSpec


def index_names(table: str) -> set[str]:
    return {str(index["name"]) for index in sa.inspect(op.get_bind()).get_indexes(table)}


def create_missing(specs: Sequence[IndexSpec]) -> None:
    """Create each of `specs` not there yet: partial on PostgreSQL and SQLite, over the MySQL
    columns (or not at all) on MySQL/MariaDB."""
    mysql = is_mysql(op.get_bind().dialect)
    for spec in specs:
        if spec.name in index_names(spec.table):
            continue
        if mysql:
            if spec.mysql_columns is not None:
                op.create_index(spec.name, spec.table, list(spec.mysql_columns))
            continue
        where = sa.text(spec.where) if spec.where is not None else None
        op.create_index(
            spec.name, spec.table, list(spec.columns), postgresql_where=where, sqlite_where=where
        )


def drop_present(specs: Sequence[IndexSpec]) -> None:
    """Drop each of `specs` that exists, last first."""
    for spec in reversed(specs):
        if spec.name in index_names(spec.table):
            op.drop_index(spec.name, table_name=spec.table)
