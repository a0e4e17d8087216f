"""Arvados settings under the original daemon's names (`ARVADOS_API_HOST`, `ARVADOS_API_TOKEN`,
`ARVADOS_PROJECT_UUID`) plus wesctl's request rate.

The provider is configured when host, token and project are set. Host and token come from
wesctl's sources (the environment, the env file, a systemd credential for the token) or, when
those leave them unset, from the SDK's own `settings.conf`, read by the SDK itself
(`arvados.config`, found where the SDK looks: `$CONFIGURATION_DIRECTORY`, `$XDG_CONFIG_HOME` or
`~/.config`, then `/etc/xdg`, each under `arvados/`), as `arv` and `arvados-cwl-runner` read
it. The SDK is imported for that only when the project (or the host, or the token) is set or
`WESCTL_PROVIDERS` lists arvados, so a host that does not use Arvados never loads it.
Everything else is the SDK's own and left to it: `ARVADOS_API_HOST_INSECURE` and the rest of
`settings.conf`, `SSL_CERT_FILE`. Other `ARVADOS_*` variables found only in the env file are
exported for the SDK to read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from wesctl.providers.spec import ProviderSpec, SdkSettings
from wesctl.setting import Secret, optional_secret, positive_float, setting

# A project or a user's home project; here, not in mapping, so the registry imports only this.
PROJECT_UUID = re.compile(r"[a-z0-9]{5}-(?:j7d0g|tpzed)-[a-z0-9]{15}")


def api_host(raw: str) -> str | None:
    """host[:port]: the SDK always speaks https and takes no scheme or path."""
    text = raw.strip()
    if not text:
        return None
    if "://" in text or "/" in text or any(char.isspace() for char in text):
        raise ValueError(
            "must be host[:port] without a scheme or path (e.g. zzzzz.arvadosapi.com); "
            "the SDK always uses https"
        )
    return text


def project_uuid(raw: str) -> str | None:
    text = raw.strip()
    if not text:
        return None
    if not PROJECT_UUID.fullmatch(text):
        raise ValueError("must be a project uuid (…-j7d0g-…)")
    return text


@dataclass(frozen=True)
class ArvadosSettings:
    api_host: str | None = setting(
        "ARVADOS_API_HOST",
        "",
        api_host,
        "Arvados API host[:port] without https:// (the SDK uses https); unset: the SDK's "
        "settings.conf",
        required_for="the cluster's API host",
        example="zzzzz.arvadosapi.com",
    )
    api_token: Secret | None = setting(  # noqa: RUF009 - a dataclasses.field
        "ARVADOS_API_TOKEN",
        "",
        optional_secret,
        "Arvados API token; unset: the SDK's settings.conf",
        secret=True,
        credential="arvados-api-token",
        required_for="an API token",
    )
    project_uuid: str | None = setting(
        "ARVADOS_PROJECT_UUID",
        "",
        project_uuid,
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


def read_sdk_settings() -> tuple[Mapping[str, str], str]:
    """The SDK's settings as it reads them now (settings.conf, then `ARVADOS_*` variables over
    it) and the settings.conf it read, found by the SDK's own search; nothing without one."""
    import arvados.config  # type: ignore[import-untyped]  # the SDK, only when asked
    from arvados._internal.basedirs import BaseDirectories  # type: ignore[import-untyped]

    found = next(iter(BaseDirectories("CONFIG").search("settings.conf")), None)
    if found is None:
        return {}, ""
    arvados.config.initialize()  # read it now: the SDK keeps what it read once per process
    return dict(arvados.config.settings()), str(found)


SPEC = ProviderSpec(
    name="arvados",
    settings=ArvadosSettings,
    adapter="wesctl.providers.arvados.adapter:build",
    sdk_prefix="ARVADOS_",
    sdk_settings=SdkSettings(
        names=("ARVADOS_API_HOST", "ARVADOS_API_TOKEN"),
        label="the Arvados SDK's settings.conf",
        read=read_sdk_settings,
    ),
)
