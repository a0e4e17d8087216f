"""Mapping every provider shares: run names, required options, times and output file objects
(pure functions)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from wesctl.domain.types import RunSpec
from wesctl.providers.base import ProviderRejected

logger = logging.getLogger(__name__)

RUN_NAME_PREFIX = "wes-"

# A provider's File/Directory value as a WES output object, or None when it is not one; the
# second argument maps nested values (secondary files) the same way.
FileObject = Callable[[Mapping[str, Any], Callable[[Any], Any]], "dict[str, Any] | None"]


def run_name(run_id: str) -> str:
    """The name a WES run's provider run (task) gets: `wes-<run_id>`, found again by it."""
    return f"{RUN_NAME_PREFIX}{run_id}"


def required_option(
    spec: RunSpec,
    names: Sequence[str],
    default: str | None,
    *,
    provider: str,
    missing: str,
    pattern: re.Pattern[str],
    invalid: str,
    longest: int | None = None,
) -> str:
    """The first of the per-run options `names` the run sets, else the installation's `default`.
    Raise ProviderRejected with `missing` when there is neither, with `invalid` (formatted with
    the value's repr) when the value is not a string `pattern` matches, of at most `longest`."""
    value = next((spec.option(name) for name in names if spec.option(name)), None) or default
    if not value:
        raise ProviderRejected(provider, missing)
    if (
        not isinstance(value, str)
        or (longest is not None and len(value) > longest)
        or not pattern.fullmatch(value)
    ):
        raise ProviderRejected(provider, invalid.format(repr(value)))
    return value


def check_workflow(
    spec: RunSpec, *, provider: str, pattern: re.Pattern[str], expected: str
) -> None:
    """Raise ProviderRejected unless the run's parameters are a JSON object and its
    workflow_url is a string `pattern` matches (`expected` says what it should be)."""
    if not isinstance(spec.workflow_params, Mapping):
        raise ProviderRejected(provider, "workflow_params must be a JSON object")
    if not pattern.fullmatch(spec.workflow_url):
        raise ProviderRejected(provider, f"workflow_url {spec.workflow_url!r} is not {expected}")


def naive_utc(value: Any) -> datetime | None:
    """Return a provider's timestamp (a datetime, or an ISO string: '...Z', fractions or an
    offset) as naive UTC, the form the database stores; None for no or an unreadable time."""
    if isinstance(value, str) and value:
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            logger.debug("unparseable provider timestamp %r", value)
            return None
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:  # already naive (botocore parses zone-less strings so)
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def walk_outputs(outputs: Mapping[str, Any], file_object: FileObject) -> dict[str, Any]:
    """Return `outputs` with every value `file_object` recognises as a file or directory
    replaced by its WES object; lists and records are walked, anything else is kept."""

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(item) for item in value]
        if isinstance(value, Mapping):
            converted = file_object(value, walk)
            if converted is not None:
                return converted
            return {key: walk(item) for key, item in value.items()}
        return value

    return {key: walk(value) for key, value in outputs.items()}
