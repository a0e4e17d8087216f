"""A wire-level simulator of an Arvados API server, for the unmodified arvados-python-client.

It serves https on 127.0.0.1 with a private CA made at start (`ca_file`; clients trust it through
`SSL_CERT_FILE`, the SDK's standard setting) and answers what wesctl's adapter, its tests, the
demo and the benchmarks use, the way the Rails API server does:

- `GET /discovery/v1/apis/arvados/v1/rest`: a generated discovery document with the methods used
  (container_requests create/update/get/list, containers get/list, collections get/list,
  workflows get, users current, groups get, configs get, keep_services accessible), and
  `GET /arvados/v1/config` (`StorageClasses`, `Services.WebDAVDownload.ExternalURL`);
- lists with `filters` (`=`, `!=`, `in`, `not in`, `like`, `ilike`, `<`, `<=`, `>`, `>=`, also on
  `properties.<key>`), `select`, `order`, `limit` (default 100, at most 1000), `offset`,
  `count: none`, also as `POST` with `X-HTTP-Method-Override: GET` (the SDK's form for long URLs);
- container requests `Uncommitted` -> `Committed` (which creates a container) -> `Final`, and
  containers `Queued` -> `Locked` -> `Running` -> `Complete`/`Cancelled`, moved by tests
  (`set_container_state`, `finish`, `cancel_by_system`) or by a `script` of (state, seconds after
  commit) steps on the simulator's clock. `priority: 0` stops a Running container (Cancelled, the
  request goes Final) and puts a Queued or Locked one on hold (it stays Queued, the request stays
  Committed). A finished container gets a log collection (`stderr.txt`, `stdout.txt`,
  `crunch-run.txt`), an output collection (`cwl.output.json`, `out.txt`) when it succeeded, and one
  child container request (a workflow step, `requesting_container_uuid`) with its own log;
- tokens (`Authorization: Bearer`): anything else is 401 `Not logged in`; a project the user may
  read but not write (`forbid_project`) refuses creates with 403, an unknown owner is 404;
- faults from `wesctl.simulated.http` per operation (`container_requests.create`, ...): 429, 500,
  503, 422, slow answers, and a create performed whose answer is lost (the connection closes; the
  SDK's httplib2 then sends it again, as it does against a real server).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Unpack
from urllib.parse import parse_qs

from wesctl.simulated import http as wire

CLUSTER = "zzzzz"
DEFAULT_TOKEN = "v2/zzzzz-gj3su-000000000000000/simulatortoken0000000000000000000000"
DEFAULT_USER = f"{CLUSTER}-tpzed-000000000000001"
DEFAULT_PROJECT = f"{CLUSTER}-j7d0g-000000000000001"
DEFAULT_WORKFLOW = f"{CLUSTER}-7fd4e-000000000000001"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
FINAL_CONTAINER_STATES = frozenset({"Complete", "Cancelled"})
HELLO_DEFINITION = {
    "cwlVersion": "v1.2",
    "$graph": [
        {
            "class": "Workflow",
            "id": "#main",
            "inputs": [{"id": "#main/message", "type": "string"}],
            "outputs": [{"id": "#main/out", "type": "File", "outputSource": "#main/step1/out"}],
            "steps": [
                {
                    "id": "#main/step1",
                    "run": "#echo.cwl",
                    "in": [{"id": "#main/step1/message", "source": "#main/message"}],
                    "out": ["#main/step1/out"],
                }
            ],
        },
        {
            "class": "CommandLineTool",
            "id": "#echo.cwl",
            "baseCommand": "echo",
            "inputs": [{"id": "#echo.cwl/message", "type": "string", "inputBinding": {}}],
            "outputs": [{"id": "#echo.cwl/out", "type": "stdout"}],
            "stdout": "out.txt",
        },
    ],
}

# This API's operations -> the shared interface's logical ones: a submission is a create (then
# a commit, an update), a status sync lists requests, a cancel updates the priority.
LOGICAL_OPERATIONS = {
    "container_requests.create": "submit",
    "container_requests.list": "status",
    "container_requests.update": "cancel",
}
FAULT_ANSWERS = wire.FaultAnswers(
    throttle=(429, "Too many requests, try again later"),
    server_error=(500, "Internal server error"),
    unavailable=(503, "Service Unavailable"),
    permanent=(422, ""),
)
# Fields a Committed request still accepts (container_request.rb); Final accepts none.
COMMITTED_UPDATABLE = frozenset(
    {"priority", "name", "description", "properties", "output_name", "output_ttl", "state"}
)
# resource -> (uuid infix, kind, singular body key)
RESOURCES: dict[str, tuple[str, str, str]] = {
    "container_requests": ("xvhdp", "arvados#containerRequest", "container_request"),
    "containers": ("dz642", "arvados#container", "container"),
    "collections": ("4zz18", "arvados#collection", "collection"),
    "workflows": ("7fd4e", "arvados#workflow", "workflow"),
    "groups": ("j7d0g", "arvados#group", "group"),
}


def _timestamp(value: datetime) -> str:
    """Arvados' form: nanoseconds and a Z."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def _error(status: int, *messages: str) -> wire.Response:
    token = hashlib.sha1(repr(messages).encode()).hexdigest()[:10]
    return wire.Response(status, {"errors": list(messages), "error_token": f"1700000000+{token}"})


