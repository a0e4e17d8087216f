"""Pure Arvados mapping: states, the container request a WES run becomes, outputs, task logs
and the error classes. No I/O; the adapter feeds it the API's JSON.

A WES run is one container request running a registered workflow the way Workbench runs it:
`arvados-cwl-runner` in the `arvados/jobs` image with the workflow's definition and the run's
`workflow_params` as `json` mounts. Its `properties` carry the WES run id and the submission key
(found again by filters after a crash or a lost answer), `wesctl_canceled` on a draft canceled
before it was committed, `wesctl_duplicate_of` on a draft the SDK created twice (never adopted).

How answers map to the three error classes (`classify` decides; the adapter says whether the
request was about the configured project):

    answer                                                  class
    no HTTP answer, 408, 409, 423, 429, 5xx                 unavailable, retried
    TLS certificate not trusted                             misconfigured: SSL_CERT_FILE
    not the Arvados API (no discovery document, not JSON)   misconfigured: ARVADOS_API_HOST
    401                                                     misconfigured: ARVADOS_API_TOKEN
    403/404 on the configured project (reading it,          misconfigured: ARVADOS_PROJECT_UUID
      creating a request in it)
    403/404 in a project the run names itself               rejected: that run
    404 on a container request known by uuid                not found
    404 on the workflow, 422, any other 4xx                 rejected
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from wesctl.domain.states import RunState
from wesctl.domain.types import ProviderStatus, RunSpec, TaskLog
from wesctl.providers.arvados.settings import PROJECT_UUID
from wesctl.providers.base import (
    ProviderError,
    ProviderMisconfigured,
    ProviderRejected,
    ProviderRunNotFound,
    ProviderUnavailable,
)
from wesctl.providers.mapping import check_workflow, required_option

logger = logging.getLogger(__name__)

PROVIDER = "arvados"
RUN_ID_PROPERTY = "wes_run_id"
KEY_PROPERTY = "wesctl_submission_key"
CANCELED_PROPERTY = "wesctl_canceled"
DUPLICATE_PROPERTY = "wesctl_duplicate_of"
TEMPLATE_PROPERTY = "template_uuid"  # what Workbench sets: the workflow that was run

WORKFLOW_UUID = re.compile(r"[a-z0-9]{5}-7fd4e-[a-z0-9]{15}")
REQUEST_UUID = re.compile(r"[a-z0-9]{5}-xvhdp-[a-z0-9]{15}")

DEFAULT_IMAGE = "arvados/jobs"
DEFAULT_PRIORITY = 500  # Workbench's
DEFAULT_VCPUS = 1
DEFAULT_RAM_MIB = 1024  # arvados-cwl-runner's --submit-runner-ram
KEEP_CACHE_MIB = 256  # arvados-cwl-runner's --collection-cache-size
MAX_NAME = 254
MOUNT_WORKFLOW = "/var/lib/cwl/workflow.json"
MOUNT_INPUT = "/var/lib/cwl/cwl.input.json"
OUTPUT_PATH = "/var/spool/cwl"
CWL_OUTPUT = "cwl.output.json"
LOG_FILES = ("stdout.txt", "stderr.txt", "crunch-run.txt")

REQUEST_FIELDS = (
    "uuid",
    "name",
    "command",
    "state",
    "priority",
    "container_uuid",
    "properties",
    "log_uuid",
    "output_uuid",
    "created_at",
    "modified_at",
    "requesting_container_uuid",
)
CONTAINER_FIELDS = (
    "uuid",
    "state",
    "exit_code",
    "started_at",
    "finished_at",
    "runtime_status",
    "priority",
    "log",
)

TOKEN_FIX = (
    "set a valid token in ARVADOS_API_TOKEN (or the systemd credential 'arvados-api-token') "
    "for ARVADOS_API_HOST"
)
PROJECT_FIX = "set ARVADOS_PROJECT_UUID to a project (…-j7d0g-…) the token's user can write to"
HOST_FIX = "set ARVADOS_API_HOST to the cluster's API host[:port], without https://"
TLS_FIX = (
    "trust the cluster's certificate: set SSL_CERT_FILE to its CA bundle (or, for a test "
    "cluster only, ARVADOS_API_HOST_INSECURE=true)"
)
_UNAVAILABLE = frozenset({408, 409, 423, 429})
_DENIED = frozenset({403, 404})


@dataclass(frozen=True)
class RunOptions:
    """Per-run options from tags or workflow_engine_parameters, validated."""

    project: str
    priority: int = DEFAULT_PRIORITY
    vcpus: int = DEFAULT_VCPUS
    ram_mib: int = DEFAULT_RAM_MIB
    image: str = DEFAULT_IMAGE
    max_run_time: int | None = None  # seconds


def _int_option(spec: RunSpec, name: str, default: int, low: int, high: int | None) -> int:
    value = spec.option(name)
    if value is None:
        return default
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProviderRejected(PROVIDER, f"option {name}={value!r} must be a whole number")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ProviderRejected(PROVIDER, f"option {name}={value} must be {bound}")
    return value


def run_options(spec: RunSpec, default_project: str | None) -> RunOptions:
    """Read and check the run's options; raise ProviderRejected naming the bad one."""
    project = required_option(
        spec,
        ("project", "arvados_project"),
        default_project,
        provider=PROVIDER,
        missing="no project: give the run a 'project' tag or workflow engine parameter, "
        "or set ARVADOS_PROJECT_UUID",
        pattern=PROJECT_UUID,
        invalid="option project={} is not an Arvados project uuid (…-j7d0g-…)",
    )
    image = spec.option("container_image") or spec.option("image") or DEFAULT_IMAGE
    if not isinstance(image, str) or not image.strip() or any(c.isspace() for c in image):
        raise ProviderRejected(PROVIDER, f"option container_image={image!r} is not an image name")
    max_run_time = spec.option("max_run_time")
    return RunOptions(
        project=project,
        priority=_int_option(spec, "priority", DEFAULT_PRIORITY, 1, 1000),
        vcpus=_int_option(spec, "vcpus", DEFAULT_VCPUS, 1, 1024),
        ram_mib=_int_option(spec, "ram_mib", DEFAULT_RAM_MIB, 64, None),
        image=image,
        max_run_time=(
            None if max_run_time is None else _int_option(spec, "max_run_time", 0, 1, None)
        ),
    )


