"""The provider contract: one suite every adapter must pass, through its real SDK client
talking HTTP to that provider's fake.

A subclass supplies a `harness` fixture implementing `Harness` for its provider.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import pytest

from wesctl.domain.states import TERMINAL_STATES, RunState
from wesctl.domain.types import Attempt, RunSpec
from wesctl.providers.base import (
    Provider,
    ProviderMisconfigured,
    ProviderRejected,
    ProviderUnavailable,
)
from wesctl.providers.ratelimit import TokenBucket


class Harness(Protocol):
    provider: Provider  # the real adapter, wired to the fake; retry sleeps are no-ops

    def spec(self, run_id: str, **overrides: Any) -> RunSpec:
        """A valid RunSpec for this provider; `overrides` replace RunSpec fields."""
        ...

    def created_count(self, run_id: str) -> int:
        """How many provider runs/tasks the fake holds for WES run `run_id` (not deleted)."""
        ...

    def set_raw_status(self, provider_id: str, raw_status: str) -> None: ...

    def finish(self, provider_id: str, *, succeed: bool) -> None:
        """Make the run terminal at the fake, with outputs and task logs when it succeeded."""
        ...

    def inject(self, kind: str, operation: str, *, count: int = 1, message: str = "") -> None:
        """Inject a fault (wesctl.simulated.http kinds) on a named logical operation: one of
        'submit', 'status', 'cancel'."""
        ...

    def status_calls(self) -> int:
        """Requests the fake received for status lookups (batch or single)."""
        ...

    def requests(self) -> int:
        """Requests the fake received, of any kind."""
        ...

    def reject_credentials(self) -> None:
        """Make the fake refuse the adapter's credentials, as the real service refuses a
        revoked or expired one."""
        ...

    def accept_credentials(self) -> None:
        """Make the fake accept them again (an operator fixed the credential)."""
        ...

    running_status: str  # the provider's raw status for a running run
    secret: str  # the adapter's secret credential, never to be shown
    credential_setting: str  # a setting the fix for refused credentials names


class VirtualClock:
    """The adapter's own time (its limiters' clock and sleep), advanced by what it sleeps:
    pacing is counted, never waited for. Not the simulators' SimulatedClock, which is the
    provider's time for run progress."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def submit(
    harness: Harness,
    run_id: str,
    *,
    key: str | None = None,
    may_exist: bool = False,
    known: str | None = None,
    recorded: list[str] | None = None,
) -> Any:
    recorded = recorded if recorded is not None else []
    return harness.provider.submit(
        Attempt(harness.spec(run_id), key or f"wesctl-{run_id}-1", known, may_exist),
        recorded.append,
    )


