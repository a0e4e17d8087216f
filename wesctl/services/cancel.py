"""Cancelling runs, and delivering every cancel until the provider confirms it.

A run not yet at a provider is cancelled in the database at once. A run with a provider run
(submitted, or with an id an interrupted submission recorded) goes to CANCELING and the
provider is asked to stop it. The WES API writes CANCELED directly, even for runs still running
at a provider; those keep their CANCELED state.

Either way the stop is pending until the provider reports the run final: every sync-status and
cancel pass looks at the pending stops of the providers it serves and asks again whatever is
still running (a lost or failed abort, a submitter killed after starting the run). Each stop
sent is a row in the run's history. A CANCELING run becomes CANCELED (or the final state the
provider reports) in sync-status; a CANCELED one gets its end time once the provider stopped.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

from wesctl.db import runs as run_queries
from wesctl.db.engine import database_errors, utcnow
from wesctl.db.runs import Change, PendingStop, ProviderFilter
from wesctl.domain.outcomes import Outcome, Report, RunOutcome
from wesctl.domain.states import TERMINAL_STATES, RunState
from wesctl.errors import EX_TEMPFAIL, ConfigError, WesctlError
from wesctl.providers.base import (
    ProviderMisconfigured,
    ProviderRejected,
    ProviderRunNotFound,
    ProviderUnavailable,
)
from wesctl.services.runtime import (
    ProviderTrouble,
    Runtime,
    pass_deadline,
)
from wesctl.services.serving import disabled_providers

logger = logging.getLogger(__name__)
STOP_BATCH = 500  # pending stops read per query


def send_cancel(
    runtime: Runtime,
    run_id: str,
    provider: str,
    provider_id: str,
    trouble: ProviderTrouble,
    *,
    state: str,
) -> RunOutcome:
    """Ask the provider to stop `provider_id` once and record the attempt; never raises for
    provider errors: a transient failure or a misconfigured provider leaves the stop pending
    for a later pass."""
    problem = trouble.get(provider)
    try:
        if problem is not None:
            raise problem
        runtime.provider(provider).cancel(provider_id)
    except ConfigError as exc:
        problem = trouble.mark_config_error(provider, exc)
        return RunOutcome(run_id, Outcome.BLOCKED, provider, provider_id, problem.detail)
    except ProviderMisconfigured as exc:
        problem = trouble.mark(exc)
        return RunOutcome(run_id, Outcome.BLOCKED, provider, provider_id, problem.detail)
    except ProviderUnavailable as exc:
        trouble.failed(provider, exc.message)
        logger.warning("run=%s provider=%s cancel failed, will retry: %s", run_id, provider, exc)
        return RunOutcome(run_id, Outcome.REQUEUED, provider, provider_id, exc.message)
    except ProviderRunNotFound:
        with database_errors(), runtime.writers.begin() as session:
            run_queries.mark_stopped(session, run_id, ended_at=None)
        return RunOutcome(run_id, Outcome.STOPPED, provider, provider_id, "no such provider run")
    except ProviderRejected as exc:
        logger.error("run=%s provider=%s cancel refused: %s", run_id, provider, exc)
        with database_errors(), runtime.writers.begin() as session:
            run_queries.mark_cancel_sent(session, run_id, error=f"cancel refused: {exc.message}")
        return RunOutcome(
            run_id, Outcome.FAILED, provider, provider_id, f"cancel refused: {exc.message}"
        )
    trouble.answered(provider)
    reason = f"stop sent to {provider} run {provider_id}"
    with database_errors(), runtime.writers.begin() as session:
        run_queries.mark_cancel_sent(session, run_id)
        change = Change(runtime.actor, provider, reason)
        run_queries.record_transition(session, run_id, state, state, change)
    logger.info("run=%s provider=%s provider_id=%s cancel sent", run_id, provider, provider_id)
    return RunOutcome(
        run_id, Outcome.CANCEL_SENT, provider, provider_id, "provider asked to stop the run"
    )


def cancel_run(runtime: Runtime, run_id: str, report: Report, trouble: ProviderTrouble) -> None:
    """Cancel one run by id, as far as its state allows."""
    with database_errors(), runtime.writers.begin() as session:
        row = run_queries.cancel_target(session, run_id, runtime.settings.default_provider)
        if row is None:
            report.add(RunOutcome(run_id, Outcome.FAILED, reason=f"no run with id {run_id!r}"))
            return
        state, provider, provider_id = row.state, row.provider, row.provider_id
        change = Change(runtime.actor, provider, "cancelled by operator")
        if state in TERMINAL_STATES:
            if not (state == RunState.CANCELED and provider_id is not None and not row.stopped):
                report.add(
                    RunOutcome(run_id, Outcome.SKIPPED, provider, provider_id, f"run is {state}")
                )
                return
        elif provider_id is None:
            # Not at a provider (possibly being submitted: the submitter sees CANCELED and
            # stops whatever it started).
            if not run_queries.move(
                session,
                run_id,
                from_state=state,
                to_state=RunState.CANCELED.value,
                change=change,
                values={"end_time": utcnow()},
            ):
                report.add(
                    RunOutcome(run_id, Outcome.SKIPPED, provider, None, "state changed; try again")
                )
                return
            report.add(
                RunOutcome(run_id, Outcome.CANCELED, provider, None, "cancelled before submission")
            )
            return
        elif state != RunState.CANCELING:
            # At a provider, or an interrupted submission recorded its id: CANCELING until the
            # provider confirms the run stopped.
            target = RunState.CANCELING.value
            if not run_queries.move(
                session, run_id, from_state=state, to_state=target, change=change
            ):
                report.add(
                    RunOutcome(run_id, Outcome.SKIPPED, provider, provider_id, "state changed")
                )
                return
            state = target
    assert provider_id is not None
    report.add(send_cancel(runtime, run_id, provider, provider_id, trouble, state=state))


def deliver_stops(
    runtime: Runtime,
    report: Report,
    trouble: ProviderTrouble,
    *,
    run_ids: Sequence[str] | None = None,
) -> None:
    """One pass over the pending stops: look each provider run up in batches; a final one is
    recorded as stopped, one that is still running (and not already stopping) is asked to stop
    again. A provider that is down or misconfigured is skipped for the rest of the pass."""
    default = runtime.settings.default_provider
    disabled = disabled_providers(runtime)
    after: str | None = None
    while not trouble.expired():
        providers = ProviderFilter(default, disabled | trouble.names())
        with database_errors(), runtime.readers() as session:
            batch = run_queries.pending_stops(
                session,
                utcnow(),
                after_run_id=after,
                limit=STOP_BATCH,
                providers=providers,
                run_ids=run_ids,
            )
        if not batch:
            return
        after = batch[-1].run_id
        by_provider: dict[str, list[PendingStop]] = defaultdict(list)
        for stop in batch:
            by_provider[stop.provider].append(stop)
        for name, stops in by_provider.items():
            _deliver(runtime, report, trouble, name, stops)


def _deliver(
    runtime: Runtime,
    report: Report,
    trouble: ProviderTrouble,
    name: str,
    stops: list[PendingStop],
) -> None:
    try:
        provider = runtime.provider(name)
    except ConfigError as exc:
        problem = trouble.mark_config_error(name, exc)
        for stop in stops:
            report.add(
                RunOutcome(stop.run_id, Outcome.BLOCKED, name, stop.provider_id, problem.detail)
            )
        return
    size = max(1, provider.status_batch_size)
    for start in range(0, len(stops), size):
        chunk = stops[start : start + size]
        if name in trouble.names() or trouble.expired():
            report.tally(Outcome.REQUEUED, name, len(chunk))
            continue
        try:
            statuses = provider.statuses([stop.provider_id for stop in chunk])
        except ProviderMisconfigured as exc:
            problem = trouble.mark(exc)
            for stop in chunk:
                report.add(
                    RunOutcome(stop.run_id, Outcome.BLOCKED, name, stop.provider_id, problem.detail)
                )
            continue
        except ProviderUnavailable as exc:
            trouble.failed(name, exc.message)
            report.tally(Outcome.REQUEUED, name, len(chunk))
            continue
        trouble.answered(name)
        for stop in chunk:
            if stop.provider_id not in statuses:  # not answered in this pass
                report.tally(Outcome.REQUEUED, name)
                continue
            status = statuses[stop.provider_id]
            final = status is None or status.state in TERMINAL_STATES
            if final and stop.state == RunState.CANCELED:
                with database_errors(), runtime.writers.begin() as session:
                    ended = status.ended_at if status is not None else None
                    run_queries.mark_stopped(session, stop.run_id, ended_at=ended)
                report.add(
                    RunOutcome(stop.run_id, Outcome.STOPPED, name, stop.provider_id, "stopped")
                )
            elif final or (status is not None and status.state == RunState.CANCELING):
                continue  # stopping, or CANCELING and final: sync-status records the state
            elif name in trouble.names():
                report.tally(Outcome.REQUEUED, name)
            else:
                outcome = send_cancel(
                    runtime, stop.run_id, name, stop.provider_id, trouble, state=stop.state
                )
                report.add(outcome)


def cancel(runtime: Runtime, run_ids: Sequence[str] = ()) -> Report:
    """Cancel the given runs, or, without ids, deliver every pending stop."""
    report = Report("cancel")
    trouble = ProviderTrouble(report.notes, deadline=pass_deadline(runtime.settings))
    if not run_ids:
        deliver_stops(runtime, report, trouble)
    for run_id in run_ids:
        try:
            cancel_run(runtime, run_id, report, trouble)
        except WesctlError as exc:
            if exc.exit_code == EX_TEMPFAIL:
                raise
            report.add(RunOutcome(run_id, Outcome.FAILED, reason=exc.message))
    report.incomplete = trouble.incomplete
    return report
