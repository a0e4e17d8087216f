"""What a command did with each run, and the exit code that sums a pass up.

Every command (submit, sync, cancel, retry, the notify server) reports in this one vocabulary;
metrics, the rendered tables and lines, and `--json` read it from here.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from wesctl.errors import EX_CONFIG, EX_TEMPFAIL


class Outcome(StrEnum):
    SUBMITTED = "submitted"
    ADOPTED = "adopted"  # an earlier attempt's provider run, taken over
    REQUEUED = "requeued"  # a transient failure: tried again next pass
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELED = "canceled"
    BLOCKED = "blocked"  # the provider is misconfigured here: the run is untouched
    WAITING = "waiting"  # a known provider this host does not serve (or a cap, a --limit)
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    CANCEL_SENT = "cancel-sent"
    STOPPED = "stopped"  # the provider run of a cancelled run was seen final
    WOULD_SUBMIT = "would-submit"
    WOULD_ADOPT = "would-adopt"
    WOULD_FAIL = "would-fail"


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    outcome: Outcome
    provider: str | None = None
    provider_id: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "outcome": self.outcome.value,
            "provider": self.provider,
            "provider_id": self.provider_id,
            "reason": self.reason,
        }


# Outcomes that need no one's attention: a bounded listing drops these first.
ROUTINE = frozenset(
    {
        Outcome.SUBMITTED,
        Outcome.ADOPTED,
        Outcome.UPDATED,
        Outcome.UNCHANGED,
        Outcome.WOULD_SUBMIT,
        Outcome.WOULD_ADOPT,
    }
)


@dataclass
class Report:
    """What a command did, run by run, and the exit code that summarises it.

    Every outcome is counted; the runs are listed in `outcomes`, all of them unless `keep`
    bounds the list (then routine outcomes make room for the others, and `unlisted` counts what
    was left out), so a pass over any number of runs holds a bounded report. `on_add` sees each
    outcome as it is added (output printed as it happens).
    """

    command: str
    outcomes: list[RunOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Outcomes only counted, never added (a sync pass's unchanged runs), by (provider, outcome).
    tallies: Counter[tuple[str, Outcome]] = field(default_factory=Counter)
    # Every outcome added, listed or not, by (provider or "none", outcome).
    added: Counter[tuple[str, Outcome]] = field(default_factory=Counter)
    # Work was carried to the next pass (a provider down, the pass timeout reached).
    incomplete: bool = False
    keep: int | None = None
    on_add: Callable[[RunOutcome], None] | None = None
    unlisted: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, result: RunOutcome) -> None:
        with self._lock:
            self.added[(result.provider or "none", result.outcome)] += 1
            if self.on_add is not None:
                self.on_add(result)
            if self.keep is None or len(self.outcomes) < self.keep:
                self.outcomes.append(result)
                return
            self.unlisted += 1
            if result.outcome in ROUTINE:
                return
            for index, listed in enumerate(self.outcomes):
                if listed.outcome in ROUTINE:
                    del self.outcomes[index]
                    self.outcomes.append(result)
                    return

    def tally(self, outcome: Outcome, provider: str, count: int = 1) -> None:
        """Count runs that are not listed (a sync pass's unchanged runs)."""
        with self._lock:
            self.tallies[(provider, outcome)] += count

    def counts(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for (_, outcome), number in (self.added + self.tallies).items():
            counts[outcome.value] += number
        return dict(counts)

    @property
    def exit_code(self) -> int:
        """78 when a provider is misconfigured here (the most actionable), 1 when runs failed,
        75 when work was carried to the next pass or every provider call was unavailable (the
        next tick retries), else 0."""
        counts = self.counts()
        if counts.get(Outcome.BLOCKED):
            return EX_CONFIG
        if counts.get(Outcome.FAILED):
            return 1
        if self.incomplete:
            return EX_TEMPFAIL
        attempted = {name for name in counts if name not in (Outcome.SKIPPED, Outcome.WAITING)}
        if attempted and attempted == {Outcome.REQUEUED}:
            return EX_TEMPFAIL
        return 0

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "counts": self.counts(),
            "runs": [item.to_json() for item in self.outcomes],
            "notes": self.notes,
            "exit_code": self.exit_code,
        }
