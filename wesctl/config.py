"""wesctl's configuration: one typed, frozen Settings object, read once.

Precedence, highest first: command-line options > systemd credentials (secrets only,
`$CREDENTIALS_DIRECTORY/<credential>`) > the process environment > the env file (`--env-file PATH`,
else `.env` in the working directory) > defaults. Variable names are those of the WES API's own
daemon, which wesctl replaces (`DATABASE_URI`, `DAEMON_*` and each provider's own); settings
wesctl added use `WESCTL_`.

Each setting is declared once, as a field of `Settings` or of a provider's settings dataclass
(`wesctl.setting.setting`); the providers come from `wesctl.providers.registry`, so this module
names none. Every value is validated before any I/O and all problems are reported together
(ConfigError, exit 78). Secrets are held as `Secret`, whose repr and str never show the value.

A provider's required settings that none of these sources set may come last from its SDK's
own configuration file (`ProviderSpec.sdk_settings`), read by the SDK itself. An SDK's own
configuration (a provider's `sdk_prefix` variables, such as credentials and endpoints) is left
to that SDK. Such variables found only in the env file or in a systemd
credential are exported to the process environment so the SDK sees them; a value already in the
environment is never overridden by the file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from wesctl.errors import ConfigError
from wesctl.providers.registry import DEFAULT_PROVIDER, PROVIDER_NAMES, PROVIDERS
from wesctl.providers.spec import ProviderSpec
from wesctl.setting import (
    Field,
    Secret,
    declared,
    optional_secret,
    optional_text,
    port,
    positive_float,
    positive_int,
    seconds,
    setting,
    text,
)

__all__ = ["FIELDS", "PROVIDER_NAMES", "Field", "Secret", "Settings"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_SQLITE_FILE = "wes.db"
SDK_SOURCE = "SDK settings "  # the source of a value a provider's SDK read from its own file


def _provider(raw: str) -> str:
    name = raw.strip().lower()
    if name not in PROVIDER_NAMES:
        raise ValueError(f"unknown provider {name!r}; known providers: {', '.join(PROVIDER_NAMES)}")
    return name


def _provider_list(raw: str) -> tuple[str, ...]:
    names = tuple(_provider(part) for part in raw.split(",") if part.strip())
    return tuple(dict.fromkeys(names))


def _database_uri(raw: str) -> str:
    from sqlalchemy.engine import make_url  # sqlalchemy's parser knows every dialect's form

    text = raw.strip()
    if not text:
        return ""  # the embedded default, as the help says
    try:
        url = make_url(text)
    except Exception:  # noqa: BLE001 - any parse failure means the same thing to an operator
        raise ValueError(
            "is not a database URL (expected e.g. postgresql://user@host/db or sqlite:///wes.db)"
        ) from None
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql", "mysql", "mariadb"):
        raise ValueError(
            f"uses {backend!r}; wesctl supports postgresql://, mysql:// (or mariadb://, both "
            "through PyMySQL) and sqlite:// URLs"
        )
    return text


@dataclass(frozen=True)
class Settings:
    """Every setting wesctl itself has; each provider's are in `provider_settings`, read with
    `provider(spec)`."""

    database_uri: str = setting(
        "DATABASE_URI",
        None,
        _database_uri,
        "SQLAlchemy URL of the WES database; empty means the embedded SQLite file ./wes.db",
        secret=True,
        credential="database-uri",
        section="database",
        repr=False,  # may carry a password
    )
    poll_interval: int = setting(
        "DAEMON_POLL_INTERVAL",
        "300",
        seconds,
        "Seconds between submit-queued timer runs (written into the systemd timer)",
        section="schedule",
    )
    status_check_interval: int = setting(
        "DAEMON_STATUS_CHECK_INTERVAL",
        "300",
        seconds,
        "Seconds between sync-status timer runs (written into the systemd timer)",
        section="schedule",
    )
    max_concurrent_workflows: int = setting(
        "DAEMON_MAX_CONCURRENT_WORKFLOWS",
        "10",
        positive_int,
        "Most runs in flight at providers at once, across every wesctl process",
        section="schedule",
    )
    notification_host: str = setting(
        "DAEMON_NOTIFICATION_HOST",
        "127.0.0.1",
        text,
        "Address the notification endpoint listens on (and `wesctl notify` sends to)",
        section="notify",
    )
    notification_port: int = setting(
        "DAEMON_NOTIFICATION_PORT",
        "5001",
        port,
        "TCP port of the notification endpoint",
        section="notify",
    )
    notify_idle_exit: int = setting(
        "WESCTL_NOTIFY_IDLE_EXIT",
        "60",
        seconds,
        "serve-notify exits after this many idle seconds; systemd restarts it on demand",
        section="notify",
    )
    notify_token: Secret | None = setting(  # noqa: RUF009 - a declaration (dataclasses.field)
        "WESCTL_NOTIFY_TOKEN",
        "",
        optional_secret,
        "Optional shared secret; when set, notifications must send 'Authorization: Bearer <it>'",
        secret=True,
        credential="notify-token",
        section="notify",
    )
    default_provider: str = setting(
        "WESCTL_DEFAULT_PROVIDER",
        DEFAULT_PROVIDER,
        _provider,
        "Provider for runs that name none (column provider_type, then tags.provider_type)",
    )
    providers: tuple[str, ...] = setting(
        "WESCTL_PROVIDERS",
        "",
        _provider_list,
        "Comma-separated providers this host serves (and must be configured for); empty means "
        "every provider whose settings are present",
    )
    max_submit_attempts: int = setting(
        "WESCTL_MAX_SUBMIT_ATTEMPTS",
        "5",
        positive_int,
        "Transient submission failures before a run ends in SYSTEM_ERROR",
    )
    claim_timeout: int = setting(
        "WESCTL_CLAIM_TIMEOUT",
        "600",
        seconds,
        "Seconds a submission claim (lease) lasts before another process may take over",
    )
    submit_workers: int = setting(
        "WESCTL_SUBMIT_WORKERS",
        "16",
        positive_int,
        "Provider calls in parallel within one wesctl process",
    )
    provider_timeout: int = setting(
        "WESCTL_PROVIDER_TIMEOUT",
        "30",
        seconds,
        "Socket timeout, in seconds, of each provider API call",
    )
    retry_attempts: int = setting(
        "WESCTL_RETRY_ATTEMPTS",
        "4",
        positive_int,
        "Attempts per provider call for transient errors (throttling, 5xx, timeouts)",
    )
    retry_max_wait: int = setting(
        "WESCTL_RETRY_MAX_WAIT",
        "60",
        seconds,
        "Most seconds spent retrying one provider call",
    )
    retry_initial_wait: float = setting(
        "WESCTL_RETRY_INITIAL_WAIT",
        "0.5",
        positive_float,
        "First backoff, in seconds, before retrying a transient provider error (then doubles)",
    )
    pass_timeout: int = setting(
        "WESCTL_PASS_TIMEOUT",
        "600",
        seconds,
        "Seconds after which a submit, sync or cancel pass starts no more provider work and "
        "leaves the rest for the next pass (below the units' 15-minute TimeoutStartSec)",
    )
    not_found_confirmations: int = setting(
        "WESCTL_NOT_FOUND_CONFIRMATIONS",
        "2",
        positive_int,
        "Consecutive 'not found' answers before a vanished provider run ends in SYSTEM_ERROR",
    )
    stuck_after: int = setting(
        "WESCTL_STUCK_AFTER",
        "86400",
        seconds,
        "A run in flight with no provider progress for this long counts as stuck",
    )
    metrics_dir: str | None = setting(
        "WESCTL_METRICS_DIR",
        "",
        optional_text,
        "Directory for node_exporter textfile metrics (wesctl_<command>.prom); empty: none",
    )
    # Each provider's frozen settings dataclass, by provider name.
    provider_settings: Mapping[str, Any] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def provider(self, spec: ProviderSpec[T]) -> T:
        """Return the settings of the provider `spec` declares."""
        values = self.provider_settings[spec.name]
        if not isinstance(values, spec.settings):
            raise TypeError(f"settings of {spec.name} are a {type(values).__name__}")
        return values

    @property
    def enabled_providers(self) -> tuple[str, ...]:
        """WESCTL_PROVIDERS when set; otherwise every provider whose required settings are all
        present (as in the WES API's own daemon, which wesctl replaces, every configured provider
        is usable at once)."""
        if self.providers:
            return self.providers
        return tuple(name for name in PROVIDER_NAMES if not self.provider_problems((name,)))

    @property
    def uses_embedded_database(self) -> bool:
        return self.sources.get("database_uri") == "default"

    def provider_problems(self, names: tuple[str, ...] | None = None) -> list[str]:
        """Return one line per required setting a provider in `names` (default: the enabled
        ones) lacks."""
        problems: list[str] = []
        for name in self.enabled_providers if names is None else names:
            spec = PROVIDERS.get(name)
            if spec is None:
                continue
            for field_ in self.missing(spec):
                places = ["environment", "env file"]
                if field_.credential:
                    places.append(f"the systemd credential '{field_.credential}'")
                if spec.sdk_settings and field_.env in spec.sdk_settings.names:
                    places.append(spec.sdk_settings.label)
                where = f" ({', '.join(places[:-1])} or {places[-1]})" if len(places) > 2 else ""
                problems.append(
                    f"{field_.env} is not set{where}; the {name} provider needs "
                    f"{field_.required_for}"
                )
        return problems

    def missing(self, spec: ProviderSpec[Any]) -> tuple[Field, ...]:
        """The settings `spec`'s provider requires that are not set."""
        values = self.provider(spec)
        prefix = f"{spec.name}_"
        return tuple(
            field_
            for field_ in _required(spec)
            if getattr(values, field_.attr.removeprefix(prefix)) is None
        )

    def provider_enablement(self) -> list[tuple[str, bool, str]]:
        """(provider, enabled, why) for every known provider, for `config show` and `doctor`."""
        rows: list[tuple[str, bool, str]] = []
        for name, spec in PROVIDERS.items():
            problems = self.provider_problems((name,))
            needed = " and ".join(field_.env for field_ in _required(spec))
            if self.providers:
                if name in self.providers:
                    rows.append((name, True, "listed in WESCTL_PROVIDERS"))
                else:
                    rows.append((name, False, "not listed in WESCTL_PROVIDERS"))
            elif problems:
                missing = ", ".join(problem.split(" ", 1)[0] for problem in problems)
                rows.append((name, False, f"not configured: {missing} not set"))
            else:
                rows.append((name, True, f"configured: {needed} set{self._from_sdk(spec)}"))
        return rows

    def _from_sdk(self, spec: ProviderSpec[Any]) -> str:
        """Which of the provider's required settings its SDK's own file supplied."""
        by_source: dict[str, list[str]] = {}
        for field_ in _required(spec):
            source = self.sources.get(field_.attr, "")
            if source.startswith(SDK_SOURCE):
                by_source.setdefault(source, []).append(field_.env)
        return "".join(
            f" ({' and '.join(names)} from {source})" for source, names in by_source.items()
        )

    def require_providers(self) -> None:
        """Raise ConfigError when a provider listed in WESCTL_PROVIDERS lacks a setting, or when
        no provider is configured at all (a provider command could then do nothing)."""
        if self.providers:
            problems = self.provider_problems(self.providers)
            if problems:
                raise ConfigError(problems)
            return
        if not self.enabled_providers:
            raise ConfigError(
                [
                    "no provider is configured; configure at least one (or list them in "
                    "WESCTL_PROVIDERS):",
                    *self.provider_problems(PROVIDER_NAMES),
                ]
            )

    def display(self) -> list[tuple[str, str, str]]:
        """Return (variable, value, source) rows with every secret redacted."""
        rows = []
        for f in FIELDS:
            value = self._value(f)
            source = self.sources.get(f.attr, "default")
            if f.attr == "database_uri":
                shown = redact_database_uri(value)
            elif value is None:
                shown = ""
            elif f.secret:
                shown = "******** (set)"
            elif isinstance(value, tuple):
                shown = ",".join(value)
            else:
                shown = str(value)
            rows.append((f.env, shown, source))
        for name, enabled, why in self.provider_enablement():
            rows.append((f"provider {name}", "enabled" if enabled else "not enabled", why))
        return rows

    def _value(self, f: Field) -> Any:
        owner = _OWNERS.get(f.attr)
        if owner is None:
            return getattr(self, f.attr)
        return getattr(self.provider_settings[owner], f.attr.removeprefix(f"{owner}_"))


