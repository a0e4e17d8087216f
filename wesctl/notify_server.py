"""The notification endpoint behind `wesctl serve-notify`.

The WES API waits for our answer inside its own `POST /runs` (2 s timeout, only 200 counts), so a
notification is validated, the run looked up, and 200 sent at once; submission happens afterwards
in a few worker threads through `submit_one`, the same claim the timer uses, so a notification
racing a timer run never submits twice. A run that cannot be submitted now (cap reached, provider
down) stays QUEUED for the timer; nothing here retries. Answers come first: lookups waiting at the
same moment share one query, and submissions hold back briefly while requests are being answered.

Sockets, in order: `--listen`, the sockets systemd passes (socket activation, Accept=no; every
one is served), else DAEMON_NOTIFICATION_HOST:DAEMON_NOTIFICATION_PORT. Each connection gets a
thread (HTTP/1.1 keep-alive, pipelining). The process exits 0 after `idle_exit` seconds without
requests or pending work so systemd can start it again on the next connection; it never accepts a
connection it will not answer, so connections arriving meanwhile wait in the socket's backlog.
SIGTERM: stop accepting, answer what was received (requests still arriving get until their
deadline), finish the submissions in progress, leave the queued ones to the timer, exit 0.

Slow and idle clients cannot crowd out the WES API, whose notification arrives in one packet:
- a request must arrive in full, headers and body, within REQUEST_TIMEOUT (3 s) of its start (the
  accept, or its first byte on a kept-alive connection), else the connection is closed: a client
  trickling a header line now and then holds a thread for 3 s, not for ever;
- a kept-alive connection may wait IDLE_TIMEOUT (5 s) for its next request, and at most MAX_IDLE
  (128) connections wait at once: beyond that the oldest idle one is closed;
- at most MAX_CONNECTIONS (1024) connections are served at once; a new one makes room by closing
  the oldest idle connection, else the oldest incomplete request, so a complete notification is
  accepted and answered at once whatever the others do (only requests being answered are never
  closed; if all 1024 are, the new one waits in the backlog).
Each connection is a file descriptor: `serve` raises the soft RLIMIT_NOFILE (systemd's default is
1024) up to the hard limit for MAX_CONNECTIONS + FD_RESERVE, and serves fewer connections, with a
warning, when the hard limit is lower.
"""

from __future__ import annotations

import contextlib
import enum
import hmac
import io
import json
import logging
import os
import queue
import resource
import selectors
import signal
import socket
import stat
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from types import FrameType
from typing import Any

from wesctl import __version__
from wesctl.config import Settings
from wesctl.db import runs as run_queries
from wesctl.db.engine import database_errors
from wesctl.db.tables import RUN_ID_LENGTH
from wesctl.domain.states import RunState
from wesctl.errors import ConfigError, DatabaseUnavailable, SchemaError, WesctlError
from wesctl.notify import token_bytes
from wesctl.services.runtime import Runtime
from wesctl.services.submit import submit_runs

logger = logging.getLogger(__name__)

MAX_BODY = 4096  # a notification is ~60 bytes; anything near this is not one
# Seconds for a whole request (headers and body) to arrive. The WES API sends it in one packet and
# gives up after 2 s, so nothing it still waits for is cut; a trickling client is.
REQUEST_TIMEOUT = 3.0
IDLE_TIMEOUT = 5.0  # seconds a kept-alive connection may wait for its next request
# Idle keep-alive connections kept open; beyond, the oldest is closed. The WES API keeps at most
# one per worker process or thread, a few dozen at most.
MAX_IDLE = 128
# Connections served at once, one thread each: room for a thousand slow or idle clients. A new
# connection beyond it closes the oldest idle one, else the oldest incomplete request.
MAX_CONNECTIONS = 1024
MAX_CLOSING = 32  # connections we closed whose threads may still be ending (then: backlog)
# Descriptors besides connections: listeners, database, provider clients, logs, MAX_CLOSING.
FD_RESERVE = 96
SHUTDOWN_GRACE = 5.0  # seconds to let requests already received be answered
ANSWER_QUIET = 0.05  # seconds with no request in flight before the next run is submitted
SUBMIT_HOLD = 2.0  # ...but a run waits at most this long for such a quiet moment
SUBMIT_BATCH = 32  # notified runs one worker claims together (one claim transaction)
SD_LISTEN_FDS_START = 3

