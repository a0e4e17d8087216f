"""The one retry policy for provider calls: transient errors only, bounded in attempts and time."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

from wesctl.providers.base import ProviderUnavailable

logger = logging.getLogger(__name__)
T = TypeVar("T")


def _wait(base: Callable[[RetryCallState], float]) -> Callable[[RetryCallState], float]:
    """Honour a provider's rate-limit hint (retry_after) when it is longer than our backoff."""

    def wait(state: RetryCallState) -> float:
        delay = base(state)
        outcome = state.outcome
        if outcome is not None and outcome.failed:
            exc = outcome.exception()
            if isinstance(exc, ProviderUnavailable) and exc.retry_after is not None:
                delay = max(delay, exc.retry_after)
        return delay

    return wait


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    logger.warning("retrying provider call attempt=%d error=%s", state.attempt_number, exc)


def call_with_retry(
    func: Callable[[], T],
    *,
    attempts: int,
    max_wait: float,
    initial_wait: float = 0.5,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """Call `func`, retrying ProviderUnavailable up to `attempts` times within `max_wait` seconds.

    The last ProviderUnavailable is re-raised when the budget is spent; any other exception is
    raised at once.
    """
    retrying = Retrying(
        sleep=sleep or time.sleep,
        retry=retry_if_exception_type(ProviderUnavailable),
        stop=stop_after_attempt(attempts) | stop_after_delay(max_wait),
        wait=_wait(
            wait_exponential(multiplier=initial_wait, max=max(initial_wait, 20.0))
            + wait_random(0, initial_wait)
        ),
        before_sleep=_log_retry,
        reraise=True,
    )
    return retrying(func)