def _like(pattern: str) -> re.Pattern[str]:
    parts = (".*" if char == "%" else "." if char == "_" else re.escape(char) for char in pattern)
    return re.compile("".join(parts), re.DOTALL)


def _value(record: Mapping[str, Any], attribute: str) -> Any:
    if attribute.startswith("properties."):
        properties = record.get("properties") or {}
        return properties.get(attribute.split(".", 1)[1])
    return record.get(attribute)


def _matches(record: Mapping[str, Any], condition: Sequence[Any]) -> bool:
    attribute, operator, operand = condition
    value = _value(record, attribute)
    operator = operator.lower()
    if operator in ("=", "=="):
        return bool(value == operand)
    if operator == "!=":
        return bool(value != operand)
    if operator == "in":
        return value in operand
    if operator == "not in":
        return value not in operand
    if operator in ("like", "ilike"):
        flags = re.IGNORECASE if operator == "ilike" else 0
        pattern = re.compile(_like(operand).pattern, flags | re.DOTALL)
        return isinstance(value, str) and pattern.fullmatch(value) is not None
    if value is None:
        return False
    comparisons: dict[str, Callable[[Any, Any], bool]] = {
        "<": lambda a, b: bool(a < b),
        "<=": lambda a, b: bool(a <= b),
        ">": lambda a, b: bool(a > b),
        ">=": lambda a, b: bool(a >= b),
    }
    return comparisons[operator](value, operand)


def _check_filters(filters: Any) -> str | None:
    if not isinstance(filters, list):
        return "filters must be an array"
    for condition in filters:
        if not (isinstance(condition, list) and len(condition) == 3):
            return f"Invalid filter {condition!r}: expected [attribute, operator, operand]"
        attribute, operator, operand = condition
        if not isinstance(attribute, str) or not isinstance(operator, str):
            return f"Invalid filter {condition!r}"
        known = ("=", "==", "!=", "in", "not in", "like", "ilike", "<", "<=", ">", ">=")
        if operator.lower() not in known:
            return f"Invalid operator '{operator}'"
        if operator.lower() in ("in", "not in") and not isinstance(operand, list):
            return f"Invalid operand type '{type(operand).__name__}' for '{operator}' operator"
    return None


def manifest(files: Mapping[str, bytes]) -> tuple[str, dict[str, bytes]]:
    """Return a one-stream manifest of `files` (one block) and its block by locator."""
    data = b"".join(files.values())
    locator = f"{hashlib.md5(data).hexdigest()}+{len(data)}"
    position = 0
    tokens = []
    for name, content in files.items():
        tokens.append(f"{position}:{len(content)}:{name}")
        position += len(content)
    return f". {locator} {' '.join(tokens)}\n", {locator: data}


def portable_data_hash(manifest_text: str) -> str:
    stripped = re.sub(r"\+[^\d ][^ ]*", "", manifest_text)  # hints are not part of the hash
    return f"{hashlib.md5(stripped.encode()).hexdigest()}+{len(stripped)}"


