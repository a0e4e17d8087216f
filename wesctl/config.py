"""wesctl's configuration: one typed, frozen Settings object, read once.

Precedence, highest first: command-line options > systemd credentials (secrets only,
`$CREDENTIALS_DIRECTORY/<credential>`) > the process environment > the env file (`--env-file PATH`,
else `.env` in the working directory) > defaults. Variable names are the original design's
(`DATABASE_URI`, `DAEMON_*`, `SEVENBRIDGES_*`, `AWS_*`); settings wesctl added use `WESCTL_`.

Every value is validated before any I/O and all problems are reported together (ConfigError, exit
78). Secrets are held as `Secret`, whose repr and str never show the value.

AWS credentials and endpoints are left to boto3's own chain (`AWS_PROFILE`, `AWS_ENDPOINT_URL_*`,
`AWS_CA_BUNDLE`, instance roles, ...). Standard `AWS_*` variables found only in the env file or in
a systemd credential are exported to the process environment so that chain sees them; a value
already in the environment is never overridden by the file.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from wesctl.errors import ConfigError

logger = logging.getLogger(__name__)

PROVIDER_NAMES = ("healthomics", "sevenbridges")
DEFAULT_SQLITE_FILE = "wes.db"


class Secret:
    """A string that never prints itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Field:
    """One setting: where it is read from, how it is parsed, and how it is documented."""

    attr: str
    env: str
    default: str | None
    parse: Callable[[str], Any]
    help: str
    secret: bool = False
    credential: str | None = None
    section: str = "wesctl"


def _positive_int(raw: str) -> int:
    value = int(raw.strip())
    if value <= 0:
        raise ValueError("must be a positive whole number")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw.strip())
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


def _seconds(raw: str) -> int:
    """Parse '300', '300s', '5m', '2h' into whole seconds."""
    text = raw.strip().lower()
    units = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix) and text[: -len(suffix)].strip().isdigit():
            value = int(text[: -len(suffix)]) * units[suffix]
            break
    else:
        if not text.isdigit():
            raise ValueError("must be a number of seconds, such as 300 or 5m")
        value = int(text)
    if value <= 0:
        raise ValueError("must be more than zero seconds")
    return value


def _port(raw: str) -> int:
    value = int(raw.strip())
    if not 0 < value < 65536:
        raise ValueError("must be a TCP port between 1 and 65535")
    return value


def _text(raw: str) -> str:
    return raw.strip()


def _optional_text(raw: str) -> str | None:
    return raw.strip() or None


def _secret(raw: str) -> Secret | None:
    value = raw.strip()
    return Secret(value) if value else None


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


def _https_or_loopback_url(raw: str) -> str:
    text = raw.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL such as https://api.sbgenomics.com/v2")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError("must use https (plain http is allowed only for a loopback host)")
    return text


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _s3_uri(raw: str) -> str | None:
    text = raw.strip()
    if not text:
        return None
    if not text.startswith("s3://") or len(text) <= len("s3://"):
        raise ValueError("must be an s3:// URI such as s3://bucket/wes-outputs")
    return text


def _role_arn(raw: str) -> str | None:
    text = raw.strip()
    if not text:
        return None
    if not text.startswith("arn:") or ":role/" not in text:
        raise ValueError("must be an IAM role ARN such as arn:aws:iam::123456789012:role/omics")
    return text


