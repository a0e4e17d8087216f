"""Shared plumbing for the in-process provider fakes: an HTTP server on 127.0.0.1, a clock,
latency and fault injection, route tables, clock scripts, and the token and project bookkeeping
of the platforms that have them.

The fakes speak the providers' wire protocols so the real client libraries (sevenbridges-python,
boto3) can be pointed at them. They are simulations for tests, benchmarks and `wesctl demo`, and
never listen on anything but loopback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Self, TypedDict, TypeVar, Unpack
from urllib.parse import parse_qs, unquote, urlsplit

from wesctl.simulated.tls import Certificates, make_certificates

logger = logging.getLogger(__name__)

# Fault kinds every fake understands.
THROTTLE = "throttle"  # 429 with the provider's throttling error
SERVER_ERROR = "server_error"  # 500 with the provider's internal error
UNAVAILABLE = "unavailable"  # 503
PERMANENT = "permanent"  # 400 validation error carrying `message`
DROP_AFTER_ACCEPT = "drop_after_accept"  # the request is processed, then the connection is closed
SLOW = "slow"  # the request waits `delay` seconds (real time) before it is processed
SLOW_AFTER = "slow_after"  # the request is processed, then the answer waits `delay` seconds
# Something that is not the API answers (a web server, a captive portal): an HTML page with HTTP
# status `status` (200 unless given), no provider headers; the request is not processed.
NOT_THE_API = "not_the_api"
ERROR = "error"  # the provider's own error named `code` (HealthOmics: an exception name)
FAULT_KINDS = (
    THROTTLE,
    SERVER_ERROR,
    UNAVAILABLE,
    PERMANENT,
    DROP_AFTER_ACCEPT,
    SLOW,
    SLOW_AFTER,
    NOT_THE_API,
    ERROR,
)
NOT_THE_API_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Welcome</title></head><body>It works!</body></html>\n"
)


class SimulatedClock:
    """The simulated provider's time, which moves its runs on; tests advance it instead of
    sleeping.

    With `real=True` it follows time.monotonic (for the demo and benchmarks).
    """

    def __init__(self, real: bool = False, speed: float = 1.0) -> None:
        self._real = real
        self._speed = speed
        self._start = time.monotonic()
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            elapsed = (time.monotonic() - self._start) * self._speed if self._real else 0.0
            return elapsed + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds


@dataclass
class FaultRule:
    kind: str
    operation: str | None = None  # None: any operation
    remaining: int | None = 1  # None: unlimited (use with `rate`)
    rate: float = 1.0  # probability that a matching request is hit
    message: str = "injected fault"
    delay: float = 0.0
    skip: int = 0  # let this many matching requests through first
    status: int = 200  # the HTTP status of a NOT_THE_API answer
    code: str = ""  # the provider's error of an ERROR answer


@dataclass
class FaultPlan:
    """Thread-safe list of fault rules consulted once per request."""

    seed: int = 0
    rules: list[FaultRule] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(self.seed)

    def add(self, rule: FaultRule) -> None:
        if rule.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {rule.kind!r}")
        with self._lock:
            self.rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def take(self, operation: str, alias: str | None = None) -> FaultRule | None:
        """The rule that hits a request of `operation` (also known as `alias`), if any."""
        with self._lock:
            for rule in self.rules:
                if rule.operation not in (None, operation, alias):
                    continue
                if rule.remaining is not None and rule.remaining <= 0:
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    continue
                if rule.rate < 1.0 and self._random.random() >= rule.rate:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                return rule
        return None


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    base_url: str

    def json(self) -> Any:
        if not self.body:
            return None
        return json.loads(self.body)

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Response:
    status: int
    body: Any = None  # JSON-serialisable, or bytes sent as-is
    headers: dict[str, str] = field(default_factory=dict)


Answer = TypeVar("Answer")


@dataclass(frozen=True)
class FaultAnswers(Generic[Answer]):
    """How a simulator answers the faults that stand for its provider's errors: the provider's
    HTTP status or error code for each, and its message ("" for the injected rule's own)."""

    throttle: tuple[Answer, str]
    server_error: tuple[Answer, str]
    unavailable: tuple[Answer, str]
    permanent: tuple[Answer, str]

    def answer(self, rule: FaultRule) -> tuple[Answer, str]:
        answers = {
            THROTTLE: self.throttle,
            SERVER_ERROR: self.server_error,
            UNAVAILABLE: self.unavailable,
            PERMANENT: self.permanent,
        }
        if rule.kind not in answers:
            raise ValueError(f"fault kind {rule.kind!r} has no response")
        answer, message = answers[rule.kind]
        return answer, message or rule.message


RouteHandler = Callable[[Request, dict[str, str]], Response]
_PLACEHOLDER = re.compile(r"\{(\w+)(?::([^{}]+))?\}")


class Routes:
    """A route table: (method, path, operation, handler), the first match wins. A path names
    its parameters as `{name}` (one segment) or `{name:regex}`; the handler gets them decoded,
    those that matched nothing left out."""

    def __init__(self, routes: Iterable[tuple[str, str, str, RouteHandler]]) -> None:
        self._routes = [
            (method, self._compile(path), operation, handler)
            for method, path, operation, handler in routes
        ]

    @staticmethod
    def _compile(path: str) -> re.Pattern[str]:
        pattern, position = "", 0
        for match in _PLACEHOLDER.finditer(path):
            name, regex = match.groups()
            pattern += re.escape(path[position : match.start()])
            pattern += f"(?P<{name}>{regex or '[^/]+'})"
            position = match.end()
        return re.compile(pattern + re.escape(path[position:]))

    def find(self, method: str, path: str) -> tuple[str, Callable[[Request], Response]] | None:
        """The operation and handler of a request, or None when no route matches."""
        for route_method, pattern, operation, handler in self._routes:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                found = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                return operation, _bind(handler, found)
        return None


def _bind(handler: RouteHandler, parameters: dict[str, str]) -> Callable[[Request], Response]:
    return lambda request: handler(request, parameters)


class Simulation(TypedDict, total=False):
    """How a simulator runs, whatever it simulates (see SimulatedService)."""

    script: Sequence[tuple[str, float]] | None
    latency: float
    clock: SimulatedClock | None
    seed: int


class SimulatedService:
    """Base of a simulated provider API, and the interface every simulator offers: `runs_for`
    (the provider runs a WES run got), `inject` / `clear_faults` (faults on an operation of the
    API or on a logical one of `logical_operations`), `calls` (requests per API operation),
    `clock` (the provider's time) and `lock` (held around every change of the simulated state).
    Subclasses implement `route`, `fault_response` and `runs_for`.

    `script` is a list of (status, seconds) steps: a run reaches each status that many seconds
    of `clock` after it started (the demo and benchmarks); `latency` is added to every request;
    `seed` makes faults injected with a `rate` repeatable."""

    name = "fake"
    # API operation -> the shared interface's logical one ("submit", "status", "cancel"), for
    # the APIs whose operations have other names.
    logical_operations: Mapping[str, str] = {}
    certificates: Certificates | None = None  # set by start(tls=True)

    def __init__(
        self,
        *,
        script: Sequence[tuple[str, float]] | None = None,
        latency: float = 0.0,
        clock: SimulatedClock | None = None,
        seed: int = 0,
    ) -> None:
        self.script = tuple(script) if script is not None else None
        self.latency = latency
        self.clock = clock or SimulatedClock()
        self.faults = FaultPlan(seed=seed)
        self.calls: Counter[str] = Counter()
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # --- to implement -------------------------------------------------------------------
    def route(self, request: Request) -> tuple[str, Any]:
        """Return (operation name, handler(request) -> Response)."""
        raise NotImplementedError

    def fault_response(self, rule: FaultRule, operation: str) -> Response:
        raise NotImplementedError

    def runs_for(self, run_id: str) -> list[str]:
        """Provider ids of the runs (tasks) the simulator holds for WES run `run_id`."""
        raise NotImplementedError

    def not_found(self, request: Request) -> Response:
        return Response(404, {"message": f"no route for {request.method} {request.path}"})

    def due(self, applied: int, since: float) -> list[tuple[str, float]]:
        """The script's steps after the first `applied` that are due for a run started at
        `since` (clock time)."""
        elapsed = self.clock.now() - since
        return [step for step in (self.script or ())[applied:] if step[1] <= elapsed]

    # --- fault helpers ------------------------------------------------------------------
    def inject(
        self,
        kind: str,
        operation: str | None = None,
        *,
        count: int | None = 1,
        rate: float = 1.0,
        message: str = "injected fault",
        delay: float = 0.0,
        skip: int = 0,
        status: int = 200,
        code: str = "",
    ) -> None:
        """Answer requests of `operation` (an API operation or a logical one; None: any) with a
        fault of `kind`, `count` times (None: until cleared), each with probability `rate`."""
        rule = FaultRule(kind, operation, count, rate, message, delay, skip, status, code)
        self.faults.add(rule)

    def clear_faults(self) -> None:
        """Forget every injected fault that has not fired yet."""
        self.faults.clear()

    # --- server -------------------------------------------------------------------------
    def start(self, *, tls: bool = False) -> str:
        """Listen on 127.0.0.1 (a free port) and return the base URL. With `tls`, serve https
        with a private CA made now (`ca_file`: clients trust it through their standard setting);
        the listening socket is wrapped before anyone knows the port."""
        service = self
        scheme = "https" if tls else "http"

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each answer waits ~40 ms for a delayed ACK

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("%s fake: %s", service.name, format % args)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                host = self.headers.get("Host") or f"127.0.0.1:{service.port}"
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    base_url=f"{scheme}://{host}",
                )
                service._dispatch(self, request)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815

        class Server(ThreadingHTTPServer):
            # Class attributes, so they apply before the socket starts listening.
            daemon_threads = True
            request_queue_size = 1024

            def handle_error(self, request: Any, client_address: Any) -> None:
                # Clients that vanish mid-answer (killed processes, timeouts) are expected here.
                logger.debug("%s fake: connection error from %s", service.name, client_address)

        self._server = Server(("127.0.0.1", 0), Handler)
        if tls:
            self.certificates = make_certificates(self.name)
            self._server.socket = self.certificates.server_context().wrap_socket(
                self._server.socket, server_side=True
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() returns quickly
            name=f"{self.name}-fake",
            daemon=True,
        )
        self._thread.start()
        self.base_url = f"{scheme}://127.0.0.1:{self.port}"
        return self.base_url

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def ca_file(self) -> str:
        """The CA certificate of an https simulator, for the client's trust setting."""
        assert self.certificates is not None, "start the simulator with tls=True first"
        return str(self.certificates.ca_file)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.certificates is not None:
            self.certificates.cleanup()
            self.certificates = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _dispatch(self, handler: BaseHTTPRequestHandler, request: Request) -> None:
        operation, func = self.route(request)
        with self.lock:
            self.calls[operation] += 1
        if self.latency:
            time.sleep(self.latency)
        rule = self.faults.take(operation, self.logical_operations.get(operation))
        drop = False
        delay_answer = 0.0
        if rule is not None and rule.kind == SLOW:
            time.sleep(rule.delay)
            rule = None
        elif rule is not None and rule.kind == SLOW_AFTER:
            delay_answer = rule.delay
            rule = None
        elif rule is not None and rule.kind == DROP_AFTER_ACCEPT:
            drop = True
            rule = None
        if rule is not None and rule.kind == NOT_THE_API:
            page = {"Content-Type": "text/html; charset=utf-8"}
            response = Response(rule.status, NOT_THE_API_PAGE, page)
        elif rule is not None:
            response = self.fault_response(rule, operation)
        else:
            response = func(request)
        if delay_answer:
            time.sleep(delay_answer)
        if drop:
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(2)
            return
        self._write(handler, response)

    @staticmethod
    def _write(handler: BaseHTTPRequestHandler, response: Response) -> None:
        if isinstance(response.body, bytes):
            payload = response.body
            content_type = response.headers.get("Content-Type", "application/octet-stream")
        elif response.body is None:
            payload = b""
            content_type = "application/json"
        else:
            payload = json.dumps(response.body).encode()
            content_type = "application/json"
        handler.send_response(response.status)
        for key, value in response.headers.items():
            if key.lower() != "content-type":
                handler.send_header(key, value)
        if payload or response.status not in (202, 204):
            handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if payload:
            handler.wfile.write(payload)


