"""The provider seam: each provider package declares its settings, and wesctl composes them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from wesctl.config import FIELDS, env_example, load_settings
from wesctl.providers.registry import PROVIDERS
from wesctl.providers.spec import ProviderSpec
from wesctl.setting import Secret, optional_secret, optional_text, setting

WESCTL = Path(__file__).resolve().parents[2] / "wesctl"


@dataclass(frozen=True)
class ThirdSettings:
    """What a next provider (Arvados) would declare."""

    api_host: str | None = setting(
        "ARVADOS_API_HOST", "", optional_text, "API host", required_for="its API host"
    )
    api_token: Secret | None = setting(  # noqa: RUF009 - a dataclasses.field
        "ARVADOS_API_TOKEN",
        "",
        optional_secret,
        "API token",
        secret=True,
        credential="arvados-api-token",
        required_for="an API token",
    )


def test_a_package_declares_its_settings_keyed_and_grouped_by_its_name() -> None:
    spec = ProviderSpec("arvados", ThirdSettings, "wesctl.providers.arvados.adapter:build")
    fields = {field.attr: field for field in spec.fields}
    assert list(fields) == ["arvados_api_host", "arvados_api_token"]
    assert {field.section for field in fields.values()} == {"arvados"}
    assert fields["arvados_api_token"].env == "ARVADOS_API_TOKEN"
    assert fields["arvados_api_token"].credential == "arvados-api-token"
    assert fields["arvados_api_host"].required_for == "its API host"


def test_every_registered_provider_gets_its_own_typed_settings() -> None:
    settings = load_settings(environ={"SEVENBRIDGES_PROJECT": "alice/wes", "AWS_REGION": "eu-1"})
    for name, spec in PROVIDERS.items():
        own = settings.provider(spec)
        assert isinstance(own, spec.settings)
        declared = [field for field in FIELDS if field.section == name]
        assert declared == list(spec.fields)
        assert any(field.required_for for field in declared), "configured must mean something"
        assert all(f"#{field.env}=" in env_example() for field in declared)
    assert settings.provider(PROVIDERS["sevenbridges"]).project == "alice/wes"
    assert settings.provider(PROVIDERS["healthomics"]).region == "eu-1"


def test_only_the_registry_and_the_packages_name_a_provider() -> None:
    names = re.compile("|".join(PROVIDERS), re.IGNORECASE)
    for module in ("config.py", "setting.py", "providers/spec.py", "providers/adapter.py"):
        assert not names.search((WESCTL / module).read_text()), module
