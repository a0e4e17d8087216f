"""Submitting queued runs to providers, exactly once, safely from many processes.

The protocol, per run:
1. Claim (one short transaction): a guarded update takes the run only if it is QUEUED, was
   never submitted and nobody holds an unexpired claim; the concurrency cap is checked under a
   lock in the same transaction. The submission key (the provider's idempotency token) is fixed
   here, before any provider call.
2. Call the provider outside any transaction. The adapter reports the provider's id as soon as
   it exists (Seven Bridges: the draft task, before it is run); it is stored at once.
3. Record the outcome (one short transaction, guarded by the claim): submitted, re-queued after a
   transient error, or failed. If the WES API cancelled the run meanwhile, the new provider run
   is stopped at once.
A process killed anywhere leaves a claim that expires after WESCTL_CLAIM_TIMEOUT; the next claim
re-sends the same key (HealthOmics requestId) or looks the task up (Seven Bridges marker, recorded
draft id), so the provider run is adopted, never duplicated.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from wesctl.config import PROVIDER_NAMES
from wesctl.db import runs as run_queries
from wesctl.db.engine import database_errors, utcnow
from wesctl.db.runs import Change, ProviderFilter, QueuedRun
from wesctl.db.tables import CANCEL_STATES
from wesctl.domain.outcomes import Outcome, Report, RunOutcome
from wesctl.domain.states import TERMINAL_STATES, RunState
from wesctl.domain.types import Attempt, RunSpec, Submission
from wesctl.errors import (
    ConfigError,
    InvalidRun,
    RunNotFound,
    TryAgainLater,
    WesctlError,
)
from wesctl.providers.base import (
    Provider,
    ProviderMisconfigured,
    ProviderRejected,
    ProviderUnavailable,
)
from wesctl.services.cancel import send_cancel
from wesctl.services.runtime import ProviderTrouble, Runtime, pass_deadline
from wesctl.services.serving import (
    INSTALLATION_PROBLEM,
    disabled_providers,
    inexact_state_message,
    provider_reason,
)

logger = logging.getLogger(__name__)


def spec_from_row(row: QueuedRun) -> RunSpec:
    """Build the provider request from a run row; raise InvalidRun for a malformed row."""
    if row.unreadable is not None:
        raise InvalidRun(row.unreadable)
    params = row.workflow_params
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidRun(f"workflow_params must be a JSON object, not {type(params).__name__}")
    if row.tags is not None and not isinstance(row.tags, dict):
        raise InvalidRun(f"tags must be a JSON object, not {type(row.tags).__name__}")
    if not row.workflow_url or not row.workflow_url.strip():
        raise InvalidRun("workflow_url is empty")
    return RunSpec(
        run_id=row.run_id,
        workflow_url=row.workflow_url.strip(),
        workflow_type=row.workflow_type or "",
        workflow_type_version=row.workflow_type_version or "",
        workflow_params=params,
        tags=row.tags or {},
        workflow_engine=row.workflow_engine,
        workflow_engine_version=row.workflow_engine_version,
        queued_at=row.start_time,
    )


@dataclass(frozen=True)
class Claim:
    """A run this process holds for submission (a detached copy of what it needs)."""

    run_id: str
    provider: str
    submission_key: str
    known_provider_id: str | None
    may_exist: bool
    attempts: int
    spec: RunSpec | None
    invalid_reason: str | None


def _detach(row: QueuedRun) -> Claim:
    spec: RunSpec | None = None
    invalid: str | None = None
    try:
        spec = spec_from_row(row)
    except InvalidRun as exc:
        invalid = exc.message
    assert row.submission_key is not None
    return Claim(
        run_id=row.run_id,
        provider=row.provider,
        submission_key=row.submission_key,
        known_provider_id=row.provider_id,
        may_exist=row.submit_attempts > 1 or row.provider_id is not None,
        attempts=row.submit_attempts,
        spec=spec,
        invalid_reason=invalid,
    )


@dataclass(frozen=True)
class SlotBound:
    """What a pass last knew of the concurrency slots: the claim ledger then, and at most how
    many runs held a slot then (counted, plus what it claimed since)."""

    ledger: int
    in_flight: int

    def at_most(self, ledger: int) -> int | None:
        """At most how many runs hold a slot now that the ledger reads `ledger`: runs gain a slot
        only through grants, which add to it (`runs.grant_slots`). None when the ledger went
        back (its row was restored): count again."""
        if ledger < self.ledger:
            return None
        return self.in_flight + ledger - self.ledger


class Submitter:
    """One submission pass of one process."""

    def __init__(
        self,
        runtime: Runtime,
        report: Report,
        *,
        only: str | None = None,
        deadline: float | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.report = report
        self.owner = runtime.actor
        self.lease = timedelta(seconds=self.settings.claim_timeout)
        self.only = only
        self.trouble = ProviderTrouble(report.notes, deadline=deadline)
        self.slots: SlotBound | None = None

    def provider_filter(self) -> ProviderFilter:
        """Runs of providers this host serves and that are usable in this pass."""
        skip = disabled_providers(self.runtime) | self.trouble.names()
        return ProviderFilter(self.settings.default_provider, skip, self.only)

    # --- claiming ------------------------------------------------------------------------
    def claim(
        self,
        *,
        limit: int,
        run_ids: Sequence[str] | None = None,
        exclude: Collection[str] = (),
    ) -> list[Claim]:
        """Claim up to `limit` runs (of `run_ids` if given, never of `exclude`): recoveries first
        (they hold a slot), then new ones while the concurrency cap allows.

        The runs holding a slot are counted (up to the cap) by a pass's first claim, and later
        only when the bound the claim ledger gives (`SlotBound`) would keep a claim from taking
        what it asks for: a long pass under a large cap does not read every run in flight per
        claim, and the cap stays exact across processes."""
        providers = self.provider_filter()
        with database_errors(), self.runtime.writers.begin() as session:
            ledger = run_queries.lock_claims(session)
            now = utcnow()
            recover = run_queries.claimable_run_ids(
                session,
                now,
                limit=limit,
                needs_slot=False,
                providers=providers,
                run_ids=run_ids,
                exclude=exclude,
            )
            cap = self.settings.max_concurrent_workflows
            wanted = limit - len(recover)
            in_flight = self.slots.at_most(ledger) if self.slots is not None else None
            if in_flight is None or cap - in_flight < wanted:
                in_flight = run_queries.count_in_flight(session, now, up_to=cap)
            fresh: list[str] = []
            room = min(wanted, cap - in_flight)
            if room > 0:
                fresh = run_queries.claimable_run_ids(
                    session,
                    now,
                    limit=room,
                    needs_slot=True,
                    providers=providers,
                    run_ids=run_ids,
                    exclude=exclude,
                )
            rows = run_queries.claim_runs(
                session,
                [*recover, *fresh],
                owner=self.owner,
                now=now,
                lease=self.lease,
                default_provider=self.settings.default_provider,
            )
            new_slots = len({row.run_id for row in rows}.intersection(fresh))
            if new_slots:
                run_queries.grant_slots(session, new_slots)
            claims = [_detach(row) for row in rows]
        # Kept only once committed: the ledger read plus our own grant, so a concurrent grant
        # this count may or may not have seen is added to the next bound, never left out.
        self.slots = SlotBound(ledger + new_slots, in_flight + new_slots)
        return claims

    # --- submitting ----------------------------------------------------------------------
    def submit_claimed(self, claim: Claim) -> RunOutcome:
        """Submit one claimed run and record the outcome; never raises for provider errors."""
        if claim.provider not in PROVIDER_NAMES:
            return self._fail(
                claim,
                f"unknown provider {claim.provider!r}; known providers: "
                f"{', '.join(PROVIDER_NAMES)}",
            )
        if claim.invalid_reason is not None or claim.spec is None:
            return self._fail(claim, f"invalid run: {claim.invalid_reason}")
        if claim.provider not in self.settings.enabled_providers:  # claims skip these
            self._release(claim, {})
            return RunOutcome(
                claim.run_id, Outcome.WAITING, claim.provider, reason="not served here"
            )
        problem = self.trouble.get(claim.provider)
        if problem is not None:
            return self._blocked(claim, problem)
        try:
            provider = self.runtime.provider(claim.provider)
        except ConfigError as exc:
            return self._blocked(claim, self.trouble.mark_config_error(claim.provider, exc))
        return self._attempt(claim, provider)

    def _attempt(
        self, claim: Claim, provider: Provider, *, giving_up: str | None = None
    ) -> RunOutcome:
        """One submission attempt, and the one mapping of its errors to outcomes.

        `giving_up` (the last error, when the attempts are used up) makes it look the
        provider run up first: an earlier attempt may have created one (a lost answer, a
        recorded draft). The run then ends only once the provider proves that nothing exists
        for its submission key; a provider run that exists is adopted; while the provider
        cannot tell, the run stays queued and is looked up again next pass.
        """
        assert claim.spec is not None
        attempt = Attempt(
            claim.spec, claim.submission_key, claim.known_provider_id, claim.may_exist
        )
        try:
            if giving_up is None:
                provider.validate(claim.spec)
            else:
                known = provider.lookup(attempt)
                if known is None:
                    return self._fail(
                        claim,
                        f"gave up after {claim.attempts} submission attempts; {claim.provider} "
                        f"confirmed that no run exists for submission key "
                        f"{claim.submission_key}; last error: {giving_up}",
                    )
                self._record_id(claim, known)
                attempt = replace(attempt, known_provider_id=known, may_exist=True)
            submission = provider.submit(
                attempt, lambda provider_id: self._record_id(claim, provider_id)
            )
        except ClaimLost:
            return RunOutcome(
                claim.run_id, Outcome.SKIPPED, claim.provider, reason="claim taken over"
            )
        except ProviderMisconfigured as exc:
            return self._blocked(claim, self.trouble.mark(exc))
        except ProviderRejected as exc:
            return self._fail(claim, exc.message)
        except Exception as exc:  # transient (ProviderUnavailable, a database error) or a bug
            if not isinstance(exc, WesctlError):
                logger.exception("unexpected error submitting run=%s", claim.run_id)
            reason = exc.message if isinstance(exc, WesctlError) else f"unexpected error: {exc!r}"
            if giving_up is None:
                return self._requeue(claim, provider, reason)
            return self._keep_queued(
                claim,
                f"{giving_up}; the attempts are used up but whether {claim.provider} holds a "
                f"run for this submission cannot be told now ({reason}); looked up again next "
                "pass",
            )
        return self._submitted(claim, submission)

    def _record_id(self, claim: Claim, provider_id: str) -> None:
        with database_errors(), self.runtime.writers.begin() as session:
            if not run_queries.record_provider_id(
                session,
                claim.run_id,
                owner=self.owner,
                provider_id=provider_id,
                provider_type=claim.provider,
            ):
                raise ClaimLost(claim.run_id)

    def _submitted(self, claim: Claim, submission: Submission) -> RunOutcome:
        status = submission.status
        new_state = status.state or RunState.INITIALIZING
        if new_state == RunState.QUEUED:  # adapters never do this; keep the invariant anyway
            new_state = RunState.INITIALIZING
        now = utcnow()
        outcome = Outcome.ADOPTED if submission.adopted else Outcome.SUBMITTED
        values: dict[str, Any] = {
            "provider_type": claim.provider,
            "provider_id": submission.provider_id,
            "provider_status": status.raw_status,
            "provider_metadata": dict(submission.metadata),
            "submitted_at": now,
            "provider_changed_at": now,
            "last_error": None,
        }
        reason = f"{outcome} to {claim.provider} as {submission.provider_id}"
        with database_errors(), self.runtime.writers.begin() as session:
            previous = self._end_claim(session, claim, RunState.QUEUED, new_state, values, reason)
            if previous is not None:
                cancel_now = False
            else:
                # Not QUEUED any more: the WES API cancelled it while we were submitting.
                previous = run_queries.finish_claim(
                    session, claim.run_id, owner=self.owner, expected_state=None, values=values
                )
                if previous is None:
                    return RunOutcome(
                        claim.run_id,
                        Outcome.SKIPPED,
                        claim.provider,
                        submission.provider_id,
                        "claim taken over by another process",
                    )
                cancel_now = previous in CANCEL_STATES
        if previous is not None and not cancel_now:
            return RunOutcome(claim.run_id, outcome, claim.provider, submission.provider_id, reason)
        return self._cancel_raced(claim, submission.provider_id, previous)

    def _cancel_raced(self, claim: Claim, provider_id: str, state: str) -> RunOutcome:
        """The run was cancelled during submission: stop the provider run we just started (if
        that fails, the stop stays pending and every later sync-status or cancel pass sends it
        again until the provider reports the run final)."""
        sent = send_cancel(
            self.runtime, claim.run_id, claim.provider, provider_id, self.trouble, state=state
        )
        reason = "cancelled while being submitted; " + (
            "provider asked to stop the run"
            if sent.outcome == Outcome.CANCEL_SENT
            else f"the stop is pending ({sent.reason})"
        )
        return RunOutcome(claim.run_id, Outcome.CANCELED, claim.provider, provider_id, reason)

    def _fail(self, claim: Claim, reason: str) -> RunOutcome:
        now = utcnow()
        values = {"end_time": now, "last_error": reason, "provider_type": claim.provider}
        with database_errors(), self.runtime.writers.begin() as session:
            previous = self._end_claim(
                session, claim, RunState.QUEUED, RunState.SYSTEM_ERROR, values, reason
            )
            if previous is None:
                run_queries.finish_claim(
                    session, claim.run_id, owner=self.owner, expected_state=None, values={}
                )
                return RunOutcome(
                    claim.run_id, Outcome.SKIPPED, claim.provider, reason="no longer queued"
                )
        return RunOutcome(claim.run_id, Outcome.FAILED, claim.provider, reason=reason)

    def _blocked(self, claim: Claim, problem: ProviderMisconfigured) -> RunOutcome:
        """Release the claim as if it had not been taken: same state, the attempt given back,
        the installation problem in last_error. The run is not at fault."""
        reason = f"{INSTALLATION_PROBLEM}{problem.message}; fix: {problem.fix}"
        self._release(claim, {"last_error": reason, "submit_attempts": max(0, claim.attempts - 1)})
        return RunOutcome(claim.run_id, Outcome.BLOCKED, claim.provider, reason=reason)

    def _requeue(self, claim: Claim, provider: Provider, reason: str) -> RunOutcome:
        if claim.attempts >= self.settings.max_submit_attempts:
            return self._attempt(claim, provider, giving_up=reason)
        return self._keep_queued(claim, reason)

    def _keep_queued(self, claim: Claim, reason: str) -> RunOutcome:
        with database_errors(), self.runtime.writers.begin() as session:
            self._end_claim(
                session,
                claim,
                None,
                None,
                {"last_error": reason},
                f"submission attempt {claim.attempts} failed (transient): {reason}",
            )
        logger.warning(
            "run=%s provider=%s submission attempt %d failed, left queued: %s",
            claim.run_id,
            claim.provider,
            claim.attempts,
            reason,
        )
        return RunOutcome(claim.run_id, Outcome.REQUEUED, claim.provider, reason=reason)

    def _end_claim(
        self,
        session: Session,
        claim: Claim,
        expected: RunState | None,
        new_state: RunState | None,
        values: dict[str, Any],
        reason: str,
    ) -> str | None:
        """Release our claim with `values` (and `new_state`) if the run is still in `expected`
        (any state when None), and record the transition. Return the state the run was in,
        or None if the guard failed."""
        if new_state is not None:
            values = {**values, "state": new_state.value}
        previous = run_queries.finish_claim(
            session,
            claim.run_id,
            owner=self.owner,
            expected_state=expected.value if expected is not None else None,
            values=values,
        )
        if previous is not None:
            to_state = new_state.value if new_state is not None else previous
            change = Change(self.owner, claim.provider, reason)
            run_queries.record_transition(session, claim.run_id, previous, to_state, change)
        return previous

    def _release(self, claim: Claim, values: dict[str, Any]) -> None:
        """Give the claim up with `values` and no state change or history row."""
        with database_errors(), self.runtime.writers.begin() as session:
            run_queries.finish_claim(
                session, claim.run_id, owner=self.owner, expected_state=None, values=values
            )


class ClaimLost(WesctlError):
    """Another process took over this run's claim (ours expired)."""


