"""Provider names mapped to lazily imported factories.

Importing an adapter pulls in its SDK (boto3, sevenbridges), so nothing is imported until a
command actually needs that provider. A new provider (Arvados, say) is one module with a
`build(settings) -> Provider` function and one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from wesctl.config import PROVIDER_NAMES
from wesctl.errors import ConfigError

if TYPE_CHECKING:
    from wesctl.config import Settings
    from wesctl.providers.base import Provider

ProviderFactory = Callable[["Settings"], "Provider"]

# Alphabetical; every name here must also be in config.PROVIDER_NAMES.
PROVIDERS: dict[str, str] = {
    "healthomics": "wesctl.providers.healthomics.adapter:build",
    "sevenbridges": "wesctl.providers.sevenbridges.adapter:build",
}
assert tuple(PROVIDERS) == PROVIDER_NAMES, "PROVIDERS and config.PROVIDER_NAMES must agree"


def get_factory(name: str) -> ProviderFactory:
    """Return the factory for `name`; raise ConfigError naming the known providers."""
    target = PROVIDERS.get(name)
    if target is None:
        raise ConfigError(f"unknown provider {name!r}; known providers: {', '.join(PROVIDERS)}")
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"provider {name!r} cannot be loaded ({exc}); reinstall wesctl with its dependencies"
        ) from exc
    factory: ProviderFactory = getattr(module, attribute)
    return factory


def build_provider(name: str, settings: Settings) -> Provider:
    """Build the provider adapter called `name` from `settings`."""
    return get_factory(name)(settings)
