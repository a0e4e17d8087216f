"""The claim lock of MySQL/MariaDB: one row of `wesctl_locks`.

Claim transactions must run one at a time across processes and hosts, so that the concurrency
cap holds. PostgreSQL has a transaction-scoped advisory lock and SQLite a single writer; MySQL's
named locks (GET_LOCK) belong to a connection, not a transaction, so wesctl locks this row with
SELECT ... FOR UPDATE instead, which InnoDB releases at commit or rollback like the others. Other
engines get nothing from this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from wesctl.db.engine import is_mysql
from wesctl.db.tables import CLAIM_LOCK

revision = "0003_mysql_claim_lock"
down_revision = "0002_provider_stopped_at"

TABLE = "wesctl_locks"


def upgrade() -> None:
    bind = op.get_bind()
    if not is_mysql(bind.dialect):
        return
    if not sa.inspect(bind).has_table(TABLE):
        op.create_table(
            TABLE,
            sa.Column("name", sa.String(64), primary_key=True),
            mysql_engine="InnoDB",
            mysql_charset="utf8mb4",
        )
    locks = sa.table(TABLE, sa.column("name", sa.String(64)))
    present = bind.execute(sa.select(locks.c.name).where(locks.c.name == CLAIM_LOCK)).first()
    if present is None:
        bind.execute(locks.insert().values(name=CLAIM_LOCK))


def downgrade() -> None:
    if is_mysql(op.get_bind().dialect):
        op.drop_table(TABLE)