# Transient failures in a row after which a pass stops claiming (the provider looks down).
PROVIDER_DOWN_AFTER = 16


def submit_queued(
    runtime: Runtime,
    *,
    limit: int | None = None,
    provider: str | None = None,
    progress: Callable[[RunOutcome], None] | None = None,
    batch_size: int | None = None,
    report: Report | None = None,
) -> Report:
    """Submit queued runs, oldest first, within the concurrency cap; return what happened
    (in `report` if given: one that prints or bounds what it keeps, for a long pass).

    Runs are claimed in batches (of as many runs as there are workers unless `batch_size` says
    otherwise) whenever fewer runs than workers are waiting for the pool, so workers never idle
    while a batch drains and a claimed run waits for a worker at most one round. A run whose
    attempt failed transiently is tried again on the next tick, not in this pass; after a run of
    transient failures (as many as there are workers, and at least 16) the provider is taken to
    be down and no more runs are claimed.
    """
    report = report or Report("submit-queued")
    submitter = Submitter(runtime, report, only=provider, deadline=pass_deadline(runtime.settings))
    report_waiting(runtime, report)
    workers = runtime.settings.submit_workers
    batch_size = batch_size or workers
    claimed = 0
    retry_next_tick: set[str] = set()
    requeued_in_a_row = 0
    more = True
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="submit") as pool:
        pending: dict[Future[RunOutcome], str] = {}
        while True:
            if more and submitter.trouble.expired():
                more = False  # WESCTL_PASS_TIMEOUT: what is left waits for the next pass
            while more and len(pending) < workers and (limit is None or claimed < limit):
                chunk = batch_size if limit is None else min(batch_size, limit - claimed)
                # Runs whose outcome is not read yet may have been released already.
                exclude = retry_next_tick.union(pending.values())
                claims = submitter.claim(limit=chunk, exclude=exclude)
                more = bool(claims)
                claimed += len(claims)
                for claim in claims:
                    pending[pool.submit(submitter.submit_claimed, claim)] = claim.run_id
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                del pending[future]
                outcome = future.result()
                report.add(outcome)
                if progress is not None:
                    progress(outcome)
                if outcome.outcome == Outcome.REQUEUED:
                    retry_next_tick.add(outcome.run_id)
                    requeued_in_a_row += 1
                else:
                    requeued_in_a_row = 0
            if requeued_in_a_row >= max(workers, PROVIDER_DOWN_AFTER):
                more = False  # the provider is down; leave the rest for the next tick
    report.incomplete = submitter.trouble.incomplete
    return report


