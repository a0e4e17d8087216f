"""HealthOmics mapping: run statuses, StartRun parameters from a WES run, outputs and task log
locations, as pure functions (no I/O, no client)."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from wesctl.domain.states import RunState
from wesctl.domain.types import ProviderStatus, RunSpec
from wesctl.providers.base import ProviderRejected
from wesctl.providers.healthomics.settings import HealthOmicsSettings
from wesctl.providers.mapping import naive_utc, required_option, run_name, walk_outputs

logger = logging.getLogger(__name__)

NAME = "healthomics"
LOG_GROUP = "/aws/omics/WorkflowLog"
TAG_RUN_ID = "wes_run_id"
TAG_REQUEST_ID = "wes_request_id"
MAX_TAGS = 50  # per run, from the API model's documentation
# The API reference and the user guide disagree on the default, so wesctl always sends one.
# DYNAMIC needs no capacity planning and is billed by use; STATIC is chosen with storage_type or
# implied by storage_capacity.
DEFAULT_STORAGE_TYPE = "DYNAMIC"
DELETED_MESSAGE = (
    "HealthOmics deleted this run's metadata; its outcome is unknown here, so the last recorded "
    "state is kept"
)

# HealthOmics RunStatus -> WES state. PENDING is "accepted, waiting for capacity" and must never
# map to QUEUED: wesctl treats QUEUED as "not yet submitted", and the WES API's own daemon
# (which wesctl replaces) resubmitted such runs forever. DELETED (only runs that had finished can
# be deleted) keeps the last state; a later GetRun answers ResourceNotFound, which the sync
# service handles as a vanished run.
STATUS_MAP: dict[str, RunState | None] = {
    "PENDING": RunState.INITIALIZING,
    "STARTING": RunState.INITIALIZING,
    "RUNNING": RunState.RUNNING,
    "STOPPING": RunState.RUNNING,
    "COMPLETED": RunState.COMPLETE,
    "FAILED": RunState.EXECUTOR_ERROR,
    "CANCELLED": RunState.CANCELED,
    "DELETED": None,
}
# Failures the service itself causes; the documentation advises simply running again.
SYSTEM_FAILURE_REASONS = frozenset({"SERVICE_ERROR", "INSTANCE_RESERVATION_FAILED"})

WORKFLOW_TYPES = ("PRIVATE", "READY2RUN")
STORAGE_TYPES = ("STATIC", "DYNAMIC")
CACHE_BEHAVIORS = ("CACHE_ON_FAILURE", "CACHE_ALWAYS")
LOG_LEVELS = ("OFF", "FATAL", "ERROR", "ALL")
RETENTION_MODES = ("RETAIN", "REMOVE")

ID = re.compile(r"[0-9]{1,18}")
WORKFLOW_ARN = re.compile(r"arn:aws[a-z-]*:omics:([a-z0-9-]+):([0-9]{12})?:workflow/([0-9]{1,18})")
_RUN_ARN = re.compile(r"arn:(aws[a-z-]*):omics:([a-z0-9-]+):([0-9]{12}):run/[0-9]+")
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+")
S3_URI = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?")
VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ACCOUNT_ID = re.compile(r"[0-9]{12}")
DIGITS = re.compile(r"[0-9]+")


def reject(message: str) -> ProviderRejected:
    return ProviderRejected(NAME, message)


def map_status(raw: str, failure_reason: str | None = None) -> RunState | None:
    """Return the WES state for a HealthOmics run status; None keeps the run's current state."""
    if raw not in STATUS_MAP:
        logger.warning("unknown HealthOmics run status %r; keeping the run's current state", raw)
        return None
    if raw == "FAILED" and failure_reason in SYSTEM_FAILURE_REASONS:
        return RunState.SYSTEM_ERROR
    return STATUS_MAP[raw]


def status_message(raw: str, failure_reason: str | None, message: str | None) -> str | None:
    """Return "failureReason: statusMessage" (either part alone when the other is missing)."""
    if raw == "DELETED":
        return DELETED_MESSAGE
    parts = [part for part in (failure_reason, message) if part]
    return ": ".join(parts) or None


