"""Which provider a run uses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PROVIDER_TAG = "provider_type"


def resolve_provider_name(provider_type: str | None, tags: Any, default: str) -> str:
    """Return the run's provider: wesctl's `provider_type` column if set, else the WES API's
    `tags["provider_type"]`, else the configured default. Names are compared lower-case."""
    if provider_type and provider_type.strip():
        return provider_type.strip().lower()
    if isinstance(tags, Mapping):
        tagged = tags.get(PROVIDER_TAG)
        if isinstance(tagged, str) and tagged.strip():
            return tagged.strip().lower()
    return default
