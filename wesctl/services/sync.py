"""Bringing runs in flight up to date with their providers.

One pass: send pending cancellations, then walk every submitted, unfinished run in bounded
batches (memory stays flat), ask each provider for the batch's statuses with its batch call, and
apply changes as compare-and-swap transitions. Rules:
- a run whose state and provider status did not change gets no row update (only the batch's
  check time is stamped, in one statement, so `--stale-after` can skip recently checked runs);
- terminal states are sticky: the update is guarded by the state the run was read in, and only
  unfinished runs are read;
- a CANCELING run stays CANCELING until the provider reports a final state;
- outputs and task logs are fetched when a run reaches a final state, and replace what was
  stored (JSON replaced whole, task_logs rows deleted and re-inserted in the same transaction);
- a provider run that is not found is ended in SYSTEM_ERROR only after
  WESCTL_NOT_FOUND_CONFIRMATIONS consecutive passes say so; an unknown provider status keeps the
  run tracked.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from wesctl.db import runs as run_queries
from wesctl.db.engine import database_errors, utcnow
from wesctl.db.runs import Change, ProviderFilter, TrackedRun
from wesctl.domain.outcomes import Outcome, Report, RunOutcome
from wesctl.domain.states import TERMINAL_STATES, RunState
from wesctl.domain.types import ProviderStatus, RunDetails
from wesctl.errors import ConfigError
from wesctl.providers.base import ProviderError, ProviderMisconfigured, ProviderUnavailable
from wesctl.services.cancel import deliver_stops
from wesctl.services.runtime import ProviderTrouble, Runtime, pass_deadline
from wesctl.services.serving import disabled_providers

logger = logging.getLogger(__name__)


def _next_state(current: str, reported: RunState | None) -> str | None:
    """The state to store given the provider's mapped state, or None to keep the current one."""
    if reported is None:
        return None
    if current == RunState.CANCELING and reported not in TERMINAL_STATES:
        return None  # asked to stop: stays CANCELING until the provider reports a final state
    return reported.value


