"""Every provider wesctl knows, by name, and how to build its adapter.

A provider is a package under `wesctl/providers/<name>/` declaring a `ProviderSpec` (its
settings and its adapter's `build(settings) -> Provider`); adding one is that package and one
line in PROVIDERS. Importing a spec is cheap: an adapter, and with it its SDK (boto3,
sevenbridges), is imported only when a command builds it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wesctl.errors import ConfigError
from wesctl.providers.arvados.settings import SPEC as ARVADOS
from wesctl.providers.healthomics.settings import SPEC as HEALTHOMICS
from wesctl.providers.sevenbridges.settings import SPEC as SEVENBRIDGES
from wesctl.providers.spec import ProviderSpec

if TYPE_CHECKING:
    from wesctl.config import Settings
    from wesctl.providers.base import Provider

ProviderFactory = Callable[["Settings"], "Provider"]

# Alphabetical: the order `config show` and `doctor` list providers in.
PROVIDERS: dict[str, ProviderSpec[Any]] = {
    spec.name: spec
    for spec in (
        ARVADOS,
        HEALTHOMICS,
        SEVENBRIDGES,
    )
}
PROVIDER_NAMES = tuple(PROVIDERS)
# For runs that name no provider: the fallback of the WES API's own daemon, which wesctl
# replaces, so runs queued for it go where they went.
DEFAULT_PROVIDER = SEVENBRIDGES.name


def get_factory(name: str) -> ProviderFactory:
    """Return the factory for `name`; raise ConfigError naming the known providers."""
    spec = PROVIDERS.get(name)
    if spec is None:
        raise ConfigError(f"unknown provider {name!r}; known providers: {', '.join(PROVIDERS)}")
    module_name, _, attribute = spec.adapter.partition(":")
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
