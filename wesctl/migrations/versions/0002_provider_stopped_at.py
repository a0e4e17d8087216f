"""Remember when the provider run of a cancelled run was seen stopped.

A cancel is delivered until the provider confirms it: runs in CANCELING or CANCELED with a
provider run and no `provider_stopped_at` are asked to stop again on every pass. Cancelled runs
already told to stop before this revision are taken as stopped, so an upgrade does not send a
burst of stops for old history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from wesctl.db.tables import PRECISE_DATETIME

revision = "0002_provider_stopped_at"
down_revision = "0001_wesctl_initial"


def upgrade() -> None:
    existing = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("workflow_runs")}
    if "provider_stopped_at" in existing:
        return
    op.add_column(
        "workflow_runs", sa.Column("provider_stopped_at", PRECISE_DATETIME, nullable=True)
    )
    op.execute(
        "UPDATE workflow_runs SET provider_stopped_at = cancel_sent_at "
        "WHERE state = 'CANCELED' AND cancel_sent_at IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_column("workflow_runs", "provider_stopped_at")