def is_printable(text: str) -> bool:
    """The API model's "printable": letters, marks, separators, symbols, digits, punctuation."""
    return bool(text) and all(unicodedata.category(char)[0] in "LMZSNP" for char in text)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """Return (bucket, key prefix without a trailing slash) of an s3:// URI."""
    match = S3_URI.fullmatch(uri)
    if match is None:
        raise reject(f"run output location {uri!r} is not an s3:// URI")
    return match.group(1), (match.group(2) or "").strip("/")


def choice(spec: RunSpec, name: str, allowed: Sequence[str]) -> str | None:
    value = spec.option(name)
    if value is None:
        return None
    text = value.strip().upper() if isinstance(value, str) else None
    if text not in allowed:
        raise reject(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return text


def integer_option(spec: RunSpec, name: str, low: int, high: int) -> int | None:
    value = spec.option(name)
    if value is None:
        return None
    if isinstance(value, str) and DIGITS.fullmatch(value.strip()):
        value = int(value)  # run tags hold strings
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise reject(f"{name} must be a whole number from {low} to {high}, not {value!r}")
    return value


def matching_option(spec: RunSpec, name: str, pattern: re.Pattern[str], what: str) -> str | None:
    value = spec.option(name)
    if value is None:
        return None
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not pattern.fullmatch(text.strip()):
        raise reject(f"{name} must be {what}, not {value!r}")
    return text.strip()


def run_tags(spec: RunSpec) -> dict[str, str]:
    """String-valued WES tags become run tags; wesctl's own two tags are added by submit."""
    tags = {key: value for key, value in spec.tags.items() if isinstance(value, str)}
    tags.pop(TAG_RUN_ID, None)
    tags.pop(TAG_REQUEST_ID, None)
    limit = MAX_TAGS - 2
    if len(tags) > limit:
        raise reject(
            f"tags: HealthOmics allows {MAX_TAGS} tags per run and wesctl adds 2, so at most "
            f"{limit} string-valued WES tags; this run has {len(tags)}"
        )
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or key.lower().startswith("aws:"):
            raise reject(f"tag key {key[:40]!r} must be 1-128 characters and not start with aws:")
        if len(value) > 256:
            raise reject(f"tag {key!r}: the value must be at most 256 characters")
    tags[TAG_RUN_ID] = spec.run_id
    return tags


def normalise_outputs(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Return outputs with CWL file objects as {class, location, name, size}; WDL values and
    CWL records as they are (records walked)."""
    return walk_outputs(summary, _file_object)


def _file_object(value: Mapping[str, Any], walk: Callable[[Any], Any]) -> dict[str, Any] | None:
    if value.get("class") not in ("File", "Directory"):
        return None
    location = value.get("location") or value.get("path")
    normalised: dict[str, Any] = {"class": value["class"], "location": location}
    name = value.get("basename") or value.get("name")
    if name is None and isinstance(location, str):
        name = location.rstrip("/").rsplit("/", 1)[-1]
    normalised["name"] = name
    if value.get("size") is not None:
        normalised["size"] = value["size"]
    return normalised


def task_stream(run: Mapping[str, Any], provider_id: str, task_id: str) -> str:
    """The task's CloudWatch log stream as an ARN (built from the run ARN's partition, region and
    account), else as cloudwatch://<group>/<stream>."""
    stream = f"run/{provider_id}/task/{task_id}"
    match = _RUN_ARN.fullmatch(str(run.get("arn", "")))
    if match is None:
        return f"cloudwatch://{LOG_GROUP}/{stream}"
    partition, region, account = match.groups()
    return f"arn:{partition}:logs:{region}:{account}:log-group:{LOG_GROUP}:log-stream:{stream}"


def to_status(provider_id: str, run: Mapping[str, Any]) -> ProviderStatus:
    """Build a ProviderStatus from a GetRun response or a ListRuns item."""
    raw = str(run.get("status", ""))
    reason = run.get("failureReason")
    return ProviderStatus(
        provider_id=provider_id,
        raw_status=raw,
        state=map_status(raw, reason),
        message=status_message(raw, reason, run.get("statusMessage")),
        started_at=naive_utc(run.get("startTime")),
        ended_at=naive_utc(run.get("stopTime")),
    )


def run_request(spec: RunSpec, own: HealthOmicsSettings, region: str) -> dict[str, Any]:
    """Validate `spec` (no I/O) and return StartRun's arguments without the requestId, for the
    installation's settings `own` and the client's `region`."""
    if not isinstance(spec.workflow_params, Mapping):
        raise reject("workflow_params must be a JSON object")
    workflow_type = (
        choice(spec, "healthomics_workflow_type", WORKFLOW_TYPES)
        or choice(spec, "workflow_type", WORKFLOW_TYPES)
        or "PRIVATE"
    )
    name = run_name(spec.run_id)
    if len(name) > 128 or not is_printable(name):
        raise reject(
            f"run_id {spec.run_id[:40]!r}: the run name wes-<run_id> must be at most 128 "
            "printable characters"
        )
    request: dict[str, Any] = {
        "workflowId": workflow_id(spec.workflow_url, region),
        "workflowType": workflow_type,
        "roleArn": role_arn(spec, own),
        "outputUri": output_uri(spec, own),
        "name": name,
        "parameters": dict(spec.workflow_params),
        "tags": run_tags(spec),
    }
    storage_type = choice(spec, "storage_type", STORAGE_TYPES)
    capacity = integer_option(spec, "storage_capacity", 0, 100_000)
    if capacity is not None:
        if storage_type == "DYNAMIC":
            raise reject("storage_capacity applies only to storage_type STATIC")
        storage_type = "STATIC"
        request["storageCapacity"] = capacity
    request["storageType"] = storage_type or DEFAULT_STORAGE_TYPE
    digits = "a HealthOmics id of 1-18 digits"
    cache_id = matching_option(spec, "cache_id", ID, digits)
    cache_behavior = choice(spec, "cache_behavior", CACHE_BEHAVIORS)
    if cache_behavior is not None and cache_id is None:
        raise reject("cache_behavior needs cache_id")
    optional = {
        "cacheId": cache_id,
        "cacheBehavior": cache_behavior,
        "runGroupId": matching_option(spec, "run_group_id", ID, digits),
        "priority": integer_option(spec, "priority", 0, 100_000),
        "logLevel": choice(spec, "log_level", LOG_LEVELS),
        "retentionMode": choice(spec, "retention_mode", RETENTION_MODES),
        "workflowVersionName": matching_option(
            spec, "workflow_version_name", VERSION_NAME, "a workflow version name"
        ),
        "workflowOwnerId": matching_option(
            spec, "workflow_owner_id", ACCOUNT_ID, "a 12-digit AWS account id"
        ),
    }
    request.update({key: value for key, value in optional.items() if value is not None})
    return request


def workflow_id(url: str, region: str) -> str:
    text = url.strip()
    if ID.fullmatch(text):
        return text
    match = WORKFLOW_ARN.fullmatch(text)
    if match is None:
        raise reject(
            f"workflow_url {url[:200]!r} is not a HealthOmics workflow id or ARN (expected "
            "digits such as 1234567 or arn:aws:omics:<region>:<account>:workflow/<id>)"
        )
    if match.group(1) != region:
        raise reject(
            f"workflow_url is in region {match.group(1)} but the HealthOmics client uses "
            f"{region} (set AWS_REGION)"
        )
    return match.group(3)


def role_arn(spec: RunSpec, own: HealthOmicsSettings) -> str:
    return required_option(
        spec,
        ("role_arn",),
        own.role_arn,
        provider=NAME,
        missing="role_arn: no IAM role for the run; set AWS_HEALTHOMICS_WORKFLOW_ROLE_ARN or the "
        "run's role_arn option",
        pattern=ROLE_ARN,
        invalid="role_arn {} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
        longest=128,
    )


def own_options(spec: RunSpec, own: HealthOmicsSettings) -> tuple[str, ...]:
    """The run's own options StartRun carries that other runs do not: the likely cause of an
    access denial that names no culprit."""
    installation = own
    differs = {
        "role_arn": spec.option("role_arn") not in (None, installation.role_arn),
        "output_uri": spec.option("output_uri") not in (None, installation.output_uri),
        "workflow_owner_id": spec.option("workflow_owner_id") is not None,
    }
    return tuple(option for option, differing in differs.items() if differing)


def output_uri(spec: RunSpec, own: HealthOmicsSettings) -> str:
    return required_option(
        spec,
        ("output_uri",),
        own.output_uri,
        provider=NAME,
        missing="output_uri: no S3 location for outputs; set AWS_HEALTHOMICS_OUTPUT_URI or the "
        "run's output_uri option",
        pattern=S3_URI,
        invalid="output_uri {} is not an s3://bucket/prefix URI",
        longest=750,
    )