class SimulatedPlatform(SimulatedService):
    """A simulated platform whose users send an API token and work in projects (Seven Bridges,
    Arvados). Tests revoke a token and restore it, as an operator's credential is revoked and
    then replaced, and forbid a project, as a user loses a permission there; `reset` returns to
    the first token and projects. A run whose inputs set `fail_input` to a true value fails."""

    fail_input = "fake_fail"

    def __init__(
        self, *, token: str, projects: Iterable[str], **simulation: Unpack[Simulation]
    ) -> None:
        super().__init__(**simulation)
        self.token = token
        self.tokens = {token}  # every token the simulator accepts
        self._first_projects = tuple(projects)
        self.projects = set(self._first_projects)
        self.forbidden_projects: set[str] = set()

    def accept_token(self, token: str) -> None:
        """Accept `token` from now on (besides the others)."""
        with self.lock:
            self.tokens.add(token)

    def reject_token(self, token: str) -> None:
        """Refuse `token` from now on, as for a revoked or expired token."""
        with self.lock:
            self.tokens.discard(token)

    def accepts(self, token: str | None) -> bool:
        with self.lock:
            return token in self.tokens

    def forbid_project(self, project: str) -> None:
        """Refuse the user `project` from now on, the way the platform refuses a user without
        the needed permission."""
        with self.lock:
            self.forbidden_projects.add(project)

    def reset(self) -> None:
        """Forget faults and counters; accept only the first token and know the first projects
        again, forbidding none (for a simulator shared across tests)."""
        with self.lock:
            self.clear_faults()
            self.calls.clear()
            self.tokens = {self.token}
            self.projects = set(self._first_projects)
            self.forbidden_projects.clear()
