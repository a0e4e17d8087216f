"""What a provider package declares about itself: its name, its settings and its adapter.

The registry lists one `ProviderSpec` per provider; configuration, `config show`, `doctor` and
the adapter factory all read it, so no other module names a provider.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from wesctl.setting import Field, declared

T = TypeVar("T")


@dataclass(frozen=True)
class SdkSettings:
    """Settings a provider's SDK keeps in its own configuration file, taken from there when
    wesctl's sources leave them unset. `read` returns what the SDK read and the file it read it
    from (empty when there is none); it imports the SDK, so it is called only for a provider
    this host wants (listed in WESCTL_PROVIDERS, or with one of its required settings set)."""

    names: tuple[str, ...]  # the variables the file may supply
    label: str  # how messages name the file
    read: Callable[[], tuple[Mapping[str, str], str]]


@dataclass(frozen=True)
class ProviderSpec(Generic[T]):
    """A provider: `settings` is its frozen settings dataclass (fields declared with
    `wesctl.setting.setting`), `adapter` the `module:function` building its adapter (imported
    only when a command needs it, so its SDK is too). Variables starting with `sdk_prefix` are
    the SDK's own configuration: found only in the env file or a systemd credential, they are
    exported to the process environment for the SDK to read. `sdk_settings` names the
    required settings the SDK's own file may supply."""

    name: str
    settings: type[T]
    adapter: str
    sdk_prefix: str | None = None
    sdk_settings: SdkSettings | None = None

    @property
    def fields(self) -> tuple[Field, ...]:
        return declared(self.settings, prefix=f"{self.name}_", section=self.name)