FIELDS: tuple[Field, ...] = (
    Field(
        "database_uri",
        "DATABASE_URI",
        None,
        _database_uri,
        "SQLAlchemy URL of the WES database; empty means the embedded SQLite file ./wes.db",
        secret=True,
        credential="database-uri",
        section="database",
    ),
    Field(
        "poll_interval",
        "DAEMON_POLL_INTERVAL",
        "300",
        _seconds,
        "Seconds between submit-queued timer runs (written into the systemd timer)",
        section="schedule",
    ),
    Field(
        "status_check_interval",
        "DAEMON_STATUS_CHECK_INTERVAL",
        "300",
        _seconds,
        "Seconds between sync-status timer runs (written into the systemd timer)",
        section="schedule",
    ),
    Field(
        "max_concurrent_workflows",
        "DAEMON_MAX_CONCURRENT_WORKFLOWS",
        "10",
        _positive_int,
        "Most runs in flight at providers at once, across every wesctl process",
        section="schedule",
    ),
    Field(
        "notification_host",
        "DAEMON_NOTIFICATION_HOST",
        "127.0.0.1",
        _text,
        "Address the notification endpoint listens on (and `wesctl notify` sends to)",
        section="notify",
    ),
    Field(
        "notification_port",
        "DAEMON_NOTIFICATION_PORT",
        "5001",
        _port,
        "TCP port of the notification endpoint",
        section="notify",
    ),
    Field(
        "notify_idle_exit",
        "WESCTL_NOTIFY_IDLE_EXIT",
        "60",
        _seconds,
        "serve-notify exits after this many idle seconds; systemd restarts it on demand",
        section="notify",
    ),
    Field(
        "notify_token",
        "WESCTL_NOTIFY_TOKEN",
        "",
        _secret,
        "Optional shared secret; when set, notifications must send 'Authorization: Bearer <it>'",
        secret=True,
        credential="notify-token",
        section="notify",
    ),
    Field(
        "sevenbridges_api_token",
        "SEVENBRIDGES_API_TOKEN",
        "",
        _secret,
        "Seven Bridges / Velsera API token",
        secret=True,
        credential="sevenbridges-api-token",
        section="sevenbridges",
    ),
    Field(
        "sevenbridges_api_endpoint",
        "SEVENBRIDGES_API_ENDPOINT",
        "https://api.sbgenomics.com/v2",
        _https_or_loopback_url,
        "Seven Bridges API base URL including /v2",
        section="sevenbridges",
    ),
    Field(
        "sevenbridges_project",
        "SEVENBRIDGES_PROJECT",
        "",
        _optional_text,
        "Default project (owner/project) for runs whose tags name none",
        section="sevenbridges",
    ),
    Field(
        "sevenbridges_rate",
        "WESCTL_SEVENBRIDGES_RATE",
        "3.3",
        _positive_float,
        "Client-side request rate limit per process (documented quota: 1000 per 5 minutes)",
        section="sevenbridges",
    ),
    Field(
        "aws_access_key_id",
        "AWS_ACCESS_KEY_ID",
        "",
        _optional_text,
        "AWS access key id (or use any other source of boto3's credential chain)",
        section="healthomics",
    ),
    Field(
        "aws_secret_access_key",
        "AWS_SECRET_ACCESS_KEY",
        "",
        _secret,
        "AWS secret access key (or any other source of boto3's credential chain)",
        secret=True,
        credential="aws-secret-access-key",
        section="healthomics",
    ),
    Field(
        "aws_region",
        "AWS_REGION",
        "",
        _optional_text,
        "AWS region of the HealthOmics workflows, e.g. us-east-1",
        section="healthomics",
    ),
    Field(
        "healthomics_role_arn",
        "AWS_HEALTHOMICS_WORKFLOW_ROLE_ARN",
        "",
        _role_arn,
        "IAM service role HealthOmics runs assume",
        section="healthomics",
    ),
    Field(
        "healthomics_output_uri",
        "AWS_HEALTHOMICS_OUTPUT_URI",
        "",
        _s3_uri,
        "S3 URI under which HealthOmics writes run outputs",
        section="healthomics",
    ),
    Field(
        "healthomics_start_rate",
        "WESCTL_HEALTHOMICS_START_RATE",
        "0.1",
        _positive_float,
        "StartRun calls per second per process (default is the documented account quota)",
        section="healthomics",
    ),
    Field(
        "healthomics_api_rate",
        "WESCTL_HEALTHOMICS_API_RATE",
        "10",
        _positive_float,
        "Other HealthOmics calls per second per process (documented quota: 10)",
        section="healthomics",
    ),
    Field(
        "default_provider",
        "WESCTL_DEFAULT_PROVIDER",
        "sevenbridges",
        _provider,
        "Provider for runs that name none (column provider_type, then tags.provider_type)",
    ),
    Field(
        "providers",
        "WESCTL_PROVIDERS",
        "",
        _provider_list,
        "Comma-separated providers this host serves (and must be configured for); empty means "
        "every provider whose settings are present",
    ),
    Field(
        "max_submit_attempts",
        "WESCTL_MAX_SUBMIT_ATTEMPTS",
        "5",
        _positive_int,
        "Transient submission failures before a run ends in SYSTEM_ERROR",
    ),
    Field(
        "claim_timeout",
        "WESCTL_CLAIM_TIMEOUT",
        "600",
        _seconds,
        "Seconds a submission claim (lease) lasts before another process may take over",
    ),
    Field(
        "submit_workers",
        "WESCTL_SUBMIT_WORKERS",
        "16",
        _positive_int,
        "Provider calls in parallel within one wesctl process",
    ),
    Field(
        "provider_timeout",
        "WESCTL_PROVIDER_TIMEOUT",
        "30",
        _seconds,
        "Socket timeout, in seconds, of each provider API call",
    ),
    Field(
        "retry_attempts",
        "WESCTL_RETRY_ATTEMPTS",
        "4",
        _positive_int,
        "Attempts per provider call for transient errors (throttling, 5xx, timeouts)",
    ),
    Field(
        "retry_max_wait",
        "WESCTL_RETRY_MAX_WAIT",
        "60",
        _seconds,
        "Most seconds spent retrying one provider call",
    ),
    Field(
        "retry_initial_wait",
        "WESCTL_RETRY_INITIAL_WAIT",
        "0.5",
        _positive_float,
        "First backoff, in seconds, before retrying a transient provider error (then doubles)",
    ),
    Field(
        "pass_timeout",
        "WESCTL_PASS_TIMEOUT",
        "600",
        _seconds,
        "Seconds after which a submit, sync or cancel pass starts no more provider work and "
        "leaves the rest for the next pass (below the units' 15-minute TimeoutStartSec)",
    ),
    Field(
        "not_found_confirmations",
        "WESCTL_NOT_FOUND_CONFIRMATIONS",
        "2",
        _positive_int,
        "Consecutive 'not found' answers before a vanished provider run ends in SYSTEM_ERROR",
    ),
    Field(
        "stuck_after",
        "WESCTL_STUCK_AFTER",
        "86400",
        _seconds,
        "A run in flight with no provider progress for this long counts as stuck",
    ),
    Field(
        "metrics_dir",
        "WESCTL_METRICS_DIR",
        "",
        _optional_text,
        "Directory for node_exporter textfile metrics (wesctl_<command>.prom); empty: none",
    ),
)
FIELDS_BY_ENV = {f.env: f for f in FIELDS}
FIELDS_BY_ATTR = {f.attr: f for f in FIELDS}