def report_waiting(runtime: Runtime, report: Report) -> None:
    """Count the runs left for other hosts, and warn about states wesctl cannot act on."""
    settings = runtime.settings
    disabled = disabled_providers(runtime)
    with database_errors(), runtime.readers() as session:
        waiting = run_queries.waiting_by_provider(session, settings.default_provider, disabled)
        inexact = run_queries.inexact_states(session)
    for name, count in sorted(waiting.items()):
        report.tally(Outcome.WAITING, name, count)
        report.notes.append(
            f"{count} runs wait for provider {name}, not enabled on this host "
            f"({provider_reason(runtime, name)})"
        )
    for state, count in sorted(inexact.items()):
        message = inexact_state_message(state, count)
        logger.warning("%s", message)
        report.notes.append(message)


def submit_one(runtime: Runtime, run_id: str) -> Report:
    """Submit one run if it is queued and claimable; say why not otherwise."""
    report = Report("submit-one")
    with database_errors(), runtime.readers() as session:
        row = run_queries.queued_run(session, run_id, runtime.settings.default_provider)
    if row is None:
        raise RunNotFound(f"no run with id {run_id!r}")
    claimed = row.claimed_by is not None and (
        row.claim_expires_at is not None and row.claim_expires_at > utcnow()
    )
    if row.state != RunState.QUEUED or row.submitted:
        report.add(
            RunOutcome(
                run_id, Outcome.SKIPPED, None, row.provider_id, f"run is {row.state}, not queued"
            )
        )
        return report
    if row.provider in disabled_providers(runtime):
        report.add(
            RunOutcome(
                run_id,
                Outcome.WAITING,
                row.provider,
                None,
                f"provider {row.provider} is not enabled on this host "
                f"({provider_reason(runtime, row.provider)})",
            )
        )
        return report
    if claimed:
        report.add(
            RunOutcome(run_id, Outcome.SKIPPED, None, None, "being submitted by another process")
        )
        return report
    submitter = Submitter(runtime, report)
    claims = submitter.claim(limit=1, run_ids=[run_id])
    if not claims:
        report.add(
            RunOutcome(
                run_id,
                Outcome.SKIPPED,
                None,
                None,
                "waiting: the concurrency cap is reached or another process claimed it",
            )
        )
        return report
    report.add(submitter.submit_claimed(claims[0]))
    return report


