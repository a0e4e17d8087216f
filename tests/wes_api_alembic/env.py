"""Alembic environment of the WES API as Flask-Migrate generates it: one connection, one
transaction, the default version table."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

engine = create_engine(context.config.attributes["url"])
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
