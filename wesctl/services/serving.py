"""Which runs this host serves: the providers it is configured for, and the runs it leaves
alone (another host's provider, a misconfigured provider, a state that is not a WES state)."""

from __future__ import annotations

from wesctl.config import PROVIDER_NAMES
from wesctl.services.runtime import Runtime

# last_error of a run left queued because its provider is misconfigured on this host.
INSTALLATION_PROBLEM = "installation problem, run not at fault: "


def disabled_providers(runtime: Runtime) -> frozenset[str]:
    """Known providers this host does not serve: their runs wait for a host that does."""
    return frozenset(PROVIDER_NAMES) - frozenset(runtime.settings.enabled_providers)


def provider_reason(runtime: Runtime, name: str) -> str:
    """Why `name` is enabled or not on this host, as `config show` says it."""
    for provider, _, why in runtime.settings.provider_enablement():
        if provider == name:
            return why
    return "unknown provider"


def inexact_state_message(state: str, count: int) -> str:
    return (
        f"{count} runs have state {state!r}, which is not exactly a WES state: wesctl leaves "
        "them alone until the WES API or an operator corrects it (e.g. to 'QUEUED')"
    )
