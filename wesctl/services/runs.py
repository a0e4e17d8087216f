"""Operator actions on runs that need no provider: enqueue, list, show."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from wesctl.db import runs as run_queries
from wesctl.db.engine import database_errors, utcnow
from wesctl.db.runs import Change, ProviderFilter, RunSummary, iso_time
from wesctl.db.tables import RUN_ID_LENGTH, WorkflowRun, text_widths
from wesctl.domain.providers import PROVIDER_TAG
from wesctl.domain.states import RunState
from wesctl.errors import InvalidRun, RunNotFound
from wesctl.services.runtime import Runtime


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


# Widths of the WES API's workflow_runs text columns a request fills (PostgreSQL enforces them).
_WIDTHS = text_widths(
    WorkflowRun,
    "workflow_url",
    "workflow_type",
    "workflow_type_version",
    "workflow_engine",
    "workflow_engine_version",
)


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
    with database_errors(), runtime.writers.begin() as session:
        if run_queries.run_exists(session, run_id):
            raise InvalidRun(f"run {run_id} already exists")
        run_queries.insert_run(session, row)
        change = Change(runtime.actor, request.provider, "enqueued by operator")
        run_queries.record_transition(session, run_id, None, RunState.QUEUED.value, change)
    return run_id


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
        rows = run_queries.run_summaries(
            session,
            providers,
            states=states,
            queued_before=now - older_than if older_than else None,
            queued_after=now - newer_than if newer_than else None,
            limit=limit,
        )
    return rows


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
            "submitted_at": iso_time(self.submitted_at),
            "task_logs": self.task_logs,
            "history": self.history,
            "unreadable": self.unreadable,
        }


def show_run(runtime: Runtime, run_id: str) -> RunView:
    """Return everything wesctl knows about one run; raise RunNotFound."""
    providers = ProviderFilter(runtime.settings.default_provider)
    with database_errors(), runtime.readers() as session:
        rows = run_queries.run_summaries(session, providers, run_id=run_id)
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
                "start_time": iso_time(log.start_time),
                "end_time": iso_time(log.end_time),
                "stdout": log.stdout,
                "stderr": log.stderr,
                "exit_code": log.exit_code,
                "system_logs": log.system_logs,
            }
            for log in run_queries.task_logs(session, run_id)
        ]
        transitions = [
            {
                "at": iso_time(item.at),
                "from": item.from_state,
                "to": item.to_state,
                "reason": item.reason,
                "actor": item.actor,
            }
            for item in run_queries.history(session, run_id)
        ]
    values = {name: value for name, (value, _) in documents.items()}
    return RunView(
        summary=row,
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
