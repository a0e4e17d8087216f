"""Engine and session factory; the one place that knows SQLite, PostgreSQL and MySQL quirks."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Dialect, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from wesctl.errors import ConfigError, DatabaseRefused, DatabaseUnavailable, SchemaError

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT = 30.0  # seconds a writer waits for SQLite's write lock before giving up
# Execution option of sessions that only read (see make_session_factory): on SQLite they start
# with a plain BEGIN and take neither lock.
READ_ONLY = "wesctl_read_only"
_HOLDS_WRITER = "wesctl_holds_writer_lock"  # connection record info: this one holds the lock


# SQLAlchemy's backend names of MySQL and MariaDB (`mariadb://` selects its MariaDB variant).
MYSQL_BACKENDS = ("mysql", "mariadb")
# MySQL server error codes wesctl tells apart (PyMySQL puts the code first in the error's args).
_MYSQL_REFUSED = frozenset({1044, 1045, 1049, 1698})  # access denied, unknown database
_MYSQL_SCHEMA = frozenset({1146, 1054})  # no such table, unknown column


def is_mysql(dialect: Dialect) -> bool:
    """True for MySQL and MariaDB, which share one SQL dialect."""
    return dialect.name in MYSQL_BACKENDS


def database_url(uri: str) -> URL:
    """`uri` with mysql+pymysql as the driver of a bare mysql:// or mariadb:// URL (SQLAlchemy
    would load MySQLdb, a C extension wesctl does not install; its MariaDB-only dialect would
    fail on a MySQL server, while the MySQL one detects MariaDB); any other URL as given."""
    url = make_url(uri)
    if url.drivername in MYSQL_BACKENDS:
        return url.set(drivername="mysql+pymysql")
    return url


def utcnow() -> datetime:
    """Naive UTC now, the form the WES API stores."""
    return datetime.now(UTC).replace(tzinfo=None)


def make_engine(uri: str, *, pool_size: int = 5, busy_timeout: float | None = None) -> Engine:
    """Return an engine for `uri`.

    SQLite: WAL, a busy timeout (30 s unless `busy_timeout` says otherwise), foreign keys on,
    and every writing transaction started with BEGIN IMMEDIATE so concurrent writers queue on
    the lock instead of failing with "database is locked" when a read turns into a write.
    PostgreSQL: sessions in UTC and a short connect timeout so a dead server fails fast.
    MySQL/MariaDB: PyMySQL (also for a bare mysql:// or mariadb://), utf8mb4, the same short
    connect timeout, connections recycled before the server's idle timeout closes them, and
    READ COMMITTED, PostgreSQL's default, whatever the server's default: under InnoDB's
    REPEATABLE READ, two syncs replacing task logs of different runs lock the same index gap
    and deadlock (seen in the race test), and a statement would not see rows committed after its
    transaction's first read. Claims are safe under either level (see runs.lock_claims).
    A URL no engine can be made of (an unknown driver, a driver that is not installed) is a
    ConfigError naming the driver, never a traceback.
    """
    try:
        return _make_engine(uri, pool_size=pool_size, busy_timeout=busy_timeout)
    except (NoSuchModuleError, ImportError, ArgumentError) as exc:
        url = make_url(uri)
        raise ConfigError(
            f"DATABASE_URI: wesctl cannot use the driver of {url.drivername}:// ({exc}); "
            "use postgresql://, mysql:// or sqlite:///PATH"
        ) from None


def _make_engine(uri: str, *, pool_size: int, busy_timeout: float | None) -> Engine:
    url = database_url(uri)
    busy = SQLITE_BUSY_TIMEOUT if busy_timeout is None else busy_timeout
    if url.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args={"timeout": busy, "check_same_thread": False},
        )

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below apply
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy * 1000:.0f}")
            cursor.close()

        _serialise_sqlite_writers(engine, busy)
        return engine
    if url.get_backend_name() in MYSQL_BACKENDS:
        return create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_recycle=3600,
            isolation_level="READ COMMITTED",
            connect_args={"connect_timeout": 5, "charset": "utf8mb4"},
        )
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        connect_args={"connect_timeout": 5, "options": "-c timezone=UTC"},
    )


def _serialise_sqlite_writers(engine: Engine, busy_timeout: float) -> None:
    """Start every SQLite transaction with BEGIN IMMEDIATE, one thread of this process at a time.

    SQLite has one writer. Threads of one process queue on a Python lock, held from BEGIN until
    the connection returns to the pool, and wake as soon as it is free; without it they would
    wait in SQLite's busy handler, which sleeps up to 100 ms between tries (a pool of submit
    workers spent a third of its time there). Other processes still wait in the busy handler.
    """
    writer = threading.Lock()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")  # WAL readers need no lock
            return
        held = connection.connection.record_info
        if not held.get(_HOLDS_WRITER):  # a second transaction on the same checkout
            if not writer.acquire(timeout=busy_timeout):
                raise DatabaseUnavailable(
                    f"database unavailable: another thread held SQLite's write lock for "
                    f"{busy_timeout:g} s"
                )
            held[_HOLDS_WRITER] = True
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_connection: Any, record: Any) -> None:
        if record.record_info.pop(_HOLDS_WRITER, False):
            writer.release()


def make_session_factory(engine: Engine, *, read_only: bool = False) -> sessionmaker[Session]:
    """Sessions on `engine`; `read_only` ones must never write (on SQLite they hold no lock, so a
    write would fail with "database is locked" under contention instead of queueing)."""
    bind = engine.execution_options(**{READ_ONLY: True}) if read_only else engine
    return sessionmaker(bind, expire_on_commit=False)


def _mysql_error(exc: DBAPIError) -> tuple[int, str] | None:
    """(code, message) of an error the MySQL server sent through PyMySQL, else None."""
    args: tuple[object, ...] = getattr(exc.orig, "args", ())
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        return args[0], args[1]
    return None


def describe_database_error(exc: DBAPIError) -> str:
    """One line naming what went wrong, without the SQL statement or credentials."""
    mysql = _mysql_error(exc)
    original = (mysql[1] if mysql is not None else str(exc.orig)).strip().splitlines()
    first = original[0] if original else type(exc.orig).__name__
    return first.replace("FATAL:  ", "").strip()


def _mysql_code(exc: DBAPIError) -> int | None:
    mysql = _mysql_error(exc)
    return mysql[0] if mysql is not None else None


def _is_schema_problem(exc: DBAPIError, message: str) -> bool:
    if _mysql_code(exc) in _MYSQL_SCHEMA:
        return True
    lowered = message.lower()
    if "no such table" in lowered or "no such column" in lowered:
        return True
    return "does not exist" in lowered and lowered.startswith(("relation ", "column "))


@contextlib.contextmanager
def database_errors() -> Iterator[None]:
    """Translate driver errors into wesctl errors: unreachable, a deadlock or a lock wait that
    timed out → 75 (the next pass retries); missing schema, refused credentials → 78."""
    try:
        yield
    except DBAPIError as exc:
        message = describe_database_error(exc)
        if _mysql_code(exc) in _MYSQL_REFUSED:
            raise DatabaseRefused(
                f"database refused the connection: {message}; check the user, password and "
                "database name in DATABASE_URI"
            ) from exc
        if _is_schema_problem(exc, message):
            raise SchemaError(
                f"database schema is missing or out of date ({message}); run `wesctl db upgrade`"
            ) from exc
        if isinstance(exc, OperationalError) or exc.connection_invalidated:
            raise DatabaseUnavailable(f"database unavailable: {message}") from exc
        raise
