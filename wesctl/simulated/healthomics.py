"""A fake of the AWS HealthOmics workflow-run REST API (rest-json) for boto3's `omics` client.

It serves the calls wesctl makes (StartRun, GetRun, ListRuns, CancelRun, ListRunTasks, GetRunTask,
ListWorkflows, GetWorkflow) with the service's HTTP bindings, status codes and error shapes, as
botocore's `omics` service model and the HealthOmics API reference define them. Point boto3 at
it with `AWS_ENDPOINT_URL_OMICS=<base_url>` and `AWS_DISABLE_HOST_PREFIX_INJECTION=true`.

Runs move PENDING -> STARTING -> RUNNING -> STOPPING -> COMPLETED/FAILED when a test calls
`set_status` / `finish`, or by a clock-driven `script`. On completion the fake writes the output
files and the output summary (`<runOutputUri>/logs/outputs.json`) through an optional boto3 S3
client (moto in tests), so it also runs without S3.

`calls` counts requests by API operation name (StartRun, GetRun, ...). Faults may name one or
a logical operation: "submit" (StartRun), "status" (GetRun, ListRuns), "cancel" (CancelRun),
"tasks" (ListRunTasks, GetRunTask), "workflow" (GetWorkflow, ListWorkflows); a fault of kind
`ERROR` answers with the modelled error its `code` names (e.g. AccessDeniedException).

Credentials and IAM: the fake does not check SigV4 signatures, but it reads the access key id
from each request's `Authorization` header, and answers a key that `reject_credentials` named
with that key's error (403 UnrecognizedClientException, ExpiredTokenException or
InvalidSignatureException, in the JSON error shape botocore parses) until `accept_credentials`.
`deny_role` makes StartRun answer AccessDeniedException for runs assuming that role, as the
service does when the caller may not pass it.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import re
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Unpack

from wesctl.simulated import http as wire

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

RUN_STATUSES = (
    "PENDING",
    "STARTING",
    "RUNNING",
    "STOPPING",
    "COMPLETED",
    "DELETED",
    "CANCELLED",
    "FAILED",
)
TASK_STATUSES = ("PENDING", "STARTING", "RUNNING", "STOPPING", "COMPLETED", "CANCELLED", "FAILED")
TERMINAL = frozenset({"COMPLETED", "DELETED", "CANCELLED", "FAILED"})
ACTIVE = frozenset({"STARTING", "RUNNING", "STOPPING"})
LOG_GROUP = "/aws/omics/WorkflowLog"

# HTTP status of each modelled error (botocore's retry decisions depend on them).
ERROR_STATUS = {
    "ValidationException": 400,
    "ServiceQuotaExceededException": 402,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "RequestTimeoutException": 408,
    "ConflictException": 409,
    "ThrottlingException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}

# The service's answers to credentials it does not accept (all HTTP 403).
CREDENTIAL_ERRORS = {
    "UnrecognizedClientException": "The security token included in the request is invalid.",
    "ExpiredTokenException": "The security token included in the request is expired",
    "InvalidSignatureException": (
        "The request signature we calculated does not match the signature you provided. Check "
        "your AWS Secret Access Key and signing method. Consult the service documentation for "
        "details."
    ),
}
_ACCESS_KEY = re.compile(r"Credential=([^/,\s]+)/")
_ID = re.compile(r"[0-9]{1,18}")
_VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_S3_URI = re.compile(r"s3://([^/]+)/?(.*)")
_ENUMS = {
    "workflowType": ("PRIVATE", "READY2RUN"),
    "storageType": ("STATIC", "DYNAMIC"),
    "cacheBehavior": ("CACHE_ON_FAILURE", "CACHE_ALWAYS"),
    "logLevel": ("OFF", "FATAL", "ERROR", "ALL"),
    "retentionMode": ("RETAIN", "REMOVE"),
}
LOGICAL_OPERATIONS = {
    "StartRun": "submit",
    "GetRun": "status",
    "ListRuns": "status",
    "CancelRun": "cancel",
    "ListRunTasks": "tasks",
    "GetRunTask": "tasks",
    "GetWorkflow": "workflow",
    "ListWorkflows": "workflow",
}
FAULT_ANSWERS = wire.FaultAnswers(
    throttle=("ThrottlingException", ""),
    server_error=("InternalServerException", ""),
    unavailable=("ServiceUnavailableException", ""),
    permanent=("ValidationException", ""),
)
RUN = "/run/{run_id}"


@dataclass(frozen=True)
class FakeWorkflow:
    id: str
    name: str
    engine: str = "WDL"  # WDL, CWL or NEXTFLOW: decides the output summary written
    type: str = "PRIVATE"


DEFAULT_WORKFLOWS = (
    FakeWorkflow("1234567", "wes-demo-wdl"),
    FakeWorkflow("2345678", "wes-demo-cwl", "CWL"),
    FakeWorkflow("3456789", "wes-demo-nextflow", "NEXTFLOW"),
    FakeWorkflow("9500764", "ready2run-demo", "WDL", "READY2RUN"),
)
TASK_NAMES = ("align", "call_variants")
DEFAULT_FAILURE = ("RUN_TASK_FAILED", "Task call_variants failed with exit code 1")


@dataclass
class FakeTask:
    id: str
    name: str
    status: str
    created: float
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float | None = None
    stopped: float | None = None
    failure_reason: str | None = None
    message: str | None = None


@dataclass
class FakeRun:
    id: str
    request: dict[str, Any]  # the StartRun body
    workflow: FakeWorkflow
    run_output_uri: str
    created: float
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "PENDING"
    started: float | None = None
    stopped: float | None = None
    failure_reason: str | None = None
    message: str | None = None
    tasks: list[FakeTask] = field(default_factory=list)
    step: int = 0  # next entry of the fake's script


def aws_error(code: str, message: str, status: int | None = None) -> wire.Response:
    """An error shaped as HealthOmics sends it: header and body both name the code."""
    return wire.Response(
        status or ERROR_STATUS.get(code, 400),
        {"__type": code, "message": message},
        {"x-amzn-ErrorType": code, "x-amzn-RequestId": str(uuid.uuid4())},
    )


def _ok(status: int, body: Any = None) -> wire.Response:
    return wire.Response(status, body, {"x-amzn-RequestId": str(uuid.uuid4())})


def _invalid(member: str, value: Any, constraint: str) -> str:
    shown = "null" if value is None else str(value)[:100]
    return (
        f"1 validation error detected: Value '{shown}' at '{member}' failed to satisfy "
        f"constraint: {constraint}"
    )


def _printable_within(value: Any, longest: int) -> bool:
    return (
        isinstance(value, str)
        and 1 <= len(value) <= longest
        and all(unicodedata.category(char)[0] in "LMZSNP" for char in value)
    )


def start_run_problem(body: Any) -> str | None:
    """Return why HealthOmics would refuse this StartRun body (ValidationException), or None."""
    if not isinstance(body, dict):
        return "Request body must be a JSON object"
    for member in ("roleArn", "outputUri", "requestId"):
        if body.get(member) is None:
            return _invalid(member, None, "Member must not be null")
    role = body["roleArn"]
    if not isinstance(role, str) or not role.startswith("arn:") or not 5 <= len(role) <= 128:
        return _invalid("roleArn", role, "Member must match pattern arn:.+ (1-128 characters)")
    output = body["outputUri"]
    if not _printable_within(output, 750) or not _S3_URI.fullmatch(output):
        return _invalid("outputUri", output, "an s3:// URI of 1-750 printable characters")
    if not _printable_within(body["requestId"], 128):
        return _invalid("requestId", body["requestId"], "1-128 printable characters")
    if "name" in body and not _printable_within(body["name"], 128):
        return _invalid("name", body["name"], "1-128 printable characters")
    workflow_id = body.get("workflowId")
    if not isinstance(workflow_id, str) or not _ID.fullmatch(workflow_id):
        return _invalid("workflowId", workflow_id, "Member must match pattern [0-9]+ (1-18)")
    for member in ("cacheId", "runGroupId"):
        value = body.get(member)
        if value is not None and (not isinstance(value, str) or not _ID.fullmatch(value)):
            return _invalid(member, value, "Member must match pattern [0-9]+ (1-18)")
    for member, allowed in _ENUMS.items():
        if member in body and body[member] not in allowed:
            return _invalid(member, body[member], f"Member must satisfy enum value set {allowed}")
    for member in ("storageCapacity", "priority"):
        value = body.get(member)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100_000
        ):
            return _invalid(member, value, "Member must be an integer from 0 to 100000")
    version = body.get("workflowVersionName")
    if version is not None and not (isinstance(version, str) and _VERSION_NAME.fullmatch(version)):
        return _invalid("workflowVersionName", version, "Member must match [A-Za-z0-9][-._\\w]*")
    owner = body.get("workflowOwnerId")
    if owner is not None and not (isinstance(owner, str) and _ACCOUNT_ID.fullmatch(owner)):
        return _invalid("workflowOwnerId", owner, "Member must match pattern [0-9]{12}")
    if "parameters" in body and not isinstance(body["parameters"], dict):
        return "parameters must be a JSON object whose keys are the workflow's parameters"
    tags = body.get("tags", {})
    if not isinstance(tags, dict) or len(tags) > 50:
        return _invalid("tags", "...", "Member must have at most 50 entries")
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or not isinstance(value, str) or len(value) > 256:
            return _invalid(f"tags.{key[:40]}", value, "key 1-128 and value 0-256 characters")
    return None


class SimulatedHealthOmics(wire.SimulatedService):
    """The fake HealthOmics service; see the module docstring."""

    name = "healthomics"
    logical_operations = LOGICAL_OPERATIONS

    def __init__(
        self,
        *,
        workflows: Sequence[FakeWorkflow] = DEFAULT_WORKFLOWS,
        s3: S3Client | None = None,
        region: str = "us-east-1",
        account: str = "123456789012",
        **simulation: Unpack[wire.Simulation],
    ) -> None:
        super().__init__(**simulation)
        self.workflows = {workflow.id: workflow for workflow in workflows}
        self.s3 = s3
        self.region = region
        self.account = account
        self._runs: dict[str, FakeRun] = {}  # insertion order = creation order
        self._requests: dict[str, dict[str, Any]] = {}  # requestId -> first StartRun reply
        self._rejected_keys: dict[str, str] = {}  # access key id -> error code
        self._denied_roles: set[str] = set()
        self._next_run = 2_000_001
        self._next_task = 7_000_001
        self._epoch = datetime.now(UTC)
        self._routes = wire.Routes(
            [
                ("POST", "/run", "StartRun", self._start_run),
                ("GET", "/run", "ListRuns", self._list_runs),
                ("GET", RUN, "GetRun", self._on_run(self._get_run)),
                ("POST", RUN + "/cancel", "CancelRun", self._on_run(self._cancel_run)),
                ("GET", RUN + "/task", "ListRunTasks", self._on_run(self._list_tasks)),
                ("GET", RUN + "/task/{task_id}", "GetRunTask", self._get_task),
                ("GET", "/workflow", "ListWorkflows", self._list_workflows),
                ("GET", "/workflow/{workflow_id}", "GetWorkflow", self._get_workflow),
            ]
        )

    # --- test helpers ---------------------------------------------------------------------
    def set_status(self, run_id: str, status: str) -> None:
        """Move a run to `status` (any string, so tests can send statuses wesctl doesn't know)."""
        with self.lock:
            self._move(self._runs[run_id], status)

    def finish(
        self,
        run_id: str,
        *,
        succeed: bool = True,
        failure_reason: str = DEFAULT_FAILURE[0],
        message: str = DEFAULT_FAILURE[1],
    ) -> None:
        """Complete a run (outputs and tasks written) or fail it with `failure_reason`."""
        with self.lock:
            run = self._runs[run_id]
            if succeed:
                self._move(run, "COMPLETED")
            else:
                self._move(run, "FAILED", failure_reason=failure_reason, message=message)

    def delete(self, run_id: str) -> None:
        """Drop a run's metadata, as DeleteRun or REMOVE retention does: GetRun then says 404."""
        with self.lock:
            del self._runs[run_id]

    def runs_for(self, run_id: str) -> list[str]:
        """Ids of the runs tagged for WES run `run_id` (wes_run_id=<run_id>)."""
        with self.lock:
            return [
                provider_id
                for provider_id, run in self._runs.items()
                if run.request["tags"].get("wes_run_id") == run_id
            ]

    def run(self, run_id: str) -> dict[str, Any]:
        """The run as GetRun shows it."""
        with self.lock:
            return self._run_body(self._runs[run_id])

    def reject_credentials(
        self, access_key_id: str, code: str = "UnrecognizedClientException"
    ) -> None:
        """Answer every request signed with `access_key_id` with the credential error `code`
        (a key of CREDENTIAL_ERRORS) until `accept_credentials`."""
        if code not in CREDENTIAL_ERRORS:
            raise ValueError(f"unknown credential error {code!r}")
        with self.lock:
            self._rejected_keys[access_key_id] = code

    def accept_credentials(self, access_key_id: str) -> None:
        with self.lock:
            self._rejected_keys.pop(access_key_id, None)

    def deny_role(self, role_arn: str) -> None:
        """Refuse StartRun (AccessDeniedException) for runs assuming `role_arn`."""
        with self.lock:
            self._denied_roles.add(role_arn)

    def clear_faults(self) -> None:
        """Forget every injected fault that has not fired yet, every rejected credential and
        every denied role."""
        super().clear_faults()
        with self.lock:
            self._rejected_keys.clear()
            self._denied_roles.clear()

    # --- SimulatedService ------------------------------------------------------------------------
    def route(self, request: wire.Request) -> tuple[str, Callable[[wire.Request], wire.Response]]:
        found = self._routes.find(request.method, request.path.rstrip("/"))
        if found is None:
            return "unknown", self.not_found
        operation, handler = found
        return operation, self._signed(handler)

    def not_found(self, request: wire.Request) -> wire.Response:
        return aws_error(
            "UnknownOperationException", f"no route for {request.method} {request.path}", 404
        )

    def fault_response(self, rule: wire.FaultRule, operation: str) -> wire.Response:
        if rule.kind == wire.ERROR:
            return aws_error(rule.code, rule.message)
        return aws_error(*FAULT_ANSWERS.answer(rule))

    def _signed(
        self, handler: Callable[[wire.Request], wire.Response]
    ) -> Callable[[wire.Request], wire.Response]:
        """Answer a request signed with a rejected access key with that key's error."""

        def handle(request: wire.Request) -> wire.Response:
            with self.lock:
                key = _ACCESS_KEY.search(request.headers.get("authorization", ""))
                code = self._rejected_keys.get(key.group(1)) if key else None
            if code is not None:
                return aws_error(code, CREDENTIAL_ERRORS[code], 403)
            return handler(request)

        return handle

    # --- runs -------------------------------------------------------------------------------
    def _start_run(self, request: wire.Request, found: dict[str, str]) -> wire.Response:
        try:
            body = request.json()
        except ValueError:
            return aws_error("ValidationException", "Request body is not valid JSON")
        problem = start_run_problem(body)
        if problem is not None:
            return aws_error("ValidationException", problem)
        with self.lock:
            if body["roleArn"] in self._denied_roles:
                return aws_error(
                    "AccessDeniedException",
                    f"User: arn:aws:sts::{self.account}:assumed-role/wesctl/session is not "
                    f"authorized to perform: iam:PassRole on resource: {body['roleArn']}",
                )
            previous = self._requests.get(body["requestId"])
            if previous is not None:  # idempotent: the first reply again, no new run
                return _ok(201, previous)
            workflow = self.workflows.get(body["workflowId"])
            if workflow is None or workflow.type != body.get("workflowType", "PRIVATE"):
                return aws_error(
                    "ResourceNotFoundException", f"Workflow {body['workflowId']} was not found"
                )
            run_id = str(self._next_run)
            self._next_run += 1
            body.setdefault("tags", {})
            run = FakeRun(
                id=run_id,
                request=body,
                workflow=workflow,
                run_output_uri=f"{body['outputUri'].rstrip('/')}/{run_id}",
                created=self.clock.now(),
            )
            self._runs[run_id] = run
            reply = {
                "arn": self._arn(run),
                "id": run_id,
                "status": run.status,
                "tags": body["tags"],
                "uuid": run.uuid,
                "runOutputUri": run.run_output_uri,
            }
            self._requests[body["requestId"]] = reply
            return _ok(201, reply)

    def _on_run(
        self, handler: Callable[[wire.Request, FakeRun], wire.Response]
    ) -> wire.RouteHandler:
        """`handler` of a run that exists (its script applied), under the lock."""

        def respond(request: wire.Request, found: dict[str, str]) -> wire.Response:
            with self.lock:
                run = self._runs.get(found["run_id"])
                if run is None:
                    return aws_error(
                        "ResourceNotFoundException", f"Run {found['run_id']} was not found"
                    )
                self._advance(run)
                return handler(request, run)

        return respond

    def _get_run(self, request: wire.Request, run: FakeRun) -> wire.Response:
        return _ok(200, self._run_body(run))

    def _list_runs(self, request: wire.Request, found: dict[str, str]) -> wire.Response:
        """Runs newest first, filtered exactly by status (one RunStatus value), name and run
        group; the token is a cursor (the last run listed), so runs that change status while a
        listing is paged through shift no other run out of it."""
        status = request.arg("status")
        if status is not None and status not in RUN_STATUSES:
            return aws_error("ValidationException", _invalid("status", status, "enum RunStatus"))
        size = _page_size(request)
        if isinstance(size, wire.Response):
            return size
        name, group = request.arg("name"), request.arg("runGroupId")
        with self.lock:
            runs = list(self._runs.values())  # creation order: ascending ids
            end = len(runs)
            token = request.arg("startingToken")
            if token is not None:
                last = _token_value(token, "runs")
                if last is None or not last.isdigit():
                    return aws_error("ValidationException", "The startingToken is not valid")
                end = bisect.bisect_left(runs, int(last), key=lambda run: int(run.id))
            selected: list[FakeRun] = []
            while end > 0 and len(selected) <= size:  # one more tells whether a page follows
                end -= 1
                run = runs[end]
                self._advance(run)
                if (
                    (status is None or run.status == status)
                    and (name is None or run.request.get("name") == name)
                    and (group is None or run.request.get("runGroupId") == group)
                ):
                    selected.append(run)
            body: dict[str, Any] = {"items": [self._list_item(run) for run in selected[:size]]}
            if len(selected) > size:
                body["nextToken"] = _token(f"runs:{selected[size - 1].id}")
            return _ok(200, body)

    def _cancel_run(self, request: wire.Request, run: FakeRun) -> wire.Response:
        if run.status in TERMINAL:
            return aws_error(
                "ConflictException", f"Run {run.id} is {run.status} and cannot be cancelled"
            )
        self._move(run, "CANCELLED")
        return _ok(202)

    def _list_tasks(self, request: wire.Request, run: FakeRun) -> wire.Response:
        status = request.arg("status")
        if status is not None and status not in TASK_STATUSES:
            return aws_error("ValidationException", _invalid("status", status, "enum TaskStatus"))
        items = [
            self._task_item(task) for task in run.tasks if status is None or task.status == status
        ]
        return _page(request, f"tasks-{run.id}", items)

    def _get_task(self, request: wire.Request, found: dict[str, str]) -> wire.Response:
        run_id, task_id = found["run_id"], found["task_id"]
        with self.lock:
            run = self._runs.get(run_id)
            task = next((t for t in run.tasks if t.id == task_id), None) if run else None
            if run is None or task is None:
                return aws_error(
                    "ResourceNotFoundException", f"Task {task_id} of run {run_id} was not found"
                )
            body = self._task_item(task)
            body.update(
                {
                    "logStream": self._stream_arn(f"run/{run_id}/task/{task_id}"),
                    "statusMessage": task.message,
                    "failureReason": task.failure_reason,
                    "imageDetails": {"image": f"public.ecr.aws/wesctl/{task.name}:1"},
                }
            )
        return _ok(200, _compact(body))

    def _list_workflows(self, request: wire.Request, found: dict[str, str]) -> wire.Response:
        kind, name = request.arg("type"), request.arg("name")
        items = [
            self._workflow_body(workflow)
            for workflow in self.workflows.values()
            if (kind is None or workflow.type == kind) and (name is None or workflow.name == name)
        ]
        return _page(request, "workflows", items)

    def _get_workflow(self, request: wire.Request, found: dict[str, str]) -> wire.Response:
        workflow_id = found["workflow_id"]
        workflow = self.workflows.get(workflow_id)
        if workflow is None or workflow.type != (request.arg("type") or "PRIVATE"):
            return aws_error("ResourceNotFoundException", f"Workflow {workflow_id} was not found")
        return _ok(200, self._workflow_body(workflow))

    # --- state machine ------------------------------------------------------------------------
    def _advance(self, run: FakeRun) -> None:
        """Apply the script's steps that are due by the fake clock."""
        for status, offset in self.due(run.step, run.created):
            run.step += 1
            if run.status not in TERMINAL and status != run.status:
                self._move(run, status, at=run.created + offset)

    def _move(
        self,
        run: FakeRun,
        status: str,
        *,
        at: float | None = None,
        failure_reason: str | None = None,
        message: str | None = None,
    ) -> None:
        now = self.clock.now() if at is None else at
        if status == "FAILED" and failure_reason is None:
            failure_reason, message = DEFAULT_FAILURE
        run.status = status
        if (status in ACTIVE or status in ("COMPLETED", "FAILED")) and run.started is None:
            run.started = now
        if (status in ACTIVE or status in ("COMPLETED", "FAILED")) and not run.tasks:
            for name in TASK_NAMES:
                task = FakeTask(str(self._next_task), name, "RUNNING", now, started=now)
                self._next_task += 1
                run.tasks.append(task)
        if status not in TERMINAL:
            return
        run.stopped = now if run.stopped is None else run.stopped
        run.failure_reason, run.message = failure_reason, message
        for index, task in enumerate(run.tasks):
            if task.status in TERMINAL:
                continue
            task.stopped = now
            if status == "FAILED" and index == len(run.tasks) - 1:
                task.status, task.failure_reason, task.message = "FAILED", failure_reason, message
            elif status in ("COMPLETED", "FAILED"):
                task.status = "COMPLETED"
            else:
                task.status = "CANCELLED"
        if status == "COMPLETED":
            self._write_outputs(run)

    def _write_outputs(self, run: FakeRun) -> None:
        """Write an output file and the summary HealthOmics writes for WDL and CWL runs."""
        if self.s3 is None:
            return
        match = _S3_URI.fullmatch(run.run_output_uri)
        assert match is not None  # runOutputUri is built from a validated s3:// outputUri
        bucket, prefix = match.group(1), match.group(2).strip("/")
        base = f"{prefix}/" if prefix else ""
        key = f"{base}out/output_file/result.txt"
        data = f"outputs of run {run.id}\n".encode()
        self.s3.put_object(Bucket=bucket, Key=key, Body=data)
        location = f"s3://{bucket}/{key}"
        summary: dict[str, Any]
        if run.workflow.engine == "WDL":
            summary = {"main.output_file": location, "main.line_count": 1}
        elif run.workflow.engine == "CWL":
            file = {"class": "File", "location": location, "basename": "result.txt"}
            summary = {"output_file": {**file, "size": len(data)}, "line_count": 1}
        else:  # Nextflow: no summary file, only out/
            return
        body = json.dumps(summary).encode()
        self.s3.put_object(Bucket=bucket, Key=f"{base}logs/outputs.json", Body=body)

    # --- bodies -----------------------------------------------------------------------------
    def _time(self, seconds: float | None) -> str | None:
        if seconds is None:
            return None
        moment = self._epoch + timedelta(seconds=seconds)
        return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"

    def _arn(self, run: FakeRun) -> str:
        return f"arn:aws:omics:{self.region}:{self.account}:run/{run.id}"

    def _stream_arn(self, stream: str) -> str:
        return (
            f"arn:aws:logs:{self.region}:{self.account}:log-group:{LOG_GROUP}:log-stream:{stream}"
        )

    def _list_item(self, run: FakeRun) -> dict[str, Any]:
        request = run.request
        return _compact(
            {
                "arn": self._arn(run),
                "id": run.id,
                "status": run.status,
                "workflowId": run.workflow.id,
                "workflowName": run.workflow.name,
                "name": request.get("name"),
                "priority": request.get("priority"),
                "storageType": request.get("storageType", "STATIC"),
                "storageCapacity": request.get("storageCapacity"),
                "workflowVersionName": request.get("workflowVersionName"),
                "creationTime": self._time(run.created),
                "startTime": self._time(run.started),
                "stopTime": self._time(run.stopped),
            }
        )

    def _run_body(self, run: FakeRun) -> dict[str, Any]:
        request = run.request
        body = self._list_item(run)
        body.update(
            {
                "uuid": run.uuid,
                "statusMessage": run.message,
                "failureReason": run.failure_reason,
                "workflowType": run.workflow.type,
                "workflowOwnerId": request.get("workflowOwnerId"),
                "roleArn": request["roleArn"],
                "outputUri": request["outputUri"],
                "runOutputUri": run.run_output_uri,
                "parameters": request.get("parameters"),
                "tags": request["tags"],
                "runGroupId": request.get("runGroupId"),
                "cacheId": request.get("cacheId"),
                "cacheBehavior": request.get("cacheBehavior"),
                "logLevel": request.get("logLevel"),
                "retentionMode": request.get("retentionMode", "RETAIN"),
                "logLocation": {
                    "runLogStream": self._stream_arn(f"run/{run.id}"),
                    "engineLogStream": self._stream_arn(f"run/{run.id}/engine"),
                },
            }
        )
        return _compact(body)

    def _task_item(self, task: FakeTask) -> dict[str, Any]:
        return _compact(
            {
                "taskId": task.id,
                "uuid": task.uuid,
                "name": task.name,
                "status": task.status,
                "cpus": 2,
                "memory": 4,
                "instanceType": "omics.c.large",
                "cacheHit": False,
                "creationTime": self._time(task.created),
                "startTime": self._time(task.started),
                "stopTime": self._time(task.stopped),
            }
        )

    def _workflow_body(self, workflow: FakeWorkflow) -> dict[str, Any]:
        return {
            "arn": f"arn:aws:omics:{self.region}:{self.account}:workflow/{workflow.id}",
            "id": workflow.id,
            "name": workflow.name,
            "type": workflow.type,
            "engine": workflow.engine,
            "status": "ACTIVE",
            "storageType": "DYNAMIC",
            "creationTime": self._time(0.0),
        }


def _compact(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if value is not None}


def _page_size(request: wire.Request) -> int | wire.Response:
    """maxResults (1-100, default 100), or the service's refusal."""
    raw = request.arg("maxResults")
    if raw is not None and not (raw.isdigit() and 1 <= int(raw) <= 100):
        return aws_error(
            "ValidationException", _invalid("maxResults", raw, "Member must be from 1 to 100")
        )
    return int(raw) if raw is not None else 100


def _token(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode()


def _token_value(token: str, listing: str) -> str | None:
    """What a token of `listing` carries, or None for a token that is not one."""
    try:
        kind, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
    except (ValueError, binascii.Error):
        return None
    return value if kind == listing else None


def _page(
    request: wire.Request,
    listing: str,
    items: Sequence[Any],
    render: Callable[[Any], dict[str, Any]] = lambda item: dict(item),
) -> wire.Response:
    """One page of `items` with HealthOmics paging: maxResults 1-100, an opaque nextToken. Only
    the page's items are rendered (paging through 10,000 runs must not render each 100 times)."""
    size = _page_size(request)
    if isinstance(size, wire.Response):
        return size
    start = 0
    token = request.arg("startingToken")
    if token is not None:
        offset = _token_value(token, listing)
        if offset is None or not offset.isdigit():
            return aws_error("ValidationException", "The startingToken is not valid")
        start = int(offset)
    body: dict[str, Any] = {"items": [render(item) for item in items[start : start + size]]}
    if start + size < len(items):
        body["nextToken"] = _token(f"{listing}:{start + size}")
    return _ok(200, body)


def simulated_s3(url: str, *, bucket: str) -> S3Client:
    """An S3 client on a simulated S3 (moto's server at `url`) with `bucket` created, for the
    fake to write run outputs into."""
    import boto3

    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="simulated",
        aws_secret_access_key="simulated-not-a-secret",
    )
    client.create_bucket(Bucket=bucket)
    return client