class StatusSync:
    def __init__(self, runtime: Runtime, report: Report, trouble: ProviderTrouble) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.report = report
        self.actor = runtime.actor
        self.trouble = trouble
        self._started: set[str] = set()  # providers told that a new pass began

    def provider_filter(self) -> ProviderFilter:
        """Runs of providers this host serves and that are usable in this pass."""
        skip = disabled_providers(self.runtime) | self.trouble.names()
        return ProviderFilter(self.settings.default_provider, skip)

    def run_batch(self, batch: Sequence[TrackedRun]) -> None:
        by_provider: dict[str, list[TrackedRun]] = defaultdict(list)
        for run in batch:
            by_provider[run.provider].append(run)
        for name, runs in by_provider.items():
            self._sync_provider(name, runs)
        with database_errors(), self.runtime.writers.begin() as session:
            run_queries.mark_checked(session, [run.run_id for run in batch], utcnow())

    def _blocked(
        self, name: str, runs: Sequence[TrackedRun], problem: ProviderMisconfigured
    ) -> None:
        """The provider is misconfigured here: these runs keep their state."""
        for run in runs:
            self.report.add(
                RunOutcome(run.run_id, Outcome.BLOCKED, name, run.provider_id, problem.detail)
            )

    def _sync_provider(self, name: str, runs: list[TrackedRun]) -> None:
        problem = self.trouble.get(name)
        if problem is not None:
            self._blocked(name, runs, problem)
            return
        try:
            provider = self.runtime.provider(name)
        except ConfigError as exc:
            self._blocked(name, runs, self.trouble.mark_config_error(name, exc))
            return
        if name not in self._started:
            provider.new_pass()
            self._started.add(name)
        size = max(1, provider.status_batch_size)
        changed: list[tuple[TrackedRun, ProviderStatus]] = []
        for start in range(0, len(runs), size):
            chunk = runs[start : start + size]
            if name in self.trouble.names() or self.trouble.expired():
                self.report.tally(Outcome.REQUEUED, name, len(chunk))  # carried to the next pass
                continue
            try:
                statuses = provider.statuses([run.provider_id for run in chunk])
            except ProviderMisconfigured as exc:
                self._blocked(name, runs[start:], self.trouble.mark(exc))
                break
            except ProviderUnavailable as exc:
                self.trouble.failed(name, exc.message)
                self.report.tally(Outcome.REQUEUED, name, len(chunk))
                continue
            except ProviderError as exc:
                for run in chunk:
                    self.report.add(
                        RunOutcome(run.run_id, Outcome.FAILED, name, run.provider_id, exc.message)
                    )
                continue
            self.trouble.answered(name)
            for run in chunk:
                status = statuses.get(run.provider_id)
                if status is None:
                    self._not_found(name, run)
                elif self._apply_without_details(name, run, status):
                    changed.append((run, status))
        if changed:
            workers = min(self.settings.submit_workers, len(changed))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sync") as pool:
                for finished in pool.map(lambda item: self._record_final(name, *item), changed):
                    self.report.add(finished)

    def _apply_without_details(self, name: str, run: TrackedRun, status: ProviderStatus) -> bool:
        """Apply a change that needs no details; return True when the run reached a final state
        (the caller fetches outputs and task logs, then records it)."""
        target = _next_state(run.state, status.state)
        if status.state is None:
            logger.warning(
                "run=%s provider=%s unknown provider status %r; keeping state %s",
                run.run_id,
                name,
                status.raw_status,
                run.state,
            )
        if target is not None and target in TERMINAL_STATES:
            return True
        unchanged = (target is None or target == run.state) and (
            status.raw_status == run.provider_status and run.not_found_count == 0
        )
        if unchanged:
            self.report.tally(Outcome.UNCHANGED, name)
            return False
        new_state = target or run.state
        self._record(name, run, status, new_state, details=None)
        return False

    def _record_final(self, name: str, run: TrackedRun, status: ProviderStatus) -> RunOutcome:
        problem = self.trouble.get(name)
        if problem is not None:
            return RunOutcome(run.run_id, Outcome.BLOCKED, name, run.provider_id, problem.detail)
        if self.trouble.is_down(name) or self.trouble.expired():
            return RunOutcome(
                run.run_id, Outcome.REQUEUED, name, run.provider_id, "left for next pass"
            )
        try:
            details = self.runtime.provider(name).details(run.provider_id)
        except ProviderMisconfigured as exc:
            problem = self.trouble.mark(exc)
            return RunOutcome(run.run_id, Outcome.BLOCKED, name, run.provider_id, problem.detail)
        except ProviderUnavailable as exc:
            # Without outputs the final state would be recorded incomplete: retry next pass.
            self.trouble.failed(name, exc.message)
            return RunOutcome(run.run_id, Outcome.REQUEUED, name, run.provider_id, exc.message)
        except ProviderError as exc:
            return RunOutcome(run.run_id, Outcome.FAILED, name, run.provider_id, exc.message)
        refined = details.status
        if refined is not None and refined.state in TERMINAL_STATES:
            status = refined  # e.g. HealthOmics' failure reason, absent from its listing
        target = _next_state(run.state, status.state)
        assert target is not None
        return self._record(name, run, status, target, details, add=False)

    def _record(
        self,
        name: str,
        run: TrackedRun,
        status: ProviderStatus,
        new_state: str,
        details: RunDetails | None,
        add: bool = True,
    ) -> RunOutcome:
        now = utcnow()
        values: dict[str, Any] = {
            "provider_status": status.raw_status,
            "provider_changed_at": now,
            "not_found_count": 0,
        }
        if new_state in TERMINAL_STATES:
            values["end_time"] = status.ended_at or now
            values["provider_stopped_at"] = now  # final at the provider: no stop pending
        if new_state in (RunState.EXECUTOR_ERROR, RunState.SYSTEM_ERROR) and status.message:
            values["last_error"] = status.message
        if details is not None:
            values["outputs"] = dict(details.outputs)
        reason = f"provider status {status.raw_status}"
        if status.message:
            reason += f": {status.message}"
        change = Change(self.actor, name, reason)
        with database_errors(), self.runtime.writers.begin() as session:
            if not run_queries.move(
                session,
                run.run_id,
                from_state=run.state,
                to_state=new_state,
                change=change,
                values=values,
            ):
                outcome = RunOutcome(
                    run.run_id, Outcome.SKIPPED, name, run.provider_id, "state changed"
                )
                if add:
                    self.report.add(outcome)
                return outcome
            if details is not None:
                run_queries.replace_task_logs(session, run.run_id, details.task_logs)
        outcome = RunOutcome(run.run_id, Outcome.UPDATED, name, run.provider_id, new_state)
        if add:
            self.report.add(outcome)
        return outcome

    def _not_found(self, name: str, run: TrackedRun) -> None:
        count = run.not_found_count + 1
        with database_errors(), self.runtime.writers.begin() as session:
            if count < self.settings.not_found_confirmations:
                run_queries.set_not_found_count(
                    session, run.run_id, from_state=run.state, count=count
                )
                logger.warning(
                    "run=%s provider=%s provider_id=%s not found (%d of %d before giving up)",
                    run.run_id,
                    name,
                    run.provider_id,
                    count,
                    self.settings.not_found_confirmations,
                )
                self.report.tally(Outcome.UNCHANGED, name)
                return
            reason = (
                f"provider run {run.provider_id} no longer exists at {name} "
                f"(not found {count} times in a row)"
            )
            moved = run_queries.move(
                session,
                run.run_id,
                from_state=run.state,
                to_state=RunState.SYSTEM_ERROR.value,
                change=Change(self.actor, name, reason),
                values={"end_time": utcnow(), "last_error": reason, "not_found_count": count},
            )
        if moved:
            self.report.add(RunOutcome(run.run_id, Outcome.FAILED, name, run.provider_id, reason))


def sync_status(
    runtime: Runtime,
    *,
    run_ids: Sequence[str] | None = None,
    stale_after: timedelta | None = None,
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Sync every run in flight (or just `run_ids`); return a report of what changed."""
    report = Report("sync-status")
    trouble = ProviderTrouble(report.notes, deadline=pass_deadline(runtime.settings))
    deliver_stops(runtime, report, trouble, run_ids=run_ids)
    sync = StatusSync(runtime, report, trouble)
    checked_before = utcnow() - stale_after if stale_after is not None else None
    after: str | None = None
    while not trouble.expired():
        with database_errors(), runtime.readers() as session:
            batch = run_queries.in_flight_batch(
                session,
                after_run_id=after,
                limit=batch_size,
                providers=sync.provider_filter(),
                run_ids=run_ids,
                checked_before=checked_before,
            )
        if not batch:
            break
        sync.run_batch(batch)
        after = batch[-1].run_id
        if progress is not None:
            progress(len(batch))
    report.incomplete = trouble.incomplete
    return report
