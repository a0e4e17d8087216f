"""Indexes that keep a claim's cost independent of the queue's length.

Each claim transaction reads the queued runs an interrupted submission left with a provider id
(recoveries, rare) and counts the runs holding a concurrency slot (up to the cap). Through the
indexes of 0004 both walked every queued run. `wesctl.db.tables.CLAIM_INDEXES` serves them: on
PostgreSQL and SQLite partial indexes over exactly those runs (the recoverable ones, the
submitted ones, the few being submitted); on MySQL/MariaDB one index whose leading columns
(state, submitted_at, provider_id, claimed_by) give ranges holding only them.

Building them reads workflow_runs once and blocks writes to it meanwhile (seconds per million
runs on PostgreSQL).
"""

from __future__ import annotations

from wesctl.db.tables import CLAIM_INDEXES
from wesctl.migrations.indexes import create_missing, drop_present

revision = "0005_claim_indexes"
down_revision = "0004_history_indexes"


def upgrade() -> None:
    create_missing(CLAIM_INDEXES)


def downgrade() -> None:
    drop_present(CLAIM_INDEXES)