def plan_submission(runtime: Runtime, *, limit: int | None, provider: str | None) -> Report:
    """What submit-queued would do now, without claiming or calling anything."""
    report = Report("submit-queued --dry-run")
    settings = runtime.settings
    with database_errors(), runtime.readers() as session:
        now = utcnow()
        in_flight = run_queries.count_in_flight(
            session, now, up_to=settings.max_concurrent_workflows
        )
        rows = run_queries.queued_unsubmitted(
            session, ProviderFilter(settings.default_provider, only=provider)
        )
        disabled = disabled_providers(runtime)
        slots = settings.max_concurrent_workflows - in_flight
        budget = limit
        for row in rows:
            name = row.provider
            claim_active = row.claim_expires_at is not None and row.claim_expires_at > now
            if row.claimed_by and claim_active:
                outcome = RunOutcome(
                    row.run_id,
                    Outcome.SKIPPED,
                    name,
                    row.provider_id,
                    f"being submitted by {row.claimed_by}",
                )
            elif name in disabled:
                outcome = RunOutcome(
                    row.run_id,
                    Outcome.WAITING,
                    name,
                    None,
                    f"provider {name} is not enabled on this host "
                    f"({provider_reason(runtime, name)})",
                )
            elif budget is not None and budget <= 0:
                outcome = RunOutcome(row.run_id, Outcome.WAITING, name, None, "beyond --limit")
            elif row.provider_id is not None:
                outcome = RunOutcome(
                    row.run_id,
                    Outcome.WOULD_ADOPT,
                    name,
                    row.provider_id,
                    "an interrupted submission left this provider id; it will be adopted",
                )
            elif slots <= 0:
                outcome = RunOutcome(
                    row.run_id,
                    Outcome.WAITING,
                    name,
                    None,
                    f"concurrency cap {settings.max_concurrent_workflows} reached",
                )
            else:
                try:
                    spec_from_row(row)
                    outcome = RunOutcome(
                        row.run_id, Outcome.WOULD_SUBMIT, name, None, "oldest first"
                    )
                except InvalidRun as exc:
                    outcome = RunOutcome(row.run_id, Outcome.WOULD_FAIL, name, None, exc.message)
                slots -= 1
            if (
                outcome.outcome in (Outcome.WOULD_SUBMIT, Outcome.WOULD_ADOPT, Outcome.WOULD_FAIL)
                and budget
            ):
                budget -= 1
            report.add(outcome)
    report.notes.append(
        f"{in_flight} of {settings.max_concurrent_workflows} concurrency slots in use"
    )
    return report


