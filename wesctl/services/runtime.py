"""What one wesctl command holds for its lifetime: settings, the database, provider adapters."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from wesctl.config import Settings, redact_database_uri
from wesctl.db import schema
from wesctl.db.engine import database_errors, make_engine, make_session_factory
from wesctl.errors import ConfigError

if TYPE_CHECKING:
    from wesctl.providers.base import Provider, ProviderMisconfigured

logger = logging.getLogger(__name__)


# Transient failures in a row after which sync-status and cancel take a provider to be down for
# the rest of the pass (submit-queued, which claims runs in parallel, uses a longer run).
DOWN_AFTER = 3


class ProviderTrouble:
    """What one pass learnt about its providers, so one provider's trouble never costs the rest
    of the pass: a misconfigured provider (the first such answer is logged as one error line
    naming the provider and what to fix) or one that failed transiently DOWN_AFTER times in a row
    is not called again in this pass; no run changes state because of it, its work is carried to
    the next pass. The pass also ends, carrying the rest over, once `deadline` (a monotonic time)
    has passed."""

    def __init__(self, notes: list[str], *, deadline: float | None = None) -> None:
        self._notes = notes
        self._deadline = deadline
        self._problems: dict[str, ProviderMisconfigured] = {}
        self._failures: dict[str, int] = {}
        self._down: set[str] = set()
        self._carried = False  # a transient failure left work for the next pass
        self._expired = False
        self._lock = threading.Lock()

    def mark(self, problem: ProviderMisconfigured) -> ProviderMisconfigured:
        """Record `problem` (the first one per provider wins) and return the recorded one."""
        with self._lock:
            first = self._problems.setdefault(problem.provider, problem)
            if first is problem:
                line = (
                    f"provider {problem.provider} is unusable here: {problem.detail}; "
                    f"fix: {problem.fix}"
                )
                logger.error("%s", line)
                self._notes.append(line)
            return first

    def mark_config_error(self, provider: str, error: ConfigError) -> ProviderMisconfigured:
        """A provider whose adapter cannot even be built (a setting missing or invalid)."""
        from wesctl.providers.base import ProviderMisconfigured

        fix = "set or correct that setting, then check with `wesctl doctor`"
        return self.mark(ProviderMisconfigured(provider, error.message, fix))

    def get(self, provider: str) -> ProviderMisconfigured | None:
        with self._lock:
            return self._problems.get(provider)

    def failed(self, provider: str, reason: str) -> None:
        """Count a transient failure; the DOWN_AFTER-th in a row takes the provider down."""
        with self._lock:
            self._carried = True
            self._failures[provider] = self._failures.get(provider, 0) + 1
            if self._failures[provider] < DOWN_AFTER or provider in self._down:
                return
            self._down.add(provider)
            line = (
                f"provider {provider} looks down ({DOWN_AFTER} transient failures in a row, "
                f"last: {reason}); its runs are left for the next pass"
            )
            logger.warning("%s", line)
            self._notes.append(line)

    def answered(self, provider: str) -> None:
        with self._lock:
            self._failures[provider] = 0

    def is_down(self, provider: str) -> bool:
        with self._lock:
            return provider in self._down

    def names(self) -> frozenset[str]:
        """Providers not to call again in this pass."""
        with self._lock:
            return frozenset(self._problems) | frozenset(self._down)

    def expired(self) -> bool:
        """True once the pass's deadline has passed (noted once)."""
        with self._lock:
            if self._deadline is None or self._expired:
                return self._expired
            if time.monotonic() < self._deadline:
                return False
            self._expired = True
            line = "the pass reached WESCTL_PASS_TIMEOUT; the rest is left for the next pass"
            logger.warning("%s", line)
            self._notes.append(line)
            return True

    @property
    def incomplete(self) -> bool:
        """Work was carried to the next pass: a provider failed transiently (or was down), or
        time ran out (exit 75, so a timer's failure count shows it)."""
        with self._lock:
            return self._carried or self._expired


def pass_deadline(settings: Settings) -> float:
    """The monotonic time by which a pass stops starting provider work."""
    return time.monotonic() + settings.pass_timeout


def default_actor(command: str) -> str:
    """Who made a change, for the history table: command, host and pid."""
    return f"{command}@{socket.gethostname()}:{os.getpid()}"[:100]


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    writers: sessionmaker[Session]  # sessions that write (on SQLite: BEGIN IMMEDIATE)
    readers: sessionmaker[Session]  # sessions that never write (no SQLite write lock)
    actor: str
    _providers: dict[str, Provider] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, settings: Settings, *, command: str, check_schema: bool = True) -> Runtime:
        """Connect to the database (and check its schema unless told not to)."""
        if settings.uses_embedded_database:
            logger.info(
                "no DATABASE_URI set; using the embedded SQLite database %s",
                redact_database_uri(settings.database_uri).removeprefix("sqlite:///"),
            )
        engine = make_engine(settings.database_uri, pool_size=max(5, settings.submit_workers))
        runtime = cls(
            settings,
            engine,
            make_session_factory(engine),
            make_session_factory(engine, read_only=True),
            default_actor(command),
        )
        if check_schema:
            with database_errors():
                schema.require_current(engine)
        return runtime

    def provider(self, name: str) -> Provider:
        """Return the adapter for `name`, built once per process."""
        from wesctl.providers.registry import build_provider

        with self._lock:
            if name not in self._providers:
                self._providers[name] = build_provider(name, self.settings)
            return self._providers[name]

    def provider_calls(self) -> dict[str, int]:
        """API requests each provider adapter made so far (every request passes its limiter)."""
        with self._lock:
            return {name: provider.limiter.acquired for name, provider in self._providers.items()}

    def close(self) -> None:
        for provider in self._providers.values():
            provider.close()
        self._providers.clear()
        self.engine.dispose()
