"""Valid notifications while slow and idle clients hold connections to `wesctl serve-notify`.

The endpoint runs in its own process (`python -m wesctl serve-notify --listen 127.0.0.1:PORT
--idle-exit 0`) on a database of N queued runs (default 100), submitting to the Seven Bridges fake
(20 ms per call). This process then holds a crowd against it from one thread: `--slow` (500)
connections that send a request line and then one header line every `--interval` (1.5) seconds,
reopened whenever the server closes them, and `--idle` (500) connections that send one GET and
then say nothing. Once the crowd is in, the N notifications go out one at a time, `--gap` (0.1) s
apart, so that they span several of the server's request deadlines, each with wesctl's own client
and a 10 s timeout. Measured: time to the 200 (p50/p99/max), how many came within the WES API's
2 s, how often the server closed a slow connection, how many idle ones it kept (before the
notifications and after them), and the server's threads and resident memory under the crowd.

Run: .venv/bin/python bench/notify_slow_clients.py [--runs 100] [--slow 500] [--idle 500]
     [--database-uri postgresql://postgres@127.0.0.1:5432/test]
Prints numbers; nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import selectors
import socket
import threading
import time
from pathlib import Path

import common
from notify_burst import serve_notify

from wesctl.db.engine import make_engine
from wesctl.notify import send_notification

WES_API_TIMEOUT = 2.0  # the WES API gives up after this and counts only a 200 before it
CLIENT_TIMEOUT = 10.0  # ours: long enough to measure what the WES API would have missed
REQUEST_LINE = b"POST / HTTP/1.1\r\nHost: x\r\n"
ONE_GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def closed(sock: socket.socket) -> bool:
    """Whether the server closed the non-blocking `sock` (anything it answered is skipped)."""
    try:
        while sock.recv(65536):
            pass
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


class Crowd:
    """The slow and idle connections, driven from one thread until stop() (or `lifetime`)."""

    def __init__(self, port: int, slow: int, idle: int, interval: float, lifetime: float) -> None:
        self.port = port
        self.interval = interval
        self.lifetime = lifetime
        self.selector = selectors.DefaultSelector()
        self.due: dict[socket.socket, float] = {}  # slow connection -> next header line due
        self.reopened = 0
        self.lines = 0
        self.stopping = threading.Event()
        for _ in range(slow):
            self._open_slow()
        self.idle = [self._connect() for _ in range(idle)]
        for sock in self.idle:
            sock.send(ONE_GET)
        self.thread = threading.Thread(target=self._trickle, name="slow-crowd")
        self.thread.start()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.setblocking(False)
        return sock

    def _open_slow(self) -> None:
        sock = self._connect()
        sock.send(REQUEST_LINE)
        self.due[sock] = time.monotonic() + self.interval
        self.selector.register(sock, selectors.EVENT_READ)

    def _trickle(self) -> None:
        end = time.monotonic() + self.lifetime
        while not self.stopping.is_set() and time.monotonic() < end:
            for key, _ in self.selector.select(0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if closed(sock):
                    self.selector.unregister(sock)
                    del self.due[sock]
                    sock.close()
                    self.reopened += 1
                    self._open_slow()
            now = time.monotonic()
            for sock, due in list(self.due.items()):
                if due <= now:
                    self.lines += 1
                    with contextlib.suppress(OSError):  # closed: the selector says so next
                        sock.send(b"X-Slow-%d: 1\r\n" % self.lines)
                    self.due[sock] = now + self.interval

    def idle_open(self) -> int:
        return sum(not closed(sock) for sock in self.idle)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()
        for sock in [*self.due, *self.idle]:
            sock.close()
        self.selector.close()


def process_status(pid: int) -> tuple[int, float]:
    """(threads, resident MiB) of process `pid`, from /proc."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) / 1024


