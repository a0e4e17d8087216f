"""Seven Bridges mapping: task statuses, task names and markers, inputs, outputs and job logs,
as pure functions of the platform's raw JSON (no I/O, no client)."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from wesctl.domain.states import RunState
from wesctl.domain.types import ProviderStatus, TaskLog
from wesctl.providers.mapping import naive_utc, run_name, walk_outputs

logger = logging.getLogger(__name__)

PROVIDER = "sevenbridges"
MAX_TASK_NAME = 128  # conservative: `wes-` plus any sane run id fits

STATUS_MAP: dict[str, RunState] = {
    # Accepted but not yet running is INITIALIZING, never QUEUED: WES QUEUED means "not yet
    # submitted" to wesctl, and mapping back to it made the WES API's own daemon (which wesctl
    # replaces) resubmit such runs forever.
    "DRAFT": RunState.INITIALIZING,
    "CREATING": RunState.INITIALIZING,
    "QUEUED": RunState.INITIALIZING,
    "RUNNING": RunState.RUNNING,
    "ABORTING": RunState.CANCELING,
    "ABORTED": RunState.CANCELED,
    "COMPLETED": RunState.COMPLETE,
    "FAILED": RunState.EXECUTOR_ERROR,
}
FINISHED = frozenset({"COMPLETED", "FAILED", "ABORTED"})
CANCELED_MARKER = "wesctl-canceled=true"

# Owner, project and app short names: letters, digits, '_', '-', '.'; the revision is a number.
_NAME = r"[A-Za-z0-9_.-]+"
APP_ID = re.compile(rf"{_NAME}/{_NAME}/{_NAME}(?:/\d+)?")
PROJECT_ID = re.compile(rf"{_NAME}/{_NAME}")


def map_status(raw: str) -> RunState | None:
    """Return the WES state of a raw task status, or None when wesctl does not know it."""
    return STATUS_MAP.get(raw)


def task_name(run_id: str) -> str:
    return run_name(run_id)


def run_marker(run_id: str) -> str:
    return f"wesctl-run-id={run_id}"


def task_description(run_id: str, idempotency_key: str) -> str:
    return (
        f"Submitted by wesctl for WES run {run_id}.\n"
        f"{run_marker(run_id)}\n"
        f"{key_marker(idempotency_key)}"
    )


def key_marker(idempotency_key: str) -> str:
    return f"wesctl-key={idempotency_key}"


def carries_marker(name: Any, description: Any, run_id: str, idempotency_key: str) -> bool:
    """True if a task's name and description mark it as the task of WES run `run_id`'s
    submission `idempotency_key` (a retried run has a new key, so its earlier, finished task is
    never taken for the new submission's)."""
    if name != task_name(run_id) or not isinstance(description, str):
        return False
    lines = description.splitlines()
    return run_marker(run_id) in lines and key_marker(idempotency_key) in lines


def is_canceled_draft(status: Any, description: Any) -> bool:
    return (
        status == "DRAFT"
        and isinstance(description, str)
        and CANCELED_MARKER in description.splitlines()
    )


def task_inputs(params: Mapping[str, Any]) -> dict[str, Any]:
    """Return workflow_params as the task's inputs: plain JSON, File/Directory dicts untouched."""

    def plain(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(key): plain(item) for key, item in value.items()}
        if isinstance(value, Sequence) and not isinstance(value, str | bytes):
            return [plain(item) for item in value]
        return value

    return {str(key): plain(value) for key, value in params.items()}


def normalise_outputs(outputs: Mapping[str, Any], endpoint: str) -> dict[str, Any]:
    """Return task outputs with File/Directory values as WES-style objects with a location.

    The location is the file's resource URL on the configured API (`<endpoint>/files/<id>`): stable,
    unlike a signed download URL, and usable with a token.
    """

    def file_object(value: Mapping[str, Any], walk: Callable[[Any], Any]) -> dict[str, Any] | None:
        kind = str(value.get("class", "")).lower()
        if kind not in ("file", "directory") or not isinstance(value.get("path"), str):
            return None
        converted: dict[str, Any] = {
            "class": "File" if kind == "file" else "Directory",
            "location": f"{endpoint}/files/{value['path']}",
        }
        name = value.get("name") or value.get("basename")
        if name is not None:
            converted["name"] = name
        if value.get("size") is not None:
            converted["size"] = value["size"]
        if value.get("secondaryFiles"):
            converted["secondaryFiles"] = walk(value["secondaryFiles"])
        return converted

    return walk_outputs(outputs, file_object)


def to_status(field: Callable[[str], Any]) -> ProviderStatus:
    """Build a ProviderStatus from a task's raw JSON, read through `field` (dict.get or
    Task.field)."""
    task_id = str(field("id"))
    raw = str(field("status") or "")
    execution = field("execution_status")
    message = execution.get("message") if isinstance(execution, Mapping) else None
    if is_canceled_draft(raw, field("description")):
        state: RunState | None = RunState.CANCELED
        message = message or "canceled before it ran"
    else:
        state = map_status(raw)
        if state is None:
            logger.warning(
                "unknown Seven Bridges task status task=%s status=%r; the run keeps its state",
                task_id,
                raw,
            )
    return ProviderStatus(
        provider_id=task_id,
        raw_status=raw,
        state=state,
        message=message or None,
        started_at=naive_utc(field("start_time")),
        ended_at=naive_utc(field("end_time")),
    )


def task_logs(jobs: Any) -> list[TaskLog]:
    """Return one TaskLog per job of a task's execution details (raw JSON)."""
    logs: list[TaskLog] = []
    for job in jobs if isinstance(jobs, list) else []:
        if not isinstance(job, Mapping):
            continue
        files = job.get("logs")
        files = files if isinstance(files, Mapping) else {}
        system_logs = [
            f"{key}: {location}"
            for key, location in files.items()
            if key not in ("job.out.log", "job.err.log")
        ]
        instance = job.get("instance")
        if isinstance(instance, Mapping) and instance:
            system_logs.insert(
                0,
                "instance id={} type={} provider={}".format(
                    instance.get("id"), instance.get("type"), instance.get("provider")
                ),
            )
        command = job.get("command_line")
        logs.append(
            TaskLog(
                name=str(job.get("name") or "job"),
                status=job.get("status"),
                cmd=[command] if command else None,
                start_time=naive_utc(job.get("start_time")),
                end_time=naive_utc(job.get("end_time")),
                stdout=files.get("job.out.log"),
                stderr=files.get("job.err.log"),
                system_logs=tuple(system_logs),
            )
        )
    return logs


EPOCH = datetime(1970, 1, 1)


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def describe_errors(errors: Any) -> str:
    if isinstance(errors, list):
        parts = [
            str(item.get("message") or item) if isinstance(item, Mapping) else str(item)
            for item in errors
        ]
        return "; ".join(parts)
    return str(errors)
