"""GA4GH WES 1.1 run states and the rules wesctl applies to them."""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    UNKNOWN = "UNKNOWN"
    QUEUED = "QUEUED"
    INITIALIZING = "INITIALIZING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETE = "COMPLETE"
    EXECUTOR_ERROR = "EXECUTOR_ERROR"
    SYSTEM_ERROR = "SYSTEM_ERROR"
    CANCELED = "CANCELED"
    CANCELING = "CANCELING"
    PREEMPTED = "PREEMPTED"


TERMINAL_STATES: frozenset[RunState] = frozenset(
    {
        RunState.COMPLETE,
        RunState.EXECUTOR_ERROR,
        RunState.SYSTEM_ERROR,
        RunState.CANCELED,
        RunState.PREEMPTED,
    }
)

NON_TERMINAL_STATES: tuple[RunState, ...] = tuple(s for s in RunState if s not in TERMINAL_STATES)
CANCEL_STATES: tuple[RunState, ...] = (RunState.CANCELED, RunState.CANCELING)


def parse_state(value: str) -> RunState:
    """Return the RunState named by `value` (any case); raise ValueError listing valid names."""
    try:
        return RunState(value.strip().upper())
    except ValueError:
        names = ", ".join(s.value for s in RunState)
        message = f"unknown WES state {value!r}; expected one of {names}"
        raise ValueError(message) from None
