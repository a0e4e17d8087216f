"""Operator actions on runs that need no provider: enqueue, list, show."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from wesctl.db import runs as run_queries
from wesctl.db.engine import database_errors, utcnow
from wesctl.db.runs import ProviderFilter
from wesctl.db.tables import RUN_ID_LENGTH, WorkflowRun
from wesctl.domain.providers import PROVIDER_TAG
from wesctl.domain.states import RunState
from wesctl.errors import InvalidRun, RunNotFound
from wesctl.services.runtime import Runtime, log_transition


@dataclass(frozen=True)
class NewRun:
    """A run request as the WES API would store it."""

    workflow_url: str
    workflow_type: str
    workflow_type_version: str
    workflow_params: dict[str, Any] | None = None
    tags: dict[str, Any] | None = None
    workflow_engine: str | None = None
    workflow_engine_version: str | None = None
    provider: str | None = None
    run_id: str | None = None


# Column widths of the WES API's workflow_runs table (PostgreSQL enforces them).
_WIDTHS = {
    "workflow_url": 500,
    "workflow_type": 50,
    "workflow_type_version": 20,
    "workflow_engine": 50,
    "workflow_engine_version": 20,
}


def add_run(runtime: Runtime, request: NewRun) -> str:
    """Insert `request` as a QUEUED run exactly as the WES API does; return its run_id."""
    problems = [
        f"{name} is longer than {width} characters"
        for name, width in _WIDTHS.items()
        if len(getattr(request, name) or "") > width
    ]
    run_id = request.run_id or str(uuid.uuid4())
    if len(run_id) > RUN_ID_LENGTH:
        problems.append(f"run id is longer than {RUN_ID_LENGTH} characters")
    if problems:
        raise InvalidRun("; ".join(problems))
    tags = dict(request.tags) if request.tags is not None else None
    if request.provider:
        tags = {**(tags or {}), PROVIDER_TAG: request.provider}
    row = WorkflowRun(
        run_id=run_id,
        state=RunState.QUEUED.value,
        workflow_params=request.workflow_params,
        workflow_type=request.workflow_type,
        workflow_type_version=request.workflow_type_version,
        workflow_engine=request.workflow_engine,
        workflow_engine_version=request.workflow_engine_version,
        workflow_url=request.workflow_url,
        tags=tags,
        start_time=utcnow(),
    )
    with database_errors(), runtime.sessions.begin() as session:
        if run_queries.get_run(session, run_id) is not None:
            raise InvalidRun(f"run {run_id} already exists")
        run_queries.insert_run(session, row)
        run_queries.add_transition(
            session, run_id, None, RunState.QUEUED.value, "enqueued by operator", runtime.actor
        )
    return run_id


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value is not None else None


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    state: str
    provider: str
    provider_id: str | None
    provider_status: str | None
    queued_at: datetime | None
    ended_at: datetime | None
    last_error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "state": self.state,
            "provider": self.provider,
            "provider_id": self.provider_id,
            "provider_status": self.provider_status,
            "queued_at": _iso(self.queued_at),
            "ended_at": _iso(self.ended_at),
            "last_error": self.last_error,
        }


def _summary(row: run_queries.RunRow) -> RunSummary:
    return RunSummary(
        run_id=row.run_id,
        state=row.state,
        provider=row.provider,
        provider_id=row.provider_id,
        provider_status=row.provider_status,
        queued_at=row.queued_at,
        ended_at=row.ended_at,
        last_error=row.last_error,
    )


def list_runs(
    runtime: Runtime,
    *,
    states: tuple[str, ...] = (),
    provider: str | None = None,
    older_than: timedelta | None = None,
    newer_than: timedelta | None = None,
    limit: int = 50,
) -> list[RunSummary]:
    """Return run summaries, newest first (no JSON column is read, so a malformed row lists
    like any other)."""
    now = utcnow()
    providers = ProviderFilter(runtime.settings.default_provider, only=provider)
    with database_errors(), runtime.readers() as session:
        rows = run_queries.run_rows(
            session,
            providers,
            states=states,
            queued_before=now - older_than if older_than else None,
            queued_after=now - newer_than if newer_than else None,
            limit=limit,
        )
    return [_summary(row) for row in rows]


@dataclass(frozen=True)
class RunView:
    summary: RunSummary
    request: dict[str, Any]
    provider_metadata: Any
    outputs: Any
    submit_attempts: int
    submission_key: str | None
    submitted_at: datetime | None
    task_logs: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # JSON columns that are not JSON

    def to_json(self) -> dict[str, Any]:
        return {
            **self.summary.to_json(),
            "request": self.request,
            "provider_metadata": self.provider_metadata,
            "outputs": self.outputs if self.outputs is not None else {},
            "submit_attempts": self.submit_attempts,
            "submission_key": self.submission_key,
            "submitted_at": _iso(self.submitted_at),
            "task_logs": self.task_logs,
            "history": self.history,
            "unreadable": self.unreadable,
        }


def show_run(runtime: Runtime, run_id: str) -> RunView:
    """Return everything wesctl knows about one run; raise RunNotFound."""
    providers = ProviderFilter(runtime.settings.default_provider)
    with database_errors(), runtime.readers() as session:
        rows = run_queries.run_rows(session, providers, run_id=run_id)
        if not rows:
            raise RunNotFound(f"no run with id {run_id!r}")
        row = rows[0]
        request = run_queries.run_request(session, run_id)
        documents = run_queries.run_documents(session, run_id)
        logs = [
            {
                "id": log.id,
                "name": log.name,
                "cmd": log.cmd,
                "start_time": _iso(log.start_time),
                "end_time": _iso(log.end_time),
                "stdout": log.stdout,
                "stderr": log.stderr,
                "exit_code": log.exit_code,
                "system_logs": log.system_logs,
            }
            for log in run_queries.task_logs(session, run_id)
        ]
        transitions = [
            {
                "at": _iso(item.at),
                "from": item.from_state,
                "to": item.to_state,
                "reason": item.reason,
                "actor": item.actor,
            }
            for item in run_queries.history(session, run_id)
        ]
    values = {name: value for name, (value, _) in documents.items()}
    return RunView(
        summary=_summary(row),
        request={
            **request,
            "workflow_params": values["workflow_params"],
            "tags": values["tags"],
        },
        provider_metadata=values["provider_metadata"],
        outputs=values["outputs"],
        submit_attempts=row.submit_attempts,
        submission_key=row.submission_key,
        submitted_at=row.submitted_at,
        task_logs=logs,
        history=transitions,
        unreadable=[why for _, why in documents.values() if why is not None],
    )


def retry_run(runtime: Runtime, run_id: str) -> str:
    """Put a SYSTEM_ERROR run back in the queue with a fresh submission key; return the key.

    The old provider id and key are dropped so the next submission starts a new provider run
    (the failed attempt's run, if any, is finished or never existed).
    """
    key = f"wesctl-{run_id}-{uuid.uuid4().hex[:8]}"
    providers = ProviderFilter(runtime.settings.default_provider)
    with database_errors(), runtime.sessions.begin() as session:
        rows = run_queries.run_rows(session, providers, run_id=run_id)
        if not rows:
            raise RunNotFound(f"no run with id {run_id!r}")
        row = rows[0]
        if row.state != RunState.SYSTEM_ERROR:
            raise InvalidRun(f"run {run_id} is {row.state}; only SYSTEM_ERROR runs can be retried")
        moved = run_queries.transition(
            session,
            run_id,
            from_state=RunState.SYSTEM_ERROR.value,
            values={
                "state": RunState.QUEUED.value,
                "end_time": None,
                "provider_id": None,
                "provider_status": None,
                "provider_metadata": None,
                "outputs": None,
                "submission_key": key,
                "submit_attempts": 0,
                "submitted_at": None,
                "claimed_by": None,
                "claim_expires_at": None,
                "not_found_count": 0,
                "cancel_sent_at": None,
                "provider_changed_at": None,
            },
        )
        if not moved:
            raise InvalidRun(f"run {run_id} changed state meanwhile; try again")
        reason = f"re-queued by operator (previous error: {row.last_error or '-'})"
        run_queries.add_transition(
            session,
            run_id,
            RunState.SYSTEM_ERROR.value,
            RunState.QUEUED.value,
            reason,
            runtime.actor,
        )
    log_transition(run_id, row.provider, RunState.SYSTEM_ERROR, RunState.QUEUED, reason)
    return key