class SimulatedArvados(wire.SimulatedPlatform):
    """An in-process Arvados API server on https://127.0.0.1; see the module docstring.
    A forbidden project (`forbid_project`) is one the user may still read but not write."""

    name = "arvados"
    logical_operations = LOGICAL_OPERATIONS

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        user_uuid: str = DEFAULT_USER,
        projects: Iterable[str] = (DEFAULT_PROJECT,),
        keep_web_url: str = "",
        **simulation: Unpack[wire.Simulation],
    ) -> None:
        super().__init__(token=token, projects=projects, **simulation)
        self.user_uuid = user_uuid
        self.keep_web_url = keep_web_url
        self.records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in RESOURCES}
        self.blocks: dict[str, bytes] = {}
        self._serial = itertools.count(1)
        self._commit_at: dict[str, float] = {}  # container uuid -> clock time of its commit
        self._step: dict[str, int] = {}  # container uuid -> script steps applied
        self.add_workflow(DEFAULT_WORKFLOW, "hello", HELLO_DEFINITION)
        for project in self._first_projects:
            group = self._new("groups", uuid=project, owner_uuid=user_uuid)
            group.update(name=f"project {project}", group_class="project", properties={})

    # --- server ------------------------------------------------------------------------
    def start(self, *, tls: bool = True) -> str:
        """Serve https: the SDK speaks nothing else."""
        if not tls:
            raise ValueError("the Arvados SDK only speaks https")
        return super().start(tls=True)

    @property
    def host(self) -> str:
        """The value for ARVADOS_API_HOST (host:port, no scheme)."""
        return f"127.0.0.1:{self.port}"

    # --- test, demo and benchmark helpers ----------------------------------------------
    def add_workflow(self, uuid: str, name: str, definition: Any) -> None:
        """Register a workflow; `definition` is stored as JSON text, as the API stores it."""
        with self.lock:
            text = definition if isinstance(definition, str) else json.dumps(definition)
            record = self._new("workflows", uuid=uuid, owner_uuid=DEFAULT_PROJECT)
            record.update(name=name, description="", definition=text)

    def add_committed_request(self, properties: Mapping[str, Any]) -> str:
        """Create a committed request directly (benchmarks and batch tests); return its uuid."""
        with self.lock:
            fields = self._request_fields(
                {
                    "name": "seeded",
                    "state": "Committed",
                    "priority": 500,
                    "container_image": "arvados/jobs",
                    "command": ["true"],
                    "output_path": "/var/spool/cwl",
                    "mounts": {"/var/spool/cwl": {"kind": "collection", "writable": True}},
                    "runtime_constraints": {"vcpus": 1, "ram": 1 << 30},
                    "properties": dict(properties),
                }
            )
            record = self._new("container_requests", owner_uuid=DEFAULT_PROJECT)
            record.update(fields)
            self._commit(record)
            return str(record["uuid"])

    def requests_for_run(self, run_id: str, *, state: str | None = None) -> list[dict[str, Any]]:
        """Top-level container requests whose properties name WES run `run_id`."""
        with self.lock:
            return [
                self._advanced(record)
                for record in self.records["container_requests"].values()
                if (record["properties"] or {}).get("wes_run_id") == run_id
                and (state is None or record["state"] == state)
            ]

    def runs_for(self, run_id: str) -> list[str]:
        """Uuids of the run's top-level requests, less drafts marked duplicates (never run)."""
        return [
            str(record["uuid"])
            for record in self.requests_for_run(run_id)
            if "wesctl_duplicate_of" not in (record["properties"] or {})
        ]

    def secret_mounts(self, uuid: str) -> dict[str, Any]:
        """What a request was given as secret_mounts (the API never shows them)."""
        with self.lock:
            return dict(self.records["container_requests"][uuid]["_secret_mounts"])

    def request(self, uuid: str) -> dict[str, Any]:
        """A request as the API shows it (its script applied)."""
        with self.lock:
            record = self.records["container_requests"][uuid]
            return self._shown("container_requests", record, None)

    def container_of(self, request_uuid: str) -> dict[str, Any]:
        with self.lock:
            request = self._advanced(self.records["container_requests"][request_uuid])
            return self.records["containers"][request["container_uuid"]]

    def set_container_state(self, request_uuid: str, state: str) -> None:
        """Move a committed request's container to `state` (Locked, Running, Queued)."""
        with self.lock:
            container = self.container_of(request_uuid)
            self._set_state(container, state)

    def finish(self, request_uuid: str, *, succeed: bool, exit_code: int | None = None) -> None:
        """End the request's container Complete (exit 0, or `exit_code`/1 when it failed)."""
        with self.lock:
            container = self.container_of(request_uuid)
            code = exit_code if exit_code is not None else (0 if succeed else 1)
            self._complete(container, code)

    def cancel_by_system(self, request_uuid: str, reason: str) -> None:
        """End the container Cancelled without a cancel by the client (a node failure)."""
        with self.lock:
            container = self.container_of(request_uuid)
            container["runtime_status"] = {"error": reason}
            self._end(container, "Cancelled", None)

    def trash_collection(self, uuid: str) -> None:
        """Make a collection disappear, as its trash_at passing does (404 from then on)."""
        with self.lock:
            self.records["collections"].pop(uuid, None)

    def reset(self) -> None:
        """Forget requests, containers and collections too (workflows stay)."""
        with self.lock:
            super().reset()
            for name in ("container_requests", "containers", "collections"):
                self.records[name].clear()
            self.blocks.clear()
            self._commit_at.clear()
            self._step.clear()

    # --- SimulatedService ---------------------------------------------------------------------
    def route(self, request: wire.Request) -> tuple[str, Any]:
        path = request.path.rstrip("/")
        if request.method == "GET" and path == "/discovery/v1/apis/arvados/v1/rest":
            return "discovery", self._discovery
        if request.method == "GET" and path == "/arvados/v1/config":
            return "config", self._config
        if request.method == "GET" and re.fullmatch(r"/[0-9a-f]{32}\+\d+(\+\S*)?", path):
            return "keep.get", self._authorized(self._keep_get)
        method = request.method
        if method == "POST" and request.headers.get("x-http-method-override", "").upper() == "GET":
            method = "GET"
            request.query = {**request.query, **parse_qs(request.body.decode())}
        match = re.fullmatch(r"/arvados/v1/([a-z_]+)(?:/([^/]+))?", path)
        if match is None:
            return "unknown", self._no_route
        resource, item = match.groups()
        if resource == "users" and item == "current" and method == "GET":
            return "users.current", self._authorized(self._current_user)
        if resource == "keep_services" and item == "accessible" and method == "GET":
            return "keep_services.accessible", self._authorized(self._keep_services)
        if resource not in RESOURCES:
            return "unknown", self._no_route
        actions = {
            ("GET", False): "list",
            ("POST", False): "create",
            ("GET", True): "get",
            ("PUT", True): "update",
            ("PATCH", True): "update",
        }
        action = actions.get((method, item is not None))
        if action is None:
            return "unknown", self._no_route
        handler: Callable[[wire.Request, str, str | None], wire.Response] = getattr(
            self, f"_{action}"
        )

        def respond(request: wire.Request) -> wire.Response:
            return handler(request, resource, item)

        return f"{resource}.{action}", self._authorized(respond)

    def fault_response(self, rule: wire.FaultRule, operation: str) -> wire.Response:
        return _error(*FAULT_ANSWERS.answer(rule))

    # --- plumbing ------------------------------------------------------------------------
    def _authorized(
        self, handler: Callable[[wire.Request], wire.Response]
    ) -> Callable[[wire.Request], wire.Response]:
        def respond(request: wire.Request) -> wire.Response:
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            with self.lock:
                if scheme not in ("Bearer", "OAuth2") or not self.accepts(token):
                    return _error(401, "Not logged in")
                return handler(request)

        return respond

    def _no_route(self, request: wire.Request) -> wire.Response:
        return _error(404, "Path not found")

    def _now(self) -> str:
        return _timestamp(datetime.now(UTC))

    def _new(self, resource: str, *, uuid: str | None = None, owner_uuid: str) -> dict[str, Any]:
        infix, kind, _ = RESOURCES[resource]
        uuid = uuid or f"{CLUSTER}-{infix}-{next(self._serial):015d}"
        now = self._now()
        record: dict[str, Any] = {
            "uuid": uuid,
            "kind": kind,
            "etag": hashlib.sha1(uuid.encode()).hexdigest()[:25],
            "owner_uuid": owner_uuid,
            "created_at": now,
            "modified_at": now,
            "modified_by_user_uuid": self.user_uuid,
        }
        self.records[resource][uuid] = record
        return record

    def _touch(self, record: dict[str, Any]) -> None:
        record["modified_at"] = self._now()
        record["etag"] = hashlib.sha1(
            f"{record['uuid']}{record['modified_at']}".encode()
        ).hexdigest()[:25]

    def _collection(self, owner: str, name: str, files: Mapping[str, bytes]) -> str:
        text, blocks = manifest(files)
        self.blocks.update(blocks)
        record = self._new("collections", owner_uuid=owner)
        record.update(
            name=name,
            description=None,
            properties={},
            manifest_text=text,
            portable_data_hash=portable_data_hash(text),
            file_count=len(files),
            file_size_total=sum(len(content) for content in files.values()),
            trash_at=None,
            is_trashed=False,
        )
        return str(record["uuid"])

    # --- state machine -------------------------------------------------------------------
    def _advanced(self, request: dict[str, Any]) -> dict[str, Any]:
        """Apply the clock script (and a pending stop) to a request's container."""
        container = self.records["containers"].get(request.get("container_uuid") or "")
        if container is None or container["state"] in FINAL_CONTAINER_STATES:
            return request
        if container["priority"] == 0 and container["state"] == "Running":
            self._end(container, "Cancelled", None)
            return request
        if self.script is None or container["priority"] == 0:
            return request
        step = self._step.get(container["uuid"], 0)
        due = self.due(step, self._commit_at.get(container["uuid"], 0.0))
        if due:
            self._step[container["uuid"]] = step + len(due)
            final = due[-1][0]
            if final == "Complete":
                self._complete(container, 1 if container.get("_fail") else 0)
            elif final == "Cancelled":
                container["runtime_status"] = {"error": "the node running it was lost"}
                self._end(container, "Cancelled", None)
            else:
                self._set_state(container, final)
        return request

    def _set_state(self, container: dict[str, Any], state: str) -> None:
        if state in FINAL_CONTAINER_STATES:
            self._end(container, state, 0 if state == "Complete" else None)
            return
        container["state"] = state
        if state == "Running" and container["started_at"] is None:
            container["started_at"] = self._now()
        self._touch(container)

    def _complete(self, container: dict[str, Any], exit_code: int) -> None:
        if container["started_at"] is None:
            container["started_at"] = self._now()
        if exit_code == 0:
            request = self._request_of(container)
            inputs = request["mounts"].get("/var/lib/cwl/cwl.input.json", {}).get("content", {})
            message = str(inputs.get("message", "hello")) if isinstance(inputs, dict) else ""
            out = f"{message}\n".encode()
            cwl_output = {
                "out": {
                    "class": "File",
                    "location": "out.txt",
                    "basename": "out.txt",
                    "size": len(out),
                    "checksum": "sha1$" + hashlib.sha1(out).hexdigest(),
                },
                "line_count": 1,
            }
            container["output"] = self._collection(
                request["owner_uuid"],
                f"Container output for request {request['uuid']}",
                {"cwl.output.json": json.dumps(cwl_output).encode(), "out.txt": out},
            )
        else:
            container["runtime_status"] = {"error": "workflow step failed"}
        self._end(container, "Complete", exit_code)

    def _end(self, container: dict[str, Any], state: str, exit_code: int | None) -> None:
        """Finish a container: its log, a child step, and its requests go Final."""
        container["state"] = state
        container["exit_code"] = exit_code
        container["finished_at"] = self._now()
        container["progress"] = 1.0 if state == "Complete" else container.get("progress", 0.0)
        request = self._request_of(container)
        owner = request["owner_uuid"]
        failed = state != "Complete" or exit_code != 0
        container["log"] = self._collection(
            owner,
            f"Container log for request {request['uuid']}",
            {
                "stderr.txt": b"INFO [workflow ] start\n"
                + (b"ERROR [step step1] failed\n" if failed else b"INFO [workflow ] success\n"),
                "stdout.txt": b"{}\n",
                "crunch-run.txt": f"container {container['uuid']} {state}\n".encode(),
            },
        )
        self._touch(container)
        if container["started_at"] is not None and not request.get("requesting_container_uuid"):
            self._child_step(container, request, failed)
        for other in self.records["container_requests"].values():
            if other.get("container_uuid") == container["uuid"] and other["state"] == "Committed":
                other["state"] = "Final"
                other["log_uuid"] = container["log"]
                other["output_uuid"] = container.get("output")
                self._touch(other)

    def _child_step(self, parent: dict[str, Any], request: dict[str, Any], failed: bool) -> None:
        """One workflow step, as arvados-cwl-runner submits it: a request by the container."""
        child = self._new("container_requests", owner_uuid=request["owner_uuid"])
        step = self._new("containers", owner_uuid=self.user_uuid)
        log = self._collection(
            request["owner_uuid"],
            f"Container log for request {child['uuid']}",
            {
                "stderr.txt": b"step1 stderr\n",
                "stdout.txt": b"hello\n",
                "crunch-run.txt": b"step1 crunch-run\n",
            },
        )
        step.update(
            self._container_fields(["echo", "hello"], 1),
            state="Complete",
            exit_code=1 if failed else 0,
            started_at=parent["started_at"],
            finished_at=parent["finished_at"],
            log=log,
        )
        child.update(
            self._request_fields(
                {
                    "name": "step1",
                    "command": ["echo", "hello"],
                    "container_image": "arvados/jobs",
                    "priority": request["priority"],
                }
            ),
            state="Final",
            requesting_container_uuid=parent["uuid"],
            container_uuid=step["uuid"],
            log_uuid=log,
        )

    def _request_of(self, container: dict[str, Any]) -> dict[str, Any]:
        for request in self.records["container_requests"].values():
            if request.get("container_uuid") == container["uuid"]:
                return request
        raise KeyError(container["uuid"])

    def _container_fields(self, command: Any, priority: int) -> dict[str, Any]:
        return {
            "state": "Queued",
            "started_at": None,
            "finished_at": None,
            "log": None,
            "output": None,
            "exit_code": None,
            "progress": 0.0,
            "priority": priority,
            "command": command,
            "runtime_status": {},
            "lock_count": 0,
            "cost": 0.0,
        }

    @staticmethod
    def _request_fields(body: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "name": body.get("name"),
            "description": body.get("description"),
            "properties": dict(body.get("properties") or {}),
            "state": body.get("state") or "Uncommitted",
            "requesting_container_uuid": None,
            "container_uuid": None,
            "container_count_max": body.get("container_count_max", 3),
            "container_count": 0,
            "mounts": body.get("mounts") or {},
            "runtime_constraints": body.get("runtime_constraints") or {},
            "scheduling_parameters": body.get("scheduling_parameters") or {},
            "container_image": body.get("container_image"),
            "environment": body.get("environment") or {},
            "cwd": body.get("cwd"),
            "command": body.get("command") or [],
            "output_path": body.get("output_path"),
            "output_name": body.get("output_name"),
            "output_ttl": body.get("output_ttl", 0),
            "priority": body.get("priority", 0),
            "use_existing": body.get("use_existing", True),
            "log_uuid": None,
            "output_uuid": None,
            "output_properties": {},
            "cumulative_cost": 0.0,
            # stored, never shown: the API returns no secret_mounts
            "_secret_mounts": dict(body.get("secret_mounts") or {}),
        }

    def _commit_problems(self, request: Mapping[str, Any]) -> list[str]:
        problems = []
        if not request.get("container_image"):
            problems.append("Container image can't be blank")
        command = request.get("command")
        if not (isinstance(command, list) and command and all(isinstance(c, str) for c in command)):
            problems.append("Command can't be blank")
        mounts = request.get("mounts") or {}
        if not request.get("output_path") or request.get("output_path") not in mounts:
            problems.append("Output path must be a mount target")
        constraints = request.get("runtime_constraints") or {}
        for key in ("vcpus", "ram"):
            value = constraints.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                problems.append(f"Runtime constraints {key} must be a positive integer")
        priority = request.get("priority")
        if not isinstance(priority, int) or not 0 <= priority <= 1000:
            problems.append("Priority must be between 0 and 1000")
        return problems

    def _commit(self, request: dict[str, Any]) -> None:
        container = self._new("containers", owner_uuid=self.user_uuid)
        container.update(self._container_fields(request["command"], request["priority"]))
        inputs = request["mounts"].get("/var/lib/cwl/cwl.input.json", {}).get("content")
        container["_fail"] = isinstance(inputs, dict) and bool(inputs.get(self.fail_input))
        request["container_uuid"] = container["uuid"]
        request["container_count"] = 1
        self._commit_at[container["uuid"]] = self.clock.now()
        self._advanced(request)

    # --- endpoints -----------------------------------------------------------------------
    def _discovery(self, request: wire.Request) -> wire.Response:
        return wire.Response(200, discovery_document(self.base_url))

    def _config(self, request: wire.Request) -> wire.Response:
        return wire.Response(
            200,
            {
                "ClusterID": CLUSTER,
                "Services": {
                    "Controller": {"ExternalURL": self.base_url + "/"},
                    "WebDAVDownload": {"ExternalURL": self.keep_web_url},
                },
                "StorageClasses": {"default": {"Default": True, "Priority": 0}},
                "Collections": {"BlobSigning": False},
            },
        )

    def _current_user(self, request: wire.Request) -> wire.Response:
        return wire.Response(
            200,
            {
                "uuid": self.user_uuid,
                "kind": "arvados#user",
                "username": "wes",
                "full_name": "WES Submitter",
                "email": "wes@example.org",
                "is_active": True,
                "is_admin": False,
            },
        )

    def _keep_services(self, request: wire.Request) -> wire.Response:
        service = {
            "uuid": f"{CLUSTER}-bi6l4-000000000000001",
            "kind": "arvados#keepService",
            "service_host": "127.0.0.1",
            "service_port": self.port,
            "service_ssl_flag": True,
            "service_type": "proxy",
            "read_only": True,
        }
        return wire.Response(
            200, {"kind": "arvados#keepServiceList", "items": [service], "items_available": 1}
        )

    def _keep_get(self, request: wire.Request) -> wire.Response:
        locator = request.path.strip("/")
        parts = locator.split("+")
        block = self.blocks.get("+".join(parts[:2]))
        if block is None:
            return wire.Response(404, b"not found\n", {"Content-Type": "text/plain"})
        return wire.Response(200, block, {"X-Keep-Replicas-Stored": "2"})

    def _visible(self, resource: str, record: Mapping[str, Any]) -> bool:
        return resource != "groups" or record["uuid"] in self.projects

    def _shown(self, resource: str, record: dict[str, Any], select: Any) -> dict[str, Any]:
        if resource == "container_requests":
            self._advanced(record)
        shown = {key: value for key, value in record.items() if not key.startswith("_")}
        if isinstance(select, list):
            shown = {key: shown.get(key) for key in select}
            shown.setdefault("kind", record["kind"])
        return shown

    def _json_arg(self, request: wire.Request, name: str, default: Any) -> Any:
        raw = request.arg(name)
        if raw is None or raw == "":
            return default
        try:
            return json.loads(raw)
        except ValueError:
            return raw if name == "order" else _Invalid(f"{name} is not valid JSON: {raw!r}")

    def _list(self, request: wire.Request, resource: str, item: str | None) -> wire.Response:
        filters = self._json_arg(request, "filters", [])
        select = self._json_arg(request, "select", None)
        order = self._json_arg(request, "order", ["modified_at desc", "uuid desc"])
        for value in (filters, select):
            if isinstance(value, _Invalid):
                return _error(422, value.message)
        problem = _check_filters(filters)
        if problem:
            return _error(422, problem)
        try:
            limit = int(request.arg("limit") or DEFAULT_LIMIT)
            offset = int(request.arg("offset") or 0)
        except ValueError:
            return _error(422, "limit and offset must be integers")
        if limit < 0 or offset < 0:
            return _error(422, "limit and offset must not be negative")
        limit = min(limit, MAX_LIMIT)
        with self.lock:
            if resource == "groups":
                candidates = [
                    record
                    for record in self.records[resource].values()
                    if self._visible(resource, record)
                ]
            else:
                candidates = list(self.records[resource].values())
            if resource == "container_requests":
                for record in candidates:
                    self._advanced(record)
            found = [
                record
                for record in candidates
                if all(_matches(record, condition) for condition in filters)
            ]
            for clause in reversed(order if isinstance(order, list) else [order]):
                field, _, direction = str(clause).partition(" ")
                found.sort(key=_sort_key(field), reverse=direction.strip().lower() == "desc")
            page = [self._shown(resource, r, select) for r in found[offset : offset + limit]]
        body: dict[str, Any] = {
            "kind": RESOURCES[resource][1] + "List",
            "etag": "",
            "items": page,
            "offset": offset,
            "limit": limit,
        }
        if request.arg("count") != "none":
            body["items_available"] = len(found)
        return wire.Response(200, body)

    def _get(self, request: wire.Request, resource: str, item: str | None) -> wire.Response:
        select = self._json_arg(request, "select", None)
        with self.lock:
            record = self.records[resource].get(item or "")
            if record is None or not self._visible(resource, record):
                return _error(404, "Path not found")
            if resource == "groups":
                shown = self._shown(resource, record, select)
                shown["can_write"] = record["uuid"] not in self.forbidden_projects
                return wire.Response(200, shown)
            return wire.Response(200, self._shown(resource, record, select))

    def _body(
        self, request: wire.Request, resource: str, action: str
    ) -> dict[str, Any] | wire.Response:
        """The fields a create or an update (`action`) sends; only container requests are
        written here."""
        if resource != "container_requests":
            return _error(422, f"{action} {resource} is not simulated")
        key = RESOURCES[resource][2]
        try:
            body = request.json()
        except ValueError:
            return _error(422, "request body is not JSON")
        fields = body.get(key) if isinstance(body, dict) else None
        if isinstance(fields, str):  # the SDK may send the object as JSON text
            try:
                fields = json.loads(fields)
            except ValueError:
                return _error(422, f"{key} is not valid JSON")
        if not isinstance(fields, dict):
            return _error(422, f"{key} must be an object")
        return fields

    def _create(self, request: wire.Request, resource: str, item: str | None) -> wire.Response:
        fields = self._body(request, resource, "creating")
        if isinstance(fields, wire.Response):
            return fields
        with self.lock:
            owner = fields.get("owner_uuid") or self.user_uuid
            if owner != self.user_uuid and owner not in self.projects:
                return _error(404, f"Path not found: owner_uuid {owner}")
            if owner in self.forbidden_projects:
                return _error(
                    403, f"Forbidden: #{self.user_uuid} cannot write to owner_uuid {owner}"
                )
            if fields.get("state", "Uncommitted") not in ("Uncommitted", "Committed"):
                return _error(422, f"State cannot be {fields.get('state')!r} on create")
            if not isinstance(fields.get("properties", {}), dict):
                return _error(422, "Properties must be a hash")
            candidate = self._request_fields(fields)
            if candidate["state"] == "Committed":
                problems = self._commit_problems(candidate)
                if problems:
                    return _error(422, *problems)
            record = self._new("container_requests", owner_uuid=owner)
            record.update(candidate)
            if record["state"] == "Committed":
                self._commit(record)
            return wire.Response(200, self._shown(resource, record, None))

    def _update(self, request: wire.Request, resource: str, item: str | None) -> wire.Response:
        fields = self._body(request, resource, "updating")
        if isinstance(fields, wire.Response):
            return fields
        with self.lock:
            record = self.records[resource].get(item or "")
            if record is None:
                return _error(404, "Path not found")
            self._advanced(record)
            if record["owner_uuid"] in self.forbidden_projects:
                return _error(403, f"Forbidden: cannot update {record['uuid']}")
            if record["state"] == "Final":
                return _error(422, "Cannot modify a container request in state Final")
            if record["state"] == "Committed":
                refused = sorted(set(fields) - COMMITTED_UPDATABLE)
                if refused:
                    return _error(422, f"Cannot modify {', '.join(refused)} once committed")
            if "properties" in fields and not isinstance(fields["properties"], dict):
                return _error(422, "Properties must be a hash")
            if fields.get("state") not in (None, "Uncommitted", "Committed"):
                return _error(422, f"State cannot change to {fields.get('state')!r}")
            if fields.get("state") == "Uncommitted" and record["state"] != "Uncommitted":
                return _error(422, "State cannot change from Committed to Uncommitted")
            candidate = {**record, **fields}
            committing = record["state"] == "Uncommitted" and fields.get("state") == "Committed"
            if committing:
                problems = self._commit_problems(candidate)
                if candidate.get("priority", 0) < 1:
                    problems.append("Priority must be greater than zero to commit")
                if problems:
                    return _error(422, *problems)
            record.update(fields)
            self._touch(record)
            if committing:
                self._commit(record)
            elif "priority" in fields and record.get("container_uuid"):
                container = self.records["containers"][record["container_uuid"]]
                if container["state"] not in FINAL_CONTAINER_STATES:
                    container["priority"] = record["priority"]
                    if record["priority"] == 0 and container["state"] == "Locked":
                        container["state"] = "Queued"  # on hold
                    self._touch(container)
                    self._advanced(record)
            return wire.Response(200, self._shown(resource, record, None))