# The settings each provider needs, and what for. With WESCTL_PROVIDERS unset, a provider is
# enabled exactly when all of its settings are present; a provider added later adds its line.
PROVIDER_REQUIREMENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "healthomics": (
        ("healthomics_role_arn", "the IAM role its runs assume"),
        ("healthomics_output_uri", "an s3:// URI for run outputs"),
    ),
    "sevenbridges": (
        ("sevenbridges_api_token", "an API token"),
        ("sevenbridges_project", "the default project (owner/project) of its runs"),
    ),
}


@dataclass(frozen=True)
class Settings:
    database_uri: str = field(repr=False)  # may carry a password
    poll_interval: int
    status_check_interval: int
    max_concurrent_workflows: int
    notification_host: str
    notification_port: int
    notify_idle_exit: int
    notify_token: Secret | None
    sevenbridges_api_token: Secret | None
    sevenbridges_api_endpoint: str
    sevenbridges_project: str | None
    sevenbridges_rate: float
    aws_access_key_id: str | None
    aws_secret_access_key: Secret | None
    aws_region: str | None
    healthomics_role_arn: str | None
    healthomics_output_uri: str | None
    healthomics_start_rate: float
    healthomics_api_rate: float
    default_provider: str
    providers: tuple[str, ...]
    max_submit_attempts: int
    claim_timeout: int
    submit_workers: int
    provider_timeout: int
    retry_attempts: int
    retry_max_wait: int
    retry_initial_wait: float
    pass_timeout: int
    not_found_confirmations: int
    stuck_after: int
    metrics_dir: str | None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def enabled_providers(self) -> tuple[str, ...]:
        """WESCTL_PROVIDERS when set; otherwise every provider whose required settings are all
        present (what the original daemon did: every configured provider was usable at once)."""
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
            for attr, purpose in PROVIDER_REQUIREMENTS.get(name, ()):
                if getattr(self, attr) is None:
                    field_ = FIELDS_BY_ATTR[attr]
                    where = (
                        f" (environment, env file or the systemd credential '{field_.credential}')"
                        if field_.credential
                        else ""
                    )
                    problems.append(
                        f"{field_.env} is not set{where}; the {name} provider needs {purpose}"
                    )
        return problems

    def provider_enablement(self) -> list[tuple[str, bool, str]]:
        """(provider, enabled, why) for every known provider, for `config show` and `doctor`."""
        rows: list[tuple[str, bool, str]] = []
        for name in PROVIDER_NAMES:
            problems = self.provider_problems((name,))
            needed = " and ".join(FIELDS_BY_ATTR[a].env for a, _ in PROVIDER_REQUIREMENTS[name])
            if self.providers:
                if name in self.providers:
                    rows.append((name, True, "listed in WESCTL_PROVIDERS"))
                else:
                    rows.append((name, False, "not listed in WESCTL_PROVIDERS"))
            elif problems:
                missing = ", ".join(problem.split(" ", 1)[0] for problem in problems)
                rows.append((name, False, f"not configured: {missing} not set"))
            else:
                rows.append((name, True, f"configured: {needed} set"))
        return rows

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
            value = getattr(self, f.attr)
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


# Standard AWS variables that boto3 reads itself; wesctl only forwards them from its own sources.
_AWS_STANDARD = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")


def load_settings(
    overrides: Mapping[str, str | None] | None = None,
    env_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    export_aws: bool = True,
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

    if export_aws:
        _export_aws_variables(file_values, environ)
    return Settings(**values, sources=sources)


def _export_aws_variables(file_values: Mapping[str, str], environ: Mapping[str, str]) -> None:
    """Make AWS settings from the env file or credentials visible to boto3's own chain."""
    if environ is not os.environ:
        return
    for name in _AWS_STANDARD:
        field_ = FIELDS_BY_ENV.get(name)
        credential = (
            _read_credential(field_.credential, environ) if field_ and field_.credential else None
        )
        if credential is not None:
            os.environ[name] = credential
        elif name not in os.environ and file_values.get(name):
            os.environ[name] = file_values[name]
    for key, value in file_values.items():
        if key.startswith("AWS_") and key not in os.environ and value:
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
