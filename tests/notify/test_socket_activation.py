"""`wesctl serve-notify` as systemd runs it, without systemd as PID 1: started by
`systemd-socket-activate` on the first connection, and with sockets passed by hand the way
systemd passes them (fds from 3, LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES)."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine

from tests.notify import add_run, migrate, provider_environ, wait_submitted
from wesctl.notify import NotifyResult, send_notification
from wesctl.simulated.sevenbridges import SimulatedSevenBridges

SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")
SERVE = [sys.executable, "-m", "wesctl", "serve-notify"]


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    migrate(sqlite_url)
    engine = create_engine(sqlite_url)
    yield engine
    engine.dispose()


def daemon_environ(tmp_path: Path, sqlite_url: str, fake: SimulatedSevenBridges) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "NO_PROXY": "127.0.0.1,localhost",
        "DATABASE_URI": sqlite_url,
        **provider_environ(fake),
    }


@contextmanager
def daemon(
    args: list[str], env: Mapping[str, str], log: Path, **popen: Any
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a child with stderr in `log`; it is killed if still running when the test ends."""
    with log.open("wb") as stderr:
        process = subprocess.Popen(args, env=dict(env), stderr=stderr, **popen)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def notify_when_listening(run_id: str, port: int, process: subprocess.Popen[bytes]) -> NotifyResult:
    """Send the notification as soon as something listens; a cold start may take a while."""
    deadline = time.monotonic() + 15
    while True:
        result = send_notification(run_id, host="127.0.0.1", port=port, timeout=15)
        if "Connection refused" not in (result.error or ""):
            return result
        assert process.poll() is None, "the daemon ended before it listened"
        assert time.monotonic() < deadline, "nothing listened"
        time.sleep(0.02)


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


@pytest.mark.skipif(SOCKET_ACTIVATE is None, reason="systemd-socket-activate is not installed")
def test_started_by_systemd_socket_activate_on_first_connection(
    tmp_path: Path, sqlite_url: str, engine: Engine, fake: SimulatedSevenBridges
) -> None:
    assert SOCKET_ACTIVATE is not None
    run_id = add_run(engine)
    port = free_port()
    env = daemon_environ(tmp_path, sqlite_url, fake)
    passed = [arg for name in env for arg in ("-E", name)]  # values come from our environment
    args = [SOCKET_ACTIVATE, "-l", f"127.0.0.1:{port}", "--fdname=notify", *passed, *SERVE]
    log = tmp_path / "stderr.log"
    with daemon([*args, "--idle-exit", "1"], env, log) as process:
        sent = time.monotonic()
        result = notify_when_listening(run_id, port, process)
        answered = time.monotonic() - sent
        assert result.ok, (result, log.read_text())
        provider_ids = wait_submitted(engine, [run_id], deadline=5)
        at_provider = time.monotonic() - sent
        print(f"cold start: 200 after {answered:.3f} s, at the provider after {at_provider:.3f} s")
        assert answered < 2.0, "the WES API's 2 s notification timeout includes the cold start"
        assert fake.runs_for(run_id) == [provider_ids[run_id]]
        assert process.wait(10) == 0  # exited by itself once idle
    stderr = log.read_text()
    assert f"serving notifications on 127.0.0.1:{port} (systemd fd 3 notify)" in stderr
    assert "exiting (idle for 1 s)" in stderr


def test_sockets_passed_like_systemd_every_fd_is_served(
    tmp_path: Path, sqlite_url: str, engine: Engine, fake: SimulatedSevenBridges
) -> None:
    """The §1.6 fixture: fds 3 and 4 set up in a shell that then execs the daemon, so
    LISTEN_PID=$$ is the daemon's pid. Both sockets stay open in this process, like systemd's."""
    tcp = socket.create_server(("127.0.0.1", 0))
    unix_path = str(tmp_path / "notify.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(unix_path)
    unix.listen()
    port = tcp.getsockname()[1]
    script = (
        'exec 3<&"$TCP_FD" 4<&"$UNIX_FD" {TCP_FD}<&- {UNIX_FD}<&- && '
        'LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=notify:notify-unix exec "$@"'
    )
    # Copies numbered 10 and up, so that moving them to 3 and 4 cannot clobber one another.
    fds = tuple(fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, 10) for sock in (tcp, unix))
    env = {
        **daemon_environ(tmp_path, sqlite_url, fake),
        "TCP_FD": str(fds[0]),
        "UNIX_FD": str(fds[1]),
    }
    args = ["bash", "-c", script, "wesctl", *SERVE, "--idle-exit", "0"]
    try:
        first, second, third = add_run(engine), add_run(engine), add_run(engine)
        with daemon(args, env, tmp_path / "first.log", pass_fds=fds) as process:
            assert notify_when_listening(first, port, process).ok
            by_unix = send_notification(second, host="", port=0, unix_socket=unix_path)
            assert by_unix.ok, by_unix
            wait_submitted(engine, [first, second], deadline=5)
            process.send_signal(signal.SIGTERM)
            assert process.wait(10) == 0
        stderr = (tmp_path / "first.log").read_text()
        assert "(systemd fd 3 notify)" in stderr
        assert f"unix:{unix_path} (systemd fd 4 notify-unix)" in stderr
        assert "exiting (received SIGTERM)" in stderr

        # Nobody serves the socket now, yet a notification is not refused: it waits in the
        # backlog, and the next instance (what systemd starts on that connection) answers it.
        answers: list[NotifyResult] = []
        waiting = threading.Thread(
            target=lambda: answers.append(
                send_notification(third, host="127.0.0.1", port=port, timeout=15)
            )
        )
        waiting.start()
        with daemon(args, env, tmp_path / "second.log", pass_fds=fds) as process:
            waiting.join(20)
            assert [answer.ok for answer in answers] == [True], answers
            wait_submitted(engine, [third], deadline=5)
            process.send_signal(signal.SIGTERM)
            assert process.wait(10) == 0
        for run_id in (first, second, third):
            assert len(fake.runs_for(run_id)) == 1
    finally:
        for fd in fds:
            os.close(fd)
        tcp.close()
        unix.close()


def test_no_socket_and_port_in_use_is_one_clear_error(
    tmp_path: Path, sqlite_url: str, fake: SimulatedSevenBridges
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = {
            **daemon_environ(tmp_path, sqlite_url, fake),
            "DAEMON_NOTIFICATION_PORT": str(port),
            "LISTEN_PID": "1",  # meant for another process: ignored
            "LISTEN_FDS": "1",
        }
        result = subprocess.run(SERVE, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 78
    assert result.stderr.splitlines() == [
        f"ERROR wesctl: configuration error: cannot listen on 127.0.0.1:{port}: "
        "Address already in use"
    ]


def test_invalid_listen_option_is_a_configuration_error(
    tmp_path: Path, sqlite_url: str, fake: SimulatedSevenBridges
) -> None:
    env = daemon_environ(tmp_path, sqlite_url, fake)
    result = subprocess.run(
        [*SERVE, "--listen", "localhost"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 78
    assert len(result.stderr.splitlines()) == 1
    assert "--listen 'localhost' is not HOST:PORT" in result.stderr
