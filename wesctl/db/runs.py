"""Queries and guarded updates on runs. Functions take a Session and never commit: the caller
owns the transaction."""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from typing import cast as type_cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    delete,
    event,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import Update
from sqlalchemy.types import BINARY

from wesctl.db.engine import MYSQL_BACKENDS, is_mysql, utcnow
from wesctl.db.tables import (
    ACTOR_LENGTH,
    ALL_STATES,
    CANCEL_STATES,
    CLAIM_LOCK,
    NON_TERMINAL_STATES,
    STATE_LENGTH,
    TERMINAL_STATES,
    Lock,
    StateTransition,
    TaskLogRow,
    WorkflowRun,
    text_widths,
)
from wesctl.domain.providers import PROVIDER_TAG
from wesctl.domain.states import RunState
from wesctl.domain.types import TaskLog
from wesctl.errors import SchemaError

# The tables behind the models, for the per-run writes (submissions, sync passes): Core statements
# skip the ORM's bulk-update bookkeeping (about a tenth of a submission's CPU).
RUNS = type_cast(Table, WorkflowRun.__table__)
HISTORY = type_cast(Table, StateTransition.__table__)
TASK_LOGS = type_cast(Table, TaskLogRow.__table__)


# --- what wesctl writes -------------------------------------------------------------------------

LAST_ERROR_LIMIT = 2000  # characters of an error kept in last_error (the history keeps all)
# Identifiers are never cut: a shortened id would name another run, task or claim.
_IDENTITY_COLUMNS = frozenset({"run_id", "provider_id", "submission_key", "claimed_by"})


def fit_run_values(values: dict[str, Any]) -> dict[str, Any]:
    """Cut text values to their workflow_runs column's width (PostgreSQL and MySQL refuse longer
    values, failing the whole statement): a provider status or type longer than its column is
    stored cut, never a crash of the pass; last_error keeps LAST_ERROR_LIMIT characters."""
    fitted = dict(values)
    for name, value in values.items():
        if not isinstance(value, str) or name in _IDENTITY_COLUMNS:
            continue
        length = getattr(RUNS.c[name].type, "length", None)
        if name == "last_error":
            length = LAST_ERROR_LIMIT
        if length is not None and len(value) > length:
            fitted[name] = value[:length]
    return fitted


# --- what the WES API wrote -------------------------------------------------------------------


def dialect_kind(session: Session) -> str:
    """ "postgresql", "mysql" (MySQL and MariaDB) or "sqlite": what the SQL built here differs by,
    and the key of the statements built once per kind."""
    dialect = session.get_bind().dialect
    return "mysql" if is_mysql(dialect) else dialect.name


def resolved_provider(session: Session, default_provider: str) -> ColumnElement[str]:
    """The run's provider as SQL, by the rule in `wesctl.domain.providers`: wesctl's
    provider_type column, else a string tags["provider_type"], else the default; trimmed and
    lower-cased. Tags that are not valid JSON (SQLite stores text) or not an object
    resolve to the default instead of failing the whole statement."""
    return _resolved_provider(dialect_kind(session), default_provider)


@functools.cache
def _resolved_provider(kind: str, default_provider: str) -> ColumnElement[str]:
    column = func.nullif(func.lower(func.trim(WorkflowRun.provider_type)), "")
    path = f"$.{PROVIDER_TAG}"
    if kind == "postgresql":
        tagged = WorkflowRun.tags[PROVIDER_TAG]
        tag = case(
            (func.json_typeof(tagged) == "string", WorkflowRun.tags[PROVIDER_TAG].as_string()),
        )
    elif kind == "mysql":  # JSON is text on MariaDB (checked by the API's CHECK, or not at all)
        extracted = func.json_extract(WorkflowRun.tags, path)
        tag = case(
            (
                func.json_valid(WorkflowRun.tags) == 1,
                case((func.json_type(extracted) == "STRING", func.json_unquote(extracted))),
            )
        )
    else:  # SQLite: JSON is text, and json_type() raises on malformed text, so check first
        tag = case(
            (
                func.json_valid(WorkflowRun.tags) == 1,
                case(
                    (
                        func.json_type(WorkflowRun.tags, path) == "text",
                        func.json_extract(WorkflowRun.tags, path),
                    )
                ),
            )
        )
    tag_name = func.nullif(func.lower(func.trim(tag)), "")
    return func.coalesce(column, tag_name, literal(default_provider))


def state_in(values: Sequence[str]) -> ColumnElement[bool]:
    """`state IN (...)` with the values written into the statement: a partial index over a set
    of states serves only queries that name those states (SQLite matches the very terms of
    the index's WHERE clause, bound parameters never), in the order `tables` lists them."""
    return RUNS.c.state.in_(bindparam(None, list(values), expanding=True, literal_execute=True))


def state_is(session: Session, *values: str) -> ColumnElement[bool]:
    """The run's state is exactly one of `values`. MySQL compares text in the column's collation,
    which on the WES API's tables (utf8mb4_general_ci) ignores case and trailing spaces, so
    `queued` or `QUEUED ` would pass for QUEUED there: its bytes are compared too (after the
    plain comparison, which can use the index on state)."""
    return _state_is(is_mysql(session.get_bind().dialect), values)


@functools.cache
def _state_is(mysql: bool, values: tuple[str, ...]) -> ColumnElement[bool]:
    plain = state_in(values)
    if not mysql:
        return plain
    return and_(plain, type_coerce(cast(RUNS.c.state, BINARY), String).in_(values))


def _state_is_bound(mysql: bool) -> ColumnElement[bool]:
    """`state_is` for one state given as the parameter `w_state`, for statements built once."""
    plain = RUNS.c.state == bindparam("w_state")
    if not mysql:
        return plain
    return and_(plain, type_coerce(cast(RUNS.c.state, BINARY), String) == bindparam("w_state"))


