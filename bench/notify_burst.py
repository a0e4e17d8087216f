"""A burst of run notifications against `wesctl serve-notify`.

The endpoint runs in its own process (`python -m wesctl serve-notify --listen 127.0.0.1:PORT
--idle-exit 0`) on a database holding N queued runs (default 1000), submitting to the Seven
Bridges fake in this process (20 ms per call). 50 client threads, each on one keep-alive
connection, then POST `{"run_id": ...}` for every run at once, byte for byte what the WES API's
`requests.post(url, json={"run_id": id}, timeout=2)` sends. Measured: time to the 200 answer
(p50/p99/max), failures (refused, timeouts, non-200), the time until every run is submitted
(polling the database), and that each run got exactly one provider task.

Run: /work/venv/bin/python bench/notify_burst.py [--runs 1000] [--clients 50] [--latency 0.02]
     [--database-uri postgresql://postgres@127.0.0.1:5432/test]
Prints numbers; nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import common
from sqlalchemy import Engine, func, select

from wesctl.db.engine import make_engine
from wesctl.db.tables import WorkflowRun

GOAL_P99 = 0.050
SUBMIT_TIMEOUT = 300.0  # seconds to wait for every run to be submitted
REQUESTS_HEADERS = {  # what requests 2.x sends for requests.post(url, json=...)
    "User-Agent": "python-requests/2.32.3",
    "Accept-Encoding": "gzip, deflate",
    "Accept": "*/*",
    "Connection": "keep-alive",
    "Content-Type": "application/json",
}


@dataclass
class ClientStats:
    latencies: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_listening(port: int, server: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"serve-notify exited with {server.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("serve-notify did not start listening")


@contextlib.contextmanager
def serve_notify(
    url: str, fake_url: str, runs: int, directory: Path
) -> Iterator[tuple[int, int, Path]]:
    """`wesctl serve-notify` in its own process on database `url`, submitting to the Seven
    Bridges fake at `fake_url` with room for `runs` in flight; yields its port, process id and log
    file once it listens, and stops it afterwards."""
    port = free_port()
    environ = {
        **os.environ,
        **common.provider_environ("sevenbridges", fake_url, directory),
        "DATABASE_URI": url,
        "DAEMON_MAX_CONCURRENT_WORKFLOWS": str(runs),
    }
    log_path = directory / "serve-notify.log"
    common.log(f"serve-notify log: {log_path}")
    listen = f"127.0.0.1:{port}"
    with log_path.open("wb") as server_log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wesctl",
                "serve-notify",
                "--listen",
                listen,
                "--idle-exit",
                "0",
            ],
            cwd=directory,
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=server_log,
        )
        try:
            wait_listening(port, server)
            yield port, server.pid, log_path
        finally:
            server.terminate()
            server.wait(timeout=30)


def request_bytes(port: int, run_id: str) -> bytes:
    """The notification as requests.post(url, json={"run_id": id}) puts it on the wire."""
    body = json.dumps({"run_id": run_id}).encode()
    head = [
        "POST / HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"User-Agent: {REQUESTS_HEADERS['User-Agent']}",
        f"Accept-Encoding: {REQUESTS_HEADERS['Accept-Encoding']}",
        f"Accept: {REQUESTS_HEADERS['Accept']}",
        f"Connection: {REQUESTS_HEADERS['Connection']}",
        f"Content-Length: {len(body)}",
        f"Content-Type: {REQUESTS_HEADERS['Content-Type']}",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def read_response(sock: socket.socket, buffer: bytes) -> tuple[int, bool, bytes]:
    """Read one HTTP/1.1 response: (status, server closes, bytes left over)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("connection closed before the answer")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:])
    }
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("connection closed mid-answer")
        rest += chunk
    return status, headers.get("connection", "").lower() == "close", rest[length:]


def client(port: int, run_ids: list[str], start: threading.Barrier, stats: ClientStats) -> None:
    """POST each run id over one keep-alive connection (reopened after an error or a close).

    Raw sockets with the request bytes built up front: the 50 client threads share this
    process's GIL, and a heavier client (http.client parses headers with the email package)
    would add its own queueing to the times measured.
    """
    requests = [request_bytes(port, run_id) for run_id in run_ids]
    sock: socket.socket | None = None
    start.wait()
    for request in requests:
        begun = time.perf_counter()
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=2)
                buffer = b""
            sock.sendall(request)
            status, closing, buffer = read_response(sock, buffer)
        except TimeoutError:
            stats.fail("timeout")
        except ConnectionRefusedError:
            stats.fail("refused")
        except (OSError, ValueError, IndexError) as exc:
            stats.fail(type(exc).__name__)
        else:
            if status == 200:
                stats.latencies.append(time.perf_counter() - begun)
            else:
                stats.fail(f"HTTP {status}")
            if not closing:
                continue
        if sock is not None:
            sock.close()
            sock = None
    if sock is not None:
        sock.close()


class ServerLog:
    """What serve-notify logged: its own time per answer, and warnings."""

    ANSWER = re.compile(r"POST / 200 run=\S+ ([0-9.]+)ms")

    def __init__(self, text: str) -> None:
        lines = text.splitlines()
        self.answer_seconds = [
            float(match.group(1)) / 1000 for line in lines if (match := self.ANSWER.search(line))
        ]
        self.warnings = [
            line for line in lines if line.startswith(("WARNING", "ERROR", "<4>", "<3>"))
        ]


