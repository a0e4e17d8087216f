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

# States in which a run is (or may be) alive at a provider and must be polled.
IN_FLIGHT_STATES: frozenset[RunState] = frozenset(
    {
        RunState.QUEUED,  # only with a provider_id: submitted, still waiting at the provider
        RunState.INITIALIZING,
        RunState.RUNNING,
        RunState.PAUSED,
        RunState.CANCELING,
        RunState.UNKNOWN,
    }
)


def is_terminal(state: str) -> bool:
    return state in TERMINAL_STATES


def parse_state(value: str) -> RunState:
    """Return the RunState named by `value` (any case); raise ValueError listing valid names."""
    try:
        return RunState(value.strip().upper())
    except ValueError:
        names = ", ".join(s.value for s in RunState)
        message = f"unknown WES state {value!r}; expected one of {names}"
        raise ValueError(message) from None