def _required(spec: ProviderSpec[Any]) -> tuple[Field, ...]:
    """The settings without which `spec`'s provider is not configured."""
    return tuple(field_ for field_ in spec.fields if field_.required_for)


# Every setting: wesctl's own, then each provider's (`<provider>_<attribute>`).
_OWNERS: dict[str, str] = {
    field_.attr: name for name, spec in PROVIDERS.items() for field_ in spec.fields
}
FIELDS: tuple[Field, ...] = declared(Settings) + tuple(
    field_ for spec in PROVIDERS.values() for field_ in spec.fields
)
FIELDS_BY_ENV = {f.env: f for f in FIELDS}


def redact_database_uri(uri: str) -> str:
    """Return `uri` with any password replaced by ***."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(uri).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparseable URI is shown as a placeholder, never raw
        return "<unparseable URL>"


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a dotenv-style file: KEY=VALUE lines, '#' comments, optional quotes, 'export '."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        text = text.removeprefix("export ").strip()
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def _read_credential(name: str, environ: Mapping[str, str]) -> str | None:
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = Path(directory, name)
    if not path.is_file():
        return None
    return path.read_text(encoding="utf-8").rstrip("\n")


def load_settings(
    overrides: Mapping[str, str | None] | None = None,
    env_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    export_sdk: bool = True,
) -> Settings:
    """Resolve every setting from its sources; raise ConfigError listing all problems.

    `overrides` maps attribute names to command-line values (None = not given). With no
    `env_file`, `.env` in the working directory is read if it exists.
    """
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    file_values: dict[str, str] = {}
    file_label = ""
    if env_file is not None:
        if not env_file.is_file():
            raise ConfigError(f"env file {env_file} does not exist")
        file_label = f"env file {env_file}"
    elif Path(".env").is_file():
        env_file = Path(".env")
        file_label = "env file .env"
    if env_file is not None:
        try:
            file_values = read_env_file(env_file)
        except ConfigError as exc:
            problems.extend(exc.problems)
        except OSError as exc:
            problems.append(f"cannot read env file {env_file}: {exc.strerror}")

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for f in FIELDS:
        raw: str | None = None
        source = "default"
        override = (overrides or {}).get(f.attr)
        credential = _read_credential(f.credential, environ) if f.credential else None
        if override is not None:
            raw, source = override, "command line"
        elif credential is not None:
            raw, source = credential, f"systemd credential {f.credential}"
        elif f.env in environ:
            raw, source = environ[f.env], "environment"
        elif f.env in file_values:
            raw, source = file_values[f.env], file_label
        else:
            raw = f.default
        if raw is None:  # only DATABASE_URI has no default: the embedded SQLite file
            values[f.attr] = f"sqlite:///{Path.cwd() / DEFAULT_SQLITE_FILE}"
            sources[f.attr] = "default"
            continue
        try:
            values[f.attr] = f.parse(raw)
        except ValueError as exc:
            shown = "" if f.secret else f" = {raw.strip()!r}"
            problems.append(f"{f.env}{shown}: {exc}")
            values[f.attr] = None
        sources[f.attr] = source

    if values.get("database_uri") == "":
        values["database_uri"] = f"sqlite:///{Path.cwd() / DEFAULT_SQLITE_FILE}"
        sources["database_uri"] = "default"

    unknown = sorted(
        key for key in file_values if key.startswith("WESCTL_") and key not in FIELDS_BY_ENV
    )
    problems.extend(f"{file_label}: unknown setting {key}" for key in unknown)
    if problems:
        raise ConfigError(problems)

    if export_sdk:
        _export_sdk_variables(file_values, environ)
    if environ is os.environ:  # an SDK reads the process environment (exported above)
        _take_sdk_settings(values, sources, problems)
        if problems:
            raise ConfigError(problems)
    own = {f.attr: values[f.attr] for f in declared(Settings)}
    provider_settings = {
        name: spec.settings(
            **{f.attr.removeprefix(f"{name}_"): values[f.attr] for f in spec.fields}
        )
        for name, spec in PROVIDERS.items()
    }
    return Settings(**own, provider_settings=provider_settings, sources=sources)


def _take_sdk_settings(
    values: dict[str, Any], sources: dict[str, str], problems: list[str]
) -> None:
    """Fill the required settings wesctl's sources left unset from a provider SDK's own file
    (its `sdk_settings`), read by the SDK, for each provider this host wants: listed in
    WESCTL_PROVIDERS, or with one of its required settings set. Other hosts never import that
    SDK."""
    listed = values.get("providers") or ()
    for spec in PROVIDERS.values():
        sdk = spec.sdk_settings
        if sdk is None:
            continue
        required = _required(spec)
        unset = [f for f in required if values[f.attr] is None and f.env in sdk.names]
        wanted = spec.name in listed or any(values[f.attr] is not None for f in required)
        if not unset or not wanted:
            continue
        read, path = sdk.read()
        for f in unset:
            raw = read.get(f.env, "")
            if not raw.strip():
                continue
            source = f"{SDK_SOURCE}{path}"
            sources[f.attr] = source
            try:
                values[f.attr] = f.parse(raw)
            except ValueError as exc:
                shown = "" if f.secret else f" = {raw.strip()!r}"
                problems.append(f"{f.env}{shown} ({source}): {exc}")


def _export_sdk_variables(file_values: Mapping[str, str], environ: Mapping[str, str]) -> None:
    """Make a provider SDK's own variables (its `sdk_prefix`) from the env file or credentials
    visible to that SDK: a credential wins over the environment, the file does not."""
    if environ is not os.environ:
        return
    for spec in PROVIDERS.values():
        prefix = spec.sdk_prefix
        if prefix is None:
            continue
        for field_ in spec.fields:
            if field_.env.startswith(prefix) and field_.credential:
                credential = _read_credential(field_.credential, environ)
                if credential is not None:
                    os.environ[field_.env] = credential
        for key, value in file_values.items():
            if key.startswith(prefix) and key not in os.environ and value:
                os.environ[key] = value


def env_example() -> str:
    """Render .env.example: every setting, its default and what it does."""
    lines = [
        "# wesctl configuration. Copy to .env (or /etc/wesctl/wesctl.env) and edit.",
        "# Precedence: command line > systemd credentials > environment > this file > defaults.",
        "# Secrets may instead come from systemd credentials: LoadCredential=<credential>:<path>.",
        "",
    ]
    section = None
    for f in FIELDS:
        if f.section != section:
            section = f.section
            lines.append(f"## {section}")
        lines.append(f"# {f.help}.")
        if f.credential:
            lines.append(f"# Secret; systemd credential name: {f.credential}")
        lines.append(f"#{f.env}={f.default or ''}")
        lines.append("")
    return "\n".join(lines)
