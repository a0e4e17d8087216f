"""What every adapter does the same way: pace each request, classify the SDK's errors at one
entry point, retry transient ones by the one policy, and give up at once where a retry could
start a second provider run.

An adapter subclasses `AdapterBase`, names its SDK's exceptions in `sdk_errors` and implements
`_classify` (its module docstring has the table). `_attempt` is one request; `_call` is a
request retried when transient; `_retried` retries a step of several requests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from wesctl.config import Settings
from wesctl.providers.base import ProviderError
from wesctl.providers.ratelimit import TokenBucket
from wesctl.providers.retry import call_with_retry

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Scope:
    """Whose settings a request uses, for blaming a refusal: `installation` says it is about the
    installation's own default (the configured project); `own_options` names the run's own
    options it carries instead of the installation's (a role, an output bucket)."""

    installation: bool = False
    own_options: tuple[str, ...] = ()


NO_SCOPE = Scope()


class GiveUp(Exception):
    """Carries a provider error past the retry policy when retrying now must not happen (the
    request may have created a run) or cannot help (a quota that lasts longer than the wait)."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(str(error))
        self.error = error


class AdapterBase:
    """Pacing, error classification and retries for one provider's adapter."""

    name: str
    sdk_errors: tuple[type[Exception], ...] = ()

    def __init__(
        self, settings: Settings, limiter: TokenBucket, *, sleep: Callable[[float], None]
    ) -> None:
        self.limiter = limiter
        self._attempts = settings.retry_attempts
        self._max_wait = settings.retry_max_wait
        self._initial_wait = settings.retry_initial_wait
        self._sleep = sleep

    def _classify(self, exc: Exception, operation: str, scope: Scope) -> ProviderError:
        """Translate an SDK error into the provider error family (and back the limiter off
        when the provider throttled); the one place an adapter decides an error's class."""
        raise NotImplementedError

    def _retry_now(self, exc: Exception, operation: str) -> bool:
        """Whether retrying this error within the call can help; no adapter-wide exceptions."""
        return True

    def _pace(self, operation: str) -> None:
        """Wait for the limiter the request `operation` passes."""
        self.limiter.acquire()

    def _attempt(self, operation: str, func: Callable[[], T], scope: Scope = NO_SCOPE) -> T:
        """Make one request: paced, its SDK errors classified, never retried."""
        self._pace(operation)
        try:
            return func()
        except self.sdk_errors as exc:
            error = self._classify(exc, operation, scope)
            logger.debug("%s %s failed: %r", self.name, operation, exc)
            raise error from exc

    def _call(self, operation: str, func: Callable[[], T], scope: Scope = NO_SCOPE) -> T:
        """Make one request, retried while it fails transiently and a retry can help."""

        def attempt() -> T:
            try:
                return self._attempt(operation, func, scope)
            except ProviderError as error:
                cause = error.__cause__
                if isinstance(cause, Exception) and not self._retry_now(cause, operation):
                    raise GiveUp(error) from cause
                raise

        return self._retried(attempt)

    def _retried(self, func: Callable[[], T]) -> T:
        """Call `func` under the retry policy; a GiveUp raised in it ends the call with its
        error at once."""
        try:
            return call_with_retry(
                func,
                attempts=self._attempts,
                max_wait=self._max_wait,
                initial_wait=self._initial_wait,
                sleep=self._sleep,
            )
        except GiveUp as exc:
            raise exc.error from exc.error.__cause__