def run_columns(
    session: Session, default_provider: str
) -> tuple[InstrumentedAttribute[Any] | ColumnElement[Any], ...]:
    """The columns every per-run read starts with: id, state, the resolved provider and where
    the run is at that provider."""
    return (
        WorkflowRun.run_id,
        WorkflowRun.state,
        resolved_provider(session, default_provider).label("provider"),
        WorkflowRun.provider_id,
    )


@dataclass(frozen=True)
class ProviderFilter:
    """Which runs a command serves, by resolved provider: never those in `skip` (known providers
    this host does not serve, or that are unusable this pass); only `only` when set."""

    default: str
    skip: frozenset[str] = frozenset()
    only: str | None = None

    def conditions(self, session: Session) -> list[ColumnElement[bool]]:
        return self.conditions_for(dialect_kind(session))

    def conditions_for(self, kind: str) -> list[ColumnElement[bool]]:
        provider = _resolved_provider(kind, self.default)
        conditions: list[ColumnElement[bool]] = []
        if self.skip:
            conditions.append(provider.not_in(sorted(self.skip)))
        if self.only is not None:
            conditions.append(provider == self.only)
        return conditions


def decode_json(text: str | None, column: str) -> tuple[Any, str | None]:
    """Decode a JSON column read as text: (value, None), or (None, why) for text that is not
    JSON (SQLite accepts any text in a JSON column; the ORM would raise mid-statement)."""
    if text is None:
        return None, None
    try:
        return json.loads(text), None
    except (TypeError, ValueError) as exc:
        return None, f"{column} is not valid JSON ({exc})"


@dataclass(frozen=True)
class QueuedRun:
    """A run read for submission, its JSON columns decoded one row at a time so a malformed
    row is reported (`unreadable`) instead of failing the statement for every run."""

    run_id: str
    provider: str
    state: str
    workflow_url: str | None
    workflow_type: str | None
    workflow_type_version: str | None
    workflow_engine: str | None
    workflow_engine_version: str | None
    workflow_params: Any
    tags: Any
    unreadable: str | None
    start_time: datetime | None
    provider_id: str | None
    submission_key: str | None
    submit_attempts: int
    claimed_by: str | None
    claim_expires_at: datetime | None
    submitted: bool
    last_error: str | None


def _queued_runs(
    session: Session, default_provider: str, *conditions: ColumnElement[bool]
) -> list[QueuedRun]:
    query = _queued_select(dialect_kind(session), default_provider).where(*conditions)
    return _read_queued(session, query, {})


@functools.cache
def _queued_select(kind: str, default_provider: str) -> Select[Any]:
    """The columns of a run read for submission, oldest first."""
    return select(
        WorkflowRun.run_id,
        _resolved_provider(kind, default_provider).label("provider"),
        WorkflowRun.state,
        WorkflowRun.workflow_url,
        WorkflowRun.workflow_type,
        WorkflowRun.workflow_type_version,
        WorkflowRun.workflow_engine,
        WorkflowRun.workflow_engine_version,
        cast(WorkflowRun.workflow_params, Text).label("workflow_params"),
        cast(WorkflowRun.tags, Text).label("tags"),
        WorkflowRun.start_time,
        WorkflowRun.provider_id,
        WorkflowRun.submission_key,
        func.coalesce(WorkflowRun.submit_attempts, 0).label("submit_attempts"),
        WorkflowRun.claimed_by,
        WorkflowRun.claim_expires_at,
        WorkflowRun.submitted_at,
        WorkflowRun.last_error,
    ).order_by(WorkflowRun.start_time, WorkflowRun.run_id)


def _read_queued(
    session: Session, query: Select[Any], parameters: dict[str, Any]
) -> list[QueuedRun]:
    runs: list[QueuedRun] = []
    for row in session.execute(query, parameters):
        values = dict(row._mapping)
        params, params_error = decode_json(values.pop("workflow_params"), "workflow_params")
        tags, tags_error = decode_json(values.pop("tags"), "tags")
        submitted_at = values.pop("submitted_at")
        runs.append(
            QueuedRun(
                **values,
                workflow_params=params,
                tags=tags,
                unreadable=params_error or tags_error,
                submitted=submitted_at is not None,
            )
        )
    return runs


def run_exists(session: Session, run_id: str) -> bool:
    found = session.scalar(select(WorkflowRun.run_id).where(WorkflowRun.run_id == run_id))
    return found is not None


def insert_run(session: Session, run: WorkflowRun) -> None:
    session.add(run)
    session.flush()


@dataclass(frozen=True)
class RunSummary:
    """A run as `runs list` and `runs show` present it (no JSON column is read, so a malformed
    row lists like any other)."""

    run_id: str
    state: str
    provider: str
    provider_id: str | None
    provider_status: str | None
    queued_at: datetime | None
    ended_at: datetime | None
    last_error: str | None
    submit_attempts: int
    submission_key: str | None
    submitted_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "state": self.state,
            "provider": self.provider,
            "provider_id": self.provider_id,
            "provider_status": self.provider_status,
            "queued_at": iso_time(self.queued_at),
            "ended_at": iso_time(self.ended_at),
            "last_error": self.last_error,
        }


def iso_time(value: datetime | None) -> str | None:
    """A naive UTC time as ISO 8601 with a Z, to the second (how wesctl shows times)."""
    return value.isoformat(timespec="seconds") + "Z" if value is not None else None