def _sort_key(field: str) -> Callable[[Mapping[str, Any]], tuple[bool, Any]]:
    def key(record: Mapping[str, Any]) -> tuple[bool, Any]:
        return (record.get(field) is None, record.get(field) or "")

    return key


class _Invalid:
    def __init__(self, message: str) -> None:
        self.message = message


def _parameter(kind: str, location: str = "query", required: bool = False) -> dict[str, Any]:
    return {"type": kind, "location": location, "required": required}


def discovery_document(base_url: str) -> dict[str, Any]:
    """A minimal Arvados v1 discovery document for the methods the simulator serves."""
    uuid = {"uuid": _parameter("string", "path", True)}
    select = {"select": _parameter("array")}
    listing = {
        "filters": _parameter("array"),
        "where": _parameter("object"),
        "order": _parameter("array"),
        "select": _parameter("array"),
        "distinct": _parameter("boolean"),
        "limit": _parameter("integer"),
        "offset": _parameter("integer"),
        "count": _parameter("string"),
    }
    resources: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for resource, (_, kind, singular) in RESOURCES.items():
        schema = kind.split("#", 1)[1]
        schema = schema[0].upper() + schema[1:]
        schemas[schema] = {"id": schema, "type": "object", "properties": {}}
        schemas[schema + "List"] = {"id": schema + "List", "type": "object", "properties": {}}
        body = {"required": True, "properties": {singular: {"$ref": schema}}}

        def method(
            name: str,
            verb: str,
            path: str,
            parameters: dict[str, Any],
            *,
            resource: str = resource,
            schema: str = schema,
            request: dict[str, Any] | None = None,
            response: str | None = None,
        ) -> dict[str, Any]:
            described: dict[str, Any] = {
                "id": f"arvados.{resource}.{name}",
                "path": path,
                "httpMethod": verb,
                "parameters": parameters,
                "response": {"$ref": response or schema},
            }
            if "uuid" in parameters:
                described["parameterOrder"] = ["uuid"]
            if request is not None:
                described["request"] = request
            return described

        resources[resource] = {
            "methods": {
                "get": method("get", "GET", f"{resource}/{{uuid}}", {**uuid, **select}),
                "list": method("list", "GET", resource, listing, response=schema + "List"),
                "create": method("create", "POST", resource, dict(select), request=body),
                "update": method(
                    "update", "PUT", f"{resource}/{{uuid}}", {**uuid, **select}, request=body
                ),
            }
        }
    schemas["User"] = {"id": "User", "type": "object", "properties": {}}
    schemas["KeepServiceList"] = {"id": "KeepServiceList", "type": "object", "properties": {}}
    for resource, name, path, response in (
        ("users", "current", "users/current", {"$ref": "User"}),
        ("keep_services", "accessible", "keep_services/accessible", {"$ref": "KeepServiceList"}),
        ("configs", "get", "config", {}),
    ):
        described: dict[str, Any] = {
            "id": f"arvados.{resource}.{name}",
            "path": path,
            "httpMethod": "GET",
        }
        described.update(parameters={}, parameterOrder=[], response=response)
        resources[resource] = {"methods": {name: described}}
    return {
        "kind": "discovery#restDescription",
        "discoveryVersion": "v1",
        "id": "arvados:v1",
        "name": "arvados",
        "version": "v1",
        "revision": "20250402",
        "title": "Arvados API (simulated)",
        "protocol": "rest",
        "rootUrl": base_url + "/",
        "servicePath": "arvados/v1/",
        "basePath": "/arvados/v1/",
        "batchPath": "batch",
        "maxRequestSize": 134217728,
        "parameters": {"alt": {"type": "string", "default": "json", "location": "query"}},
        "resources": resources,
        "schemas": schemas,
    }
