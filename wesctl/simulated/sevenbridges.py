"""A fake of the Seven Bridges (Velsera) public API v2, faithful enough for sevenbridges-python.

It serves what wesctl's adapter, the demo and the benchmarks use, under `<base_url>/v2`, with the
wire conventions sevenbridges-python 2.11.2 relies on: absolute hrefs on the fake's own base URL,
UUID task ids, `X-Total-Matching-Query` on lists, `...Z` timestamps, JSON error bodies
`{status, code, message, more_info}`, no `Retry-After`, and never 503 with code 0 (the client would
sleep five minutes). Platform error codes other than 1000 (rate limit) are not documented per
endpoint; the fake uses the HTTP status as the code.

Credentials and access: a request whose `X-SBG-Auth-Token` is not an accepted token gets the
platform's 401 (`{"status": 401, "code": 0, "message": "Unauthorized", ...}`); `reject_token` /
`accept_token` change the accepted set while the fake runs (an operator fixing the credential).
A project in `projects` that is `forbid_project`-ed answers 403 to its user, as the platform does
for a member without the needed permission: reading it, listing, creating or running its tasks,
and reading or aborting them. A project not in `projects` answers 404.

Tasks move DRAFT -> (run) QUEUED -> RUNNING -> COMPLETED/FAILED either by `set_status`/`finish`
(tests) or by a `script` of (status, seconds after run) steps driven by the fake's clock (demo and
benchmarks). A run whose inputs set `fail_input` to a true value ends FAILED instead of COMPLETED.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Unpack
from urllib.parse import urlencode

from wesctl.providers.mapping import run_name
from wesctl.simulated import http as wire

API_PREFIX = "/v2"
DEFAULT_TOKEN = "fake-sevenbridges-token"
DEFAULT_USER = "wes-user"
DEFAULT_PROJECT = "wes-user/wes"
DEFAULT_APP = "wes-user/wes/hello"
MORE_INFO = "https://docs.sevenbridges.com/reference/api-status-codes"
RATE_LIMIT_CODE = 1000
RATE_LIMIT = 1000  # requests per window, as documented
RATE_WINDOW = 300.0  # seconds
MAX_PAGE = 100
MAX_BULK = 100
TERMINAL = frozenset({"COMPLETED", "FAILED", "ABORTED"})
TASK_ORDER_KEYS = ("created_time", "start_time", "end_time", "name", "created_by")
TASK = "/tasks/{task_id}"
APP = "/apps/{app:[^/]+/[^/]+/[^/]+}"
FILE = "/files/{file_id}"
TaskHandler = Callable[[wire.Request, "FakeTask"], wire.Response]
FileHandler = Callable[[wire.Request, "FakeFile"], wire.Response]
FAULT_ANSWERS = wire.FaultAnswers(
    throttle=(429, "Rate limit exceeded! Please wait for the reset."),
    server_error=(500, "Internal server error."),
    unavailable=(503, "Service unavailable."),  # never code 0: the client would sleep 300 s
    permanent=(400, ""),
)


@dataclass(frozen=True)
class FakeApp:
    """An app in the fake: `inputs` maps input ids to CWL types; a trailing '?' means optional."""

    id: str  # owner/project/short_name
    revision: int = 1
    inputs: Mapping[str, str] = field(
        default_factory=lambda: {"reads": "File?", "message": "string?", "count": "int?"}
    )


@dataclass
class FakeFile:
    id: str
    name: str
    project: str
    content: bytes
    type: str = "file"  # or "folder"
    origin_task: str | None = None
    created: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class FakeTask:
    id: str
    name: str
    description: str | None
    project: str
    app: str  # owner/project/app/revision
    inputs: dict[str, Any]
    created: datetime
    created_by: str
    status: str = "DRAFT"
    errors: list[dict[str, str]] = field(default_factory=list)
    started: datetime | None = None
    ended: datetime | None = None
    message: str | None = None
    outputs: dict[str, Any] | None = None
    jobs: list[dict[str, Any]] = field(default_factory=list)
    run_at: float | None = None  # fake-clock time of the run action
    step: int = 0  # script steps applied
    fail: bool = False
    runs: int = 0  # run actions that started it (more than one would be a bug in the caller)
    deleted: bool = False


def _timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str) -> datetime:
    """Parse the platform's filter formats: yyyy-MM-dd, yyyy-MM-ddTHH:mm:ss, optional offset."""
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _error(status: int, message: str, code: int | None = None) -> wire.Response:
    body = {
        "status": status,
        "code": status if code is None else code,
        "message": message,
        "more_info": MORE_INFO,
    }
    return wire.Response(status, body)


