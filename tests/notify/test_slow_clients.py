"""Slow and idle clients against the endpoint: a client trickling its request or holding an idle
keep-alive connection must not keep the WES API's notification from its 200 within 2 s. The
crowds are real sockets on 127.0.0.1, driven from one thread."""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from tests.notify import (
    add_run,
    assert_still_serving,
    make_settings,
    migrate,
    provider_environ,
    running_server,
    wait_submitted,
)
from wesctl.notify import send_notification
from wesctl.notify.listeners import bind_tcp
from wesctl.notify.serve import FD_RESERVE, allow_open_files
from wesctl.notify.server import MAX_CONNECTIONS
from wesctl.simulated.sevenbridges import SimulatedSevenBridges

REQUEST_LINE = b"POST / HTTP/1.1\r\nHost: x\r\n"
ONE_GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"  # answered 405 at once, then the connection idles


def is_closed(sock: socket.socket) -> bool:
    """Whether the server closed `sock` (whatever it answered before is skipped)."""
    sock.setblocking(False)
    try:
        while data := sock.recv(65536):
            del data
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


class Crowd:
    """`slow` connections that send a request line and then one header line every `interval`
    seconds, reopened when the server closes them (at most `reopen_limit` times in all), and
    `idle` ones that send one GET and then say nothing. One thread; it stops by itself after
    `lifetime` seconds at the latest."""

    def __init__(
        self,
        address: tuple[str, int],
        *,
        slow: int,
        idle: int,
        interval: float = 1.5,
        lifetime: float = 60.0,
    ) -> None:
        self.address = address
        self.interval = interval
        self.lifetime = lifetime
        self.reopen_limit = 20 * slow
        self.reopened = 0
        self.selector = selectors.DefaultSelector()
        self.due: dict[socket.socket, float] = {}  # slow connection -> next header line due
        self.lines = 0
        self.stopping = threading.Event()
        for _ in range(slow):
            self._open_slow()
        self.idle = [self._connect() for _ in range(idle)]
        for sock in self.idle:
            sock.sendall(ONE_GET)
        self.thread = threading.Thread(target=self._trickle, name="slow-crowd", daemon=True)
        self.thread.start()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=10)
        sock.setblocking(False)
        return sock

    def _open_slow(self) -> None:
        sock = self._connect()
        sock.send(REQUEST_LINE)
        self.due[sock] = time.monotonic() + self.interval
        self.selector.register(sock, selectors.EVENT_READ)

    def _drop(self, sock: socket.socket) -> None:
        self.selector.unregister(sock)
        del self.due[sock]
        sock.close()

    def _trickle(self) -> None:
        end = time.monotonic() + self.lifetime
        while not self.stopping.is_set() and time.monotonic() < end:
            for key, _ in self.selector.select(0.05):  # readable: answered or closed
                assert isinstance(key.fileobj, socket.socket)
                if is_closed(key.fileobj):
                    self._drop(key.fileobj)
                    if self.reopened < self.reopen_limit:
                        self.reopened += 1
                        self._open_slow()
            now = time.monotonic()
            for sock, due in list(self.due.items()):
                if due <= now:
                    self.lines += 1
                    with contextlib.suppress(OSError):  # closed: the selector says so next
                        sock.send(b"X-Slow-%d: 1\r\n" % self.lines)
                    self.due[sock] = now + self.interval

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)
        for sock in [*self.due, *self.idle]:
            sock.close()
        self.selector.close()


@contextmanager
def crowd(address: tuple[str, int], *, slow: int, idle: int) -> Iterator[Crowd]:
    held = Crowd(address, slow=slow, idle=idle)
    try:
        yield held
    finally:
        held.stop()
    assert not held.thread.is_alive()


def test_notifications_are_answered_while_500_slow_and_500_idle_clients_hold_on(
    db_url: str, tmp_path: Path, fake: SimulatedSevenBridges
) -> None:
    """The WES API counts only a 200 within 2 s. The crowd stays for the whole test: slow
    connections reopen when closed. The generous client timeout keeps the test about the
    answers, not the machine's speed (bench/notify_slow_clients.py measures the times)."""
    allow_open_files(2200)  # the crowd's sockets and the server's, both in this process
    migrate(db_url)
    settings = make_settings(tmp_path, db_url, fake)
    with running_server(settings, bind_tcp("127.0.0.1", 0)) as running:
        run_ids = [add_run(running.engine) for _ in range(20)]
        host, port = running.address
        with crowd(running.address, slow=500, idle=500):
            time.sleep(0.5)  # every crowd connection is in (or waiting to be)
            with ThreadPoolExecutor(max_workers=len(run_ids)) as pool:
                results = list(
                    pool.map(
                        lambda run_id: send_notification(run_id, host=host, port=port, timeout=10),
                        run_ids,
                    )
                )
            statuses = [result.status for result in results]
            assert statuses == [200] * len(run_ids), [result.error for result in results]
        wait_submitted(running.engine, run_ids, deadline=30)


