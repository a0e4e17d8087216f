"""Queries and guarded updates on runs. Functions take a Session and never commit: the caller
owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from wesctl.db.engine import utcnow
from wesctl.db.tables import StateTransition, TaskLogRow, WorkflowRun


def get_run(session: Session, run_id: str) -> WorkflowRun | None:
    return session.get(WorkflowRun, run_id)


def insert_run(session: Session, run: WorkflowRun) -> None:
    session.add(run)
    session.flush()


def list_runs(
    session: Session,
    *,
    states: Sequence[str] = (),
    queued_before: datetime | None = None,
    queued_after: datetime | None = None,
    limit: int | None = None,
) -> list[WorkflowRun]:
    """Return runs newest first (by queue time), filtered by state and queue time."""
    query = select(WorkflowRun)
    if states:
        query = query.where(WorkflowRun.state.in_(list(states)))
    if queued_before is not None:
        query = query.where(WorkflowRun.start_time < queued_before)
    if queued_after is not None:
        query = query.where(WorkflowRun.start_time >= queued_after)
    query = query.order_by(WorkflowRun.start_time.desc(), WorkflowRun.run_id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


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


def add_transition(
    session: Session,
    run_id: str,
    from_state: str | None,
    to_state: str,
    reason: str | None,
    actor: str,
    at: datetime | None = None,
) -> None:
    """Append one row to the state history."""
    session.add(
        StateTransition(
            run_id=run_id,
            at=at or utcnow(),
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            actor=actor,
        )
    )
