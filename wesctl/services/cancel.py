"""Cancelling runs, including the ones the WES API marked CANCELED behind wesctl's back.

A run not yet at a provider is cancelled in the database at once. A run at a provider goes to
CANCELING, the provider is asked to stop it, and sync-status moves it to CANCELED when the
provider confirms (or to the provider's real final state if the run finished first). The WES API
writes CANCELED directly, even for runs still running at a provider; those are stopped at the
provider and keep their CANCELED state.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from wesctl.db import runs as run_queries
from wesctl.db.engine import database_errors, utcnow
from wesctl.db.runs import ProviderFilter
from wesctl.domain.states import TERMINAL_STATES, RunState
from wesctl.errors import ConfigError, WesctlError
from wesctl.providers.base import ProviderMisconfigured, ProviderRejected, ProviderUnavailable
from wesctl.services.runtime import Runtime, UnusableProviders, log_transition
from wesctl.services.submit import (
    BLOCKED,
    CANCELED,
    FAILED,
    REQUEUED,
    SKIPPED,
    Report,
    RunOutcome,
    disabled_providers,
)

logger = logging.getLogger(__name__)
CANCEL_SENT = "cancel-sent"


def send_cancel(
    runtime: Runtime,
    run_id: str,
    provider: str,
    provider_id: str,
    unusable: UnusableProviders,
) -> RunOutcome:
    """Ask the provider to stop `provider_id` and record that we did; never raises for provider
    errors (a transient failure is retried by the next sync-status or cancel pass; a
    misconfigured provider leaves the cancellation pending, untouched, until it is fixed)."""
    problem = unusable.get(provider)
    try:
        if problem is not None:
            raise problem
        runtime.provider(provider).cancel(provider_id)
    except ConfigError as exc:
        problem = unusable.mark_config_error(provider, exc)
        return RunOutcome(run_id, BLOCKED, provider, provider_id, problem.detail)
    except ProviderMisconfigured as exc:
        problem = unusable.mark(exc)
        return RunOutcome(run_id, BLOCKED, provider, provider_id, problem.detail)
    except ProviderUnavailable as exc:
        logger.warning("run=%s provider=%s cancel failed, will retry: %s", run_id, provider, exc)
        return RunOutcome(run_id, REQUEUED, provider, provider_id, exc.message)
    except ProviderRejected as exc:
        logger.error("run=%s provider=%s cancel refused: %s", run_id, provider, exc)
        with database_errors(), runtime.sessions.begin() as session:
            run_queries.mark_cancel_sent(session, run_id, error=f"cancel refused: {exc.message}")
        return RunOutcome(run_id, FAILED, provider, provider_id, f"cancel refused: {exc.message}")
    with database_errors(), runtime.sessions.begin() as session:
        run_queries.mark_cancel_sent(session, run_id)
    logger.info("run=%s provider=%s provider_id=%s cancel sent", run_id, provider, provider_id)
    return RunOutcome(run_id, CANCEL_SENT, provider, provider_id, "provider asked to stop the run")


def cancel_run(runtime: Runtime, run_id: str, report: Report, unusable: UnusableProviders) -> None:
    """Cancel one run by id, as far as its state allows."""
    reason = "cancelled by operator"
    with database_errors(), runtime.sessions.begin() as session:
        row = run_queries.cancel_target(session, run_id, runtime.settings.default_provider)
        if row is None:
            report.add(RunOutcome(run_id, FAILED, reason=f"no run with id {run_id!r}"))
            return
        state, provider, provider_id = row.state, row.provider, row.provider_id
        needs_provider = provider_id is not None and not row.cancel_sent
        if state in TERMINAL_STATES:
            if not (state == RunState.CANCELED and needs_provider):
                report.add(RunOutcome(run_id, SKIPPED, provider, provider_id, f"run is {state}"))
                return
        elif provider_id is None:
            # Not at a provider (possibly being submitted: the submitter sees CANCELED and
            # stops whatever it started).
            if not run_queries.transition(
                session,
                run_id,
                from_state=state,
                values={"state": RunState.CANCELED.value, "end_time": utcnow()},
            ):
                report.add(RunOutcome(run_id, SKIPPED, provider, None, "state changed; try again"))
                return
            run_queries.add_transition(
                session, run_id, state, RunState.CANCELED.value, reason, runtime.actor
            )
            log_transition(run_id, provider, state, RunState.CANCELED, reason)
            report.add(RunOutcome(run_id, CANCELED, provider, None, "cancelled before submission"))
            return
        else:
            target = (RunState.CANCELED if not row.submitted else RunState.CANCELING).value
            if state != target:
                if not run_queries.transition(
                    session, run_id, from_state=state, values={"state": target}
                ):
                    report.add(RunOutcome(run_id, SKIPPED, provider, provider_id, "state changed"))
                    return
                run_queries.add_transition(session, run_id, state, target, reason, runtime.actor)
                log_transition(run_id, provider, state, target, reason)
            if row.cancel_sent:
                report.add(
                    RunOutcome(run_id, SKIPPED, provider, provider_id, "cancel already sent")
                )
                return
    assert provider_id is not None
    report.add(send_cancel(runtime, run_id, provider, provider_id, unusable))


def pending_cancellations(runtime: Runtime, limit: int = 1000) -> list[str]:
    """Runs the WES API (or an operator) asked to cancel whose provider run was not told yet
    (of the providers this host serves)."""
    providers = ProviderFilter(runtime.settings.default_provider, disabled_providers(runtime))
    with database_errors(), runtime.readers() as session:
        return run_queries.pending_cancellation_ids(
            session, utcnow(), limit=limit, providers=providers
        )


def cancel(runtime: Runtime, run_ids: Sequence[str] = ()) -> Report:
    """Cancel the given runs, or, without ids, every pending cancellation."""
    report = Report("cancel")
    unusable = UnusableProviders(report.notes)
    targets = list(run_ids) or pending_cancellations(runtime)
    for run_id in targets:
        try:
            cancel_run(runtime, run_id, report, unusable)
        except WesctlError as exc:
            if exc.exit_code == 75:
                raise
            report.add(RunOutcome(run_id, FAILED, reason=exc.message))
    return report
