"""A thread-safe token bucket so a large batch paces itself below a provider's quota."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """Allow `rate` calls per second on average with bursts of up to `burst` calls.

    `acquire()` blocks until a token is available. Clock and sleep are injectable so tests
    need not wait for real seconds.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = threading.Lock()
        self.waited = 0.0
        self.acquired = 0  # requests let through; metrics report it as API calls

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                self._refill(now)
                # float rounding may leave the bucket a hair below one token
                if self._tokens >= 1 - 1e-9:
                    self._tokens -= 1
                    self.acquired += 1
                    return
                wait = (1 - self._tokens) / self.rate
            self.waited += wait
            self._sleep(wait)

    def penalize(self, seconds: float) -> None:
        """Empty the bucket for `seconds` (the provider told us to back off)."""
        with self._lock:
            self._refill(self._clock())
            self._tokens = min(self._tokens, 0.0) - seconds * self.rate