def raise_own_file_limit(needed: int) -> None:
    """The crowd's sockets live in this process: lift the soft limit toward the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def measure(options: argparse.Namespace, directory: Path) -> common.Result:
    raise_own_file_limit(options.slow + options.idle + 256)
    fake = common.start_fake("sevenbridges", options.latency)
    result = common.Result()
    try:
        with common.scratch_database(options.database_uri, directory) as url:
            engine = make_engine(url)
            rows = common.queued_rows(options.runs, "sevenbridges")
            common.insert_rows(engine, rows)
            engine.dispose()
            with serve_notify(url, fake.base_url, options.runs, directory) as (port, pid, _):
                crowd = Crowd(port, options.slow, options.idle, options.interval, 120.0)
                try:
                    time.sleep(1.0)  # the crowd is in (or waiting in the backlog)
                    idle_open = [crowd.idle_open()]
                    latencies, failures, peak = notify_all(options, port, rows, pid)
                    idle_open.append(crowd.idle_open())
                finally:
                    crowd.stop()
    finally:
        fake.stop()
    report(result, options, latencies, failures, crowd, idle_open, peak)
    return result


def notify_all(
    options: argparse.Namespace, port: int, rows: list[dict[str, object]], pid: int
) -> tuple[list[float], dict[str, int], tuple[int, float]]:
    """Send each notification in turn; return the times to 200, the failures by reason and
    the server's peak (threads, RSS MiB) seen meanwhile."""
    latencies: list[float] = []
    failures: dict[str, int] = {}
    peak = (0, 0.0)
    for row in rows:
        begun = time.perf_counter()
        answer = send_notification(
            str(row["run_id"]), host="127.0.0.1", port=port, timeout=CLIENT_TIMEOUT
        )
        elapsed = time.perf_counter() - begun
        if answer.status == 200:
            latencies.append(elapsed)
        else:
            reason = f"HTTP {answer.status}" if answer.status else "no answer"
            failures[reason] = failures.get(reason, 0) + 1
        threads, rss = process_status(pid)
        peak = (max(peak[0], threads), max(peak[1], rss))
        time.sleep(options.gap)
    return latencies, failures, peak


def report(
    result: common.Result,
    options: argparse.Namespace,
    latencies: list[float],
    failures: dict[str, int],
    crowd: Crowd,
    idle_open: list[int],
    peak: tuple[int, float],
) -> None:
    database = common.database_name(options.database_uri)
    name = (
        f"notify under {options.slow} slow + {options.idle} idle connections "
        f"({database}, {options.latency * 1000:g} ms/call)"
    )
    measured = latencies or [float("nan")]
    within = sum(latency < WES_API_TIMEOUT for latency in latencies)
    result.add(name, "time to 200: p50", common.ms(common.percentile(measured, 0.5)))
    result.add(name, "time to 200: p99", common.ms(common.percentile(measured, 0.99)))
    result.add(name, "time to 200: max", common.ms(max(measured)))
    result.add(
        name,
        "200 within the WES API's 2 s / sent",
        f"{within} / {options.runs}" + (f" (failed: {failures})" if failures else ""),
        "",
        "all within 2 s" if within == options.runs else "missed",
    )
    result.add(
        name,
        "slow connections closed by the server (and reopened)",
        f"{crowd.reopened}; {crowd.lines} header lines trickled",
    )
    result.add(
        name,
        "idle connections the server kept: before the notifications / after",
        f"{idle_open[0]} / {idle_open[1]} of {options.idle}",
    )
    result.add(name, "serve-notify peak threads / RSS", f"{peak[0]} / {peak[1]:.0f} MiB")
    result.notes.append(
        f"{options.runs} notifications sent one at a time, {options.gap:g} s apart, with "
        f"wesctl's client (timeout {CLIENT_TIMEOUT:g} s); slow clients send a header line every "
        f"{options.interval:g} s."
    )


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--runs", type=int, default=100, help="notifications sent (100)")
    parser.add_argument("--slow", type=int, default=500, help="trickling connections (500)")
    parser.add_argument("--idle", type=int, default=500, help="idle connections (500)")
    parser.add_argument("--interval", type=float, default=1.5, help="seconds between lines (1.5)")
    parser.add_argument(
        "--gap", type=float, default=0.1, help="seconds between notifications (0.1)"
    )
    options = parser.parse_args()
    with common.workspace() as directory:
        result = measure(options, directory)
    result.emit(options.json)


if __name__ == "__main__":
    main()
