"""One HTTP connection to the notification endpoint: its requests parsed, checked and answered.

A notification is validated, its run looked up, and 200 sent at once (the WES API waits for it
inside its own `POST /runs`, 2 s, only 200 counts); the server submits the run afterwards. Every
answer is a small JSON body. A request must arrive in full, headers and body, within
REQUEST_TIMEOUT of its start (the accept, or its first byte on a kept-alive connection), else the
connection is closed: a client trickling a header line now and then holds its thread for 3 s, not
for ever. Between requests a kept-alive connection may wait IDLE_TIMEOUT.
"""

from __future__ import annotations

import enum
import hmac
import io
import json
import logging
import socket
import time
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol

from wesctl import __version__
from wesctl.db.tables import RUN_ID_LENGTH
from wesctl.errors import DatabaseUnavailable, SchemaError
from wesctl.notify.client import token_bytes

logger = logging.getLogger(__name__)

MAX_BODY = 4096  # a notification is ~60 bytes; anything near this is not one
# Seconds for a whole request (headers and body) to arrive. The WES API sends it in one packet and
# gives up after 2 s, so nothing it still waits for is cut; a trickling client is.
REQUEST_TIMEOUT = 3.0
IDLE_TIMEOUT = 5.0  # seconds a kept-alive connection may wait for its next request

RunLookup = tuple[str, bool] | None  # (state, awaiting submission), None: no such run


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


def is_ascii_digits(text: str) -> bool:
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


class Server(Protocol):
    """What a connection's handler asks of the server that accepted it (a NotifyServer)."""

    token: str | None
    request_timeout: float
    idle_timeout: float

    def mark(self, connection: socket.socket, phase: Phase) -> None: ...

    def is_pending(self, run_id: str) -> bool: ...

    def lookup(self, run_id: str) -> RunLookup: ...

    def enqueue(self, run_id: str) -> None: ...


class RequestReader(io.RawIOBase):
    """A connection's input, read against two clocks: a request must arrive in full by its
    deadline (request_timeout after its start), and between requests the connection may wait
    idle_timeout. The stdlib's per-read timeout alone let a client that sends a byte now and then
    hold its connection for ever."""

    def __init__(self, connection: socket.socket, server: Server, accepted: float) -> None:
        super().__init__()
        self.connection = connection
        self.notify_server = server
        self.deadline: float | None = accepted + server.request_timeout  # the first request

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.deadline is None:
            timeout = self.notify_server.idle_timeout
            expired: TimeoutError = IdleTimeout(f"idle for {timeout:g} s")
        else:
            timeout = self.deadline - time.monotonic()
            expired = TimeoutError(
                f"request not received in full within {self.notify_server.request_timeout:g} s"
            )
            if timeout <= 0:
                raise expired
        self.connection.settimeout(timeout)
        try:
            count = self.connection.recv_into(buffer)
        except TimeoutError:
            raise expired from None
        finally:
            self.connection.settimeout(self.notify_server.idle_timeout)  # what writes wait at most
        if count and self.deadline is None:  # the first byte of the next request
            self.deadline = time.monotonic() + self.notify_server.request_timeout
            self.notify_server.mark(self.connection, Phase.RECEIVING)
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
        server: Server,
        accepted: float,
    ) -> None:
        # BaseRequestHandler.__init__, minus the socketserver.BaseServer it expects.
        self.notify_server = server
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
        self.connection.settimeout(self.notify_server.idle_timeout)
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
        self.notify_server.mark(self.connection, Phase.ANSWERING)
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
        token = self.notify_server.token
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
        if lengths or not is_ascii_digits(raw.strip()):
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
        if not chunked and is_ascii_digits(raw) and int(raw) <= MAX_BODY:
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
        if self.notify_server.is_pending(run_id):  # a duplicate: no need to ask the database again
            self._reply(HTTPStatus.OK, {"status": "accepted", "run_id": run_id})
            return
        try:
            found = self.notify_server.lookup(run_id)
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
            self.notify_server.enqueue(run_id)
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
        self._reply(status, {"error": message}, headers, logged_error=detail or message)

    def _reply(
        self,
        status: int,
        body: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
        logged_error: str | None = None,
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
        self.notify_server.mark(self.connection, Phase.IDLE)
        logger.log(
            logging.WARNING if status >= 500 else logging.INFO,
            "%s %s %d run=%s %.1fms client=%s%s",
            self.command or "-",
            _printable(getattr(self, "path", "") or "-"),
            status,
            self.run_id or "-",
            (time.monotonic() - self.started) * 1000,
            self.address_string(),
            f" error={_printable(logged_error, 200)!r}" if logged_error else "",
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
