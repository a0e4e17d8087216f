"""The claim ledger: `wesctl_locks.slots_granted`, on every engine.

A claim must not let more runs hold a concurrency slot than DAEMON_MAX_CONCURRENT_WORKFLOWS, so it
counted the runs holding one, up to the cap, in every claim transaction: with a cap in the tens
of thousands a long pass read that many rows per claim. Every change that gives runs a slot now
adds their number to this ledger in its own transaction, so a pass that counted once knows, from
the ledger's growth, at most how many runs hold a slot later and counts again only when that
bound comes near the cap (`wesctl.services.submit.SlotBound`).

MySQL/MariaDB have the table since 0003 (its claims row is their claim lock) and gain the column;
PostgreSQL and SQLite get the table and its claims row here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from wesctl.db.engine import is_mysql
from wesctl.db.tables import CLAIM_LOCK

revision = "0006_claim_ledger"
down_revision = "0005_claim_indexes"

TABLE = "wesctl_locks"
COLUMN = "slots_granted"


def upgrade() -> None:
    granted = sa.Column(COLUMN, sa.BigInteger(), nullable=False, server_default=sa.text("0"))
    if sa.inspect(op.get_bind()).has_table(TABLE):  # MySQL/MariaDB: 0003 made it and its row
        op.add_column(TABLE, granted)
        return
    locks = op.create_table(TABLE, sa.Column("name", sa.String(64), primary_key=True), granted)
    op.bulk_insert(locks, [{"name": CLAIM_LOCK}])


def downgrade() -> None:
    if is_mysql(op.get_bind().dialect):
        op.drop_column(TABLE, COLUMN)
    else:
        op.drop_table(TABLE)
