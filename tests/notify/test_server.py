"""The notification endpoint over real HTTP: a real migrated database, the real submit path and the
Seven Bridges fake as the provider. Requests are sent with wesctl's client, with `requests` as the
WES API does, and as raw bytes for what no well-behaved client sends."""

from __future__ import annotations

import json
import logging
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import requests
from sqlalchemy import create_engine, select

from tests.e2e.providers import sevenbridges_fake
from tests.notify import (
    RunningServer,
    add_run,
    assert_still_serving,
    make_settings,
    migrate,
    run_wesctl,
    running_server,
    wait_submitted,
)
from tests.wes_api import insert_api_run
from wesctl.config import Settings
from wesctl.db.tables import WorkflowRun
from wesctl.errors import ConfigError
from wesctl.notify import notify_daemon, send_notification
from wesctl.notify.listeners import bind_tcp, bind_unix
from wesctl.notify.serve import serve
from wesctl.notify.server import SUBMIT_HOLD
from wesctl.simulated.sevenbridges import SimulatedSevenBridges


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One endpoint on SQLite for the many request-validation cases."""
    tmp = tmp_path_factory.mktemp("notify")
    db_url = f"sqlite:///{tmp / 'wes.db'}"
    migrate(db_url)
    with sevenbridges_fake() as fake:
        settings = make_settings(tmp, db_url, fake)
        with running_server(settings, bind_tcp("127.0.0.1", 0), fake=fake) as running:
            yield running


# --- raw HTTP helpers ---------------------------------------------------------------------------


def read_response(stream: BinaryIO) -> tuple[int, dict[str, str], Any]:
    """Read one HTTP/1.1 response; return status, lower-cased headers and the JSON body."""
    status_line = stream.readline()
    assert status_line.startswith(b"HTTP/1.1 "), f"not an HTTP answer: {status_line!r}"
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers["content-length"]))
    assert headers["content-type"] == "application/json"
    return status, headers, json.loads(body)


def exchange(address: Any, data: bytes) -> tuple[int, dict[str, str], Any]:
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(address)
        sock.sendall(data)
        return read_response(sock.makefile("rb"))


def post(body: bytes, *, path: str = "/", extra: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def wes_api_request(host: str, port: int, run_id: str) -> bytes:
    """The bytes the WES API's `requests.post(url, json={"run_id": ...}, timeout=2)` sends."""
    prepared = requests.Session().prepare_request(
        requests.Request("POST", f"http://{host}:{port}", json={"run_id": run_id})
    )
    assert isinstance(prepared.body, bytes)
    lines = ["POST / HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in prepared.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + prepared.body


def wait_for_log(caplog: pytest.LogCaptureFixture, wanted: Any, deadline: float = 2.0) -> str:
    """The first log line matching `wanted`; the server logs just after answering."""
    end = time.monotonic() + deadline
    while True:
        for record in caplog.records:
            if wanted(record.getMessage()):
                return record.getMessage()
        assert time.monotonic() < end, [record.getMessage() for record in caplog.records]
        time.sleep(0.01)


# --- the happy path -----------------------------------------------------------------------------


def test_notification_is_answered_at_once_then_submitted(
    db_url: str, tmp_path: Path, fake: SimulatedSevenBridges
) -> None:
    migrate(db_url)
    settings = make_settings(tmp_path, db_url, fake)
    with running_server(settings, bind_tcp("127.0.0.1", 0)) as running:
        run_id = add_run(running.engine)
        host, port = running.address
        started = time.monotonic()
        result = send_notification(run_id, host=host, port=port)
        elapsed = time.monotonic() - started
        assert result.ok, result
        assert result.status == 200
        assert json.loads(result.body or "") == {"status": "accepted", "run_id": run_id}
        assert elapsed < 1.0
        provider_ids = wait_submitted(running.engine, [run_id], deadline=1.0)
        assert fake.runs_for(run_id) == [provider_ids[run_id]]
        assert fake.task(provider_ids[run_id]).runs == 1

        again = send_notification(run_id, host=host, port=port)
        assert again.ok  # notifying twice is harmless
        assert fake.runs_for(run_id) == [provider_ids[run_id]]


def test_notification_for_a_run_already_running_is_ignored(shared: RunningServer) -> None:
    run_id = insert_api_run(shared.engine, state="RUNNING")
    host, port = shared.address
    result = send_notification(run_id, host=host, port=port)
    assert result.ok
    assert json.loads(result.body or "") == {
        "status": "ignored",
        "run_id": run_id,
        "state": "RUNNING",
    }
    assert shared.fake is not None
    assert shared.fake.runs_for(run_id) == []


def test_wes_api_requests_on_one_keep_alive_connection(
    db_url: str, tmp_path: Path, fake: SimulatedSevenBridges
) -> None:
    migrate(db_url)
    with running_server(make_settings(tmp_path, db_url, fake), bind_tcp("127.0.0.1", 0)) as running:
        host, port = running.address
        # The WES API's own client, with a session so the connection is reused.
        with requests.Session() as session:
            sent = [add_run(running.engine) for _ in range(3)]
            for run_id in sent:
                answer = session.post(f"http://{host}:{port}", json={"run_id": run_id}, timeout=2)
                assert answer.status_code == 200
                assert answer.json()["run_id"] == run_id
        # Byte for byte what it sends, five notifications pipelined on one connection.
        pipelined = [add_run(running.engine) for _ in range(5)]
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(b"".join(wes_api_request(host, port, run_id) for run_id in pipelined))
            stream = sock.makefile("rb")
            answers = [read_response(stream) for _ in pipelined]
        assert [(status, body["run_id"]) for status, _, body in answers] == [
            (200, run_id) for run_id in pipelined
        ]
        assert all("close" not in headers.get("connection", "") for _, headers, _ in answers)
        provider_ids = wait_submitted(running.engine, sent + pipelined, deadline=3.0)
        for run_id in sent + pipelined:
            assert fake.runs_for(run_id) == [provider_ids[run_id]]


def test_burst_of_200_concurrent_notifications(
    sqlite_url: str, tmp_path: Path, fake: SimulatedSevenBridges
) -> None:
    """SQLite only: submitting 200 runs takes seconds of CPU in this one process (provider SDK,
    the fake, the ORM), whatever the database."""
    migrate(sqlite_url)
    settings = make_settings(tmp_path, sqlite_url, fake)
    with running_server(settings, bind_tcp("127.0.0.1", 0)) as running:
        host, port = running.address
        run_ids = [add_run(running.engine) for _ in range(200)]
        barrier = threading.Barrier(len(run_ids))

        def notify(run_id: str) -> tuple[bool, float]:
            barrier.wait()
            started = time.monotonic()
            result = send_notification(run_id, host=host, port=port, timeout=2)
            return result.ok, time.monotonic() - started

        burst_started = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(run_ids)) as pool:
            results = list(pool.map(notify, run_ids))
        assert [ok for ok, _ in results] == [True] * len(run_ids)
        # Normally 4-6 s: the submit path costs ~20 ms of CPU per run in this one process.
        provider_ids = wait_submitted(running.engine, run_ids, deadline=30.0)
        total = time.monotonic() - burst_started
        latencies = sorted(elapsed for _, elapsed in results)
        p50 = statistics.median(latencies)
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        print(
            f"\ntime to 200: p50 {p50 * 1000:.0f} ms, "
            f"p99 {p99 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms; "
            f"all 200 submitted after {total:.2f} s"
        )
        assert p99 < 2.0
        for run_id in run_ids:
            assert fake.runs_for(run_id) == [provider_ids[run_id]]
        assert len(fake.tasks) == len(run_ids)