def _forbidden(project: str) -> wire.Response:
    return _error(403, f"Insufficient privileges to access project {project}.")


def _is_file_value(value: Any) -> bool:
    return isinstance(value, dict) and str(value.get("class", "")).lower() in ("file", "directory")


class SimulatedSevenBridges(wire.SimulatedPlatform):
    """In-process Seven Bridges API v2. Start it, then point `Api(url=fake.api_url)` at it."""

    name = "sevenbridges"

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        username: str = DEFAULT_USER,
        projects: Iterable[str] = (DEFAULT_PROJECT,),
        apps: Iterable[FakeApp] = (FakeApp(DEFAULT_APP),),
        **simulation: Unpack[wire.Simulation],
    ) -> None:
        super().__init__(token=token, projects=projects, **simulation)
        self.username = username
        self.apps = {app.id: app for app in apps}
        self.tasks: dict[str, FakeTask] = {}
        self.files: dict[str, FakeFile] = {}
        self._last_created: datetime | None = None
        self._window_start = time.time()
        self._window_used = 0

        task, draft, file = self._on_task, self._on_draft, self._on_file
        self._routes = wire.Routes(
            [
                ("GET", "/user", "user", self._get_user),
                ("GET", "/projects/{project:[^/]+/[^/]+}", "project", self._get_project),
                ("GET", APP, "app", self._get_app),
                ("GET", APP + r"/{revision:\d+}", "app", self._get_app),
                ("POST", "/tasks", "submit", self._create_task),
                ("GET", "/tasks", "list", self._list_tasks),
                ("GET", TASK, "status", task(self._get_task)),
                ("PATCH", TASK, "update", draft(self._update_task, "modified")),
                ("DELETE", TASK, "delete", draft(self._delete_task, "deleted")),
                ("POST", TASK + "/actions/run", "submit", draft(self._run_task, "run")),
                ("POST", TASK + "/actions/abort", "cancel", task(self._abort_task)),
                ("GET", TASK + "/execution_details", "execution_details", task(self._details)),
                ("POST", "/bulk/tasks/get", "status", self._bulk_get),
                ("GET", FILE, "file", file(self._get_file)),
                ("GET", FILE + "/download_info", "download_info", file(self._download_info)),
                ("GET", "/rate_limit", "rate_limit", self._rate_limit),
            ]
        )

    @property
    def api_url(self) -> str:
        """The URL to configure as SEVENBRIDGES_API_ENDPOINT."""
        return self.base_url + API_PREFIX

    # --- test and demo helpers ----------------------------------------------------------
    def add_file(self, name: str, content: bytes = b"", *, project: str = DEFAULT_PROJECT) -> str:
        """Create a platform file (e.g. a run input) and return its id."""
        with self.lock:
            file_id = uuid.uuid4().hex[:24]
            self.files[file_id] = FakeFile(file_id, name, project, content)
            return file_id

    def task(self, task_id: str) -> FakeTask:
        """The fake's record of a task (its script applied), for assertions."""
        with self.lock:
            return self._advance(self.tasks[task_id])

    def runs_for(self, run_id: str) -> list[str]:
        """Ids of the live (not deleted) tasks named or described for WES run `run_id`."""
        marker = f"wesctl-run-id={run_id}"
        with self.lock:
            return [
                task.id
                for task in self.tasks.values()
                if not task.deleted
                and (task.name == run_name(run_id) or marker in (task.description or "").split())
            ]

    def set_status(self, task_id: str, raw_status: str) -> None:
        """Force a task's raw status; COMPLETED/FAILED also produce outputs and job logs."""
        with self.lock:
            task = self.tasks[task_id]
            if raw_status in ("COMPLETED", "FAILED"):
                self._finish(task, succeed=raw_status == "COMPLETED")
                return
            task.status = raw_status
            task.message = None
            now = datetime.now(UTC)
            if raw_status in ("RUNNING", "ABORTING") and task.started is None:
                task.started = now
            if raw_status == "ABORTED":
                task.ended = now
                task.message = "Task was aborted by user."

    def finish(self, task_id: str, *, succeed: bool) -> None:
        """End a task as COMPLETED (with outputs) or FAILED (with a message), with job logs."""
        with self.lock:
            self._finish(self.tasks[task_id], succeed=succeed)

    def reset(self) -> None:
        """Forget every task and file too."""
        with self.lock:
            super().reset()
            self.tasks.clear()
            self.files.clear()

    # --- SimulatedService --------------------------------------------------------------------
    def route(self, request: wire.Request) -> tuple[str, Any]:
        if request.method == "GET" and request.path.startswith("/download/"):
            return "download", self._download
        if request.path.startswith(API_PREFIX + "/"):
            found = self._routes.find(request.method, request.path[len(API_PREFIX) :].rstrip("/"))
            if found is not None:
                operation, handler = found
                return operation, self._endpoint(handler)
        return "unknown", self._no_route

    def fault_response(self, rule: wire.FaultRule, operation: str) -> wire.Response:
        status, message = FAULT_ANSWERS.answer(rule)
        if rule.kind == wire.THROTTLE:
            response = _error(status, message, RATE_LIMIT_CODE)
            response.headers.update(self._rate_headers(remaining=0))
            return response
        return self._with_headers(_error(status, message))

    # --- plumbing -----------------------------------------------------------------------
    def _endpoint(
        self, handler: Callable[[wire.Request], wire.Response]
    ) -> Callable[[wire.Request], wire.Response]:
        def respond(request: wire.Request) -> wire.Response:
            with self.lock:
                if not self.accepts(request.headers.get("x-sbg-auth-token")):
                    response = _error(401, "Unauthorized", code=0)
                else:
                    response = handler(request)
            return self._with_headers(response)

        return respond

    def _rate_headers(self, remaining: int | None = None) -> dict[str, str]:
        with self.lock:
            now = time.time()
            if now - self._window_start >= RATE_WINDOW:
                self._window_start, self._window_used = now, 0
            self._window_used += 1
            left = max(0, RATE_LIMIT - self._window_used) if remaining is None else remaining
            return {
                "X-RateLimit-Limit": str(RATE_LIMIT),
                "X-RateLimit-Remaining": str(left),
                "X-RateLimit-Reset": str(int(self._window_start + RATE_WINDOW)),
                "X-Request-Id": uuid.uuid4().hex,
            }

    def _with_headers(self, response: wire.Response) -> wire.Response:
        response.headers = {**self._rate_headers(), **response.headers}
        return response

    def _no_route(self, request: wire.Request) -> wire.Response:
        return _error(404, f"No resource at {request.method} {request.path}.")

    def _download(self, request: wire.Request) -> wire.Response:
        with self.lock:
            file = self.files.get(request.path.rsplit("/", 1)[-1])
        if file is None:
            return wire.Response(404, b"not found", {"Content-Type": "text/plain"})
        return wire.Response(200, file.content, {"Content-Type": "application/octet-stream"})

    def _advance(self, task: FakeTask) -> FakeTask:
        """Apply the clock-driven script to a task that was run."""
        if self.script is None or task.run_at is None or task.status in TERMINAL | {"ABORTING"}:
            return task
        due = self.due(task.step, task.run_at)
        if not due:
            return task
        task.step += len(due)
        status = due[-1][0]
        if status in ("COMPLETED", "FAILED"):
            self._finish(task, succeed=status == "COMPLETED" and not task.fail)
        else:
            self.set_status(task.id, status)
        return task

    def _live_task(self, task_id: str) -> FakeTask | None:
        task = self.tasks.get(task_id)
        if task is None or task.deleted:
            return None
        return self._advance(task)

    # --- JSON shapes --------------------------------------------------------------------
    def _task_json(self, task: FakeTask, base: str) -> dict[str, Any]:
        def millis(start: datetime | None, end: datetime | None) -> int | None:
            if start is None:
                return None
            return int(((end or datetime.now(UTC)) - start).total_seconds() * 1000)

        done = task.status == "COMPLETED"
        return {
            "href": f"{base}{API_PREFIX}/tasks/{task.id}",
            "id": task.id,
            "name": task.name,
            "description": task.description,
            "status": task.status,
            "project": task.project,
            "app": task.app,
            "type": "v2",
            "created_by": task.created_by,
            "executed_by": task.created_by if task.runs else None,
            "created_time": _timestamp(task.created),
            "start_time": _timestamp(task.started),
            "end_time": _timestamp(task.ended),
            "origin_id": None,
            "batch": False,
            "batch_input": None,
            "batch_by": None,
            "batch_group": None,
            "parent": None,
            "execution_status": {
                "message": task.message,
                "message_code": None,
                "steps_completed": 1 if done else 0,
                "steps_total": 1,
                "queued": 0,
                "running": 0,
                "completed": 0,
                "failed": 0,
                "aborted": 0,
                "system_limit": False,
                "account_limit": False,
                "instance_init": task.status == "RUNNING",
                "queued_duration": None,
                "running_duration": millis(task.started, task.ended),
                "execution_duration": millis(task.started, task.ended),
                "duration": millis(task.started, task.ended),
            },
            "errors": task.errors,
            "warnings": [],
            "price": {
                "currency": "USD",
                "amount": "0.10" if task.ended else "0.00",
                "breakdown": {"storage": "0.00", "computation": "0.00", "data_transfer": "0.00"},
            },
            "inputs": task.inputs,
            "outputs": task.outputs,
            "use_interruptible_instances": False,
            "execution_settings": {"use_memoization": False, "use_elastic_disk": False},
            "output_location": {},
        }

    def _file_json(self, file: FakeFile, base: str) -> dict[str, Any]:
        return {
            "href": f"{base}{API_PREFIX}/files/{file.id}",
            "id": file.id,
            "name": file.name,
            "size": len(file.content),
            "type": file.type,
            "project": file.project,
            "created_on": _timestamp(file.created),
            "modified_on": _timestamp(file.created),
            "origin": {"task": file.origin_task} if file.origin_task else {},
            "storage": {"type": "PLATFORM", "hosted_on": "aws:us-east-1"},
            "metadata": {},
            "tags": [],
        }

    def _output_file(self, task: FakeTask, name: str, content: bytes) -> dict[str, Any]:
        file_id = uuid.uuid4().hex[:24]
        self.files[file_id] = FakeFile(file_id, name, task.project, content, origin_task=task.id)
        return {"class": "File", "path": file_id, "name": name, "size": len(content)}

    def _finish(self, task: FakeTask, *, succeed: bool) -> None:
        now = datetime.now(UTC)
        task.started = task.started or now
        task.ended = now
        if succeed:
            task.status = "COMPLETED"
            task.message = None
            report = self._output_file(task, f"{task.name}.report.txt", b"report\n")
            task.outputs = {
                "output_file": self._output_file(task, f"{task.name}.out.txt", b"hello\n"),
                "reports": [report],
                "line_count": 1,
            }
        else:
            task.status = "FAILED"
            task.message = "Job hello failed: the command exited with code 1."
            task.outputs = {"output_file": None, "reports": None, "line_count": None}
        job_status = "DONE" if succeed else "FAILED"
        logs = {  # file ids; rendered as download_info URLs on the caller's base URL
            key: self._output_file(task, key, text)["path"]
            for key, text in (("job.err.log", b"warning: none\n"), ("cmd.log", b"echo hello\n"))
        }
        task.jobs = [
            {
                "name": "hello",
                "start_time": _timestamp(task.started),
                "end_time": _timestamp(now),
                "status": job_status,
                "command_line": "echo hello > out.txt",
                "retried": False,
                "instance": {
                    "id": f"i-{task.id[:12]}",
                    "type": "c5.2xlarge",
                    "provider": "AWS",
                    "disk": {"size": 1024, "unit": "GB", "type": "gp2"},
                },
                "docker": {"checksum": "sha256:" + "0" * 64},
                "logs": logs,
            }
        ]

    # --- endpoints ----------------------------------------------------------------------
    def _get_user(self, request: wire.Request, groups: dict[str, str]) -> wire.Response:
        return wire.Response(
            200,
            {
                "href": f"{request.base_url}{API_PREFIX}/users/{self.username}",
                "username": self.username,
                "email": f"{self.username}@example.org",
                "first_name": "WES",
                "last_name": "User",
                "affiliation": "wesctl",
                "role": "USER",
            },
        )

    def _get_project(self, request: wire.Request, groups: dict[str, str]) -> wire.Response:
        project = groups["project"]
        refusal = self._project_refusal(project)
        if refusal is not None:
            return refusal
        return wire.Response(
            200,
            {
                "href": f"{request.base_url}{API_PREFIX}/projects/{project}",
                "id": project,
                "name": project.split("/", 1)[1],
                "billing_group": "00000000-0000-4000-8000-000000000001",
                "description": "",
                "type": "v2",
                "tags": [],
                "settings": {"locked": False, "use_interruptible_instances": False},
                "created_by": self.username,
                "category": "PRIVATE",
            },
        )

    def _find_app(self, app_id: str) -> tuple[FakeApp, int] | None:
        """Resolve owner/project/app[/revision] to the app and a revision it has."""
        parts = app_id.split("/")
        revision: int | None = None
        if len(parts) == 4 and parts[3].isdigit():
            revision = int(parts[3])
            parts = parts[:3]
        app = self.apps.get("/".join(parts)) if len(parts) == 3 else None
        if app is None or (revision is not None and not 0 <= revision <= app.revision):
            return None
        return app, app.revision if revision is None else revision

    def _get_app(self, request: wire.Request, groups: dict[str, str]) -> wire.Response:
        app_id = groups["app"] + (f"/{groups['revision']}" if "revision" in groups else "")
        found = self._find_app(app_id)
        if found is None:
            return _error(404, f"App {app_id} does not exist or you do not have access to it.")
        app, revision = found
        inputs = [{"id": name, "type": kind} for name, kind in app.inputs.items()]
        return wire.Response(
            200,
            {
                "href": f"{request.base_url}{API_PREFIX}/apps/{app.id}/{revision}",
                "id": f"{app.id}/{revision}",
                "project": app.id.rsplit("/", 1)[0],
                "name": app.id.rsplit("/", 1)[1],
                "revision": revision,
                "raw": {
                    "cwlVersion": "v1.0",
                    "class": "CommandLineTool",
                    "sbg:id": app.id,
                    "inputs": inputs,
                    "outputs": [],
                    "baseCommand": ["echo"],
                },
            },
        )

    def _check_inputs(self, value: Any, name: str) -> str | None:
        """Return a problem with a File/Directory reference inside `value`, if any."""
        if isinstance(value, list):
            for item in value:
                problem = self._check_inputs(item, name)
                if problem:
                    return problem
        elif _is_file_value(value):
            path = value.get("path")
            if not isinstance(path, str) or path not in self.files:
                return f"Input '{name}': file {path!r} does not exist or is not accessible."
        return None

    def _create_task(self, request: wire.Request, groups: dict[str, str]) -> wire.Response:
        body = request.json()
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.")
        name, project, app_id = body.get("name"), body.get("project"), body.get("app")
        inputs = body.get("inputs") if body.get("inputs") is not None else {}
        if not isinstance(name, str) or not name:
            return _error(400, "Task name is required.")
        refusal = self._project_refusal(project)
        if refusal is not None:
            return refusal
        assert isinstance(project, str)  # _project_refusal refused anything else
        found = self._find_app(app_id) if isinstance(app_id, str) else None
        if found is None:
            return _error(404, f"App {app_id} does not exist or you do not have access to it.")
        if not isinstance(inputs, dict):
            return _error(400, "Task inputs must be a JSON object.")
        for key, value in inputs.items():
            problem = self._check_inputs(value, key)
            if problem:
                return _error(400, problem)
        app, revision = found
        missing = [
            key
            for key, kind in app.inputs.items()
            if not kind.endswith("?") and inputs.get(key) is None
        ]
        now = datetime.now(UTC)
        if self._last_created is not None and now <= self._last_created:
            now = self._last_created + timedelta(microseconds=1)  # creation order is total
        self._last_created = now
        task = FakeTask(
            id=str(uuid.uuid4()),
            name=name,
            description=body.get("description"),
            project=project,
            app=f"{app.id}/{revision}",
            inputs=inputs,
            created=now,
            created_by=self.username,
            errors=[
                {"missing_input": key, "message": f"Required input '{key}' is not set."}
                for key in missing
            ],
            fail=bool(inputs.get(self.fail_input)),
        )
        self.tasks[task.id] = task
        if request.arg("action") == "run":
            self._start(task)
        return wire.Response(201, self._task_json(task, request.base_url))

    def _start(self, task: FakeTask) -> None:
        if task.errors:
            return  # stays a DRAFT; the answer carries the errors
        task.status = "QUEUED"
        task.message = "In queue"
        task.run_at = self.clock.now()
        task.runs += 1
        self._advance(task)

    def _list_tasks(self, request: wire.Request, groups: dict[str, str]) -> wire.Response:
        try:
            offset = int(request.arg("offset") or 0)
            limit = int(request.arg("limit") or 50)
            created_from = request.arg("created_from")
            created_to = request.arg("created_to")
            since = _parse_time(created_from) if created_from else None
            until = _parse_time(created_to) if created_to else None
        except ValueError as exc:
            return _error(400, f"Invalid query parameter: {exc}")
        if offset < 0 or not 1 <= limit <= MAX_PAGE:
            return _error(400, f"limit must be between 1 and {MAX_PAGE}, offset at least 0.")
        order_by = request.arg("order_by") or "created_time"
        order = request.arg("order") or "asc"
        if order_by not in TASK_ORDER_KEYS or order not in ("asc", "desc"):
            return _error(400, f"Cannot order by {order_by!r} {order!r}.")
        project, status = request.arg("project"), request.arg("status")
        refusal = self._project_refusal(project) if project is not None else None
        if refusal is not None:
            return refusal
        tasks = [
            task
            for task in (self._live_task(task_id) for task_id in list(self.tasks))
            if task is not None
            and (project is None or task.project == project)
            and (status is None or task.status == status)
            and (since is None or task.created >= since)
            and (until is None or task.created <= until)
        ]
        epoch = datetime.min.replace(tzinfo=UTC)
        sort_keys: dict[str, Callable[[FakeTask], Any]] = {
            "created_time": lambda t: t.created,
            "start_time": lambda t: t.started or epoch,
            "end_time": lambda t: t.ended or epoch,
            "name": lambda t: t.name,
            "created_by": lambda t: t.created_by,
        }
        tasks.sort(key=sort_keys[order_by], reverse=order == "desc")
        page = tasks[offset : offset + limit]

        def page_url(start: int) -> str:
            query = {k: v[0] for k, v in request.query.items()}
            query.update(offset=str(start), limit=str(limit))
            return f"{request.base_url}{request.path}?{urlencode(query)}"

        links = []
        if offset + limit < len(tasks):
            links.append({"href": page_url(offset + limit), "rel": "next", "method": "GET"})
        if offset > 0:
            links.append({"href": page_url(max(0, offset - limit)), "rel": "prev", "method": "GET"})
        body = {
            "href": page_url(offset),
            "items": [self._task_json(task, request.base_url) for task in page],
            "links": links,
        }
        return wire.Response(200, body, {"X-Total-Matching-Query": str(len(tasks))})

    def _on_draft(self, handler: TaskHandler, to_be: str) -> wire.RouteHandler:
        """`handler` of a task that only a draft can be `to_be` (modified, deleted, run)."""
        return self._on_task(handler, draft_to_be=to_be)

    def _on_task(self, handler: TaskHandler, *, draft_to_be: str = "") -> wire.RouteHandler:
        """`handler` of a live task the user may access."""

        def respond(request: wire.Request, found: dict[str, str]) -> wire.Response:
            with self.lock:  # the check and the change are one step, as on the platform
                task = self._live_task(found["task_id"])
                if task is None:
                    return _error(
                        404, f"Task {found['task_id']} does not exist or you do not have access."
                    )
                if task.project in self.forbidden_projects:
                    return _forbidden(task.project)
                if draft_to_be and task.status != "DRAFT":
                    return _error(
                        400, f"Only draft tasks can be {draft_to_be}; this task is {task.status}."
                    )
                return handler(request, task)

        return respond

    def _on_file(self, handler: FileHandler) -> wire.RouteHandler:
        def respond(request: wire.Request, found: dict[str, str]) -> wire.Response:
            file = self.files.get(found["file_id"])
            if file is None:
                return _error(404, f"File {found['file_id']} does not exist.")
            return handler(request, file)

        return respond

    def _project_refusal(self, project: Any) -> wire.Response | None:
        """The platform's answer to a project its user cannot use, or None if it can."""
        if not isinstance(project, str) or project not in self.projects:
            return _error(404, f"Project {project} does not exist or you do not have access.")
        if project in self.forbidden_projects:
            return _forbidden(project)
        return None

    def _get_task(self, request: wire.Request, task: FakeTask) -> wire.Response:
        return wire.Response(200, self._task_json(task, request.base_url))

    def _update_task(self, request: wire.Request, task: FakeTask) -> wire.Response:
        body = request.json()
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.")
        if isinstance(body.get("name"), str):
            task.name = body["name"]
        if "description" in body:
            task.description = body["description"]
        if isinstance(body.get("inputs"), dict):
            task.inputs.update(body["inputs"])
        return wire.Response(200, self._task_json(task, request.base_url))

    def _delete_task(self, request: wire.Request, task: FakeTask) -> wire.Response:
        task.deleted = True
        return wire.Response(204)

    def _run_task(self, request: wire.Request, task: FakeTask) -> wire.Response:
        self._start(task)
        return wire.Response(200, self._task_json(task, request.base_url))

    def _abort_task(self, request: wire.Request, task: FakeTask) -> wire.Response:
        if task.status not in ("QUEUED", "RUNNING", "ABORTING"):
            return _error(400, f"Task in status {task.status} cannot be aborted.")
        self.set_status(task.id, "ABORTED")
        return wire.Response(200, self._task_json(task, request.base_url))

    def _details(self, request: wire.Request, task: FakeTask) -> wire.Response:
        files_url = f"{request.base_url}{API_PREFIX}/files"
        jobs = [
            {
                **job,
                "logs": {
                    key: f"{files_url}/{file_id}/download_info"
                    for key, file_id in job["logs"].items()
                },
            }
            for job in task.jobs
        ]
        return wire.Response(
            200,
            {
                "href": f"{request.base_url}{API_PREFIX}/tasks/{task.id}/execution_details",
                "start_time": _timestamp(task.started),
                "end_time": _timestamp(task.ended),
                "status": task.status,
                "message": task.message,
                "jobs": jobs,
            },
        )

    def _bulk_get(self, request: wire.Request, groups: dict[str, str]) -> wire.Response:
        body = request.json()
        ids = body.get("task_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return _error(400, "task_ids must be a list of task ids.")
        if len(ids) > MAX_BULK:
            return _error(400, f"At most {MAX_BULK} task ids can be requested at once.")
        items: list[dict[str, Any]] = []
        for task_id in ids:
            task = self._live_task(task_id)
            if task is None:
                items.append({"error": _error(404, f"Task {task_id} not found.").body})
            elif task.project in self.forbidden_projects:
                items.append({"error": _forbidden(task.project).body})
            else:
                items.append({"resource": self._task_json(task, request.base_url)})
        return wire.Response(200, {"items": items})

    def _get_file(self, request: wire.Request, file: FakeFile) -> wire.Response:
        return wire.Response(200, self._file_json(file, request.base_url))

    def _download_info(self, request: wire.Request, file: FakeFile) -> wire.Response:
        return wire.Response(200, {"url": f"{request.base_url}/download/{file.id}"})

    def _rate_limit(self, request: wire.Request, groups: dict[str, str]) -> wire.Response:
        used = self._window_used
        return wire.Response(
            200,
            {
                "rate": {
                    "limit": RATE_LIMIT,
                    "remaining": max(0, RATE_LIMIT - used),
                    "reset": int(self._window_start + RATE_WINDOW),
                },
                "instance_limit": {"limit": -1, "remaining": -1},
            },
        )
