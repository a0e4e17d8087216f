"""Arvados settings under the original daemon's names (`ARVADOS_API_HOST`, `ARVADOS_API_TOKEN`,
`ARVADOS_PROJECT_UUID`) plus wesctl's request rate.

The provider is configured when host, token and project are set in wesctl's sources (the
environment, the env file, a systemd credential for the token); the SDK's `settings.conf` is not
consulted for them. Everything else is the SDK's own and left to it: `ARVADOS_API_HOST_INSECURE`
and the rest of `settings.conf`, `SSL_CERT_FILE`. Other `ARVADOS_*` variables found only in the
env file are exported for the SDK to read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wesctl.providers.spec import ProviderSpec
from wesctl.setting import Secret, matching, optional, positive_float, secret_setting, setting

# A project or a user's home project; here, not in mapping, so the registry imports only this.
PROJECT_UUID = re.compile(r"[a-z0-9]{5}-(?:j7d0g|tpzed)-[a-z0-9]{15}")


def api_host(text: str) -> str:
    """host[:port]: the SDK always speaks https and takes no scheme or path."""
    if "://" in text or "/" in text or any(char.isspace() for char in text):
        raise ValueError(
            "must be host[:port] without a scheme or path (e.g. zzzzz.arvadosapi.com); "
            "the SDK always uses https"
        )
    return text


@dataclass(frozen=True)
class ArvadosSettings:
    api_host: str | None = setting(
        "ARVADOS_API_HOST",
        "",
        optional(api_host),
        "Arvados API host[:port], without https:// (the SDK always uses https)",
        required_for="the cluster's API host",
        example="zzzzz.arvadosapi.com",
    )
    api_token: Secret | None = secret_setting(  # noqa: RUF009 - a dataclasses.field
        "ARVADOS_API_TOKEN",
        "Arvados API token",
        credential="arvados-api-token",
        required_for="an API token",
    )
    project_uuid: str | None = setting(
        "ARVADOS_PROJECT_UUID",
        "",
        optional(matching(PROJECT_UUID, "a project uuid (…-j7d0g-…)")),
        "Project (…-j7d0g-…) container requests are created in when a run names none",
        required_for="the project its runs are created in",
        example="zzzzz-j7d0g-0123456789abcde",
    )
    rate: float = setting(
        "WESCTL_ARVADOS_RATE",
        "10",
        positive_float,
        "Client-side request rate limit per process (Arvados documents no quota)",
    )


SPEC = ProviderSpec(
    name="arvados",
    settings=ArvadosSettings,
    adapter="wesctl.providers.arvados.adapter:build",
    sdk_prefix="ARVADOS_",
)