def test_duplicate_notifications_submit_once(shared: RunningServer) -> None:
    run_id = add_run(shared.engine)
    host, port = shared.address
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(
            pool.map(lambda _: send_notification(run_id, host=host, port=port), range(20))
        )
    assert all(result.ok for result in results)
    wait_submitted(shared.engine, [run_id], deadline=1.0)
    assert shared.fake is not None
    assert len(shared.fake.runs_for(run_id)) == 1


# --- what the endpoint refuses ------------------------------------------------------------------

BAD_REQUESTS = {
    "GET": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    "PUT with body": (b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 405),
    "unknown method": (b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n", 501),
    "wrong path": (post(b'{"run_id": "abc"}', path="/runs"), 404),
    "no body": (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "empty body": (post(b""), 400),
    "bad content-length": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n", 400),
    "non-ASCII digit length": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\n", 400),
    "not JSON": (post(b"run_id=abc"), 400),
    "invalid UTF-8": (post(b'{"run_id": "\xff\xfe"}'), 400),
    "deeply nested JSON": (post(b"[" * 4000), 400),
    "JSON array": (post(b'["abc"]'), 400),
    "no run_id": (post(b'{"id": "abc"}'), 400),
    "null run_id": (post(b'{"run_id": null}'), 400),
    "numeric run_id": (post(b'{"run_id": 42}'), 400),
    "empty run_id": (post(b'{"run_id": ""}'), 400),
    "run_id too long": (post(json.dumps({"run_id": "x" * 37}).encode()), 400),
    "control characters": (post(b'{"run_id": "abc\\ndef"}'), 400),
    "too large": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", 413),
    "chunked": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'11\r\n{"run_id": "abc"}\r\n0\r\n\r\n',
        400,
    ),
    "garbage request line": (b"HELLO\r\n\r\n", 400),
    "bad HTTP version": (b"POST / HTTP/9\r\n\r\n", 400),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_a_clear_status_and_nothing_breaks(
    shared: RunningServer, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wesctl")
    data, expected = BAD_REQUESTS[case]
    status, headers, body = exchange(shared.address, data)
    assert status == expected
    assert isinstance(body["error"], str)
    assert body["error"]
    if expected == 405:
        assert headers["allow"] == "POST"
    wait_for_log(caplog, lambda line: f" {expected} run=- " in line and " error=" in line)
    assert_still_serving(shared)


def test_connection_stays_usable_after_a_bad_notification(shared: RunningServer) -> None:
    run_id = add_run(shared.engine)
    with socket.create_connection(shared.address, timeout=5) as sock:
        stream = sock.makefile("rb")
        sock.sendall(post(b"{not json"))
        assert read_response(stream)[0] == 400
        sock.sendall(post(json.dumps({"run_id": run_id}).encode()))
        status, _, body = read_response(stream)
    assert (status, body) == (200, {"status": "accepted", "run_id": run_id})


def test_expect_100_continue(shared: RunningServer) -> None:
    """curl sends the body of a POST only after the server said 100 Continue."""
    run_id = add_run(shared.engine)
    body = json.dumps({"run_id": run_id}).encode()
    with socket.create_connection(shared.address, timeout=5) as sock:
        stream = sock.makefile("rb")
        sock.sendall(
            post(b"", extra="Expect: 100-continue\r\n").replace(
                b"Length: 0", b"Length: %d" % len(body)
            )
        )
        assert stream.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert stream.readline() == b"\r\n"
        sock.sendall(body)
        assert read_response(stream)[0] == 200


def test_unknown_run_is_404(shared: RunningServer) -> None:
    host, port = shared.address
    result = send_notification(str(uuid.uuid4()), host=host, port=port)
    assert (result.ok, result.status) == (False, 404)
    assert result.error is not None
    assert "no run with id" in result.error


def test_token_is_required_when_configured(
    tmp_path: Path, sqlite_url: str, fake: SimulatedSevenBridges, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    migrate(sqlite_url)
    secret = "s3cret-notify-token"
    settings = make_settings(tmp_path, sqlite_url, fake, WESCTL_NOTIFY_TOKEN=secret)
    with running_server(settings, bind_tcp("127.0.0.1", 0), token=secret) as running:
        host, port = running.address
        run_id = add_run(running.engine)
        missing = send_notification(run_id, host=host, port=port)
        wrong = send_notification(run_id, host=host, port=port, token="not-it")
        status, headers, _ = exchange(
            running.address, post(b'{"run_id": "x"}', extra=f"Authorization: Basic {secret}\r\n")
        )
        assert (missing.status, wrong.status, status) == (401, 401, 401)
        assert headers["www-authenticate"] == "Bearer"
        assert send_notification(run_id, host=host, port=port, token=secret).ok
        wait_submitted(running.engine, [run_id], deadline=1.0)
    assert secret not in caplog.text
    assert "not-it" not in caplog.text


# Latin-1 letters, a character beyond Latin-1, and a last UTF-8 byte (\xa0, from "à") that
# str.strip() takes for a blank once the header is decoded as Latin-1.
NON_ASCII_TOKEN = "tökén-€-à"


def test_non_ascii_token_from_wesctl_notify_and_notify_daemon(
    tmp_path: Path, sqlite_url: str, fake: SimulatedSevenBridges, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate(sqlite_url)
    settings = make_settings(tmp_path, sqlite_url, fake, WESCTL_NOTIFY_TOKEN=NON_ASCII_TOKEN)
    assert settings.notify_token is not None
    with running_server(
        settings, bind_tcp("127.0.0.1", 0), token=settings.notify_token.get()
    ) as running:
        host, port = running.address
        by_command, by_daemon = add_run(running.engine), add_run(running.engine)
        environ = {
            "DAEMON_NOTIFICATION_HOST": host,
            "DAEMON_NOTIFICATION_PORT": str(port),
            "WESCTL_NOTIFY_TOKEN": NON_ASCII_TOKEN,
        }
        result = run_wesctl("notify", by_command, env=environ)
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("notified: 200 ")
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        assert notify_daemon(by_daemon) is True
        one_off = send_notification(by_daemon, host=host, port=port, token="tökén-€-a")
        assert one_off.status == 401
        wait_submitted(running.engine, [by_command, by_daemon], deadline=5)


def test_database_outage_is_503(
    tmp_path: Path, fake: SimulatedSevenBridges, caplog: pytest.LogCaptureFixture
) -> None:
    """Down at start and down for every request: 503 each time (the WES API logs a warning and
    the timer submits the run later), rather than exiting and being restarted in a loop."""
    unreachable = f"sqlite:///{tmp_path / 'no-such-directory' / 'wes.db'}"
    settings = make_settings(tmp_path, unreachable, fake)
    path = str(tmp_path / "notify.sock")
    with serving_unix(settings, path, idle_exit=1.5) as codes:
        for _ in range(2):
            result = send_notification(str(uuid.uuid4()), host="", port=0, unix_socket=path)
            assert result.status == 503
            assert result.error is not None
            assert "database unavailable" in result.error
    assert codes == [0]
    assert "answering 503 until it is back" in caplog.text


# --- connections --------------------------------------------------------------------------------


def test_slow_client_does_not_block_others(shared: RunningServer) -> None:
    host, port = shared.address
    with socket.create_connection((host, port), timeout=5) as slow:
        slow.sendall(b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n{"run_')
        run_id = add_run(shared.engine)
        started = time.monotonic()
        assert send_notification(run_id, host=host, port=port).ok
        assert time.monotonic() - started < 1.0


def test_submission_waits_for_answers_in_flight_but_not_for_long(
    tmp_path: Path, sqlite_url: str, fake: SimulatedSevenBridges
) -> None:
    """Answers first: while another request is being received, a notified run is answered at
    once but submitted only after a quiet moment, or after SUBMIT_HOLD at the latest."""
    migrate(sqlite_url)
    settings = make_settings(tmp_path, sqlite_url, fake)
    with running_server(settings, bind_tcp("127.0.0.1", 0)) as running:
        host, port = running.address
        run_id = add_run(running.engine)
        with socket.create_connection((host, port), timeout=10) as slow:
            slow.sendall(b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n{"run_')
            time.sleep(0.2)  # its request line is read: it is in flight from now on
            assert send_notification(run_id, host=host, port=port).ok
            time.sleep(0.5)
            assert fake.runs_for(run_id) == []  # held back by the request in flight
            wait_submitted(running.engine, [run_id], deadline=SUBMIT_HOLD + 2)
        assert len(fake.runs_for(run_id)) == 1


def test_incomplete_request_is_closed_at_its_deadline(
    tmp_path: Path, sqlite_url: str, fake: SimulatedSevenBridges
) -> None:
    migrate(sqlite_url)
    settings = make_settings(tmp_path, sqlite_url, fake)
    with running_server(settings, bind_tcp("127.0.0.1", 0), request_timeout=0.2) as running:
        with socket.create_connection(running.address, timeout=5) as slow:
            slow.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n{")
            assert slow.recv(100) == b""  # closed by the server, without an answer
        assert_still_serving(running)


def _accepts_connections(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            return False
    return True


@contextmanager
def serving_unix(settings: Settings, path: str, idle_exit: float) -> Iterator[list[int]]:
    """`serve` itself, in a thread, on a unix socket; yields the list its exit code lands in."""
    codes: list[int] = []
    thread = threading.Thread(
        target=lambda: codes.append(serve(settings, listen=path, idle_exit=idle_exit)),
        daemon=True,
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not _accepts_connections(path):  # bound is not enough: listen() comes next
            assert time.monotonic() < deadline, "no socket appeared"
            assert thread.is_alive(), "serve() ended early"
            time.sleep(0.01)
        yield codes
    finally:
        thread.join(10)  # idle exit
    assert not thread.is_alive()


def test_unix_socket_serve_and_idle_exit(
    tmp_path: Path, sqlite_url: str, fake: SimulatedSevenBridges, caplog: pytest.LogCaptureFixture
) -> None:
    """A unix socket (whose peers have an empty address), then idle exit."""
    caplog.set_level(logging.INFO, logger="wesctl")
    migrate(sqlite_url)
    settings = make_settings(tmp_path, sqlite_url, fake)
    path = str(tmp_path / "notify.sock")
    engine = create_engine(sqlite_url)
    with serving_unix(settings, path, idle_exit=1.5) as codes:
        run_id = add_run(engine)
        result = send_notification(run_id, host="ignored", port=0, unix_socket=path)
        assert result.ok, result
        wait_submitted(engine, [run_id], deadline=1.0)
        assert len(fake.runs_for(run_id)) == 1
    engine.dispose()
    assert codes == [0]
    assert not Path(path).exists()
    logged = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("POST / 200 run=") and "client=unix" in line for line in logged)
    assert any("exiting (idle for 1.5 s)" in line for line in logged)


def test_unix_socket_in_use_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "busy.sock")
    first = bind_unix(path)
    try:
        with pytest.raises(ConfigError, match="another process is serving it"):
            bind_unix(path)
    finally:
        first.close()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)  # bound but never listening: what a killed process leaves behind
    stale.close()
    bind_unix(path).close()
    assert not Path(path).exists()


# --- lifecycle ----------------------------------------------------------------------------------


def test_idle_exit_waits_for_pending_submissions(
    tmp_path: Path, sqlite_url: str, fake: SimulatedSevenBridges
) -> None:
    migrate(sqlite_url)
    settings = make_settings(tmp_path, sqlite_url, fake)
    with running_server(settings, bind_tcp("127.0.0.1", 0), idle_exit=0.1) as running:
        host, port = running.address
        run_id = add_run(running.engine)
        with fake.lock:  # the provider does not answer while the test holds this
            assert send_notification(run_id, host=host, port=port).ok
            time.sleep(0.4)  # well past idle_exit, with the submission still pending
            assert running.thread.is_alive()
            assert send_notification(str(uuid.uuid4()), host=host, port=port).status == 404
        wait_submitted(running.engine, [run_id], deadline=2.0)
        running.thread.join(5)
        assert running.code == 0  # it did exit by itself once idle


def test_stop_finishes_the_submission_in_progress_and_leaves_the_rest_queued(
    tmp_path: Path, sqlite_url: str, fake: SimulatedSevenBridges, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wesctl")
    migrate(sqlite_url)
    settings = make_settings(tmp_path, sqlite_url, fake, WESCTL_SUBMIT_WORKERS="1")
    with running_server(settings, bind_tcp("127.0.0.1", 0)) as running:
        host, port = running.address
        first, second = add_run(running.engine), add_run(running.engine)
        with fake.lock:
            assert send_notification(first, host=host, port=port).ok
            assert send_notification(second, host=host, port=port).ok
            deadline = time.monotonic() + 2
            while not claimed(running, first):  # the one worker is inside the provider call
                assert time.monotonic() < deadline
                time.sleep(0.01)
            running.server.stop()
            deadline = time.monotonic() + 2
            while running.server.is_pending(second):  # dropped from the in-memory queue
                assert time.monotonic() < deadline
                time.sleep(0.01)
        running.thread.join(5)
        assert running.code == 0
        wait_submitted(running.engine, [first], deadline=0.1)
        with running.engine.connect() as connection:
            state = connection.scalar(select(WorkflowRun.state).where(WorkflowRun.run_id == second))
        assert state == "QUEUED"  # for the timer
        assert fake.runs_for(second) == []
    assert any("1 notified runs left QUEUED" in r.getMessage() for r in caplog.records)


def claimed(running: RunningServer, run_id: str) -> bool:
    with running.engine.connect() as connection:
        owner = connection.scalar(
            select(WorkflowRun.claimed_by).where(WorkflowRun.run_id == run_id)
        )
    return owner is not None