def check_spec(spec: RunSpec) -> None:
    """Raise ProviderRejected when the run cannot become a container request; no I/O."""
    check_workflow(
        spec,
        provider=PROVIDER,
        pattern=WORKFLOW_UUID,
        expected="a registered Arvados workflow uuid (…-7fd4e-…)",
    )


def parse_definition(workflow_uuid: str, text: Any) -> Any:
    """Return a workflow's `definition` (JSON text, as arvados-cwl-runner registers it)."""
    if isinstance(text, Mapping):
        return text
    if not isinstance(text, str) or not text.strip():
        raise ProviderRejected(PROVIDER, f"workflow {workflow_uuid} has no definition")
    try:
        loaded = json.loads(text)
    except ValueError:
        raise ProviderRejected(
            PROVIDER,
            f"workflow {workflow_uuid} has a definition that is not JSON; register it with "
            "arvados-cwl-runner --create-workflow",
        ) from None
    if not isinstance(loaded, Mapping):
        raise ProviderRejected(PROVIDER, f"workflow {workflow_uuid} definition is not an object")
    return loaded


SECRETS_HINTS = frozenset({"http://commonwl.org/cwltool#Secrets", "cwltool:Secrets"})


def secret_inputs(definition: Mapping[str, Any]) -> list[str]:
    """Names of the main process's inputs its cwltool:Secrets hint marks secret."""
    main: Any = definition
    graph = definition.get("$graph")
    if isinstance(graph, list):
        main = next(
            (
                item
                for item in graph
                if isinstance(item, Mapping) and item.get("id") in ("#main", "main")
            ),
            {},
        )
    names: list[str] = []
    for key in ("hints", "requirements"):
        entries = main.get(key) if isinstance(main, Mapping) else None
        if isinstance(entries, Mapping):  # the map form: {class: fields}
            entries = [
                {"class": name, **fields}
                for name, fields in entries.items()
                if isinstance(fields, Mapping)
            ]
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, Mapping) and entry.get("class") in SECRETS_HINTS:
                secrets = entry.get("secrets")
                for secret in secrets if isinstance(secrets, list) else []:
                    names.append(str(secret).rsplit("/", 1)[-1].rsplit("#", 1)[-1])
    return names