def test_a_request_trickling_in_is_closed_at_its_deadline(
    sqlite_url: str, tmp_path: Path, fake: SimulatedSevenBridges
) -> None:
    """Every header line comes well within the idle timeout, yet the request as a whole is
    cut off at its deadline."""
    migrate(sqlite_url)
    settings = make_settings(tmp_path, sqlite_url, fake)
    with running_server(
        settings, bind_tcp("127.0.0.1", 0), request_timeout=0.5, idle_timeout=5
    ) as running:
        with socket.create_connection(running.address, timeout=5) as slow:
            slow.sendall(REQUEST_LINE)
            closed = False
            for line in range(50):  # 5 s of header lines, ten times the deadline
                time.sleep(0.1)
                if closed := is_closed(slow):
                    break
                slow.setblocking(True)
                with contextlib.suppress(OSError):
                    slow.sendall(b"X-Slow-%d: 1\r\n" % line)
            assert closed, "the server kept reading a request that never ends"
        assert_still_serving(running)


def test_idle_connections_beyond_the_bound_are_closed_oldest_first(
    sqlite_url: str, tmp_path: Path, fake: SimulatedSevenBridges
) -> None:
    migrate(sqlite_url)
    settings = make_settings(tmp_path, sqlite_url, fake)
    with running_server(settings, bind_tcp("127.0.0.1", 0), max_idle=2, idle_timeout=60) as running:
        connections = []
        for _ in range(4):  # one after the other, each answered before the next opens
            sock = socket.create_connection(running.address, timeout=5)
            sock.sendall(ONE_GET)
            assert sock.recv(65536).startswith(b"HTTP/1.1 405 ")
            connections.append(sock)
        deadline = time.monotonic() + 5
        while not all(is_closed(sock) for sock in connections[:2]):
            assert time.monotonic() < deadline, "the two oldest idle connections stayed open"
            time.sleep(0.01)
        for sock in connections[2:]:  # the two newest still serve requests
            sock.setblocking(True)
            sock.sendall(ONE_GET)
            assert sock.recv(65536).startswith(b"HTTP/1.1 405 ")
        for sock in connections:
            sock.close()


def test_at_the_connection_bound_the_oldest_unfinished_request_makes_room(
    sqlite_url: str, tmp_path: Path, fake: SimulatedSevenBridges
) -> None:
    migrate(sqlite_url)
    settings = make_settings(tmp_path, sqlite_url, fake)
    with running_server(
        settings, bind_tcp("127.0.0.1", 0), max_connections=3, request_timeout=60
    ) as running:
        silent = [socket.create_connection(running.address, timeout=5) for _ in range(3)]
        try:  # the backlog is first in, first out: the three are accepted before the next
            run_id = add_run(running.engine)
            result = send_notification(run_id, host="127.0.0.1", port=running.address[1])
            assert result.ok, result
            assert [is_closed(sock) for sock in silent] == [True, False, False]
            wait_submitted(running.engine, [run_id])
        finally:
            for sock in silent:
                sock.close()


def test_serve_raises_the_soft_open_files_limit_up_to_the_hard_one() -> None:
    """In a child, so this process keeps its own limit: systemd's default soft limit (1024)
    is below what MAX_CONNECTIONS needs; the hard limit caps what can be had."""
    script = """
import resource, sys
from wesctl.notify.serve import allow_open_files
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
print(allow_open_files(500), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300))
print(allow_open_files(500), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    raised, capped = out.stdout.splitlines()
    assert raised == f"500 {500 + FD_RESERVE}"
    assert capped == f"{300 - FD_RESERVE} 300"
    assert f"leaves room for {300 - FD_RESERVE} notification connections, not 500" in out.stderr


def test_serve_notify_started_with_systemds_default_limit_raises_it(
    sqlite_url: str, tmp_path: Path, fake: SimulatedSevenBridges
) -> None:
    """`wesctl serve-notify` in its own process, started with systemd's default soft limit."""
    migrate(sqlite_url)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard == resource.RLIM_INFINITY or hard >= 1024 + MAX_CONNECTIONS, "hard limit too low"
    start = (
        "import os, sys; from resource import RLIMIT_NOFILE as N, getrlimit, setrlimit; "
        "setrlimit(N, (1024, getrlimit(N)[1])); "
        "os.execv(sys.executable, [sys.executable, '-m', 'wesctl', *sys.argv[1:]])"
    )
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DATABASE_URI": sqlite_url,
        **provider_environ(fake),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            start,
            "serve-notify",
            "--listen",
            "127.0.0.1:0",
            "--idle-exit",
            "0.5",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    wanted = MAX_CONNECTIONS + FD_RESERVE
    assert f"open files limit raised from 1024 to {wanted}" in result.stderr