RunLookup = tuple[str, bool] | None  # (state, awaiting submission), None: no such run


# --- sockets ----------------------------------------------------------------------------------


@dataclass
class Listener:
    """A listening socket; `owned` ones (bound by us, not systemd) are closed when we stop."""

    sock: socket.socket
    label: str
    owned: bool
    unix_path: str | None = None
    closed: bool = field(default=False, repr=False)

    def close(self) -> None:
        if not self.owned or self.closed:
            return
        self.closed = True
        self.sock.close()
        if self.unix_path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.unix_path)


def _reason(exc: OSError) -> str:
    """The system's words for an error, without what Python appended to them."""
    if exc.errno and exc.errno > 0 and not isinstance(exc, socket.gaierror):
        return os.strerror(exc.errno)
    return exc.strerror or str(exc)


def describe(sock: socket.socket) -> str:
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        if isinstance(address, bytes):  # abstract namespace
            return "unix:@" + address[1:].decode(errors="replace")
        return f"unix:{address or '<unnamed>'}"
    if sock.family == socket.AF_INET6:
        return f"[{address[0]}]:{address[1]}"
    return f"{address[0]}:{address[1]}"


def systemd_listeners() -> list[Listener]:
    """The sockets systemd passed us (sd_listen_fds protocol), or [] when not socket-activated."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []  # not activated, or the variables were meant for a parent process
    raw_count = os.environ.get("LISTEN_FDS", "")
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(var, None)  # children must not think they were activated
    try:
        count = int(raw_count)
    except ValueError:
        raise ConfigError(f"LISTEN_FDS={raw_count!r} from systemd is not a number") from None
    listeners = []
    for index in range(count):
        fd = SD_LISTEN_FDS_START + index
        name = names[index] if index < len(names) and names[index] else "unnamed"
        try:
            os.set_inheritable(fd, False)  # systemd passes them without CLOEXEC
            sock = socket.socket(fileno=fd)  # family and type come from the fd
            listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        except OSError as exc:
            raise ConfigError(f"systemd fd {fd} ({name}) is unusable: {_reason(exc)}") from exc
        if sock.type != socket.SOCK_STREAM or not listening:
            raise ConfigError(
                f"systemd fd {fd} ({name}) is not a listening stream socket; the socket unit "
                "must use ListenStream= with Accept=no"
            )
        listeners.append(Listener(sock, f"{describe(sock)} (systemd fd {fd} {name})", owned=False))
    return listeners


def bind_tcp(host: str, port: int) -> Listener:
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.create_server(address, family=family, backlog=socket.SOMAXCONN)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {_reason(exc)}") from exc
    return Listener(sock, describe(sock), owned=True)


def bind_unix(path: str) -> Listener:
    """Listen on a unix socket at `path`, replacing a stale socket left by a dead process."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(path)
                except ConnectionRefusedError:
                    os.unlink(path)  # nobody listens: stale
                else:
                    raise ConfigError(f"cannot listen on {path}: another process is serving it")
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot listen on {path}: {_reason(exc)}") from exc
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {path}: {_reason(exc)}") from exc
    return Listener(sock, f"unix:{path}", owned=True, unix_path=path)


def bind_listen_option(text: str) -> Listener:
    """Bind `--listen`: HOST:PORT ([::1]:PORT for IPv6), or a unix socket path containing '/'."""
    text = text.strip()
    if "/" in text:
        return bind_unix(text)
    host, _, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not _is_number(port) or int(port) > 65535:
        raise ConfigError(
            f"--listen {text!r} is not HOST:PORT (e.g. 127.0.0.1:5001) or a unix socket path "
            "(e.g. /run/wesctl/notify.sock)"
        )
    return bind_tcp(host, int(port))


def open_listeners(settings: Settings, listen: str | None) -> list[Listener]:
    if listen is not None:
        return [bind_listen_option(listen)]
    return systemd_listeners() or [bind_tcp(settings.notification_host, settings.notification_port)]


# --- requests ---------------------------------------------------------------------------------


