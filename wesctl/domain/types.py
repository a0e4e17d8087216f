"""Plain, frozen value types that cross the seam between services and providers.

Providers receive a RunSpec and return these types; no SDK object or raw provider dict leaves an
adapter. Times are naive UTC, like the WES database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from wesctl.domain.states import RunState

ENGINE_PARAMETERS_TAG = "workflow_engine_parameters"


@dataclass(frozen=True)
class RunSpec:
    """What a provider needs to start one WES run, read from its database row."""

    run_id: str
    workflow_url: str
    workflow_type: str
    workflow_type_version: str
    workflow_params: Mapping[str, Any]
    tags: Mapping[str, Any] = field(default_factory=dict)
    workflow_engine: str | None = None
    workflow_engine_version: str | None = None
    queued_at: datetime | None = None

    @property
    def engine_parameters(self) -> Mapping[str, Any]:
        """Engine parameters: tags["workflow_engine_parameters"] when it is an object."""
        value = self.tags.get(ENGINE_PARAMETERS_TAG)
        return value if isinstance(value, Mapping) else {}

    def option(self, name: str) -> Any:
        """Return a per-run option: engine parameters first, then tags, else None."""
        if name in self.engine_parameters:
            return self.engine_parameters[name]
        return self.tags.get(name)


@dataclass(frozen=True)
class Attempt:
    """One submission of a run to its provider: the run, and what was stored before the call.

    `key` is stable for this submission (the provider's idempotency token or marker).
    `known_provider_id` is an id an earlier, interrupted attempt recorded: adopt it.
    `may_exist` says an earlier attempt may have created a run whose id was never recorded.
    """

    spec: RunSpec
    key: str
    known_provider_id: str | None = None
    may_exist: bool = False


@dataclass(frozen=True)
class ProviderStatus:
    """A provider's view of one run.

    `state` is the mapped WES state, or None when the raw status is unknown to wesctl (the run
    then keeps its current state and stays tracked).
    """

    provider_id: str
    raw_status: str
    state: RunState | None
    message: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


@dataclass(frozen=True)
class Submission:
    """The result of a successful submit: the provider's id and what it said about the run."""

    provider_id: str
    status: ProviderStatus
    adopted: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskLog:
    """One task (job) of a run, shaped like a row of the WES API's task_logs table."""

    name: str
    task_id: str | None = None
    status: str | None = None
    cmd: Sequence[str] | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    exit_code: int | None = None
    stdout: str | None = None
    stderr: str | None = None
    system_logs: Sequence[str] = ()


@dataclass(frozen=True)
class RunDetails:
    """Outputs and task logs of a run, as far as the provider knows them now."""

    outputs: Mapping[str, Any] = field(default_factory=dict)
    task_logs: Sequence[TaskLog] = ()
    # The provider's full status when reading details returned it anyway (e.g. a failure reason
    # a batch listing lacks); sync-status prefers it for the final state.
    status: ProviderStatus | None = None


@dataclass(frozen=True)
class ProbeResult:
    """One read-only check of a provider's credentials, access or settings (`wesctl doctor`).

    `fix` tells an operator what to change when `ok` is false; `detail` never holds a secret.
    """

    name: str
    ok: bool
    detail: str
    fix: str = ""
