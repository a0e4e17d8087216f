"""Seven Bridges settings: the token, endpoint and default project, and wesctl's request rate."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from wesctl.providers.spec import ProviderSpec
from wesctl.setting import Secret, optional_text, positive_float, secret_setting, setting


def https_or_loopback_url(raw: str) -> str:
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


@dataclass(frozen=True)
class SevenBridgesSettings:
    api_token: Secret | None = secret_setting(  # noqa: RUF009 - a dataclasses.field
        "SEVENBRIDGES_API_TOKEN",
        "Seven Bridges / Velsera API token",
        credential="sevenbridges-api-token",
        required_for="an API token",
    )
    api_endpoint: str = setting(
        "SEVENBRIDGES_API_ENDPOINT",
        "https://api.sbgenomics.com/v2",
        https_or_loopback_url,
        "Seven Bridges API base URL including /v2",
    )
    project: str | None = setting(
        "SEVENBRIDGES_PROJECT",
        "",
        optional_text,
        "Default project (owner/project) for runs whose tags name none",
        required_for="the default project (owner/project) of its runs",
    )
    rate: float = setting(
        "WESCTL_SEVENBRIDGES_RATE",
        "3.3",
        positive_float,
        "Client-side request rate limit per process (documented quota: 1000 per 5 minutes)",
    )


SPEC = ProviderSpec(
    name="sevenbridges",
    settings=SevenBridgesSettings,
    adapter="wesctl.providers.sevenbridges.adapter:build",
)
