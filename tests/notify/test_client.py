"""`send_notification`, `notify_daemon` and `wesctl notify` against a tiny socket server that
records the raw request bytes."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.notify import run_wesctl
from wesctl import __version__
from wesctl.notify import NotifyResult, notify_daemon, send_notification

RUN_ID = "2f1c6b7e-8d7e-4f6a-9a55-3b1f0c2d9e11"
OK_BODY = b'{"status": "accepted"}'


def answer(status: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
    return head.encode() + b"\r\n\r\n" + body


class Recorder:
    """Accepts connections one after another, records each request, answers `reply` (or, when
    it is None, never answers until the test ends)."""

    def __init__(self, sock: socket.socket, reply: bytes | None) -> None:
        self.sock = sock
        self.reply = reply
        self.requests: list[bytes] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.done.is_set():
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            with connection:
                if self.done.is_set():
                    return
                self.requests.append(self._read(connection))
                if self.reply is None:
                    self.done.wait(10)
                else:
                    connection.sendall(self.reply)

    def stop(self) -> None:
        self.done.set()
        family = self.sock.family
        with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_STREAM) as poke:
            poke.connect(self.sock.getsockname())  # wakes the accept() above
        self.thread.join(10)
        self.sock.close()

    @staticmethod
    def _read(connection: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            data += connection.recv(65536)
        match = re.search(rb"\r\nContent-Length: (\d+)\r\n", data)
        length = int(match.group(1)) if match else 0
        while len(data.partition(b"\r\n\r\n")[2]) < length:
            data += connection.recv(65536)
        return data


@contextmanager
def recorder(
    reply: bytes = answer("200 OK", OK_BODY), *, unix_path: str | None = None, silent: bool = False
) -> Iterator[Recorder]:
    if unix_path:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(unix_path)
        sock.listen()
    else:
        sock = socket.create_server(("127.0.0.1", 0))
    sock.settimeout(10)
    server = Recorder(sock, None if silent else reply)
    try:
        yield server
    finally:
        server.stop()


def port_of(server: Recorder) -> int:
    return int(server.sock.getsockname()[1])


def split(raw: bytes) -> tuple[bytes, list[tuple[str, str]], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    request_line, *lines = head.decode("latin-1").split("\r\n")
    headers = [(name, value.strip()) for name, _, value in (line.partition(":") for line in lines)]
    return request_line.encode(), headers, body


def test_request_is_byte_for_byte_what_the_wes_api_sends() -> None:
    with recorder() as server:
        port = port_of(server)
        result = send_notification(RUN_ID, host="127.0.0.1", port=port)
        requests.post(f"http://127.0.0.1:{port}", json={"run_id": RUN_ID}, timeout=2)
    ours, theirs = server.requests
    body = b'{"run_id": "2f1c6b7e-8d7e-4f6a-9a55-3b1f0c2d9e11"}'
    assert ours == (
        b"POST / HTTP/1.1\r\n"
        + f"Host: 127.0.0.1:{port}\r\n".encode()
        + f"User-Agent: wesctl/{__version__}\r\n".encode()
        + b"Accept-Encoding: identity\r\n"
        b"Accept: */*\r\n"
        b"Connection: keep-alive\r\n"
        b"Content-Length: 50\r\n"
        b"Content-Type: application/json\r\n"
        b"\r\n" + body
    )
    # The same as requests' request but for the two headers that name the client's abilities.
    line, headers, sent = split(ours)
    their_line, their_headers, their_body = split(theirs)
    differ = {"User-Agent", "Accept-Encoding"}
    assert (line, sent) == (their_line, their_body)
    assert [name for name, _ in headers] == [name for name, _ in their_headers]
    assert [h for h in headers if h[0] not in differ] == [
        h for h in their_headers if h[0] not in differ
    ]
    assert result == NotifyResult(True, 200, OK_BODY.decode(), None)


def test_token_is_sent_as_a_bearer_header_where_requests_puts_it() -> None:
    with recorder() as server:
        port = port_of(server)
        assert send_notification(RUN_ID, host="127.0.0.1", port=port, token="t0k").ok
        requests.post(
            f"http://127.0.0.1:{port}",
            json={"run_id": RUN_ID},
            headers={"Authorization": "Bearer t0k"},
            timeout=2,
        )
    ours, theirs = (split(raw)[1] for raw in server.requests)
    assert ("Authorization", "Bearer t0k") in ours
    assert [name for name, _ in ours] == [name for name, _ in theirs]


def test_non_ascii_token_is_sent_in_utf8() -> None:
    """The endpoint compares UTF-8 bytes; http.client would send a str header as Latin-1 and
    refuse '€' outright."""
    with recorder() as server:
        assert send_notification(RUN_ID, host="127.0.0.1", port=port_of(server), token="tök€n").ok
    assert b"\r\nAuthorization: Bearer " + "tök€n".encode() + b"\r\n" in server.requests[0]


def test_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with recorder(unix_path=path) as server:
        result = send_notification(RUN_ID, host="unused", port=0, unix_socket=path)
    assert result.ok
    assert ("Host", "localhost") in split(server.requests[0])[1]


def test_refusal_is_not_ok_and_carries_the_error_message() -> None:
    reply = answer("404 Not Found", b'{"error": "no run with id \'x\'"}')
    with recorder(reply) as server:
        result = send_notification("x", host="127.0.0.1", port=port_of(server))
    assert result == NotifyResult(
        False, 404, '{"error": "no run with id \'x\'"}', "HTTP 404: no run with id 'x'"
    )


def test_timeout_returns_quickly_without_raising() -> None:
    with recorder(silent=True) as server:
        port = port_of(server)
        started = time.monotonic()
        result = send_notification(RUN_ID, host="127.0.0.1", port=port, timeout=0.3)
        elapsed = time.monotonic() - started
    assert not result.ok
    assert result.status is None
    assert result.error == f"no answer from 127.0.0.1:{port} within 0.3 s"
    assert elapsed < 1.5


def test_connection_refused_is_not_ok() -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    result = send_notification(RUN_ID, host="127.0.0.1", port=port)
    assert not result.ok
    assert result.error == f"cannot notify 127.0.0.1:{port}: Connection refused"


def test_notify_daemon_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with recorder() as server:
        monkeypatch.setenv("DAEMON_NOTIFICATION_HOST", "127.0.0.1")
        monkeypatch.setenv("DAEMON_NOTIFICATION_PORT", str(port_of(server)))
        monkeypatch.setenv("WESCTL_NOTIFY_TOKEN", "env-token")
        assert notify_daemon(RUN_ID) is True
    _, headers, body = split(server.requests[0])
    assert ("Authorization", "Bearer env-token") in headers
    assert json.loads(body) == {"run_id": RUN_ID}


def test_notify_daemon_failures_are_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    monkeypatch.setenv("DAEMON_NOTIFICATION_PORT", str(port))
    with caplog.at_level(logging.WARNING, logger="wesctl.notify"):
        assert notify_daemon(RUN_ID) is False
        monkeypatch.setenv("DAEMON_NOTIFICATION_PORT", "five-thousand")
        assert notify_daemon(RUN_ID) is False
    lines = [record.getMessage() for record in caplog.records]
    assert f"cannot notify 127.0.0.1:{port}: Connection refused" in lines[0]
    assert "DAEMON_NOTIFICATION_PORT='five-thousand' is not a port number" in lines[1]


def test_the_client_brings_nothing_of_the_endpoint_along() -> None:
    """A WES API imports the client into its own process: the endpoint, the database layer and
    the CLI stay out of it (in a child, so this process's imports do not count)."""
    script = (
        "import sys\n"
        "from wesctl.notify import notify_daemon\n"
        "print(*sorted(m for m in sys.modules if m.split('.')[0] in "
        "('wesctl', 'sqlalchemy', 'typer', 'rich')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["wesctl", "wesctl.notify", "wesctl.notify.client"]


def test_wesctl_notify_command() -> None:
    with recorder() as server:
        env = {"DAEMON_NOTIFICATION_PORT": str(port_of(server))}
        ok = run_wesctl("notify", RUN_ID, env=env)
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.strip() == f"notified: 200 {OK_BODY.decode()}"
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    failed = run_wesctl("notify", RUN_ID, env={"DAEMON_NOTIFICATION_PORT": str(port)})
    assert failed.exit_code == 1
    assert "Connection refused" in failed.stderr
