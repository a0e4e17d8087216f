"""The operator's one-screen overview: what is queued, in flight, stuck and failing."""

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


@dataclass(frozen=True)
class Overview:
    now: datetime
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
    with database_errors(), runtime.readers() as session:
        stats = run_queries.queue_stats(session, now, stuck_after=settings.stuck_after)
        failures = [
            {
                "run_id": item.run_id,
                "at": iso_time(item.at),
                "state": item.to_state,
                "reason": item.reason,
            }
            for item in run_queries.recent_failures(session, now - timedelta(hours=1), limit=10)
        ]
        return Overview(
            now=now,
            counts=run_queries.count_by_state_and_provider(session, settings.default_provider),
            oldest_queued=run_queries.oldest_queued(session),
            queued=stats.queued,
            in_flight=stats.in_flight,
            cap=settings.max_concurrent_workflows,
            stuck=stats.stuck,
            stuck_after=settings.stuck_after,
            last_submit=run_queries.last_action_at(
                session, ("submit-queued@", "submit-one@", "serve-notify@")
            ),
            last_sync=run_queries.last_action_at(session, ("sync-status@",)),
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