def child_cpu_seconds() -> float:
    """CPU time of the children this process has waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def submitted_count(engine: Engine) -> int:
    with engine.connect() as connection:
        query = select(func.count()).where(WorkflowRun.submitted_at.is_not(None))
        return int(connection.execute(query).scalar_one())


def burst(options: argparse.Namespace, directory: Path) -> common.Result:
    fake = common.start_fake("sevenbridges", options.latency)
    result = common.Result()
    try:
        with common.scratch_database(options.database_uri, directory) as url:
            engine = make_engine(url)
            rows = common.queued_rows(options.runs, "sevenbridges")
            if options.answers_only:  # already submitted: each answer is "ignored", no work
                for row in rows:
                    row.update(state="RUNNING", submitted_at=row["start_time"])
            common.insert_rows(engine, rows)
            children_cpu = child_cpu_seconds()
            with serve_notify(url, fake.base_url, options.runs, directory) as (port, _, log_path):
                stats, answered, submitted = fire(options, port, rows, engine)
            server_cpu = child_cpu_seconds() - children_cpu
            engine.dispose()
            server_log = ServerLog(log_path.read_text(errors="replace"))
    finally:
        fake.stop()
    report(result, options, stats, answered, submitted, fake, server_log, server_cpu)
    return result


def fire(
    options: argparse.Namespace, port: int, rows: list[dict[str, object]], engine: Engine
) -> tuple[ClientStats, float, float | None]:
    """Send every notification at once; return the stats, the time until the last answer and
    the time until every run was submitted (None if not within SUBMIT_TIMEOUT)."""
    run_ids = [str(row["run_id"]) for row in rows]
    shares = [run_ids[index :: options.clients] for index in range(options.clients)]
    start = threading.Barrier(options.clients + 1)
    per_client = [ClientStats() for _ in shares]
    threads = [
        threading.Thread(target=client, args=(port, share, start, stats))
        for share, stats in zip(shares, per_client, strict=True)
    ]
    for thread in threads:
        thread.start()
    start.wait()
    begun = time.perf_counter()
    for thread in threads:
        thread.join()
    answered = time.perf_counter() - begun
    submitted: float | None = None
    while not options.answers_only and time.perf_counter() - begun < SUBMIT_TIMEOUT:
        if submitted_count(engine) >= len(run_ids):
            submitted = time.perf_counter() - begun
            break
        time.sleep(0.05)
    stats = ClientStats()
    for item in per_client:
        stats.latencies.extend(item.latencies)
        for reason, count in item.failures.items():
            stats.failures[reason] = stats.failures.get(reason, 0) + count
    return stats, answered, submitted


def report(
    result: common.Result,
    options: argparse.Namespace,
    stats: ClientStats,
    answered: float,
    submitted: float | None,
    fake: common.CountingSevenBridgesFake | common.CountingHealthOmicsFake,
    server_log: ServerLog,
    server_cpu: float,
) -> None:
    database = common.database_name(options.database_uri)
    name = (
        f"notify burst {options.runs} runs, {options.clients} keep-alive clients "
        f"({database}, {options.latency * 1000:g} ms/call)"
    )
    latencies = stats.latencies or [float("nan")]
    p99 = common.percentile(latencies, 0.99)
    result.add(name, "time to 200: p50", common.ms(common.percentile(latencies, 0.5)))
    result.add(
        name,
        "time to 200: p99",
        common.ms(p99),
        "",
        f"goal < {GOAL_P99 * 1000:g} ms: {'met' if p99 < GOAL_P99 else 'missed'}",
    )
    result.add(name, "time to 200: max", common.ms(max(latencies)))
    if server_log.answer_seconds:
        result.add(
            name,
            "server's own time per answer (its log): p50 / p99",
            f"{common.ms(common.percentile(server_log.answer_seconds, 0.5))} / "
            f"{common.ms(common.percentile(server_log.answer_seconds, 0.99))}",
        )
    result.add(
        name,
        "serve-notify CPU time (answers + submissions)",
        f"{server_cpu:.2f} s ({common.ms(server_cpu / options.runs)} per run)",
    )
    result.add(
        name,
        "answered 200 / failed",
        f"{len(stats.latencies)} / {sum(stats.failures.values())} {stats.failures or ''}".strip(),
    )
    result.add(name, "all answered after", f"{answered:.2f} s")
    result.add(
        name,
        "every run submitted after",
        f"{submitted:.2f} s ({options.runs / submitted:.0f} runs/s)"
        if submitted is not None
        else f"not within {SUBMIT_TIMEOUT:g} s",
    )
    tasks = fake.endpoints.counts.get("POST /v2/tasks", 0)
    result.add(
        name,
        "provider tasks created / duplicates",
        f"{tasks} / {common.duplicate_runs(fake)}",
        "",
        "exactly once" if tasks == options.runs and not common.duplicate_runs(fake) else "",
    )
    result.notes.append(
        f"serve-notify with DAEMON_MAX_CONCURRENT_WORKFLOWS={options.runs}, "
        "WESCTL_SUBMIT_WORKERS at its default, rate limit raised to "
        f"{common.RATE_LIMIT}/s; {len(server_log.warnings)} warning/error lines in the server log."
    )
    for line in server_log.warnings[:5]:
        result.notes.append(f"server log: {line[:200]}")


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--runs", type=int, default=1000, help="queued runs notified (1000)")
    parser.add_argument("--clients", type=int, default=50, help="client connections (50)")
    parser.add_argument(
        "--answers-only",
        action="store_true",
        help="notify runs that are already submitted: measures the answer path alone",
    )
    options = parser.parse_args()
    with common.workspace() as directory:
        result = burst(options, directory)
    result.emit(options.json)


if __name__ == "__main__":
    main()
