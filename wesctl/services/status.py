"""The operator's one-screen overview: what is queued, in flight, stuck and failing.

Finished runs stay in the database for ever, so the overview never reads them at large: runs
not finished are counted through indexes that leave the finished ones out; finished runs, the
last submit and the last sync come from the state history of the last 24 hours
(`HISTORY_WINDOW`, through its time index), failures from its last hour. Its cost therefore
follows the runs in flight and the recent activity, not the size of the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from wesctl.db import runs as run_queries
from wesctl.db.engine import database_errors, utcnow
from wesctl.db.runs import iso_time
from wesctl.services.runtime import Runtime
from wesctl.services.serving import (
    INSTALLATION_PROBLEM,
    disabled_providers,
    inexact_state_message,
    provider_reason,
)

# How far back status reads the history: finished runs, last submit and last sync.
HISTORY_WINDOW = timedelta(hours=24)
FAILURE_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class Overview:
    now: datetime
    # Runs not finished, and runs finished within HISTORY_WINDOW, per (state, provider).
    counts: dict[tuple[str, str], int]
    oldest_queued: tuple[str, datetime | None] | None
    queued: int
    in_flight: dict[str, int]
    cap: int
    stuck: dict[str, int]
    stuck_after: int
    last_submit: datetime | None
    last_sync: datetime | None
    failures: list[dict[str, Any]]
    # Runs this host will not act on, and providers found misconfigured, one line each.
    warnings: list[str]

    @property
    def history_window(self) -> str:
        """HISTORY_WINDOW as the screen says it."""
        return f"{HISTORY_WINDOW.total_seconds() / 3600:g} h"

    @property
    def in_flight_total(self) -> int:
        return sum(self.in_flight.values())

    def to_json(self) -> dict[str, Any]:
        oldest = None
        if self.oldest_queued is not None:
            run_id, queued_at = self.oldest_queued
            age = (self.now - queued_at).total_seconds() if queued_at else None
            oldest = {"run_id": run_id, "queued_at": iso_time(queued_at), "age_seconds": age}
        return {
            "at": iso_time(self.now),
            "history_since": iso_time(self.now - HISTORY_WINDOW),
            "counts": [
                {"state": state, "provider": provider, "runs": count}
                for (state, provider), count in sorted(self.counts.items())
            ],
            "queued": self.queued,
            "oldest_queued": oldest,
            "in_flight": {"total": self.in_flight_total, "cap": self.cap, **self.in_flight},
            "stuck": self.stuck,
            "stuck_after_seconds": self.stuck_after,
            "last_submit": iso_time(self.last_submit),
            "last_sync": iso_time(self.last_sync),
            "failures_last_hour": self.failures,
            "warnings": self.warnings,
        }


def overview(runtime: Runtime) -> Overview:
    settings = runtime.settings
    now = utcnow()
    since = now - HISTORY_WINDOW
    default = settings.default_provider
    with database_errors(), runtime.readers() as session:
        stats = run_queries.queue_stats(session, now, stuck_after=settings.stuck_after)
        counts = run_queries.count_unfinished(session, default)
        counts.update(run_queries.count_finished_since(session, default, since))
        failures = [
            {
                "run_id": item.run_id,
                "at": iso_time(item.at),
                "state": item.to_state,
                "reason": item.reason,
            }
            for item in run_queries.recent_failures(session, now - FAILURE_WINDOW, limit=10)
        ]
        return Overview(
            now=now,
            counts=counts,
            oldest_queued=run_queries.oldest_queued(session),
            queued=stats.queued,
            in_flight=stats.in_flight,
            cap=settings.max_concurrent_workflows,
            stuck=stats.stuck,
            stuck_after=settings.stuck_after,
            last_submit=run_queries.last_action_at(
                session, ("submit-queued@", "submit-one@", "serve-notify@"), since
            ),
            last_sync=run_queries.last_action_at(session, ("sync-status@",), since),
            failures=failures,
            warnings=run_warnings(runtime),
        )


def run_warnings(runtime: Runtime) -> list[str]:
    """One line per group of runs that waits on something only an operator can change: a
    provider this host does not serve, a misconfigured provider, a state that is not exact."""

    default = runtime.settings.default_provider
    with database_errors(), runtime.readers() as session:
        waiting = run_queries.waiting_by_provider(session, default, disabled_providers(runtime))
        blocked = run_queries.last_errors_by_provider(session, default, INSTALLATION_PROBLEM)
        inexact = run_queries.inexact_states(session)
    lines = [
        f"{count} runs wait for provider {name}, not enabled on this host "
        f"({provider_reason(runtime, name)})"
        for name, count in sorted(waiting.items())
    ]
    lines.extend(
        f"{count} runs wait for provider {name}: {error.removeprefix(INSTALLATION_PROBLEM)}"
        for name, (count, error) in sorted(blocked.items())
    )
    lines.extend(inexact_state_message(state, count) for state, count in sorted(inexact.items()))
    return lines
