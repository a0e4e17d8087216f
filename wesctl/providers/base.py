"""The one small interface every execution provider implements, and its error family.

Services talk to providers only through `Provider`; adapters translate SDK errors at their edge
into one of three classes, carrying the provider's own message:
- `ProviderUnavailable`: transient (throttling, 5xx, timeouts); the run is retried later;
- `ProviderRejected`: this run's request is wrong (validation, unknown app, a per-run option
  refused); that run ends in SYSTEM_ERROR;
- `ProviderMisconfigured`: the installation is wrong (credentials missing, rejected or expired;
  the configured project or role not accessible; an endpoint that is not the provider's API). No
  run is at fault: the provider is unusable until an operator fixes `fix`, and no run changes
  state because of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from wesctl.domain import types as domain
from wesctl.errors import WesctlError
from wesctl.providers.ratelimit import TokenBucket


class ProviderError(WesctlError):
    """A provider call failed; `provider` names the provider."""

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.detail = message


class ProviderUnavailable(ProviderError):
    """Transient: throttling, 5xx, timeouts, connection errors. Safe to retry later."""

    def __init__(self, provider: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(provider, message)
        self.retry_after = retry_after


class ProviderRejected(ProviderError):
    """Permanent: validation, access denied, unknown app/workflow, bad run parameters."""


class ProviderMisconfigured(ProviderError):
    """Installation-level: no run is at fault; `fix` names the setting or credential to fix."""

    def __init__(self, provider: str, message: str, fix: str) -> None:
        super().__init__(provider, message)
        self.fix = fix


class ProviderRunNotFound(ProviderRejected):
    """The provider has no run/task with that id."""


RecordProviderId = Callable[[str], None]


class Provider(Protocol):
    """An execution provider adapter.

    `status_batch_size` is how many ids one `statuses` call may take (1 when the provider has no
    batch status call).
    """

    name: str
    status_batch_size: int
    limiter: TokenBucket  # every API request passes it once

    def validate(self, spec: domain.RunSpec) -> None:
        """Raise ProviderRejected if `spec` cannot be submitted; no I/O."""

    def submit(
        self, attempt: domain.Attempt, record_provider_id: RecordProviderId
    ) -> domain.Submission:
        """Start the attempt's run at the provider exactly once and return the provider's run.

        A known provider id is adopted; when the run may exist, the adapter looks for it (by
        idempotency token or marker) before creating one. `record_provider_id` is called where
        the provider's id exists before the run is started (Seven Bridges' draft task), to
        store it before the start call; if it raises, the adapter stops and re-raises.
        Adapters whose start call creates and starts the run at once (HealthOmics' StartRun) do
        not call it: the returned Submission is stored right away.
        """
        ...

    def lookup(self, attempt: domain.Attempt) -> str | None:
        """Return the id of the provider run this attempt's key created, or None when the
        provider answered that none exists; create nothing. Raises ProviderUnavailable when that
        cannot be told now (the run must then not be given up)."""
        ...

    def statuses(self, provider_ids: Sequence[str]) -> Mapping[str, domain.ProviderStatus | None]:
        """Return the status of each id (None where the provider has no such run). An id left
        out of the answer could not be read in this pass (a per-pass bound): ask next pass."""
        ...

    def new_pass(self) -> None:
        """Forget status snapshots of an earlier pass; sync-status calls it before each pass."""

    def details(self, provider_id: str) -> domain.RunDetails:
        """Return the run's outputs and task logs as the provider reports them now."""
        ...

    def cancel(self, provider_id: str) -> None:
        """Ask the provider to stop the run; a no-op if it already finished."""

    def probe(self) -> list[domain.ProbeResult]:
        """Check credentials and access with one read-only call each; failures are results."""
        ...

    def close(self) -> None:
        """Release connections and thread pools."""
