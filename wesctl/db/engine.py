"""Engine and session factory; the one place that knows SQLite and PostgreSQL quirks."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from wesctl.errors import DatabaseUnavailable, SchemaError

logger = logging.getLogger(__name__)


def utcnow() -> datetime:
    """Naive UTC now, the form the WES API stores."""
    return datetime.now(UTC).replace(tzinfo=None)


def make_engine(uri: str, *, pool_size: int = 5) -> Engine:
    """Return an engine for `uri`.

    SQLite: WAL, a 30 s busy timeout, foreign keys on, and every transaction started with
    BEGIN IMMEDIATE so concurrent writers queue on the lock instead of failing with
    "database is locked" when a read turns into a write. PostgreSQL: sessions in UTC and a
    short connect timeout so a dead server fails fast.
    """
    url = make_url(uri)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below apply
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        connect_args={"connect_timeout": 5, "options": "-c timezone=UTC"},
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def describe_database_error(exc: DBAPIError) -> str:
    """One line naming what went wrong, without the SQL statement or credentials."""
    original = str(exc.orig).strip().splitlines()
    first = original[0] if original else type(exc.orig).__name__
    return first.replace("FATAL:  ", "").strip()


def _is_schema_problem(message: str) -> bool:
    lowered = message.lower()
    if "no such table" in lowered or "no such column" in lowered:
        return True
    return "does not exist" in lowered and lowered.startswith(("relation ", "column "))


@contextlib.contextmanager
def database_errors() -> Iterator[None]:
    """Translate driver errors into wesctl errors: unreachable → 75, missing schema → 78."""
    try:
        yield
    except DBAPIError as exc:
        message = describe_database_error(exc)
        if _is_schema_problem(message):
            raise SchemaError(
                f"database schema is missing or out of date ({message}); run `wesctl db upgrade`"
            ) from exc
        if isinstance(exc, OperationalError) or exc.connection_invalidated:
            raise DatabaseUnavailable(f"database unavailable: {message}") from exc
        raise
