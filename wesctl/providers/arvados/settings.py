"""Arvados settings under the original daemon's names (`ARVADOS_API_HOST`, `ARVADOS_API_TOKEN`,
`ARVADOS_PROJECT_UUID`) plus wesctl's request rate.

Everything else the SDK reads itself and wesctl leaves to it: `ARVADOS_API_HOST_INSECURE`,
`SSL_CERT_FILE`, `~/.config/arvados/settings.conf` (whose host and token are used when wesctl's
sources give none). The provider is configured when host, token and project are present.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from wesctl.config import Secret
from wesctl.errors import ConfigError
from wesctl.providers.arvados.mapping import PROJECT_UUID

HOST = "ARVADOS_API_HOST"
TOKEN = "ARVADOS_API_TOKEN"
PROJECT = "ARVADOS_PROJECT_UUID"
RATE = "WESCTL_ARVADOS_RATE"
TOKEN_CREDENTIAL = "arvados-api-token"
DEFAULT_RATE = 10.0  # requests per second per process; Arvados documents no quota


@dataclass(frozen=True)
class ArvadosSettings:
    api_host: str | None = None
    api_token: Secret | None = None
    project_uuid: str | None = None
    rate: float = DEFAULT_RATE

    @property
    def configured(self) -> bool:
        return not self.missing()

    def missing(self) -> list[str]:
        """One line per required setting that is not set."""
        needed = (
            (HOST, self.api_host, "the cluster's API host"),
            (TOKEN, self.api_token, "an API token"),
            (PROJECT, self.project_uuid, "the project its runs are created in"),
        )
        return [
            f"{name} is not set; the arvados provider needs {purpose}"
            for name, value, purpose in needed
            if value is None
        ]

    @classmethod
    def from_values(
        cls, values: Mapping[str, str], sdk_settings: Mapping[str, str] | None = None
    ) -> ArvadosSettings:
        """Parse the settings from `values` (variable -> text, wesctl's sources); host and token
        fall back to `sdk_settings` (`arvados.config.settings()`: the SDK's settings.conf and
        environment) when given. Raise ConfigError listing every problem."""
        problems: list[str] = []
        fallback = sdk_settings or {}
        host = (values.get(HOST) or fallback.get(HOST) or "").strip() or None
        if host is not None and ("://" in host or "/" in host or any(c.isspace() for c in host)):
            problems.append(
                f"{HOST} = {host!r}: must be host[:port] without a scheme or path "
                "(e.g. zzzzz.arvadosapi.com); the SDK always uses https"
            )
        token = (values.get(TOKEN) or fallback.get(TOKEN) or "").strip()
        project = values.get(PROJECT, "").strip() or None
        if project is not None and not PROJECT_UUID.fullmatch(project):
            problems.append(f"{PROJECT} = {project!r}: must be a project uuid (…-j7d0g-…)")
        rate = DEFAULT_RATE
        raw_rate = values.get(RATE, "").strip()
        if raw_rate:
            try:
                rate = float(raw_rate)
                if not rate > 0:
                    raise ValueError
            except ValueError:
                problems.append(f"{RATE} = {raw_rate!r}: must be a positive number")
        if problems:
            raise ConfigError(problems)
        return cls(host, Secret(token) if token else None, project, rate)
