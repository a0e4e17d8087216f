"""Schema revision management with Alembic, shipped inside the package.

wesctl records its revision in its own version table, so its history and the WES API's (in
`alembic_version`) never mix. wesctl reads the API's revision only to show it, and writes it in one
case: when its first migration creates the API's tables on a database without them, it records
the API's first revision, which would otherwise fail on those tables (see 0001_wesctl_initial).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect

from wesctl.db.tables import API_RUN_COLUMNS
from wesctl.errors import SchemaError

if TYPE_CHECKING:
    from alembic.config import Config

VERSION_TABLE = "wesctl_alembic_version"
API_VERSION_TABLE = "alembic_version"
# The newest migration; checked against Alembic's head in tests so commands need not load Alembic.
SCHEMA_HEAD = "0006_claim_ledger"
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None
    head: str
    has_api_tables: bool
    api_revision: str | None

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """Return wesctl's recorded revision, or None when wesctl never migrated this database."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        revision = connection.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalar()
        return str(revision) if revision is not None else None


def schema_status(engine: Engine) -> SchemaStatus:
    with engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        api_revision = None
        if API_VERSION_TABLE in tables:
            api_revision = connection.exec_driver_sql(
                f"SELECT version_num FROM {API_VERSION_TABLE}"
            ).scalar()
    return SchemaStatus(
        current=current_revision(engine),
        head=head_revision(),
        has_api_tables="workflow_runs" in tables,
        api_revision=api_revision,
    )


def check_compatible(engine: Engine) -> None:
    """Raise SchemaError if an existing workflow_runs table lacks a column the WES API defines."""
    with engine.connect() as connection:
        inspector = inspect(connection)
        if "workflow_runs" not in inspector.get_table_names():
            return
        present = {column["name"] for column in inspector.get_columns("workflow_runs")}
    missing = [name for name in API_RUN_COLUMNS if name not in present]
    if missing:
        raise SchemaError(
            "refusing to migrate: table workflow_runs exists but lacks required column(s) "
            f"{', '.join(missing)}; is this the WES API's database?"
        )


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to head; return (revision before, revision after). Idempotent."""
    from alembic import command

    check_compatible(engine)
    before = current_revision(engine)
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return before, head_revision()


def require_current(engine: Engine) -> None:
    """Raise SchemaError with a hint when the schema is missing or behind."""
    current = current_revision(engine)
    head = SCHEMA_HEAD
    if current == head:
        return
    if current is None:
        raise SchemaError("database has no wesctl schema; run `wesctl db upgrade`")
    raise SchemaError(
        f"database schema is at revision {current}, wesctl needs {head}; run `wesctl db upgrade`"
    )
