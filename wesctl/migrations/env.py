"""Alembic environment for wesctl's own migrations.

wesctl shares its database with the WES API, which owns the table `alembic_version`; wesctl keeps
its revision in `wesctl_alembic_version` so the two histories never mix (the one write to the
API's table is in 0001_wesctl_initial). The connection is passed in by wesctl.db.schema.
"""

from __future__ import annotations

from alembic import context

from wesctl.db.schema import VERSION_TABLE
from wesctl.db.tables import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
