"""Bringing runs in flight up to date with their providers.

One pass: send pending cancellations, then walk every submitted, unfinished run in bounded
batches (memory stays flat), ask each provider for the batch's statuses with its batch call, and
apply changes as compare-and-swap transitions, a batch's changes in one transaction. Rules:
- a run whose state and provider status did not change gets no row update (its check time is
  stamped only when older than `CHECKED_RESOLUTION`, for `--stale-after`), so a pass in which
  nothing changed writes nothing;
- terminal states are sticky: each update is guarded by the state the run was read in, and
  only unfinished runs are read; a run changed by another writer meanwhile is skipped;
- a CANCELING run stays CANCELING until the provider reports a final state;
- outputs and task logs are fetched when a run reaches a final state, and replace what was
  stored (JSON replaced whole, task_logs rows deleted and re-inserted in the same transaction);
- a provider run that is not found is ended in SYSTEM_ERROR only after
  WESCTL_NOT_FOUND_CONFIRMATIONS consecutive passes say so; an unknown provider status keeps the
  run tracked; a run the provider left out of its answer is carried to the next pass.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from wesctl.db import runs as run_queries
from wesctl.db.engine import database_errors, utcnow
from wesctl.db.runs import CHECKED_RESOLUTION, Change, Move, ProviderFilter, TrackedRun
from wesctl.domain.outcomes import Outcome, Report, RunOutcome
from wesctl.domain.states import TERMINAL_STATES, RunState
from wesctl.domain.types import ProviderStatus, RunDetails, TaskLog
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


@dataclass(frozen=True)
class _Pending:
    """A change to write, and what the report says if it wins its compare-and-swap."""

    move: Move
    outcome: RunOutcome
    task_logs: Sequence[TaskLog] | None = None  # replace the run's task logs (a final run)


@dataclass
class _Writes:
    """What one batch writes, in one transaction."""

    pending: list[_Pending] = field(default_factory=list)
    not_found: list[tuple[str, str, int]] = field(default_factory=list)  # run, state, count
    checked: list[str] = field(default_factory=list)  # unchanged runs whose stamp is old


class StatusSync:
    def __init__(self, runtime: Runtime, report: Report, trouble: ProviderTrouble) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.report = report
        self.actor = runtime.actor
        self.trouble = trouble
        self.carried = False  # a provider left runs out of its answer: they wait for next pass
        self._started: set[str] = set()  # providers told that a new pass began

    def provider_filter(self) -> ProviderFilter:
        """Runs of providers this host serves and that are usable in this pass."""
        skip = disabled_providers(self.runtime) | self.trouble.names()
        return ProviderFilter(self.settings.default_provider, skip)

    def run_batch(self, batch: Sequence[TrackedRun]) -> None:
        by_provider: dict[str, list[TrackedRun]] = defaultdict(list)
        for run in batch:
            by_provider[run.provider].append(run)
        now = utcnow()
        writes = _Writes()
        for name, runs in by_provider.items():
            self._sync_provider(name, runs, writes, now - CHECKED_RESOLUTION)
        self._write(writes, now)

    def _write(self, writes: _Writes, now: datetime) -> None:
        """Write the batch's changes in one transaction; report the winners as changed and the
        runs another writer changed first as skipped."""
        if not (writes.pending or writes.not_found or writes.checked):
            return
        with database_errors(), self.runtime.writers.begin() as session:
            won = run_queries.move_many(session, [pending.move for pending in writes.pending])
            run_queries.replace_task_logs(
                session,
                {
                    pending.move.run_id: pending.task_logs
                    for pending in writes.pending
                    if pending.task_logs is not None and pending.move.run_id in won
                },
            )
            run_queries.set_not_found_counts(session, writes.not_found)
            run_queries.mark_checked(session, writes.checked, now)
        for pending in writes.pending:
            outcome = pending.outcome
            if pending.move.run_id not in won:
                outcome = RunOutcome(
                    outcome.run_id,
                    Outcome.SKIPPED,
                    outcome.provider,
                    outcome.provider_id,
                    "state changed",
                )
            self.report.add(outcome)

    def _blocked(
        self, name: str, runs: Sequence[TrackedRun], problem: ProviderMisconfigured
    ) -> None:
        """The provider is misconfigured here: these runs keep their state."""
        for run in runs:
            self.report.add(
                RunOutcome(run.run_id, Outcome.BLOCKED, name, run.provider_id, problem.detail)
            )

    def _sync_provider(
        self, name: str, runs: list[TrackedRun], writes: _Writes, stale: datetime
    ) -> None:
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
        finished: list[tuple[TrackedRun, ProviderStatus]] = []
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
                if run.provider_id not in statuses:  # not answered in this pass
                    self.carried = True
                    self.report.tally(Outcome.REQUEUED, name)
                    continue
                status = statuses[run.provider_id]
                if status is None:
                    self._not_found(name, run, writes)
                elif self._apply_without_details(name, run, status, writes, stale):
                    finished.append((run, status))
        if finished:
            workers = min(self.settings.submit_workers, len(finished))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sync") as pool:
                for result in pool.map(lambda item: self._final(name, *item), finished):
                    if isinstance(result, _Pending):
                        writes.pending.append(result)
                    else:
                        self.report.add(result)

    def _apply_without_details(
        self,
        name: str,
        run: TrackedRun,
        status: ProviderStatus,
        writes: _Writes,
        stale: datetime,
    ) -> bool:
        """Queue a change that needs no details; return True when the run reached a final state
        (the caller fetches outputs and task logs first)."""
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
            if run.status_checked_at is None or run.status_checked_at < stale:
                writes.checked.append(run.run_id)
            return False
        writes.pending.append(self._change(name, run, status, target or run.state, None))
        return False

    def _final(self, name: str, run: TrackedRun, status: ProviderStatus) -> _Pending | RunOutcome:
        """The final state with its outputs and task logs, or why it waits."""
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
        return self._change(name, run, status, target, details)

    def _change(
        self,
        name: str,
        run: TrackedRun,
        status: ProviderStatus,
        new_state: str,
        details: RunDetails | None,
    ) -> _Pending:
        now = utcnow()
        values: dict[str, Any] = {
            "provider_status": status.raw_status,
            "provider_changed_at": now,
            "status_checked_at": now,
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
        return _Pending(
            Move(run.run_id, run.state, new_state, Change(self.actor, name, reason), values),
            RunOutcome(run.run_id, Outcome.UPDATED, name, run.provider_id, new_state),
            details.task_logs if details is not None else None,
        )

    def _not_found(self, name: str, run: TrackedRun, writes: _Writes) -> None:
        count = run.not_found_count + 1
        if count < self.settings.not_found_confirmations:
            writes.not_found.append((run.run_id, run.state, count))
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
        values = {"end_time": utcnow(), "last_error": reason, "not_found_count": count}
        change = Change(self.actor, name, reason)
        writes.pending.append(
            _Pending(
                Move(run.run_id, run.state, RunState.SYSTEM_ERROR.value, change, values),
                RunOutcome(run.run_id, Outcome.FAILED, name, run.provider_id, reason),
            )
        )


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
    report.incomplete = trouble.incomplete or sync.carried
    return report
