"""`wesctl doctor`: everything wesctl needs, checked in the order the parts depend on each other,
each failure with the fix an operator can apply.

A failure never raises: every check reports, so one run shows every problem. Checks are skipped
only where they could not mean anything (no valid settings: nothing else; no database: no schema).
Every remote call is read-only and made once.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy.exc import DBAPIError

from wesctl.config import Settings, redact_database_uri
from wesctl.errors import ConfigError, DatabaseUnavailable, SchemaError

if TYPE_CHECKING:
    from wesctl.db.schema import SchemaStatus
    from wesctl.services.runtime import Runtime

# Seconds to connect to and hear from the notification endpoint; a socket-activated endpoint
# first has to start.
NOTIFY_TIMEOUT = 5.0
MAX_ANSWER = 64 * 1024  # bytes read of the answer; another program might send anything
NOTIFY_FIX = "systemctl enable --now wesctl-notify.socket (or run `wesctl serve-notify`)"
DATABASE_FIX = "check DATABASE_URI and that the server is up"
UPGRADE_FIX = "run `wesctl db upgrade`"
SETTINGS_FIX = "set them in the environment, the env file or as systemd credentials"
# Wildcard listen addresses are reached through loopback.
_CONNECT_HOST = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


class Status(StrEnum):
    OK = "ok"
    FAIL = "fail"
    SKIP = "skip"  # not checked because an earlier check failed; not a failure itself
    WARN = "warn"  # worth an operator's look, but nothing is broken (not a failure)


@dataclass(frozen=True)
class CheckResult:
    """One row of the doctor's table; `fix` is set for every failure."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "check": self.name,
            "result": self.status.value,
            "detail": self.detail,
            "fix": self.fix,
        }


def all_passed(results: Sequence[CheckResult]) -> bool:
    """True when no check failed (skips do not count as failures)."""
    return all(result.status is not Status.FAIL for result in results)


def run_checks(settings_loader: Callable[[], Settings]) -> list[CheckResult]:
    """Run every check in order and return one result per check (per probe for providers)."""
    try:
        settings = settings_loader()
    except ConfigError as exc:
        not_checked = (
            "provider settings",
            "database",
            "schema",
            "runs",
            "providers",
            "notify endpoint",
        )
        return [
            CheckResult(
                "configuration",
                Status.FAIL,
                "; ".join(exc.problems),
                "correct the settings named (environment, env file, systemd credentials)",
            ),
            *(
                CheckResult(name, Status.SKIP, "not checked: the configuration is invalid")
                for name in not_checked
            ),
        ]
    enabled = ", ".join(settings.enabled_providers) or "none"
    results = [
        CheckResult("configuration", Status.OK, f"valid; providers: {enabled}"),
        _provider_settings(settings),
        *_database(settings),
    ]
    for name in settings.enabled_providers:
        results.extend(_provider(name, settings))
    results.append(_notify_endpoint(settings))
    return results


def _provider_settings(settings: Settings) -> CheckResult:
    """Which providers are enabled and why; a failure only when none is, or a provider listed
    in WESCTL_PROVIDERS lacks a setting."""
    try:
        settings.require_providers()
    except ConfigError as exc:
        return CheckResult("provider settings", Status.FAIL, "; ".join(exc.problems), SETTINGS_FIX)
    detail = "; ".join(
        f"{name} {'enabled' if enabled else 'not enabled'} ({why})"
        for name, enabled, why in settings.provider_enablement()
    )
    return CheckResult("provider settings", Status.OK, detail)


