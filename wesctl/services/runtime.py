"""What one wesctl command holds for its lifetime: settings, the database, provider adapters."""

from __future__ import annotations

import logging
import os
import socket
import threading
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


_transitions = logging.getLogger("wesctl.transition")


def log_transition(
    run_id: str, provider: str | None, from_state: str | None, to_state: str, reason: str | None
) -> None:
    """One key=value line per state change, for journald and log search."""
    _transitions.info(
        "run=%s provider=%s from=%s to=%s reason=%s",
        run_id,
        provider or "-",
        from_state or "-",
        to_state,
        (reason or "-").replace("\n", " "),
    )


class UnusableProviders:
    """Providers found misconfigured during one pass. The first such answer is logged as one
    error line naming the provider and what to fix (and noted in the report); later runs of that
    provider are not tried in this pass, and no run changes state because of it."""

    def __init__(self, notes: list[str]) -> None:
        self._notes = notes
        self._problems: dict[str, ProviderMisconfigured] = {}
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

        return self.mark(
            ProviderMisconfigured(provider, error.message, "correct the setting named")
        )

    def get(self, provider: str) -> ProviderMisconfigured | None:
        with self._lock:
            return self._problems.get(provider)

    def names(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._problems)


def default_actor(command: str) -> str:
    """Who made a change, for the history table: command, host and pid."""
    return f"{command}@{socket.gethostname()}:{os.getpid()}"[:100]


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
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