class ProviderContract:
    """Behaviour every provider adapter must show."""

    def test_submit_records_id_and_waits_without_queued(self, harness: Harness) -> None:
        recorded: list[str] = []
        result = submit(harness, "run-submit", recorded=recorded)
        assert result.provider_id
        assert set(recorded) <= {result.provider_id}  # only the split providers record
        assert result.status.state is not None
        # "accepted but waiting" must never map back to WES QUEUED
        assert result.status.state != RunState.QUEUED
        assert result.status.state not in TERMINAL_STATES
        assert harness.created_count("run-submit") == 1

    def test_same_key_twice_gives_one_run(self, harness: Harness) -> None:
        first = submit(harness, "run-twice")
        second = submit(harness, "run-twice", may_exist=True)
        assert second.provider_id == first.provider_id
        assert harness.created_count("run-twice") == 1

    def test_known_id_is_adopted(self, harness: Harness) -> None:
        first = submit(harness, "run-known")
        again = submit(harness, "run-known", known=first.provider_id, may_exist=True)
        assert again.provider_id == first.provider_id
        assert again.adopted
        assert harness.created_count("run-known") == 1

    def test_accepted_then_connection_dropped_is_adopted(self, harness: Harness) -> None:
        harness.inject("drop_after_accept", "submit")
        with pytest.raises(ProviderUnavailable):
            submit(harness, "run-dropped")
        result = submit(harness, "run-dropped", may_exist=True)
        assert result.provider_id
        assert harness.created_count("run-dropped") == 1

    def test_status_progression_and_outputs(self, harness: Harness) -> None:
        pid = submit(harness, "run-progress").provider_id
        harness.set_raw_status(pid, harness.running_status)
        running = harness.provider.statuses([pid])[pid]
        assert running is not None
        assert running.state == RunState.RUNNING
        harness.finish(pid, succeed=True)
        done = harness.provider.statuses([pid])[pid]
        assert done is not None
        assert done.state == RunState.COMPLETE
        assert done.ended_at is not None
        details = harness.provider.details(pid)
        assert details.outputs, "a completed run reports its outputs"
        assert details.task_logs, "a completed run reports its task logs"
        assert all(log.name for log in details.task_logs)
        assert any(log.stdout or log.stderr for log in details.task_logs)

    def test_failed_run_is_executor_error_with_message(self, harness: Harness) -> None:
        pid = submit(harness, "run-fails").provider_id
        harness.finish(pid, succeed=False)
        status = harness.provider.statuses([pid])[pid]
        assert status is not None
        assert status.state == RunState.EXECUTOR_ERROR
        assert status.message

    def test_cancel_running_run(self, harness: Harness) -> None:
        pid = submit(harness, "run-cancel").provider_id
        harness.set_raw_status(pid, harness.running_status)
        harness.provider.cancel(pid)
        status = harness.provider.statuses([pid])[pid]
        assert status is not None
        assert status.state in (RunState.CANCELING, RunState.CANCELED)

    def test_cancel_finished_run_is_a_no_op(self, harness: Harness) -> None:
        pid = submit(harness, "run-finished").provider_id
        harness.finish(pid, succeed=True)
        harness.provider.cancel(pid)
        status = harness.provider.statuses([pid])[pid]
        assert status is not None
        assert status.state == RunState.COMPLETE

    def test_unknown_id_has_no_status(self, harness: Harness) -> None:
        missing = self.missing_id()
        assert harness.provider.statuses([missing]) == {missing: None}

    def missing_id(self) -> str:
        raise NotImplementedError

    def test_batch_status_uses_few_calls(self, harness: Harness) -> None:
        ids = [submit(harness, f"run-batch-{i}").provider_id for i in range(7)]
        before = harness.status_calls()
        result = harness.provider.statuses(ids)
        assert set(result) == set(ids)
        assert all(status is not None for status in result.values())
        batch = harness.provider.status_batch_size
        assert harness.status_calls() - before <= math.ceil(len(ids) / batch)

    def test_transient_faults_are_retried(self, harness: Harness) -> None:
        pid = submit(harness, "run-transient").provider_id
        harness.inject("server_error", "status", count=1)
        harness.inject("throttle", "status", count=1)
        status = harness.provider.statuses([pid])[pid]
        assert status is not None

    def test_transient_submit_fault_is_retried(self, harness: Harness) -> None:
        harness.inject("throttle", "submit", count=2)
        result = submit(harness, "run-throttled")
        assert result.provider_id
        assert harness.created_count("run-throttled") == 1

    def test_persistent_transient_fault_surfaces_as_unavailable(self, harness: Harness) -> None:
        harness.inject("server_error", "submit", count=100)
        with pytest.raises(ProviderUnavailable):
            submit(harness, "run-down")

    def test_permanent_fault_surfaces_provider_message(self, harness: Harness) -> None:
        harness.inject("permanent", "submit", message="input 'reads' is not a valid file")
        with pytest.raises(ProviderRejected) as info:
            submit(harness, "run-rejected")
        assert "input 'reads' is not a valid file" in str(info.value)
        assert not isinstance(info.value, ProviderUnavailable)

    @pytest.mark.parametrize("call", ["submit", "statuses", "details", "cancel"])
    def test_refused_credentials_are_the_installations_and_not_retried(
        self, harness: Harness, call: str
    ) -> None:
        pid = submit(harness, f"run-creds-{call}").provider_id
        harness.set_raw_status(pid, harness.running_status)
        calls: dict[str, Callable[[], object]] = {
            "submit": lambda: submit(harness, f"run-creds-{call}-new"),
            "statuses": lambda: harness.provider.statuses([pid]),
            "details": lambda: harness.provider.details(pid),
            "cancel": lambda: harness.provider.cancel(pid),
        }
        harness.reject_credentials()
        before = harness.requests()
        with pytest.raises(ProviderMisconfigured) as info:
            calls[call]()
        assert harness.requests() - before == 1  # waiting does not fix a credential
        error = info.value
        assert harness.credential_setting in error.fix
        assert harness.secret not in f"{error} {error.fix}"
        harness.accept_credentials()
        calls[call]()  # the operator fixed it: the same call goes through

    def test_transient_faults_stay_transient_next_to_refused_credentials(
        self, harness: Harness
    ) -> None:
        pid = submit(harness, "run-creds-transient").provider_id
        harness.reject_credentials()
        with pytest.raises(ProviderMisconfigured):
            harness.provider.statuses([pid])
        harness.accept_credentials()
        harness.inject("server_error", "status", count=100)
        with pytest.raises(ProviderUnavailable) as info:
            harness.provider.statuses([pid])
        assert not isinstance(info.value, ProviderMisconfigured)

    def test_rate_limiter_paces_calls(self, harness: Harness) -> None:
        pid = submit(harness, "run-paced").provider_id
        clock = VirtualClock()
        limiter = TokenBucket(rate=2.0, burst=1.0, clock=clock, sleep=clock.sleep)
        harness.provider.limiter = limiter  # type: ignore[attr-defined]
        for _ in range(5):
            harness.provider.statuses([pid])
        # five calls at two per second, one token in the bucket: at least two seconds of pacing
        assert clock.now >= 2.0 - 1e-9

    def test_non_object_params_are_rejected_before_any_call(self, harness: Harness) -> None:
        spec = harness.spec("run-bad-params", workflow_params=["not", "an", "object"])
        with pytest.raises(ProviderRejected, match="workflow_params"):
            harness.provider.validate(spec)

    def test_unparseable_workflow_url_is_rejected(self, harness: Harness) -> None:
        spec = harness.spec("run-bad-url", workflow_url="::not a workflow::")
        with pytest.raises(ProviderRejected, match="workflow_url"):
            harness.provider.validate(spec)