def submit_runs(
    runtime: Runtime,
    run_ids: Sequence[str],
    *,
    before_each: Callable[[], None] | None = None,
) -> Report:
    """Submit the given runs that are queued and claimable, with one claim for all of them
    (what a burst of notifications drives); the others are reported as skipped.
    `before_each` runs before each provider submission (the notify server yields to answers)."""
    report = Report("submit-runs")
    submitter = Submitter(runtime, report)
    claims = submitter.claim(limit=len(run_ids), run_ids=run_ids)
    for claim in claims:
        if before_each is not None:
            before_each()
        report.add(submitter.submit_claimed(claim))
    claimed = {claim.run_id for claim in claims}
    for run_id in dict.fromkeys(run_ids):
        if run_id not in claimed:
            report.add(
                RunOutcome(
                    run_id,
                    Outcome.SKIPPED,
                    reason="not claimable now: submitted, being submitted, "
                    "or the concurrency cap is reached (the timer retries)",
                )
            )
    return report


def retry_run(runtime: Runtime, run_id: str) -> str:
    """Put a SYSTEM_ERROR run back in the queue without ever adding a second provider run, and
    say in one line what was done.

    A provider run its last submission may have created (its recorded id, its key's marker) is
    looked up first: one that is still going is kept, with the same key, for the next pass to
    adopt; a fresh submission key is used only when nothing exists or what exists is final.
    """
    default = runtime.settings.default_provider
    with database_errors(), runtime.readers() as session:
        row = run_queries.queued_run(session, run_id, default)
    if row is None:
        raise RunNotFound(f"no run with id {run_id!r}")
    if row.state != RunState.SYSTEM_ERROR:
        raise InvalidRun(f"run {run_id} is {row.state}; only SYSTEM_ERROR runs can be retried")
    live = _live_provider_run(runtime, row)
    values: dict[str, Any] = {
        "end_time": None,
        "provider_status": None,
        "provider_metadata": None,
        "outputs": None,
        "submitted_at": None,
        "claimed_by": None,
        "claim_expires_at": None,
        "not_found_count": 0,
        "cancel_sent_at": None,
        "provider_stopped_at": None,
        "provider_changed_at": None,
    }
    if live is not None:
        values.update(provider_id=live, submit_attempts=1)
        done = f"re-queued; its {row.provider} run {live} is still going and will be adopted"
    else:
        values.update(
            provider_id=None,
            submission_key=f"wesctl-{run_id}-{uuid.uuid4().hex[:8]}",
            submit_attempts=0,
        )
        done = "re-queued with a new submission key (no provider run of it is going)"
    reason = f"{done} (previous error: {row.last_error or '-'})"
    with database_errors(), runtime.writers.begin() as session:
        if not run_queries.move(
            session,
            run_id,
            from_state=RunState.SYSTEM_ERROR.value,
            to_state=RunState.QUEUED.value,
            change=Change(runtime.actor, row.provider, reason),
            values=values,
        ):
            raise InvalidRun(f"run {run_id} changed state meanwhile; try again")
        if live is not None:
            run_queries.grant_slots(session, 1)  # its provider run holds a slot from now on
    return done


