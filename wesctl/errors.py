"""wesctl's error tree; each class carries the process exit code it maps to.

WesctlError (1)
├── ConfigError (78, EX_CONFIG)            bad setting, unknown provider, missing secret
├── SchemaError (78)                        database schema missing, behind or incompatible
├── DatabaseUnavailable (75, EX_TEMPFAIL)   cannot connect / database went away
│   └── DatabaseRefused (78)                credentials or database name refused
├── TryAgainLater (75)                      a provider could not answer what an action needs
├── RunNotFound (1)                         no such run id
└── InvalidRun (1)                          a run row or request that cannot be submitted
"""

from __future__ import annotations

EX_TEMPFAIL = 75
EX_CONFIG = 78


class WesctlError(Exception):
    """Base of every error wesctl reports to an operator as one line."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(WesctlError):
    """One or more configuration problems; `problems` holds one line each."""

    exit_code = EX_CONFIG

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class SchemaError(WesctlError):
    exit_code = EX_CONFIG


class DatabaseUnavailable(WesctlError):
    exit_code = EX_TEMPFAIL


class DatabaseRefused(DatabaseUnavailable):
    """The server refused wesctl's credentials or database: unavailable to wesctl like a server
    that is down (a check fails, a request gets 503), but retrying will not help."""

    exit_code = EX_CONFIG


class TryAgainLater(WesctlError):
    exit_code = EX_TEMPFAIL


class RunNotFound(WesctlError):
    pass


class InvalidRun(WesctlError):
    pass