def run_summaries(
    session: Session,
    providers: ProviderFilter,
    *,
    run_id: str | None = None,
    states: Sequence[str] = (),
    queued_before: datetime | None = None,
    queued_after: datetime | None = None,
    limit: int | None = None,
) -> list[RunSummary]:
    """Runs newest first (by queue time, then run id), filtered by id, state, queue time and
    provider. The order is that of ix_wesctl_runs_queued_at (ix_wesctl_runs_finished for
    finished states), walked backwards, so about `limit` rows are read however many runs
    finished long ago; unfinished states are read from ix_wesctl_runs_unfinished and sorted."""
    query = select(
        *run_columns(session, providers.default),
        WorkflowRun.provider_status,
        WorkflowRun.start_time.label("queued_at"),
        WorkflowRun.end_time.label("ended_at"),
        WorkflowRun.last_error,
        func.coalesce(WorkflowRun.submit_attempts, 0).label("submit_attempts"),
        WorkflowRun.submission_key,
        WorkflowRun.submitted_at,
    ).where(*providers.conditions(session))
    if run_id is not None:
        query = query.where(WorkflowRun.run_id == run_id)
    if states:
        query = query.where(state_is(session, *states))
        for kind in (TERMINAL_STATES, NON_TERMINAL_STATES):
            if set(states) <= set(kind):  # names the set a partial index covers (see tables)
                query = query.where(state_in(kind))
    if queued_before is not None:
        query = query.where(WorkflowRun.start_time < queued_before)
    if queued_after is not None:
        query = query.where(WorkflowRun.start_time >= queued_after)
    query = query.order_by(WorkflowRun.start_time.desc(), WorkflowRun.run_id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [RunSummary(**row._mapping) for row in session.execute(query)]


def run_request(session: Session, run_id: str) -> dict[str, Any]:
    """The run's request columns other than the JSON ones."""
    row = session.execute(
        select(
            WorkflowRun.workflow_url,
            WorkflowRun.workflow_type,
            WorkflowRun.workflow_type_version,
            WorkflowRun.workflow_engine,
            WorkflowRun.workflow_engine_version,
        ).where(WorkflowRun.run_id == run_id)
    ).one()
    return dict(row._mapping)


def run_documents(session: Session, run_id: str) -> dict[str, tuple[Any, str | None]]:
    """The run's JSON columns, each as (value, None) or (None, why it cannot be decoded)."""
    columns = ("workflow_params", "tags", "provider_metadata", "outputs")
    row = session.execute(
        select(*(cast(RUNS.c[name], Text).label(name) for name in columns)).where(
            WorkflowRun.run_id == run_id
        )
    ).one()
    return {name: decode_json(getattr(row, name), name) for name in columns}


def task_logs(session: Session, run_id: str) -> list[TaskLogRow]:
    query = (
        select(TaskLogRow)
        .where(TaskLogRow.run_id == run_id)
        .order_by(TaskLogRow.start_time, TaskLogRow.name, TaskLogRow.id)
    )
    return list(session.scalars(query))


def history(session: Session, run_id: str) -> list[StateTransition]:
    query = (
        select(StateTransition)
        .where(StateTransition.run_id == run_id)
        .order_by(StateTransition.at, StateTransition.id)
    )
    return list(session.scalars(query))


def _history_row(
    run_id: str,
    from_state: str | None,
    to_state: str,
    reason: str | None,
    actor: str,
    at: datetime,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "at": at,
        "from_state": from_state[:STATE_LENGTH] if from_state else from_state,
        "to_state": to_state[:STATE_LENGTH],
        "reason": reason,
        "actor": actor[:ACTOR_LENGTH],
    }


def add_transition(
    session: Session,
    run_id: str,
    from_state: str | None,
    to_state: str,
    reason: str | None,
    actor: str,
    at: datetime | None = None,
) -> None:
    """Append one row to the state history (a plain INSERT: no unit-of-work flush)."""
    session.execute(
        _INSERT_HISTORY, _history_row(run_id, from_state, to_state, reason, actor, at or utcnow())
    )


# Statements of the submission path are built once, with bound parameters: SQLAlchemy then
# computes each one's cache key once instead of per run (building a statement per call cost
# about as much CPU as sending it).
_INSERT_HISTORY = insert(HISTORY)


_transitions = logging.getLogger("wesctl.transition")


@dataclass(frozen=True)
class Change:
    """Who changes a run's state and why: what its history row and its log line say."""

    actor: str
    provider: str | None
    reason: str


@dataclass(frozen=True)
class Move:
    """One guarded state change: the run goes from `from_state` to `to_state` with `values`."""

    run_id: str
    from_state: str
    to_state: str
    change: Change
    values: dict[str, Any] = field(default_factory=dict)


def record_transition(
    session: Session, run_id: str, from_state: str | None, to_state: str, change: Change
) -> None:
    """Add the history row of a state change (or of a step that keeps the state, such as a
    stop sent) and, for a change, one key=value log line once the transaction commits."""
    _record_transitions(session, [(run_id, from_state, to_state, change)])


def _record_transitions(
    session: Session, steps: Sequence[tuple[str, str | None, str, Change]]
) -> None:
    """The history rows of `steps` in one INSERT, and their log lines after the commit."""
    if not steps:
        return
    now = utcnow()
    rows = [
        _history_row(run_id, from_state, to_state, change.reason, change.actor, now)
        for run_id, from_state, to_state, change in steps
    ]
    session.execute(_INSERT_HISTORY, rows)
    changed = [step for step in steps if step[1] != step[2]]
    if changed:
        session.info.setdefault(_PENDING_LINES, []).extend(changed)


# Transition log lines wait in `session.info` until their transaction commits and are dropped if
# it rolls back (a listener attached to one session outlived a rollback and logged the change at
# the session's next commit). One listener pair on the Session class serves every session.
_PENDING_LINES = "wesctl_transition_lines"


@event.listens_for(Session, "after_commit")
def _log_committed_transitions(session: Session) -> None:
    for step in session.info.pop(_PENDING_LINES, ()):
        _log_transition(*step)


@event.listens_for(Session, "after_rollback")
def _drop_rolled_back_transitions(session: Session) -> None:
    session.info.pop(_PENDING_LINES, None)


def move(
    session: Session,
    run_id: str,
    *,
    from_state: str,
    to_state: str,
    change: Change,
    values: dict[str, Any] | None = None,
) -> bool:
    """The one guarded state change (`move_many` for one run). False when another writer changed
    the run first: nothing is written then."""
    step = Move(run_id, from_state, to_state, change, values or {})
    return bool(move_many(session, [step]))


def move_many(session: Session, moves: Sequence[Move]) -> set[str]:
    """Compare-and-swap each run from its `from_state` to its `to_state` (with its `values`) and
    record the winners: their history rows in one INSERT, their log lines once the transaction
    commits. Return the ids of the runs moved; a run another writer changed first is left as
    it is, and nothing is written for it."""
    won = [
        step
        for step in moves
        if transition(
            session,
            step.run_id,
            from_state=step.from_state,
            values={**step.values, "state": step.to_state},
        )
    ]
    _record_transitions(
        session, [(step.run_id, step.from_state, step.to_state, step.change) for step in won]
    )
    return {step.run_id for step in won}


def _log_transition(run_id: str, from_state: str | None, to_state: str, change: Change) -> None:
    _transitions.info(
        "run=%s provider=%s from=%s to=%s reason=%s",
        run_id,
        change.provider or "-",
        from_state or "-",
        to_state,
        change.reason.replace("\n", " "),
    )


# --- submission claims ------------------------------------------------------------------------


def lock_claims(session: Session) -> int:
    """Serialise claim transactions so the concurrency cap holds across processes and hosts, and
    return the claim ledger (`grant_slots`). It must be the transaction's first statement.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: every wesctl transaction already
    starts with BEGIN IMMEDIATE, which takes the database write lock. MySQL/MariaDB: the claim
    row of wesctl_locks, SELECT ... FOR UPDATE (InnoDB releases it at commit or rollback). Under
    READ COMMITTED every later statement sees what the previous holder committed. Under
    REPEATABLE READ too: a locking read takes no snapshot, so the transaction's snapshot is taken
    by its first plain read, after the lock is held; and the claim itself locks and re-reads its
    rows (claim_runs), whatever the snapshot.
    """
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        session.execute(_ADVISORY_LOCK)
    granted = session.scalar(_LEDGER_FOR_UPDATE if is_mysql(dialect) else _LEDGER)
    if granted is None:
        raise SchemaError(
            "the claim row is missing from wesctl_locks; restore it with "
            f"INSERT INTO wesctl_locks (name, slots_granted) VALUES ('{CLAIM_LOCK}', 0)"
        )
    return int(granted)


def grant_slots(session: Session, count: int) -> None:
    """Add `count` to the claim ledger, in the transaction that gives `count` runs a concurrency
    slot they did not hold (a new claim; a retry that keeps a live provider run).

    Runs gain a slot only through such changes and lose it by finishing or by a claim expiring,
    so a process that counted N runs holding a slot when the ledger read L knows that later at
    most N + (ledger now - L) do, without counting again (`services.submit.SlotBound`)."""
    session.execute(_GRANT, {"granted": count})


# An arbitrary constant naming wesctl's claim lock among PostgreSQL advisory locks.
CLAIM_LOCK_KEY = 0x7765735F636C6169  # "wes_clai"
_ADVISORY_LOCK = select(func.pg_advisory_xact_lock(CLAIM_LOCK_KEY))
_LOCKS = type_cast(Table, Lock.__table__)
_LEDGER = select(_LOCKS.c.slots_granted).where(_LOCKS.c.name == CLAIM_LOCK)
_LEDGER_FOR_UPDATE = _LEDGER.with_for_update()
_GRANT = (
    update(_LOCKS)
    .where(_LOCKS.c.name == CLAIM_LOCK)
    .values(slots_granted=_LOCKS.c.slots_granted + bindparam("granted"))
)


def claim_free(now: datetime) -> ColumnElement[bool]:
    return or_(WorkflowRun.claimed_by.is_(None), WorkflowRun.claim_expires_at <= now)


def count_in_flight(session: Session, now: datetime, *, up_to: int) -> int:
    """Runs that occupy a concurrency slot (at a provider and not finished, or being submitted),
    counted up to `up_to`: the cap, beyond which the count cannot change what a claim may take,
    so a claim reads at most that many rows however many runs are in flight.

    Summed over three disjoint sets: the submitted runs (`tables.SUBMITTED`, read up to
    `up_to`), and the few not submitted yet, with a provider id or with an unexpired claim (each
    implies `tables.BEING_SUBMITTED` term by term). Every engine counts them through indexes of
    such runs only (PostgreSQL and SQLite: the partial ix_wesctl_runs_submitted and
    ix_wesctl_runs_being_submitted; MySQL/MariaDB: ranges of ix_wesctl_runs_recoverable), never
    through the runs queued for a slot nor, beyond the cap, through the runs in flight."""
    unfinished = state_is(session, *NON_TERMINAL_STATES)
    submitted = WorkflowRun.submitted_at.is_not(None)
    unsubmitted = WorkflowRun.submitted_at.is_(None)
    at_provider = WorkflowRun.provider_id.is_not(None)
    parts = (
        (submitted,),
        (unsubmitted, at_provider),
        (
            unsubmitted,
            WorkflowRun.provider_id.is_(None),
            WorkflowRun.claimed_by.is_not(None),
            WorkflowRun.claim_expires_at > now,
        ),
    )
    submitted_runs, *rare = [select(literal(1)).where(unfinished, *part) for part in parts]
    # Only the submitted runs can be many; a LIMIT on the rare sets would tempt the planner into
    # a scan it expects to stop early.
    counts = [
        select(func.count()).select_from(query.subquery()).scalar_subquery()
        for query in (submitted_runs.limit(up_to), *rare)
    ]
    return min(up_to, int(session.scalar(select(counts[0] + counts[1] + counts[2])) or 0))


def claimable_run_ids(
    session: Session,
    now: datetime,
    *,
    limit: int,
    needs_slot: bool,
    providers: ProviderFilter,
    run_ids: Sequence[str] | None = None,
    exclude: Collection[str] = (),
) -> list[str]:
    """Return ids of QUEUED, never-submitted runs whose claim is free, oldest first (of `run_ids`
    if given, never of `exclude`), of the providers `providers` lets through.

    With `needs_slot`, only runs with no provider id yet (new submissions); otherwise only runs
    whose provider id was recorded by an interrupted attempt (recoveries, which hold a slot
    already).
    """
    statement = _claimable_statement(
        dialect_kind(session), providers, needs_slot, run_ids is not None, bool(exclude)
    )
    parameters: dict[str, Any] = {"c_now": now, "c_limit": limit}
    if run_ids is not None:
        parameters["c_run_ids"] = list(run_ids)
    if exclude:
        parameters["c_exclude"] = list(exclude)
    return list(session.scalars(statement, parameters))


# Claims run once per batch of runs, and building their statements (SQLAlchemy's expressions and
# cache keys) cost more CPU than sending them: they are built once per shape, values bound.
def _claimable_guard(kind: str) -> tuple[ColumnElement[bool], ...]:
    """QUEUED, never submitted, claim free at the bound time `c_now`."""
    now = bindparam("c_now", type_=WorkflowRun.claim_expires_at.type)
    return (
        _state_is(kind == "mysql", (RunState.QUEUED.value,)),
        WorkflowRun.submitted_at.is_(None),
        or_(WorkflowRun.claimed_by.is_(None), WorkflowRun.claim_expires_at <= now),
    )


@functools.cache
def _claimable_statement(
    kind: str, providers: ProviderFilter, needs_slot: bool, of_runs: bool, excluding: bool
) -> Select[tuple[str]]:
    at_provider = WorkflowRun.provider_id
    query = select(WorkflowRun.run_id).where(
        *_claimable_guard(kind),
        at_provider.is_(None) if needs_slot else at_provider.is_not(None),
        *providers.conditions_for(kind),
    )
    if of_runs:
        query = query.where(WorkflowRun.run_id.in_(bindparam("c_run_ids", expanding=True)))
    if excluding:
        query = query.where(WorkflowRun.run_id.not_in(bindparam("c_exclude", expanding=True)))
    limit = bindparam("c_limit", type_=Integer)
    return query.order_by(WorkflowRun.start_time, WorkflowRun.run_id).limit(limit)


@functools.cache
def _claim_statements(kind: str, default_provider: str) -> tuple[Select[Any], Update, Select[Any]]:
    """claim_runs's locking read, its guarded update and its read of the claimed runs."""
    guard = _claimable_guard(kind)
    chosen = WorkflowRun.run_id.in_(bindparam("c_run_ids", expanding=True))
    lock = select(WorkflowRun.run_id).where(chosen, *guard).with_for_update()
    won = RUNS.c.run_id.in_(bindparam("c_won", expanding=True))
    claim = (
        update(RUNS)
        .where(won, *guard)
        .values(
            claimed_by=bindparam("c_owner"),
            claim_expires_at=bindparam("c_expires", type_=RUNS.c.claim_expires_at.type),
            submit_attempts=RUNS.c.submit_attempts + 1,
            submission_key=func.coalesce(RUNS.c.submission_key, literal("wesctl-") + RUNS.c.run_id),
        )
    )
    read = _queued_select(kind, default_provider).where(
        WorkflowRun.run_id.in_(bindparam("c_won", expanding=True))
    )
    return lock, claim, read


def claim_runs(
    session: Session,
    run_ids: Sequence[str],
    *,
    owner: str,
    now: datetime,
    lease: timedelta,
    default_provider: str,
) -> list[QueuedRun]:
    """Claim `run_ids` for submission; return the rows this call won.

    The rows that pass the guard (QUEUED, never submitted, claim free) are read with a locking
    read, which sees the latest committed rows under any isolation level and holds them until
    commit, then updated by the same guard: a compare-and-swap that needs no UPDATE ... RETURNING
    (MariaDB has none). Of two processes racing for a run, exactly one gets it back. The
    submission key is fixed here, before any provider call, and the attempt counter goes up.
    """
    if not run_ids:
        return []
    lock, claim, read = _claim_statements(dialect_kind(session), default_provider)
    won = list(session.scalars(lock, {"c_run_ids": list(run_ids), "c_now": now}))
    if not won:
        return []
    parameters = {"c_won": won, "c_now": now, "c_owner": owner, "c_expires": now + lease}
    result = type_cast(CursorResult[Any], session.execute(claim, parameters))
    assert result.rowcount == len(won), "rows locked by this transaction still pass its guard"
    return _read_queued(session, read, {"c_won": won})


def _changed_rows(session: Session, statement: Update) -> int:
    """Rows `statement` matched: the result of a guarded update on every engine, MariaDB having
    no UPDATE ... RETURNING (SQLAlchemy connects PyMySQL with FOUND_ROWS, so a row whose values
    did not change still counts)."""
    result = type_cast(CursorResult[Any], session.execute(statement))
    return result.rowcount


def record_provider_id(
    session: Session, run_id: str, *, owner: str, provider_id: str, provider_type: str
) -> bool:
    """Store the provider's id once known; False if `owner` no longer holds the claim."""
    parameters = {
        "w_run_id": run_id,
        "w_owner": owner,
        "provider_id": provider_id,
        "provider_type": provider_type,
    }
    result = type_cast(CursorResult[Any], session.execute(_RECORD_PROVIDER_ID, parameters))
    return result.rowcount == 1


_OWNED_BY = (RUNS.c.run_id == bindparam("w_run_id"), RUNS.c.claimed_by == bindparam("w_owner"))
_RECORD_PROVIDER_ID = update(RUNS).where(*_OWNED_BY)


def finish_claim(
    session: Session,
    run_id: str,
    *,
    owner: str,
    expected_state: str | None,
    values: dict[str, Any],
) -> str | None:
    """Apply `values` and release `owner`'s claim, if it still holds it and the run is in
    `expected_state` (any state when None). Return the state the run was in, or None if the
    guard failed."""
    parameters: dict[str, Any] = {"w_run_id": run_id, "w_owner": owner}
    if expected_state is not None:
        parameters["w_state"] = expected_state
        current: str | None = expected_state  # the guard says what it was: no SELECT needed
    else:
        # A locking read: the state returned is the one this update replaces.
        current = session.scalar(_CLAIMED_STATE, parameters)
        if current is None:
            return None
    statement = _finish_claim_statement(
        expected_state is not None, is_mysql(session.get_bind().dialect)
    )
    parameters |= {"claimed_by": None, "claim_expires_at": None, **fit_run_values(values)}
    result = type_cast(CursorResult[Any], session.execute(statement, parameters))
    return current if result.rowcount == 1 else None


_CLAIMED_STATE = select(RUNS.c.state).where(*_OWNED_BY).with_for_update()


@functools.cache
def _finish_claim_statement(guarded: bool, mysql: bool) -> Update:
    """finish_claim's UPDATE, its SET clause given by the parameters' column names."""
    if guarded:
        return update(RUNS).where(*_OWNED_BY, _state_is_bound(mysql))
    return update(RUNS).where(*_OWNED_BY)


def transition(session: Session, run_id: str, *, from_state: str, values: dict[str, Any]) -> bool:
    """Compare-and-swap: apply `values` only if the run is still in `from_state`."""
    statement = (
        update(RUNS)
        .where(RUNS.c.run_id == run_id, state_is(session, from_state))
        .values(**fit_run_values(values))
    )
    return _changed_rows(session, statement) == 1


def mark_cancel_sent(session: Session, run_id: str, *, error: str | None = None) -> None:
    """Record that the provider was just asked to stop the run (or refused to, with `error`;
    a refusal is the provider's definitive answer, so the run is then taken as stopped)."""
    now = utcnow()
    values: dict[str, Any] = {"cancel_sent_at": now}
    if error is not None:
        values["last_error"] = error
        values["provider_stopped_at"] = now
    session.execute(
        update(WorkflowRun).where(WorkflowRun.run_id == run_id).values(**fit_run_values(values))
    )


def mark_stopped(session: Session, run_id: str, *, ended_at: datetime | None) -> None:
    """The provider run of a cancelled run is final: stop asking. A run already CANCELED (by
    the WES API, which sets no end time, or before its submission was recorded) gets its end
    time now (or the provider's)."""
    now = utcnow()
    session.execute(
        update(WorkflowRun)
        .where(WorkflowRun.run_id == run_id)
        .values(
            provider_stopped_at=now,
            end_time=case(
                (
                    and_(
                        state_is(session, RunState.CANCELED.value), WorkflowRun.end_time.is_(None)
                    ),
                    literal(ended_at or now, DateTime),
                ),
                else_=WorkflowRun.end_time,
            ),
        )
    )


@dataclass(frozen=True)
class CancelTarget:
    """What cancelling a run needs to know (no JSON column is decoded)."""

    run_id: str
    state: str
    provider: str
    provider_id: str | None
    submitted: bool
    stopped: bool  # the provider run was seen final


def cancel_target(session: Session, run_id: str, default_provider: str) -> CancelTarget | None:
    row = session.execute(
        select(
            *run_columns(session, default_provider),
            WorkflowRun.submitted_at,
            WorkflowRun.provider_stopped_at,
        ).where(WorkflowRun.run_id == run_id)
    ).first()
    if row is None:
        return None
    return CancelTarget(
        run_id=row.run_id,
        state=row.state,
        provider=row.provider,
        provider_id=row.provider_id,
        submitted=row.submitted_at is not None,
        stopped=row.provider_stopped_at is not None,
    )


def keyset_batch(
    query: Select[Any], *, after_run_id: str | None, run_ids: Sequence[str] | None, limit: int
) -> Select[Any]:
    """The next batch of `query`'s runs by run id (`run_id > ? ORDER BY run_id LIMIT n`), or of
    those among `run_ids`. A batch of all runs of some states is never read along the primary
    key: MySQL's planner would walk it from the key on to save a sort, through every finished
    run after it, rather than take the state index (seen at 20,000 finished runs). The other
    engines read such batches from a partial index."""
    if after_run_id is not None:
        query = query.where(WorkflowRun.run_id > after_run_id)
    if run_ids is not None:
        query = query.where(WorkflowRun.run_id.in_(list(run_ids)))
    else:
        for dialect in MYSQL_BACKENDS:
            query = query.with_hint(WorkflowRun, "IGNORE INDEX (PRIMARY)", dialect)
    return query.order_by(WorkflowRun.run_id).limit(limit)


@dataclass(frozen=True)
class PendingStop:
    run_id: str
    state: str
    provider: str
    provider_id: str


def pending_stops(
    session: Session,
    now: datetime,
    *,
    after_run_id: str | None,
    limit: int,
    providers: ProviderFilter,
    run_ids: Sequence[str] | None = None,
) -> list[PendingStop]:
    """Next batch (keyset by run_id) of cancelled runs (CANCELING, or CANCELED by the WES API or
    an operator) whose provider run was not yet seen final and that no submission holds (the
    submitter stops what it starts itself)."""
    query = select(*run_columns(session, providers.default)).where(
        state_is(session, *CANCEL_STATES),
        WorkflowRun.provider_id.is_not(None),
        WorkflowRun.provider_stopped_at.is_(None),
        claim_free(now),
        *providers.conditions(session),
    )
    query = keyset_batch(query, after_run_id=after_run_id, run_ids=run_ids, limit=limit)
    return [
        PendingStop(row.run_id, row.state, row.provider, row.provider_id)
        for row in session.execute(query)
    ]


# --- status sync ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackedRun:
    """The few columns sync-status needs; large JSON columns are never loaded."""

    run_id: str
    state: str
    provider: str
    provider_id: str
    provider_status: str | None
    not_found_count: int
    status_checked_at: datetime | None


def in_flight_batch(
    session: Session,
    *,
    after_run_id: str | None,
    limit: int,
    providers: ProviderFilter,
    run_ids: Sequence[str] | None = None,
    checked_before: datetime | None = None,
) -> list[TrackedRun]:
    """Next batch (keyset-paginated by run_id) of submitted runs that are not finished, of the
    providers `providers` lets through."""
    query = select(
        *run_columns(session, providers.default),
        WorkflowRun.provider_status,
        func.coalesce(WorkflowRun.not_found_count, 0).label("not_found_count"),
        WorkflowRun.status_checked_at,
    ).where(
        state_is(session, *NON_TERMINAL_STATES),
        WorkflowRun.provider_id.is_not(None),
        # Submitted, or cancelled during a submission whose process died (its claim is free).
        or_(
            WorkflowRun.submitted_at.is_not(None),
            and_(state_is(session, RunState.CANCELING.value), claim_free(utcnow())),
        ),
        *providers.conditions(session),
    )
    if checked_before is not None:
        query = query.where(
            or_(
                WorkflowRun.status_checked_at.is_(None),
                WorkflowRun.status_checked_at < checked_before,
            )
        )
    query = keyset_batch(query, after_run_id=after_run_id, run_ids=run_ids, limit=limit)
    return [TrackedRun(**row._mapping) for row in session.execute(query)]


# How stale a run's check time may get before a pass writes it again. A pass that finds a run
# unchanged writes nothing unless its check time is older than this, so `--stale-after` is exact
# to this resolution and may re-check runs checked less than this ago (never skips one).
CHECKED_RESOLUTION = timedelta(hours=1)


def mark_checked(session: Session, run_ids: Sequence[str], now: datetime) -> None:
    """Remember that these runs were checked now (for --stale-after), in one statement; a pass
    passes only the unchanged runs whose check time is older than CHECKED_RESOLUTION."""
    if run_ids:
        session.execute(
            update(RUNS).where(RUNS.c.run_id.in_(list(run_ids))).values(status_checked_at=now)
        )


def set_not_found_counts(session: Session, counts: Sequence[tuple[str, str, int]]) -> None:
    """Store each (run id, state read, count) not-found count, guarded by the state read (a run
    that changed meanwhile keeps its row as the other writer left it)."""
    for run_id, from_state, count in counts:
        transition(session, run_id, from_state=from_state, values={"not_found_count": count})


def replace_task_logs(session: Session, logs_by_run: Mapping[str, Sequence[TaskLog]]) -> None:
    """Replace each run's task_logs rows with its logs: one DELETE and one INSERT for them all
    (ids are stable per run and task)."""
    if not logs_by_run:
        return
    session.execute(delete(TaskLogRow).where(TaskLogRow.run_id.in_(list(logs_by_run))))
    rows = [
        _task_log_row(run_id, index, log)
        for run_id, logs in logs_by_run.items()
        for index, log in enumerate(logs)
    ]
    if rows:
        session.execute(insert(TASK_LOGS), rows)


def _task_log_row(run_id: str, index: int, log: TaskLog) -> dict[str, Any]:
    key = f"{run_id}/{index}/{log.task_id or log.name}"
    return {
        "id": str(uuid.uuid5(_TASK_LOG_NAMESPACE, key)),
        "run_id": run_id,
        "name": log.name[: _TASK_LOG_WIDTHS["name"]],
        "cmd": list(log.cmd) if log.cmd is not None else None,
        "start_time": log.start_time,
        "end_time": log.end_time,
        "stdout": log.stdout[: _TASK_LOG_WIDTHS["stdout"]] if log.stdout else None,
        "stderr": log.stderr[: _TASK_LOG_WIDTHS["stderr"]] if log.stderr else None,
        "exit_code": log.exit_code,
        "system_logs": list(log.system_logs),
    }


# Widths of the WES API's task_logs columns wesctl fills with text (PostgreSQL enforces them).
_TASK_LOG_WIDTHS = text_widths(TaskLogRow, "name", "stdout", "stderr")
_TASK_LOG_NAMESPACE = uuid.UUID("6f1d3c1e-6a53-4c0e-9a8e-1f6f2f0b7a11")


def queued_run(session: Session, run_id: str, default_provider: str) -> QueuedRun | None:
    """One run as submission reads it (whatever its state), or None."""
    found = _queued_runs(session, default_provider, WorkflowRun.run_id == run_id)
    return found[0] if found else None


def queued_unsubmitted(session: Session, providers: ProviderFilter) -> list[QueuedRun]:
    """QUEUED runs never submitted of the providers `providers` lets through, oldest first (for
    a dry run)."""
    return _queued_runs(
        session,
        providers.default,
        state_is(session, RunState.QUEUED.value),
        WorkflowRun.submitted_at.is_(None),
        *providers.conditions(session),
    )


def waiting_by_provider(
    session: Session, default_provider: str, providers: Collection[str]
) -> dict[str, int]:
    """How many QUEUED, never-submitted runs wait for each of `providers` (this host does not
    serve them)."""
    if not providers:
        return {}
    provider = resolved_provider(session, default_provider)
    query = (
        select(provider, func.count())
        .where(
            state_is(session, RunState.QUEUED.value),
            WorkflowRun.submitted_at.is_(None),
            provider.in_(sorted(providers)),
        )
        .group_by(provider)
    )
    return {str(name): int(count) for name, count in session.execute(query)}


def last_errors_by_provider(
    session: Session, default_provider: str, prefix: str
) -> dict[str, tuple[int, str]]:
    """Per provider: how many QUEUED, never-submitted runs carry a last_error starting with
    `prefix`, and the latest such error text (by the longest-waiting run's order)."""
    provider = resolved_provider(session, default_provider)
    query = (
        select(provider, func.count(), func.max(WorkflowRun.last_error))
        .where(
            state_is(session, RunState.QUEUED.value),
            WorkflowRun.submitted_at.is_(None),
            WorkflowRun.last_error.startswith(prefix, autoescape=True),
        )
        .group_by(provider)
    )
    return {str(name): (int(count), str(error)) for name, count, error in session.execute(query)}


def inexact_states(session: Session) -> dict[str, int]:
    """Run counts per stored state that is not exactly a WES state (`queued`, `QUEUED `): such
    runs match no state wesctl acts on, so they are reported rather than silently left.

    PostgreSQL and SQLite read them from their own partial index. MySQL's collation makes
    `queued` equal to QUEUED, so there the index's ranges give the states unlike any WES state
    and the runs of unfinished ones, whose bytes are then compared; a finished state in another
    spelling (`complete`) is not reported there, as finding it would read every finished run
    (wesctl acts on no finished run, however spelled)."""
    if not is_mysql(session.get_bind().dialect):
        inexact = not_(state_in(ALL_STATES))
    else:
        exact = type_coerce(cast(RUNS.c.state, BINARY), String).in_(ALL_STATES)
        inexact = or_(not_(state_in(ALL_STATES)), and_(state_in(NON_TERMINAL_STATES), not_(exact)))
    query = select(WorkflowRun.state, func.count()).where(inexact).group_by(WorkflowRun.state)
    return {str(state): int(count) for state, count in session.execute(query)}


@dataclass(frozen=True)
class QueueStats:
    queued: int
    oldest_queued_age: float
    in_flight: dict[str, int]
    stuck: dict[str, int]


def queue_stats(session: Session, now: datetime, *, stuck_after: int) -> QueueStats:
    """Queue depth, oldest queued age, and runs in flight / stuck per provider (provider_type is
    always set once a run is submitted)."""
    waiting = and_(state_is(session, RunState.QUEUED.value), WorkflowRun.submitted_at.is_(None))
    queued, oldest = session.execute(
        select(func.count(), func.min(WorkflowRun.start_time)).where(waiting)
    ).one()
    flying = and_(state_is(session, *NON_TERMINAL_STATES), WorkflowRun.submitted_at.is_not(None))
    in_flight = {
        str(provider): int(count)
        for provider, count in session.execute(
            select(WorkflowRun.provider_type, func.count())
            .where(flying)
            .group_by(WorkflowRun.provider_type)
        )
    }
    stuck = {
        str(provider): int(count)
        for provider, count in session.execute(
            select(WorkflowRun.provider_type, func.count())
            .where(
                flying,
                func.coalesce(WorkflowRun.provider_changed_at, WorkflowRun.submitted_at)
                < now - timedelta(seconds=stuck_after),
            )
            .group_by(WorkflowRun.provider_type)
        )
    }
    age = (now - oldest).total_seconds() if oldest is not None else 0.0
    return QueueStats(int(queued), max(0.0, age), in_flight, stuck)


def count_unfinished(session: Session, default_provider: str) -> dict[tuple[str, str], int]:
    """Counts of the runs not finished per (state, provider); the provider of runs not yet
    submitted is resolved from their tags as submission would, in SQL (a malformed row counts
    under the default)."""
    provider = resolved_provider(session, default_provider)
    grouped = session.execute(
        select(WorkflowRun.state, provider, func.count())
        .where(state_is(session, *NON_TERMINAL_STATES))
        .group_by(WorkflowRun.state, provider)
    )
    return {(str(state), str(name)): int(count) for state, name, count in grouped}


def count_finished_since(
    session: Session, default_provider: str, since: datetime
) -> dict[tuple[str, str], int]:
    """Counts per (state, provider) of the runs finished now whose history has a move to a
    final state at or after `since`. The history's time index gives their ids, their rows are
    read by primary key (a state condition there would let a planner walk every finished run
    instead). Runs the WES API finished itself (a CANCELED it wrote) have no history row, so
    they are not counted."""
    # Distinct in Python: SQLite would read a DISTINCT from the whole run_id index.
    found = session.scalars(
        select(HISTORY.c.run_id).where(
            HISTORY.c.at >= since, HISTORY.c.to_state.in_(TERMINAL_STATES)
        )
    )
    run_ids = list(dict.fromkeys(found))
    provider = resolved_provider(session, default_provider)
    counts: dict[tuple[str, str], int] = {}
    for start in range(0, len(run_ids), _ID_CHUNK):
        grouped = session.execute(
            select(WorkflowRun.state, provider, func.count())
            .where(WorkflowRun.run_id.in_(run_ids[start : start + _ID_CHUNK]))
            .group_by(WorkflowRun.state, provider)
        )
        for state, name, count in grouped:
            if state in TERMINAL_STATES:
                key = (str(state), str(name))
                counts[key] = counts.get(key, 0) + int(count)
    return counts


_ID_CHUNK = 500  # run ids per IN list


def oldest_queued(session: Session) -> tuple[str, datetime | None] | None:
    row = session.execute(
        select(WorkflowRun.run_id, WorkflowRun.start_time)
        .where(state_is(session, RunState.QUEUED.value), WorkflowRun.submitted_at.is_(None))
        .order_by(WorkflowRun.start_time, WorkflowRun.run_id)
        .limit(1)
    ).first()
    return (row.run_id, row.start_time) if row is not None else None


def last_action_at(
    session: Session, actor_prefixes: Sequence[str], since: datetime
) -> datetime | None:
    """When a command (by actor prefix, e.g. 'sync-status@') last changed a run, if it did at
    or after `since`: the history is read newest first through its time index, so the cost is
    bounded by the rows of that window."""
    conditions = [StateTransition.actor.startswith(prefix) for prefix in actor_prefixes]
    return session.scalar(
        select(StateTransition.at)
        .where(StateTransition.at >= since, or_(*conditions))
        .order_by(StateTransition.at.desc())
        .limit(1)
    )


def recent_failures(session: Session, since: datetime, *, limit: int) -> list[StateTransition]:
    query = (
        select(StateTransition)
        .where(
            StateTransition.at >= since,
            StateTransition.to_state.in_(
                (RunState.SYSTEM_ERROR.value, RunState.EXECUTOR_ERROR.value)
            ),
        )
        .order_by(StateTransition.at.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def submission_states(session: Session, run_ids: Sequence[str]) -> dict[str, tuple[str, bool]]:
    """run_id -> (state, ever submitted) for the ids that exist, in one query."""
    query = select(WorkflowRun.run_id, WorkflowRun.state, WorkflowRun.submitted_at).where(
        WorkflowRun.run_id.in_(list(run_ids))
    )
    return {row.run_id: (row.state, row.submitted_at is not None) for row in session.execute(query)}