def split_secrets(
    inputs: Mapping[str, Any], secrets: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Move secret string inputs into `secret_mounts` (never returned by the API, kept out of
    logs and the container record) and leave `$include`s of them in the inputs, as
    arvados-cwl-runner and Workbench do."""
    public = dict(inputs)
    mounts: dict[str, Any] = {}
    for name in secrets:
        value = public.get(name)
        if isinstance(value, str):
            mount = f"/secrets/s{len(mounts)}"
            mounts[mount] = {"kind": "text", "content": value}
            public[name] = {"$include": mount}
    return public, mounts


def request_name(spec: RunSpec, workflow_name: Any) -> str:
    label = workflow_name if isinstance(workflow_name, str) and workflow_name else "workflow"
    return f"WES run {spec.run_id}: {label}"[:MAX_NAME]


def request_body(
    spec: RunSpec,
    idempotency_key: str,
    workflow: Mapping[str, Any],
    options: RunOptions,
) -> dict[str, Any]:
    """The Uncommitted container request for the run, as Workbench builds it for a workflow."""
    definition = parse_definition(spec.workflow_url, workflow.get("definition"))
    inputs, secret_mounts = split_secrets(spec.workflow_params, secret_inputs(definition))
    scheduling: dict[str, Any] = {}
    if options.max_run_time is not None:
        scheduling["max_run_time"] = options.max_run_time
    return {
        "owner_uuid": options.project,
        "name": request_name(spec, workflow.get("name")),
        "description": f"Submitted by wesctl for WES run {spec.run_id}.",
        "state": "Uncommitted",
        "priority": options.priority,
        "container_image": options.image,
        "cwd": OUTPUT_PATH,
        "output_path": OUTPUT_PATH,
        "command": [
            "arvados-cwl-runner",
            "--local",
            "--api=containers",
            "--no-log-timestamps",
            "--disable-color",
            f"--project-uuid={options.project}",
            f"{MOUNT_WORKFLOW}#main",
            MOUNT_INPUT,
        ],
        "mounts": {
            OUTPUT_PATH: {"kind": "collection", "writable": True},
            "stdout": {"kind": "file", "path": f"{OUTPUT_PATH}/{CWL_OUTPUT}"},
            MOUNT_WORKFLOW: {"kind": "json", "content": definition},
            MOUNT_INPUT: {"kind": "json", "content": inputs},
        },
        "secret_mounts": secret_mounts,
        "runtime_constraints": {
            "API": True,
            "vcpus": options.vcpus,
            "ram": (options.ram_mib + KEEP_CACHE_MIB) * 1024 * 1024,
        },
        "scheduling_parameters": scheduling,
        "use_existing": False,
        "output_name": f"Output of WES run {spec.run_id}"[:MAX_NAME],
        "properties": {
            RUN_ID_PROPERTY: spec.run_id,
            KEY_PROPERTY: idempotency_key,
            TEMPLATE_PROPERTY: spec.workflow_url,
            "workflowName": workflow.get("name") or "",
        },
    }


def marker_filters(run_id: str, idempotency_key: str) -> list[list[Any]]:
    """Filters finding the top-level requests of one submission."""
    return [
        [f"properties.{RUN_ID_PROPERTY}", "=", run_id],
        [f"properties.{KEY_PROPERTY}", "=", idempotency_key],
        ["requesting_container_uuid", "=", None],
    ]


def properties_of(request: Mapping[str, Any]) -> dict[str, Any]:
    properties = request.get("properties")
    return dict(properties) if isinstance(properties, Mapping) else {}


def is_canceled_draft(request: Mapping[str, Any]) -> bool:
    return request.get("state") == "Uncommitted" and bool(
        properties_of(request).get(CANCELED_PROPERTY)
    )


def is_duplicate(request: Mapping[str, Any]) -> bool:
    return bool(properties_of(request).get(DUPLICATE_PROPERTY))


def is_live_draft(request: Mapping[str, Any]) -> bool:
    """An Uncommitted request that may still be committed (not canceled, not a duplicate)."""
    return (
        request.get("state") == "Uncommitted"
        and not is_canceled_draft(request)
        and not is_duplicate(request)
    )


def choose_adopted(requests: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The request a submission keeps: committed or canceled ones win over live drafts, then the
    oldest; duplicates never count."""
    candidates = [request for request in requests if not is_duplicate(request)]
    if not candidates:
        return None
    settled = [request for request in candidates if not is_live_draft(request)]
    pool = settled or candidates
    return min(pool, key=lambda request: (str(request.get("created_at")), str(request["uuid"])))


def parse_time(value: Any) -> datetime | None:
    """Parse an Arvados timestamp (nanoseconds, Z) into naive UTC."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)  # datetime keeps microseconds
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        logger.debug("unparseable Arvados timestamp %r", value)
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _reason(container: Mapping[str, Any] | None) -> str | None:
    status = container.get("runtime_status") if container else None
    if isinstance(status, Mapping):
        for key in ("error", "errorDetail", "warning"):
            if status.get(key):
                return str(status[key])
    return None


def to_status(request: Mapping[str, Any], container: Mapping[str, Any] | None) -> ProviderStatus:
    """Map a container request and its container to a WES state (never QUEUED).

    | request | container | state |
    |---|---|---|
    | Uncommitted, marked canceled | - | CANCELED |
    | Uncommitted, duplicate | - | SYSTEM_ERROR |
    | Uncommitted | - | INITIALIZING (the submitter commits it) |
    | Committed, priority 0 | none, Queued, Locked | CANCELED (on hold: it never runs) |
    | Committed, priority 0 | Running | CANCELING |
    | Committed | none, Queued, Locked, Cancelled (retried) | INITIALIZING |
    | Committed/Final | Running | RUNNING |
    | any | Complete, exit 0 | COMPLETE |
    | any | Complete, exit non-zero | EXECUTOR_ERROR |
    | Final | Cancelled, priority 0 (our cancel) | CANCELED |
    | Final | Cancelled otherwise, or none | SYSTEM_ERROR with the reason |
    """
    uuid = str(request.get("uuid"))
    state = str(request.get("state") or "")
    priority = request.get("priority")
    container_state = str(container.get("state") or "") if container else ""
    raw = f"{state}/{container_state}" if container_state else state
    message: str | None = None
    mapped: RunState | None
    exit_code = container.get("exit_code") if container else None
    if container_state == "Complete" and isinstance(exit_code, int):
        raw = f"{raw}({exit_code})"
    if state == "Uncommitted":
        if is_canceled_draft(request):
            mapped, message = RunState.CANCELED, "canceled before it was committed"
        elif is_duplicate(request):
            mapped = RunState.SYSTEM_ERROR
            message = f"duplicate of {properties_of(request).get(DUPLICATE_PROPERTY)}"
        else:
            mapped = RunState.INITIALIZING
    elif container_state == "Complete":
        if exit_code == 0:
            mapped = RunState.COMPLETE
        else:
            mapped = RunState.EXECUTOR_ERROR
            message = _reason(container) or f"workflow exited with code {exit_code}"
    elif container_state == "Running":
        mapped = RunState.CANCELING if priority == 0 else RunState.RUNNING
    elif state == "Committed":
        if priority == 0:
            mapped, message = RunState.CANCELED, "canceled (priority 0) before it ran"
        elif container_state in ("", "Queued", "Locked", "Cancelled"):
            mapped = RunState.INITIALIZING
        else:
            mapped = None
    elif state == "Final":
        if priority == 0:
            mapped, message = RunState.CANCELED, _reason(container) or "canceled"
        else:
            mapped = RunState.SYSTEM_ERROR
            message = _reason(container) or (
                f"container {container_state.lower()} without a cancel"
                if container_state
                else "finished without a container"
            )
    else:
        mapped = None
    if mapped is None:
        logger.warning(
            "unknown Arvados state request=%s state=%r; the run keeps its state", uuid, raw
        )
    return ProviderStatus(
        provider_id=uuid,
        raw_status=raw,
        state=mapped,
        message=message,
        started_at=parse_time(container.get("started_at")) if container else None,
        ended_at=parse_time(container.get("finished_at")) if container else None,
    )


def manifest_files(manifest_text: Any) -> list[tuple[str, int]]:
    """(path, size) of every file in a collection manifest, in manifest order."""
    files: dict[str, int] = {}
    if not isinstance(manifest_text, str):
        return []
    for line in manifest_text.splitlines():
        tokens = line.split()
        if not tokens:
            continue
        stream = tokens[0].replace("\\040", " ")
        for token in tokens[1:]:
            parts = token.split(":", 2)
            if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
                continue  # a block locator
            name = parts[2].replace("\\040", " ")
            path = name if stream == "." else f"{stream.removeprefix('./')}/{name}"
            files[path] = files.get(path, 0) + int(parts[1])
    return list(files.items())


def location(collection_uuid: str, path: str, keep_web_url: str | None) -> str:
    """Where a file in a collection can be read: a keep-web URL when the cluster publishes one
    (Services.WebDAVDownload), else `<collection uuid>/<path>`."""
    if keep_web_url:
        return f"{keep_web_url.rstrip('/')}/c={collection_uuid}/{path}"
    return f"{collection_uuid}/{path}"


def outputs_from_cwl(
    cwl_output: Mapping[str, Any], collection_uuid: str, keep_web_url: str | None
) -> dict[str, Any]:
    """cwl.output.json with each File/Directory location (relative to the output collection)
    made absolute."""

    def convert(value: Any) -> Any:
        if isinstance(value, list):
            return [convert(item) for item in value]
        if isinstance(value, Mapping):
            converted = {key: convert(item) for key, item in value.items()}
            if value.get("class") in ("File", "Directory") and isinstance(
                value.get("location"), str
            ):
                relative = value["location"]
                if not re.match(r"^[a-z][a-z0-9+.-]*:", relative):
                    converted["location"] = location(collection_uuid, relative, keep_web_url)
            return converted
        return value

    return {str(key): convert(value) for key, value in cwl_output.items()}


def outputs_from_files(
    files: Sequence[tuple[str, int]], collection_uuid: str, keep_web_url: str | None
) -> dict[str, Any]:
    """Without cwl.output.json: every file of the output collection, by path."""
    return {
        path: {
            "class": "File",
            "location": location(collection_uuid, path, keep_web_url),
            "size": size,
        }
        for path, size in files
    }


def task_log(
    request: Mapping[str, Any],
    container: Mapping[str, Any] | None,
    log_files: Sequence[tuple[str, int]],
    keep_web_url: str | None,
) -> TaskLog:
    """One task log: a request (the runner or a workflow step) with its container and log."""
    log_uuid = request.get("log_uuid") or (container.get("log") if container else None)
    paths = {path for path, _ in log_files}

    def where(name: str) -> str | None:
        if not isinstance(log_uuid, str) or name not in paths:
            return None
        return location(log_uuid, name, keep_web_url)

    system_logs = tuple(
        f"{path}: {location(str(log_uuid), path, keep_web_url)}"
        for path, _ in log_files
        if path not in ("stdout.txt", "stderr.txt")
    )
    exit_code = container.get("exit_code") if container else None
    return TaskLog(
        name=str(request.get("name") or request.get("uuid")),
        task_id=str(request.get("uuid")),
        status=str(container.get("state")) if container else str(request.get("state")),
        cmd=list(request["command"]) if isinstance(request.get("command"), list) else None,
        start_time=parse_time(container.get("started_at")) if container else None,
        end_time=parse_time(container.get("finished_at")) if container else None,
        exit_code=exit_code if isinstance(exit_code, int) else None,
        stdout=where("stdout.txt"),
        stderr=where("stderr.txt"),
        system_logs=system_logs,
    )


def classify(
    status: int | None,
    operation: str,
    text: str,
    *,
    about_project: bool = False,
    known_request: bool = False,
    certificate: bool = False,
    not_the_api: bool = False,
) -> ProviderError:
    """Classify one failed call by the table in the module docstring (the one place that
    decides). `status` is the HTTP status, None when no HTTP answer came."""
    message = f"{operation} failed: {text}" + (f" (HTTP {status})" if status else "")
    if certificate:
        return ProviderMisconfigured(PROVIDER, message, TLS_FIX)
    if not_the_api:
        return ProviderMisconfigured(PROVIDER, message, HOST_FIX)
    if status is None or status in _UNAVAILABLE or status >= 500:
        return ProviderUnavailable(PROVIDER, message)
    if status == 401:
        return ProviderMisconfigured(PROVIDER, message, TOKEN_FIX)
    if status in _DENIED and about_project:
        return ProviderMisconfigured(PROVIDER, message, PROJECT_FIX)
    if status == 404 and known_request:
        return ProviderRunNotFound(PROVIDER, message)
    return ProviderRejected(PROVIDER, message)
