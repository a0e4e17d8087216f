"""The WES API's own Alembic history, reduced to its first revision, for deployment-order tests.

`upgrade_head` runs it as the API's `flask db upgrade` does: Alembic's default version table
`alembic_version`, its own connection, no knowledge of wesctl.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

HERE = Path(__file__).resolve().parent


def _config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["url"] = url  # not a main option: configparser would expand any '%'
    return config


def upgrade_head(url: str) -> None:
    """Run the API's `alembic upgrade head` against `url`; raises what Alembic raises."""
    command.upgrade(_config(url), "head")


def recorded_heads(url: str) -> tuple[str, ...]:
    """The revisions the API's Alembic reads from `alembic_version`."""
    engine = create_engine(url)
    with engine.connect() as connection:
        heads = MigrationContext.configure(connection).get_current_heads()
    engine.dispose()
    return heads
