"""Run notifications: the client side.

The WES API POSTs `{"run_id": "<id>"}` to DAEMON_NOTIFICATION_HOST:DAEMON_NOTIFICATION_PORT
after inserting a run and counts only HTTP 200 as success. `send_notification` sends exactly that
request; `notify_daemon` is the drop-in a Python WES API calls. Both use only the standard library
and never raise, because a failed notification must not fail `POST /runs`: the timer submits the
run anyway. The endpoint's handler (`wesctl.notify.handler`) imports this module for the token's
encoding, never the other way round: a WES API importing the client loads nothing of the server.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
from dataclasses import dataclass

from wesctl import __version__

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5001
MAX_ANSWER = 64 * 1024  # the endpoint answers a few dozen bytes; never read more than this


def token_bytes(token: str) -> bytes:
    """The bearer token as it goes on the wire and is compared: UTF-8, on both sides. (A str
    header would be sent as Latin-1, or not at all.) surrogateescape gives back the exact bytes
    of a token read from an environment that is not valid UTF-8."""
    return token.encode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class NotifyResult:
    """What happened to one notification: `ok` only for HTTP 200."""

    ok: bool
    status: int | None = None
    body: str | None = None
    error: str | None = None


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (the endpoint may listen on one, e.g. /run/wesctl/notify.sock)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def send_notification(
    run_id: str,
    *,
    host: str,
    port: int,
    timeout: float = 2.0,
    token: str | None = None,
    unix_socket: str | None = None,
) -> NotifyResult:
    """POST {"run_id": ...} to `host:port` (or `unix_socket`) like the WES API; never raise.

    The request is the one `requests.post(url, json=payload, timeout=2)` sends: same request
    line, header names and order, and the same body bytes; only User-Agent names wesctl and
    Accept-Encoding is `identity` (the answer is read uncompressed). `timeout` applies to the
    connect and to each read, as in requests. `token` is sent as `Authorization: Bearer` in
    UTF-8, which is what the endpoint compares.
    """
    where = f"unix:{unix_socket}" if unix_socket else f"{host}:{port}"
    body = json.dumps({"run_id": run_id}).encode("utf-8")
    connection: http.client.HTTPConnection
    if unix_socket:
        connection = _UnixConnection(unix_socket, timeout)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.putrequest("POST", "/", skip_accept_encoding=True)
        connection.putheader("User-Agent", f"wesctl/{__version__}")
        connection.putheader("Accept-Encoding", "identity")
        connection.putheader("Accept", "*/*")
        connection.putheader("Connection", "keep-alive")
        if token:
            connection.putheader("Authorization", b"Bearer " + token_bytes(token))
        connection.putheader("Content-Length", str(len(body)))
        connection.putheader("Content-Type", "application/json")
        connection.endheaders(body)  # headers and body leave in one packet
        response = connection.getresponse()
        answer = response.read(MAX_ANSWER).decode("utf-8", errors="replace")
    except TimeoutError:
        return NotifyResult(False, error=f"no answer from {where} within {timeout:g} s")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return NotifyResult(False, error=f"cannot notify {where}: {reason}")
    finally:
        connection.close()
    if response.status == 200:
        return NotifyResult(True, response.status, answer)
    return NotifyResult(
        False, response.status, answer, f"HTTP {response.status}: {_error_message(answer)}"
    )


def _error_message(answer: str) -> str:
    """The endpoint's `error` field, else the start of whatever it answered."""
    try:
        payload = json.loads(answer)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        return str(payload["error"])
    return answer.strip()[:200] or "(empty answer)"


def notify_daemon(
    run_id: str, host: str | None = None, port: int | None = None, timeout: float = 2.0
) -> bool:
    """Tell wesctl about a new run, for a Python WES API; True on HTTP 200, never raises.

    Unset arguments come from DAEMON_NOTIFICATION_HOST / DAEMON_NOTIFICATION_PORT (defaults
    127.0.0.1:5001), and the bearer token from WESCTL_NOTIFY_TOKEN.
    """
    host = host or os.environ.get("DAEMON_NOTIFICATION_HOST", "").strip() or DEFAULT_HOST
    if port is None:
        raw = os.environ.get("DAEMON_NOTIFICATION_PORT", "").strip() or str(DEFAULT_PORT)
        try:
            port = int(raw)
        except ValueError:
            logger.warning(
                "run %s not notified: DAEMON_NOTIFICATION_PORT=%r is not a port number; "
                "the timer will submit it",
                run_id,
                raw,
            )
            return False
    token = os.environ.get("WESCTL_NOTIFY_TOKEN", "").strip() or None
    result = send_notification(run_id, host=host, port=port, timeout=timeout, token=token)
    if not result.ok:
        logger.warning("run %s not notified (%s); the timer will submit it", run_id, result.error)
    return result.ok