def _live_provider_run(runtime: Runtime, row: QueuedRun) -> str | None:
    """The id of a provider run the run's last submission created that is not final, if any.
    Raises TryAgainLater when the provider cannot tell now, ConfigError when it refuses us."""
    if row.submission_key is None and row.provider_id is None:
        return None  # never claimed: nothing was ever sent
    if row.provider not in PROVIDER_NAMES:
        return None  # ended for naming no provider wesctl knows: nothing was sent
    try:
        spec = spec_from_row(row)
    except InvalidRun:
        return None  # malformed rows are refused before any provider call
    provider = runtime.provider(row.provider)
    key = row.submission_key or f"wesctl-{row.run_id}"
    try:
        found = provider.lookup(Attempt(spec, key, row.provider_id))
        if found is None:
            return None
        statuses = provider.statuses([found])
        if found not in statuses:
            raise ProviderUnavailable(row.provider, f"the status of {found} could not be read now")
        status = statuses[found]
    except ProviderMisconfigured as exc:
        raise ConfigError(f"{exc.message}; fix: {exc.fix}") from None
    except ProviderUnavailable as exc:
        raise TryAgainLater(
            f"cannot tell whether {row.provider} still runs a run of {row.run_id}: {exc.message}; "
            "nothing was changed, try again later"
        ) from None
    except ProviderRejected:
        return None  # the request itself is refused, so it never created a run
    if status is None or status.state in TERMINAL_STATES:
        return None
    return found