def _database(settings: Settings) -> list[CheckResult]:
    """Connect, then compare wesctl's schema revision with the one this version needs."""
    from wesctl.db import schema
    from wesctl.db.engine import database_errors, describe_database_error
    from wesctl.services.runtime import Runtime

    runtime = Runtime.open(settings, command="doctor", check_schema=False)
    try:
        try:
            with database_errors(), runtime.engine.connect():
                pass
        except DatabaseUnavailable as exc:
            return [
                CheckResult("database", Status.FAIL, exc.message, DATABASE_FIX),
                CheckResult("schema", Status.SKIP, "not checked: the database is unavailable"),
            ]
        connected = CheckResult(
            "database", Status.OK, f"connected to {redact_database_uri(settings.database_uri)}"
        )
        try:
            with database_errors():
                status = schema.schema_status(runtime.engine)
        except SchemaError as exc:
            return [connected, CheckResult("schema", Status.FAIL, exc.message, UPGRADE_FIX)]
        except DatabaseUnavailable as exc:  # it went away between the two checks
            return [connected, CheckResult("schema", Status.FAIL, exc.message, DATABASE_FIX)]
        except DBAPIError as exc:  # e.g. no permission to read the tables
            detail = describe_database_error(exc)
            return [connected, CheckResult("schema", Status.FAIL, detail, DATABASE_FIX)]
        if not status.up_to_date:
            return [connected, _schema(status)]
        return [connected, _schema(status), _runs(runtime)]
    finally:
        runtime.close()


def _runs(runtime: Runtime) -> CheckResult:
    """Runs no command of this host will act on: another provider's, or a state that is not
    exactly a WES state."""
    from wesctl.services.status import run_warnings

    warnings = run_warnings(runtime)
    if warnings:
        return CheckResult(
            "runs",
            Status.WARN,
            "; ".join(warnings),
            "enable the provider on a host (its settings, or WESCTL_PROVIDERS) and correct "
            "states by hand",
        )
    return CheckResult("runs", Status.OK, "every queued run is served by this host")


def _schema(status: SchemaStatus) -> CheckResult:
    if status.up_to_date:
        return CheckResult("schema", Status.OK, f"at revision {status.head}")
    if status.current is None:
        detail = f"database has no wesctl schema (wesctl needs revision {status.head})"
    else:
        detail = f"database schema is at revision {status.current}, wesctl needs {status.head}"
    return CheckResult("schema", Status.FAIL, detail, UPGRADE_FIX)


def _provider(name: str, settings: Settings) -> list[CheckResult]:
    """Build the adapter as every command does and run its read-only probe."""
    from wesctl.providers.registry import build_provider

    try:
        provider = build_provider(name, settings)
    except ConfigError as exc:
        if settings.provider_problems((name,)):  # already reported under "provider settings"
            return [CheckResult(name, Status.SKIP, "not checked: its settings are incomplete")]
        return [CheckResult(name, Status.FAIL, "; ".join(exc.problems), SETTINGS_FIX)]
    try:
        probes = provider.probe()
    finally:
        provider.close()
    return [
        CheckResult(probe.name, Status.OK if probe.ok else Status.FAIL, probe.detail, probe.fix)
        for probe in probes
    ]


def _notify_endpoint(settings: Settings) -> CheckResult:
    """Connect to the notification address, then GET /: wesctl's endpoint answers 405 (Allow:
    POST), which tells it apart from another program on the port."""
    name = "notify endpoint"
    host = _CONNECT_HOST.get(settings.notification_host, settings.notification_host)
    port = settings.notification_port
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    connection = http.client.HTTPConnection(host, port, timeout=NOTIFY_TIMEOUT)
    try:
        try:
            connection.connect()
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            return CheckResult(
                name, Status.FAIL, f"nothing is listening on {where} ({reason})", NOTIFY_FIX
            )
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            response.read(MAX_ANSWER)
        except (OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            return CheckResult(
                name,
                Status.FAIL,
                f"{where} accepts connections but gave no HTTP answer ({reason})",
                "check `systemctl status wesctl-notify.service` and that no other program uses "
                "DAEMON_NOTIFICATION_PORT",
            )
    finally:
        connection.close()
    if response.status == 405 and response.getheader("Allow") == "POST":
        return CheckResult(name, Status.OK, f"wesctl's notification endpoint answers on {where}")
    return CheckResult(
        name,
        Status.FAIL,
        f"another program answers on {where} (GET / gave HTTP {response.status}, wesctl's "
        "endpoint gives 405)",
        "stop that program or point DAEMON_NOTIFICATION_HOST/DAEMON_NOTIFICATION_PORT at "
        "wesctl's endpoint",
    )