def run_id_problem(run_id: Any) -> str | None:
    """What makes `run_id` impossible as a run id (the column is VARCHAR(36)), or None."""
    if run_id is None:
        return "run_id is missing"
    if not isinstance(run_id, str):
        return "run_id must be a string"
    if not run_id:
        return "run_id is empty"
    if len(run_id) > RUN_ID_LENGTH:
        return f"run_id is longer than {RUN_ID_LENGTH} characters"
    if not run_id.isprintable():
        return "run_id contains control characters"
    return None


def _is_number(text: str) -> bool:
    """ASCII digits only (str.isdigit also accepts '²', which int() refuses)."""
    return text.isascii() and text.isdigit()


def _printable(text: str, limit: int = 80) -> str:
    """`text` safe for a one-line log: control characters replaced, length capped."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in text[:limit])
    return cleaned + ("..." if len(text) > limit else "")


class Phase(enum.Enum):
    """What a connection is doing; the server closes idle and receiving ones, oldest first."""

    RECEIVING = "receiving"  # a request has started (accept or first byte), not yet complete
    ANSWERING = "answering"  # its headers are in: it is being answered
    IDLE = "idle"  # answered; waiting for the next request on the kept-alive connection


class IdleTimeout(TimeoutError):
    """A kept-alive connection waited IDLE_TIMEOUT for its next request: routine, not an error."""


class RequestReader(io.RawIOBase):
    """A connection's input, read against two clocks: a request must arrive in full by its
    deadline (request_timeout after its start), and between requests the connection may wait
    idle_timeout. The stdlib's per-read timeout alone let a client that sends a byte now and then
    hold its connection for ever."""

    def __init__(self, connection: socket.socket, server: NotifyServer, accepted: float) -> None:
        super().__init__()
        self.connection = connection
        self.server = server
        self.deadline: float | None = accepted + server.request_timeout  # the first request

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.deadline is None:
            timeout = self.server.idle_timeout
            expired: TimeoutError = IdleTimeout(f"idle for {timeout:g} s")
        else:
            timeout = self.deadline - time.monotonic()
            expired = TimeoutError(
                f"request not received in full within {self.server.request_timeout:g} s"
            )
            if timeout <= 0:
                raise expired
        self.connection.settimeout(timeout)
        try:
            count = self.connection.recv_into(buffer)
        except TimeoutError:
            raise expired from None
        finally:
            self.connection.settimeout(self.server.idle_timeout)  # what writes wait at most
        if count and self.deadline is None:  # the first byte of the next request
            self.deadline = time.monotonic() + self.server.request_timeout
            self.server.mark(self.connection, Phase.RECEIVING)
        return count

    def request_done(self) -> None:
        """The request was answered: the connection is idle until a byte of the next one."""
        self.deadline = None


class NotifyHandler(BaseHTTPRequestHandler):
    """One connection: any number of requests, each answered with a small JSON body."""

    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # so even a garbled request line gets a status line
    wbufsize = -1  # buffered: headers and body leave in one send, flushed per response

    def __init__(
        self,
        connection: socket.socket,
        client_address: Any,
        server: NotifyServer,
        accepted: float,
    ) -> None:
        # BaseRequestHandler.__init__, minus the socketserver.BaseServer it expects.
        self.endpoint = server
        self.request = connection
        self.client_address = client_address
        self.started = time.monotonic()
        self.run_id: str | None = None
        self.reader = RequestReader(connection, server, accepted)
        self.setup()
        try:
            self.handle()
        finally:
            self.finish()

    def setup(self) -> None:
        """StreamRequestHandler.setup, reading through the RequestReader's deadlines."""
        self.connection = self.request
        self.connection.settimeout(self.endpoint.idle_timeout)
        if self.connection.family in (socket.AF_INET, socket.AF_INET6):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = io.BufferedReader(self.reader)
        self.wfile = self.connection.makefile("wb", self.wbufsize)

    def parse_request(self) -> bool:
        """Called once a request line has arrived; once its headers are in too, it is being
        answered (and counts as in flight for the submissions' quiet moments)."""
        self.started = time.monotonic()
        self.run_id = None
        if not super().parse_request():
            return False
        self.endpoint.mark(self.connection, Phase.ANSWERING)
        return True

    def handle_expect_100(self) -> bool:
        accepted = super().handle_expect_100()
        self.wfile.flush()
        return accepted

    # --- methods ----------------------------------------------------------------------
    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/":
            self._discard_body()
            self._error(HTTPStatus.NOT_FOUND, "no such path; notifications are POSTed to /")
            return
        if not self._authorized():
            self._discard_body()
            self._error(
                HTTPStatus.UNAUTHORIZED,
                "missing or wrong bearer token",
                {"WWW-Authenticate": "Bearer"},
            )
            return
        body = self._read_body()
        if body is None:
            return
        run_id = self._run_id_of(body)
        if run_id is None:
            return
        self.run_id = run_id
        self._notify(run_id)

    def _not_allowed(self) -> None:
        self._discard_body()
        self._error(
            HTTPStatus.METHOD_NOT_ALLOWED,
            f"method {self.command} not allowed; send POST /",
            {"Allow": "POST"},
        )

    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed  # noqa: N815

    # --- steps of a notification --------------------------------------------------------
    def _authorized(self) -> bool:
        token = self.endpoint.token
        if token is None:
            return True
        scheme, _, value = self.headers.get("Authorization", "").partition(" ")
        # The header's bytes as sent (the stdlib decoded them as Latin-1), with only ASCII
        # blanks stripped: str.strip() would also take \xa0 and \x85, which end UTF-8 characters.
        sent = value.encode("latin-1").strip(b" \t")
        return scheme.lower() == "bearer" and hmac.compare_digest(sent, token_bytes(token))

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding") is not None:
            self.close_connection = True
            self._error(
                HTTPStatus.BAD_REQUEST, "chunked bodies are not accepted; send Content-Length"
            )
            return None
        lengths = set(self.headers.get_all("Content-Length") or ())
        if not lengths:
            self._error(HTTPStatus.BAD_REQUEST, 'no body; send {"run_id": "<id>"} as JSON')
            return None
        raw = lengths.pop()
        if lengths or not _is_number(raw.strip()):
            self.close_connection = True
            self._error(HTTPStatus.BAD_REQUEST, "invalid Content-Length")
            return None
        length = int(raw)
        if length > MAX_BODY:
            self.close_connection = True
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
            return None
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            self._error(HTTPStatus.BAD_REQUEST, "body shorter than its Content-Length")
            return None
        return body

    def _discard_body(self) -> None:
        """Read a small body we do not need so the connection can be reused; else close it."""
        raw = self.headers.get("Content-Length", "0").strip()
        chunked = self.headers.get("Transfer-Encoding") is not None
        if not chunked and _is_number(raw) and int(raw) <= MAX_BODY:
            self.rfile.read(int(raw))
        else:
            self.close_connection = True

    def _run_id_of(self, body: bytes) -> str | None:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
            self._error(HTTPStatus.BAD_REQUEST, "body is not valid JSON")
            return None
        if not isinstance(payload, dict):
            self._error(HTTPStatus.BAD_REQUEST, 'body must be a JSON object: {"run_id": "<id>"}')
            return None
        run_id = payload.get("run_id")
        problem = run_id_problem(run_id)
        if problem is not None:
            self._error(HTTPStatus.BAD_REQUEST, problem)
            return None
        assert isinstance(run_id, str)
        return run_id

    def _notify(self, run_id: str) -> None:
        if self.endpoint.is_pending(run_id):  # a duplicate: no need to ask the database again
            self._reply(HTTPStatus.OK, {"status": "accepted", "run_id": run_id})
            return
        try:
            found = self.endpoint.lookup(run_id)
        except (DatabaseUnavailable, SchemaError) as exc:
            self._error(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "database unavailable; the timer will submit the run",
                detail=exc.message,
            )
            return
        except Exception:
            logger.exception("unexpected error looking up run=%s", run_id)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
            return
        if found is None:
            self._error(HTTPStatus.NOT_FOUND, f"no run with id {run_id!r}")
            return
        state, awaiting_submission = found
        if awaiting_submission:
            self.endpoint.enqueue(run_id)
            self._reply(HTTPStatus.OK, {"status": "accepted", "run_id": run_id})
        else:  # already submitted or finished: nothing to do, and not the sender's problem
            self._reply(HTTPStatus.OK, {"status": "ignored", "run_id": run_id, "state": state})

    # --- answers and logs ---------------------------------------------------------------
    def _error(
        self,
        status: HTTPStatus,
        message: str,
        headers: Mapping[str, str] | None = None,
        detail: str | None = None,
    ) -> None:
        self._reply(status, {"error": message}, headers, log=detail or message)

    def _reply(
        self,
        status: int,
        body: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
        log: str | None = None,
    ) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.wfile.flush()
        self.reader.request_done()
        self.endpoint.mark(self.connection, Phase.IDLE)
        logger.log(
            logging.WARNING if status >= 500 else logging.INFO,
            "%s %s %d run=%s %.1fms client=%s%s",
            self.command or "-",
            _printable(getattr(self, "path", "") or "-"),
            status,
            self.run_id or "-",
            (time.monotonic() - self.started) * 1000,
            self.address_string(),
            f" error={_printable(log, 200)!r}" if log else "",
        )

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own rejections (bad request line, unknown method...) as JSON too."""
        self.close_connection = True
        self._error(HTTPStatus(code), message or HTTPStatus(code).phrase)

    def version_string(self) -> str:
        return f"wesctl/{__version__}"

    def address_string(self) -> str:
        # A unix socket's peer address is '' (or b''); the stdlib would fail on it.
        if isinstance(self.client_address, tuple) and len(self.client_address) >= 2:
            return f"{self.client_address[0]}:{self.client_address[1]}"
        return "unix"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """_reply logs every answer itself."""

    def log_error(self, format: str, *args: Any) -> None:
        """The stdlib calls this only when a read or write timed out, closing the connection."""
        reason = args[0] if args else None
        logger.log(
            logging.DEBUG if isinstance(reason, IdleTimeout) else logging.INFO,
            "client=%s: %s; connection closed",
            self.address_string(),
            reason if isinstance(reason, TimeoutError) else "timed out",
        )

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("client=%s: %s", self.address_string(), _printable(format % args, 200))


# --- the server -------------------------------------------------------------------------------


class NotifyServer:
    """Accepts on every listener, answers each connection in a thread, submits in workers."""

    def __init__(
        self,
        runtime: Runtime,
        listeners: Sequence[Listener],
        *,
        idle_exit: float,
        token: str | None,
        workers: int,
        request_timeout: float = REQUEST_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        max_idle: int = MAX_IDLE,
    ) -> None:
        self.runtime = runtime
        self.listeners = list(listeners)
        self.idle_exit = idle_exit
        self.token = token
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self.max_connections = max(1, max_connections)
        self.max_idle = max_idle
        self._worker_count = max(1, workers)
        self._work: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._changed = threading.Condition()  # guards everything below
        self._pending: set[str] = set()  # queued or being submitted
        self._open = 0  # connections with a thread, closing ones included
        # Open connections by phase, each dict oldest first (a dict keeps insertion order).
        self._phases: dict[Phase, dict[socket.socket, None]] = {phase: {} for phase in Phase}
        self._closing: set[socket.socket] = set()  # shut down by us, their thread still ending
        self._last_activity = time.monotonic()
        self._last_answer = time.monotonic()  # a request started or was answered
        self._stop_requested = False
        self._exit_reason = ""
        self._lookups: dict[str, list[Future[RunLookup]]] = {}  # waiting for the next query
        self._query_lock = threading.Lock()
        self._wake_read, self._wake_write = socket.socketpair()

    @property
    def addresses(self) -> list[str]:
        return [listener.label for listener in self.listeners]

    def stop(self, reason: str = "stop requested") -> None:
        """Ask run() to finish (safe from a signal handler or another thread)."""
        self._exit_reason = reason
        self._stop_requested = True
        with contextlib.suppress(OSError):
            self._wake_write.send(b"\0")

    # --- bookkeeping used by handlers and workers ----------------------------------------
    def mark(self, connection: socket.socket, phase: Phase) -> None:
        """Record that `connection` entered `phase` (as its newest member); a connection we
        closed stays out. Beyond `max_idle` idle connections, the oldest is closed."""
        with self._changed:
            if connection in self._closing:
                return
            for connections in self._phases.values():
                connections.pop(connection, None)
            self._phases[phase][connection] = None
            self._last_activity = time.monotonic()
            if phase is not Phase.RECEIVING:  # an answer started or ended
                self._last_answer = self._last_activity
            while len(self._phases[Phase.IDLE]) > self.max_idle:
                self._close_oldest(Phase.IDLE, f"more than {self.max_idle} idle connections")
            self._changed.notify_all()

    def _close_oldest(self, phase: Phase, reason: str) -> None:
        """Shut the oldest connection in `phase` down; its thread sees the end and exits.
        Call with self._changed held."""
        connection = next(iter(self._phases[phase]))
        del self._phases[phase][connection]
        self._closing.add(connection)
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)
        logger.debug("closed the oldest %s connection: %s", phase.value, reason)

    def is_pending(self, run_id: str) -> bool:
        with self._changed:
            return run_id in self._pending

    def enqueue(self, run_id: str) -> None:
        """Queue `run_id` for submission unless it is already queued or being submitted."""
        with self._changed:
            if run_id in self._pending:
                return
            self._pending.add(run_id)
        self._work.put(run_id)

    def lookup(self, run_id: str) -> RunLookup:
        """(state, awaiting submission) of the run, or None if there is no such run.

        One query at a time answers every lookup waiting at that moment: a burst of
        notifications costs a few queries instead of one transaction each (on SQLite every
        transaction takes the write lock, so they would queue behind each other and the
        submissions).
        """
        answer: Future[RunLookup] = Future()
        with self._changed:
            self._lookups.setdefault(run_id, []).append(answer)
        with self._query_lock:
            if not answer.done():  # nobody answered us while we waited: answer everyone
                with self._changed:
                    batch, self._lookups = self._lookups, {}
                try:
                    found = self._query(list(batch))
                except Exception as exc:  # noqa: BLE001 - every waiter re-raises it below
                    for futures in batch.values():
                        for future in futures:
                            future.set_exception(exc)
                else:
                    for waiting_id, futures in batch.items():
                        for future in futures:
                            future.set_result(found.get(waiting_id))
        return answer.result()

    def _query(self, run_ids: list[str]) -> dict[str, RunLookup]:
        with database_errors(), self.runtime.readers() as session:
            found = run_queries.submission_states(session, run_ids)
        queued = RunState.QUEUED.value
        return {
            run_id: (state, state == queued and not submitted)
            for run_id, (state, submitted) in found.items()
        }

    # --- the accept loop -------------------------------------------------------------------
    def run(self) -> int:
        """Serve until idle for `idle_exit` seconds (0: never) or stop(); return 0."""
        workers = [
            threading.Thread(target=self._work_loop, name=f"notify-submit-{n}", daemon=True)
            for n in range(self._worker_count)
        ]
        for worker in workers:
            worker.start()
        selector = selectors.DefaultSelector()
        for listener in self.listeners:
            listener.sock.setblocking(False)
            selector.register(listener.sock, selectors.EVENT_READ, listener)
        selector.register(self._wake_read, selectors.EVENT_READ, None)
        logger.info(
            "serving notifications on %s; idle exit %s; bearer token %s",
            ", ".join(self.addresses),
            f"after {self.idle_exit:g} s" if self.idle_exit > 0 else "never",
            "required" if self.token else "not required",
        )
        try:
            while not self._stop_requested:
                for key, _ in selector.select(self._select_timeout()):
                    if key.data is not None:
                        self._accept(key.data.sock)
                if self._idle():
                    self._exit_reason = f"idle for {self.idle_exit:g} s"
                    break
        finally:
            selector.close()
            self._shut_down(workers)
        return 0

    def _select_timeout(self) -> float | None:
        if self.idle_exit <= 0:
            return None
        with self._changed:
            remaining = self.idle_exit - (time.monotonic() - self._last_activity)
        return min(0.5, remaining) if remaining > 0 else 0.1  # busy: look again soon

    def _idle(self) -> bool:
        if self.idle_exit <= 0:
            return False
        with self._changed:
            if self._pending or self._phases[Phase.ANSWERING] or self._phases[Phase.RECEIVING]:
                return False
            return time.monotonic() - self._last_activity >= self.idle_exit

    def _accept(self, listening: socket.socket) -> None:
        """Accept every connection waiting in the backlog: one per wakeup would make each wait
        for this thread to win the GIL back from the handlers of the ones before it."""
        while self._accept_one(listening):
            pass

    def _accept_one(self, listening: socket.socket) -> bool:
        if not self._room_to_accept():
            return False  # the connection waits in the backlog
        try:
            connection, address = listening.accept()
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            logger.warning("accept on %s failed: %s", describe(listening), _reason(exc))
            return False
        accepted = time.monotonic()
        with self._changed:
            if self._open - len(self._closing) >= self.max_connections:
                # Make room: the oldest idle connection, else the oldest incomplete request. A
                # request that arrives whole is answered at once, so it is never the oldest.
                reason = f"{self.max_connections} connections open"
                if self._phases[Phase.IDLE]:
                    self._close_oldest(Phase.IDLE, reason)
                elif self._phases[Phase.RECEIVING]:
                    self._close_oldest(Phase.RECEIVING, reason)
            self._open += 1
            self._phases[Phase.RECEIVING][connection] = None  # its first request starts now
            self._last_activity = accepted
        threading.Thread(
            target=self._serve_connection,
            args=(connection, address, accepted),
            name="notify-connection",
            daemon=True,
        ).start()
        return True

    def _room_to_accept(self) -> bool:
        """False while every connection is being answered (nothing may be closed to make room),
        or while the threads of MAX_CLOSING connections we closed are still ending: descriptors
        stay within max_connections + MAX_CLOSING."""
        with self._changed:
            full = self._open - len(self._closing) >= self.max_connections
            if (full and not self._phases[Phase.IDLE] and not self._phases[Phase.RECEIVING]) or (
                len(self._closing) >= MAX_CLOSING
            ):
                self._changed.wait(0.1)
                return False
            return True

    def _serve_connection(self, connection: socket.socket, address: Any, accepted: float) -> None:
        try:
            NotifyHandler(connection, address, self, accepted)
        except OSError as exc:  # the client went away mid-answer
            logger.info("connection ended: %s", _reason(exc))
        except Exception:
            logger.exception("unexpected error serving a notification connection")
        finally:
            with self._changed:
                for connections in self._phases.values():
                    connections.pop(connection, None)
                self._closing.discard(connection)
                self._open -= 1
                self._last_activity = time.monotonic()
                self._changed.notify_all()
            connection.close()

    def _shut_down(self, workers: list[threading.Thread]) -> None:
        """Stop accepting, answer what was received, close idle connections, drain workers."""
        for listener in self.listeners:
            listener.close()  # only our own; systemd's sockets keep their backlog for the next us
        deadline = time.monotonic() + SHUTDOWN_GRACE
        with self._changed:
            while self._open and time.monotonic() < deadline:
                while self._phases[Phase.IDLE]:  # waiting for a next request we will not read
                    self._close_oldest(Phase.IDLE, "stopping")
                self._changed.wait(0.1)
        left = self._drop_queued() if self._stop_requested else 0
        for _ in workers:
            self._work.put(None)
        for worker in workers:
            worker.join()
        self._wake_read.close()
        self._wake_write.close()
        logger.info(
            "notification endpoint exiting (%s)%s",
            self._exit_reason,
            f"; {left} notified runs left QUEUED for the timer" if left else "",
        )

    def _drop_queued(self) -> int:
        """On stop, runs not yet started stay QUEUED in the database; the timer submits them."""
        dropped = 0
        while True:
            try:
                run_id = self._work.get_nowait()
            except queue.Empty:
                return dropped
            if run_id is not None:
                dropped += 1
                with self._changed:
                    self._pending.discard(run_id)

    # --- submission ------------------------------------------------------------------------
    def _work_loop(self) -> None:
        while (run_id := self._work.get()) is not None:
            batch, stop = self._take_more(run_id)
            try:
                self._answers_first()  # the claim is a write transaction: not mid-burst either
                self._submit(batch)
            finally:
                with self._changed:
                    self._pending.difference_update(batch)
                    self._last_activity = time.monotonic()
                    self._changed.notify_all()
            if stop:
                return

    def _take_more(self, first: str) -> tuple[list[str], bool]:
        """Join the runs already waiting to `first` (up to SUBMIT_BATCH); True if a stop
        sentinel was taken, which ends this worker after the batch."""
        batch = [first]
        while len(batch) < SUBMIT_BATCH:
            try:
                item = self._work.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _answers_first(self) -> None:
        """Before each run is submitted, wait for a quiet moment (no request in flight for
        ANSWER_QUIET), at most SUBMIT_HOLD: a submission is CPU-heavy (provider SDK, database)
        and during a burst it would slow the answers the WES API is waiting for. A lone
        notification waits ANSWER_QUIET; a flood still gets a run submitted per SUBMIT_HOLD.
        It polls instead of waiting on the condition, which every request start and end
        notifies: a worker woken for each of them would take the GIL from the answers."""
        deadline = time.monotonic() + SUBMIT_HOLD
        while (now := time.monotonic()) < deadline:
            with self._changed:
                quiet_for = 0.0 if self._phases[Phase.ANSWERING] else now - self._last_answer
            if quiet_for >= ANSWER_QUIET:
                return
            time.sleep(min(ANSWER_QUIET - quiet_for, deadline - now))

    def _submit(self, run_ids: list[str]) -> None:
        runs = ",".join(run_ids)
        try:
            report = submit_runs(self.runtime, run_ids, before_each=self._answers_first)
        except WesctlError as exc:
            logger.warning("runs=%s not submitted, left for the timer: %s", runs, exc.message)
            return
        except Exception:
            logger.exception("runs=%s not submitted (unexpected error), left for the timer", runs)
            return
        for outcome in report.outcomes:
            logger.info(
                "run=%s notification handled: %s%s",
                outcome.run_id,
                outcome.outcome,
                f" ({outcome.reason})" if outcome.reason else "",
            )


# --- entry point ------------------------------------------------------------------------------


@contextlib.contextmanager
def _stop_on_signals(server: NotifyServer) -> Iterator[None]:
    """SIGTERM (systemd stop) and SIGINT end the server gracefully; only the main thread can."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        server.stop(f"received {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def serve(settings: Settings, *, listen: str | None = None, idle_exit: float | None = None) -> int:
    """Open the sockets and the database, then serve notifications; return the exit code.

    Raises ConfigError (exit 78) when there is no socket to serve, WesctlError subclasses for a
    missing schema. A database that is down at start is not fatal: requests get 503 until it
    is back, rather than systemd restarting us in a loop.
    """
    idle = settings.notify_idle_exit if idle_exit is None else idle_exit
    listeners = open_listeners(settings, listen)
    try:
        runtime = Runtime.open(settings, command="serve-notify", check_schema=False)
        try:
            _check_schema(runtime)
            server = NotifyServer(
                runtime,
                listeners,
                idle_exit=idle,
                token=settings.notify_token.get() if settings.notify_token else None,
                workers=settings.submit_workers,
                max_connections=allow_open_files(MAX_CONNECTIONS),
            )
            with _stop_on_signals(server):
                return server.run()
        finally:
            runtime.close()
    finally:
        for listener in listeners:
            listener.close()


def allow_open_files(connections: int) -> int:
    """Raise the soft limit on open files (RLIMIT_NOFILE) so that `connections` fit beside
    FD_RESERVE, up to the hard limit; return how many connections fit. systemd starts services
    with a soft limit of 1024 and a much higher hard one, which any process may raise to."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + FD_RESERVE
    raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < raised:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        except (OSError, ValueError) as exc:
            logger.warning("cannot raise the open files limit from %d: %s", soft, exc)
        else:
            logger.info("open files limit raised from %d to %d", soft, raised)
            soft = raised
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return connections
    fit = max(1, soft - FD_RESERVE)
    logger.warning(
        "open files limit %d (hard %s) leaves room for %d notification connections, not %d",
        soft,
        "unlimited" if hard == resource.RLIM_INFINITY else hard,
        fit,
        connections,
    )
    return fit


def _check_schema(runtime: Runtime) -> None:
    from wesctl.db import schema

    try:
        with database_errors():
            schema.require_current(runtime.engine)
    except DatabaseUnavailable as exc:
        logger.warning("%s; answering 503 until it is back", exc.message)
