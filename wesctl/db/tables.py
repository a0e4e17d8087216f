"""SQLAlchemy models of the shared WES database.

`workflow_runs` and `task_logs` belong to the WES API (its Alembic revision 65510080a98b); their
columns keep the API's names, types and meaning. wesctl adds columns to `workflow_runs` (all
nullable or with a server default, so the API's inserts keep working) and its own
`run_state_history` table. Times are naive UTC, as the API writes them.

On MySQL/MariaDB a plain DATETIME keeps whole seconds (the API's columns are such); the times
wesctl adds are DATETIME(6), so leases expire and history orders to the microsecond there too.

Finished runs stay in the database for ever, so every query a command issues is served by an
index that leaves them out (`INDEXES`, created by migration 0004): partial indexes where the
engine has them (PostgreSQL, SQLite), and on MySQL/MariaDB, which has none, indexes whose
leading column (state) lets a range skip the finished runs. The queue may be long too, so a
claim reads no queued run it cannot take (`CLAIM_INDEXES`, created by migration 0005).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from wesctl.domain import states

RUN_ID_LENGTH = 36
STATE_LENGTH = 20
ACTOR_LENGTH = 100


class PreciseDateTime(TypeDecorator[datetime]):
    """The times wesctl adds: microseconds on every engine (MySQL's DATETIME alone drops them).
    The MySQL type is looked up only on a MySQL/MariaDB connection: importing that dialect costs
    every other command's start-up about 20 modules."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import DATETIME

            return dialect.type_descriptor(DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())


PRECISE_DATETIME = PreciseDateTime()


class Base(DeclarativeBase):
    pass


# Columns the WES API creates; `wesctl db upgrade` refuses a workflow_runs table lacking any.
API_RUN_COLUMNS = (
    "run_id",
    "state",
    "workflow_params",
    "workflow_type",
    "workflow_type_version",
    "workflow_engine",
    "workflow_engine_version",
    "workflow_url",
    "tags",
    "start_time",
    "end_time",
)


class WorkflowRun(Base):
    __tablename__ = "workflow_runs"

    # --- the WES API's columns ---
    run_id: Mapped[str] = mapped_column(String(RUN_ID_LENGTH), primary_key=True)
    state: Mapped[str] = mapped_column(String(STATE_LENGTH))
    workflow_params: Mapped[Any] = mapped_column(JSON, nullable=True)
    workflow_type: Mapped[str] = mapped_column(String(50))
    workflow_type_version: Mapped[str] = mapped_column(String(20))
    workflow_engine: Mapped[str | None] = mapped_column(String(50))
    workflow_engine_version: Mapped[str | None] = mapped_column(String(20))
    workflow_url: Mapped[str] = mapped_column(String(500))
    tags: Mapped[Any] = mapped_column(JSON, nullable=True)
    start_time: Mapped[datetime | None] = mapped_column(DateTime)
    end_time: Mapped[datetime | None] = mapped_column(DateTime)

    # --- added by wesctl: where each run is at its provider, and submission bookkeeping ---
    provider_type: Mapped[str | None] = mapped_column(String(50))
    provider_id: Mapped[str | None] = mapped_column(String(100))
    provider_status: Mapped[str | None] = mapped_column(String(50))
    provider_metadata: Mapped[Any] = mapped_column(JSON, nullable=True)
    outputs: Mapped[Any] = mapped_column(JSON, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Idempotency token sent to the provider; stored before the provider is called.
    submission_key: Mapped[str | None] = mapped_column(String(128))
    submit_attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    # Lease: the process that claimed the run for submission and until when the claim holds.
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claim_expires_at: Mapped[datetime | None] = mapped_column(PRECISE_DATETIME)
    submitted_at: Mapped[datetime | None] = mapped_column(PRECISE_DATETIME)
    status_checked_at: Mapped[datetime | None] = mapped_column(PRECISE_DATETIME)
    provider_changed_at: Mapped[datetime | None] = mapped_column(PRECISE_DATETIME)
    not_found_count: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    cancel_sent_at: Mapped[datetime | None] = mapped_column(PRECISE_DATETIME)  # the last stop sent
    # When the provider run of a cancelled run was seen final: until then every pass stops it.
    provider_stopped_at: Mapped[datetime | None] = mapped_column(PRECISE_DATETIME)


class TaskLogRow(Base):
    __tablename__ = "task_logs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(RUN_ID_LENGTH), ForeignKey("workflow_runs.run_id"))
    name: Mapped[str] = mapped_column(String(200))
    cmd: Mapped[Any] = mapped_column(JSON, nullable=True)
    start_time: Mapped[datetime | None] = mapped_column(DateTime)
    end_time: Mapped[datetime | None] = mapped_column(DateTime)
    stdout: Mapped[str | None] = mapped_column(String(500))
    stderr: Mapped[str | None] = mapped_column(String(500))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    system_logs: Mapped[Any] = mapped_column(JSON, nullable=True)


class StateTransition(Base):
    """Append-only history of every state change wesctl makes or observes."""

    __tablename__ = "run_state_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(RUN_ID_LENGTH), index=True)
    at: Mapped[datetime] = mapped_column(PRECISE_DATETIME)
    from_state: Mapped[str | None] = mapped_column(String(STATE_LENGTH))
    to_state: Mapped[str] = mapped_column(String(STATE_LENGTH))
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(ACTOR_LENGTH))


class Lock(Base):
    """Rows whose lock serialises a kind of transaction across processes and hosts, where the
    engine has no advisory lock (MySQL/MariaDB: see `runs.lock_claims`); the claims row also
    keeps the claim ledger (`slots_granted`, see `runs.grant_slots`) on every engine."""

    __tablename__ = "wesctl_locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    slots_granted: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


# The row of claim transactions: their lock on MySQL/MariaDB, their ledger everywhere.
CLAIM_LOCK = "claims"


# The WES state sets, as the strings stored in the state column.
NON_TERMINAL_STATES = tuple(state.value for state in states.NON_TERMINAL_STATES)
TERMINAL_STATES = tuple(state.value for state in states.RunState if state in states.TERMINAL_STATES)
ALL_STATES = tuple(state.value for state in states.RunState)
CANCEL_STATES = tuple(state.value for state in states.CANCEL_STATES)


def sql_in(column: str, values: tuple[str, ...], *, negate: bool = False) -> str:
    """`column IN ('a', 'b')` as SQL text (the values are wesctl's own state names)."""
    listed = ", ".join(f"'{value}'" for value in values)
    return f"{column} {'NOT IN' if negate else 'IN'} ({listed})"


# The predicates of the partial indexes. A query uses such an index only when its WHERE clause
# implies the predicate; SQLite checks that term by term, so queries render these same terms
# with literal values (runs.state_in).
QUEUED = sql_in("state", (states.RunState.QUEUED.value,))
UNFINISHED = sql_in("state", NON_TERMINAL_STATES)
FINISHED = sql_in("state", TERMINAL_STATES)
STOP_PENDING = sql_in("state", CANCEL_STATES)
INEXACT_STATE = sql_in("state", ALL_STATES, negate=True)
# Queued runs whose provider id an interrupted submission recorded: what a claim recovers.
RECOVERABLE = f"{QUEUED} AND submitted_at IS NULL AND provider_id IS NOT NULL"
# Unfinished runs holding a concurrency slot, in two sets: the submitted ones (as many as the cap
# allows), and the few being submitted or left with a provider id by an interrupted submission
# (a claim counts only until it expires).
SUBMITTED = f"{UNFINISHED} AND submitted_at IS NOT NULL"
BEING_SUBMITTED = (
    f"{UNFINISHED} AND submitted_at IS NULL AND (provider_id IS NOT NULL OR claimed_by IS NOT NULL)"
)


@dataclass(frozen=True)
class IndexSpec:
    """An index wesctl adds: on PostgreSQL and SQLite over `columns` for the rows `where`
    holds; on MySQL/MariaDB (no partial indexes) over `mysql_columns`, or not at all."""

    name: str
    table: str
    columns: tuple[str, ...]
    where: str | None = None
    mysql_columns: tuple[str, ...] | None = None


INDEXES = (
    # Claims and the queue figures, oldest first. Not led by state on PostgreSQL and SQLite:
    # SQLite, without statistics, would take any index led by state for a query on several
    # states (sorting what it reads) or on run ids and a state, before a partial index.
    IndexSpec(
        "ix_wesctl_runs_queue",
        "workflow_runs",
        ("start_time", "run_id"),
        QUEUED,
        mysql_columns=("state", "start_time", "run_id"),
    ),
    # sync-status's keyset batches by run_id, the slot count, status's counts of unfinished
    # runs, `runs list --state` of unfinished states.
    IndexSpec("ix_wesctl_runs_unfinished", "workflow_runs", ("run_id",), UNFINISHED),
    # `runs list --state` of finished states, newest first.
    IndexSpec(
        "ix_wesctl_runs_finished", "workflow_runs", ("state", "start_time", "run_id"), FINISHED
    ),
    # Pending stops, in run_id order.
    IndexSpec(
        "ix_wesctl_runs_pending_stops",
        "workflow_runs",
        ("run_id",),
        f"{STOP_PENDING} AND provider_id IS NOT NULL AND provider_stopped_at IS NULL",
        mysql_columns=("state", "provider_stopped_at", "run_id"),
    ),
    # Runs whose state is not exactly a WES state (MySQL: ranges of ix_wesctl_runs_queue).
    IndexSpec("ix_wesctl_runs_inexact_state", "workflow_runs", ("state",), INEXACT_STATE),
    # `runs list`: newest first by queue time.
    IndexSpec(
        "ix_wesctl_runs_queued_at",
        "workflow_runs",
        ("start_time", "run_id"),
        mysql_columns=("start_time", "run_id"),
    ),
    # `runs show` and the replacement of a finished run's task logs (InnoDB already indexes
    # the column of the API's foreign key).
    IndexSpec("ix_wesctl_task_logs_run_id", "task_logs", ("run_id",)),
    # status's history figures: a time window.
    IndexSpec("ix_wesctl_history_at", "run_state_history", ("at",), mysql_columns=("at",)),
)


# Every claim transaction reads the recoverable runs and counts the slots in use; both are few
# whatever the queue's length, so neither may walk an index that holds every queued run.
CLAIM_INDEXES = (
    # Recoveries, oldest first. On MySQL/MariaDB the ranges (state, NULL, NOT NULL) and those
    # of the slot count (state, NOT NULL), (state, NULL, NOT NULL), (state, NULL, NULL, NOT
    # NULL) hold only such runs.
    IndexSpec(
        "ix_wesctl_runs_recoverable",
        "workflow_runs",
        ("start_time", "run_id"),
        RECOVERABLE,
        mysql_columns=("state", "submitted_at", "provider_id", "claimed_by"),
    ),
    # The slot count, read up to the cap among the submitted runs and in full among the rare
    # others (MySQL/MariaDB: ranges of ix_wesctl_runs_recoverable).
    IndexSpec("ix_wesctl_runs_submitted", "workflow_runs", ("run_id",), SUBMITTED),
    IndexSpec("ix_wesctl_runs_being_submitted", "workflow_runs", ("run_id",), BEING_SUBMITTED),
)
# Every index wesctl adds, at the schema's head.
ALL_INDEXES = (*INDEXES, *CLAIM_INDEXES)


def text_widths(model: type[Base], *names: str) -> dict[str, int]:
    """The widths of `model`'s String columns `names`, read from the table definition (what
    PostgreSQL and MySQL enforce), so no copy of a width can drift from it."""
    widths: dict[str, int] = {}
    for name in names:
        column_type = model.__table__.c[name].type
        assert isinstance(column_type, String), name
        assert column_type.length is not None, name
        widths[name] = column_type.length
    return widths
