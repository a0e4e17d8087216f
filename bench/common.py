"""Shared setup of the benchmarks: scratch databases, provider fakes, settings and numbers.

Every benchmark runs wesctl's real services against the in-process provider fakes on 127.0.0.1
with a fixed per-call latency. Client-side rate limits (WESCTL_SEVENBRIDGES_RATE,
WESCTL_HEALTHOMICS_START_RATE / _API_RATE) are raised to RATE_LIMIT so the fakes' latency, not
the production quotas, bounds throughput; DAEMON_MAX_CONCURRENT_WORKFLOWS is raised so the
concurrency cap never holds a run back.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, insert, text
from sqlalchemy.engine import make_url

from wesctl.config import Settings, load_settings
from wesctl.db import schema
from wesctl.db.engine import MYSQL_BACKENDS, database_url, make_engine, utcnow
from wesctl.db.tables import WorkflowRun
from wesctl.simulated.arvados import DEFAULT_PROJECT as ARVADOS_PROJECT
from wesctl.simulated.arvados import DEFAULT_TOKEN as ARVADOS_TOKEN
from wesctl.simulated.arvados import DEFAULT_WORKFLOW as ARVADOS_WORKFLOW
from wesctl.simulated.arvados import SimulatedArvados
from wesctl.simulated.healthomics import FakeRun, SimulatedHealthOmics
from wesctl.simulated.http import Request, SimulatedService
from wesctl.simulated.sevenbridges import (
    API_PREFIX,
    DEFAULT_APP,
    DEFAULT_PROJECT,
    FakeTask,
    SimulatedSevenBridges,
)

PROVIDERS = ("sevenbridges", "healthomics")
RATE_LIMIT = "100000"  # calls per second: effectively unlimited
SBG_TOKEN = "bench-sevenbridges-token"
HO_WORKFLOW = "1234567"
HO_ROLE_ARN = "arn:aws:iam::123456789012:role/omics-runs"
HO_OUTPUT_URI = "s3://wesctl-bench/out"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_MARIADB = "mysql+pymysql://root@127.0.0.1:3306/test"
_ID_SEGMENT = re.compile(
    r"/(?:[0-9a-f]{8}-[0-9a-f-]{27}|[0-9a-f]{24}|\d+|[a-z0-9]{5}-[a-z0-9]{5}-[a-z0-9]{15})(?=/|$)"
)


# --- command line and output ------------------------------------------------------------------


def argument_parser(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark script's parser: its docstring as the help text, and the options every
    benchmark script takes."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--latency", type=float, default=0.020, help="seconds per fake API call (default 0.020)"
    )
    parser.add_argument(
        "--database-uri",
        default=None,
        help="PostgreSQL or MariaDB server URL (a scratch database is created on it and "
        "dropped); "
        f"default: SQLite in a temp dir. Example: {DEFAULT_POSTGRES}",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the result rows as JSON (used by run_all.py)"
    )
    return parser


@dataclass
class Row:
    """One line of the summary table."""

    benchmark: str
    metric: str
    wesctl: str
    baseline: str = ""
    ratio_goal: str = ""


@dataclass
class Result:
    """What a benchmark script reports: table rows plus free-form notes."""

    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(
        self, benchmark: str, metric: str, wesctl: str, baseline: str = "", goal: str = ""
    ) -> None:
        self.rows.append(Row(benchmark, metric, wesctl, baseline, goal))

    def emit(self, as_json: bool) -> None:
        if as_json:
            print(json.dumps({"rows": [asdict(row) for row in self.rows], "notes": self.notes}))
            return
        print(markdown_table(self.rows))
        for note in self.notes:
            print(f"- {note}")


def markdown_table(rows: Sequence[Row]) -> str:
    header = ("benchmark", "metric", "wesctl", "naive baseline", "ratio / goal")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = (row.benchmark, row.metric, row.wesctl, row.baseline, row.ratio_goal)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (0 < fraction <= 1) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def rss_mib() -> tuple[float, float]:
    """(current, peak) resident set size of this process, from /proc/self/status."""
    status = Path("/proc/self/status").read_text()
    values = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.MULTILINE))
    return int(values["VmRSS"]) / 1024, int(values["VmHWM"]) / 1024


def reset_peak_rss() -> None:
    """Start a new peak RSS measurement (Linux: writing 5 to clear_refs resets VmHWM)."""
    Path("/proc/self/clear_refs").write_text("5")


def cpu_seconds() -> float:
    """User plus system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


_STARTED = time.monotonic()


def log(message: str) -> None:
    """Progress to stderr (seconds since start first), so stdout stays the result."""
    print(f"[{time.monotonic() - _STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


class StatementTimer:
    """Counts SQL statements by their first word and sums their time over all threads."""

    def __init__(self, engine: Engine) -> None:
        self.counts: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        elapsed = time.perf_counter() - conn.info.pop("bench_started", time.perf_counter())
        kind = statement.lstrip().split(None, 1)[0].upper()
        with self._lock:
            self.counts[kind] += 1
            self.seconds[kind] += elapsed


# --- machine ----------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """Cores, CPU model, Python and database versions, for the README table."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    info = {
        "cores": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    with contextlib.suppress(Exception):
        engine = create_engine(DEFAULT_POSTGRES, connect_args={"connect_timeout": 2})
        with engine.connect() as connection:
            info["postgresql"] = str(connection.execute(text("SHOW server_version")).scalar())
        engine.dispose()
    with contextlib.suppress(Exception):
        engine = create_engine(DEFAULT_MARIADB, connect_args={"connect_timeout": 2})
        with engine.connect() as connection:
            info["mariadb"] = str(connection.execute(text("SELECT VERSION()")).scalar())
        engine.dispose()
    return info


def database_name(uri: str | None) -> str:
    """The engine a benchmark ran on, for its row names."""
    if uri is None:
        return "SQLite"
    backend = make_url(uri).get_backend_name()
    return {"postgresql": "PostgreSQL", "mysql": "MariaDB", "mariadb": "MariaDB"}.get(
        backend, "SQLite"
    )


# --- databases --------------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_database(server_uri: str | None, directory: Path) -> Iterator[str]:
    """Yield the URL of a fresh, migrated database: a SQLite file in `directory`, or a new
    database on the PostgreSQL or MariaDB server `server_uri`, dropped afterwards."""
    if server_uri is None or make_url(server_uri).get_backend_name() == "sqlite":
        url = server_uri or f"sqlite:///{directory / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        migrate(url)
        yield url
        return
    name = f"wesctl_bench_{uuid.uuid4().hex[:12]}"
    server = database_url(server_uri)
    mysql = server.get_backend_name() in MYSQL_BACKENDS
    create, drop = (
        (f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4", f"DROP DATABASE IF EXISTS `{name}`")
        if mysql
        else (f'CREATE DATABASE "{name}"', f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    )
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(create))
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        migrate(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(drop))
        admin.dispose()


def migrate(url: str) -> None:
    engine = make_engine(url)
    try:
        schema.upgrade(engine)
    finally:
        engine.dispose()


def workflow_url(provider: str) -> str:
    return {"sevenbridges": DEFAULT_APP, "arvados": ARVADOS_WORKFLOW}.get(provider, HO_WORKFLOW)


def queued_rows(count: int, provider: str) -> list[dict[str, Any]]:
    """`count` QUEUED runs as the WES API inserts them, one microsecond apart (oldest first)."""
    start = utcnow() - timedelta(hours=1)
    return [
        {
            "run_id": str(uuid.uuid4()),
            "state": "QUEUED",
            "workflow_params": {"message": f"run {index}", "count": 2},
            "workflow_type": "WDL" if provider == "healthomics" else "CWL",
            "workflow_type_version": "v1.0",
            "workflow_url": workflow_url(provider),
            "tags": {"provider_type": provider},
            "start_time": start + timedelta(microseconds=index),
        }
        for index in range(count)
    ]


def insert_rows(engine: Engine, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many runs with one executemany (none: nothing, not one row of defaults)."""
    if not rows:
        return
    with engine.begin() as connection:
        connection.execute(insert(WorkflowRun.__table__), [dict(row) for row in rows])


# --- provider fakes ---------------------------------------------------------------------------


class EndpointCounter:
    """Counts requests by method and path with ids blanked, e.g. `POST /v2/bulk/tasks/get`."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def count(self, request: Request) -> None:
        self.counts[f"{request.method} {_ID_SEGMENT.sub('/{id}', request.path)}"] += 1

    def total(self) -> int:
        return sum(self.counts.values())


class _CountsEndpoints(SimulatedService):
    """Counts requests per endpoint (the fakes' own counters are per operation, which merges
    e.g. Seven Bridges' GET /tasks/{id} and its bulk status call)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoints = EndpointCounter()

    def route(self, request: Request) -> tuple[str, Any]:
        self.endpoints.count(request)
        return super().route(request)


class CountingSevenBridgesFake(_CountsEndpoints, SimulatedSevenBridges):
    """The Seven Bridges fake, counting requests per endpoint."""


class CountingHealthOmicsFake(_CountsEndpoints, SimulatedHealthOmics):
    """The HealthOmics fake, counting requests per endpoint."""


class CountingArvadosFake(_CountsEndpoints, SimulatedArvados):
    """The Arvados simulator (https), counting requests per endpoint."""


CountingFake = CountingSevenBridgesFake | CountingHealthOmicsFake | CountingArvadosFake


def make_fake(provider: str, latency: float) -> CountingFake:
    """A counting fake of `provider`, not started."""
    if provider == "sevenbridges":
        return CountingSevenBridgesFake(token=SBG_TOKEN, latency=latency)
    if provider == "arvados":
        return CountingArvadosFake(latency=latency)
    return CountingHealthOmicsFake(latency=latency)


def start_fake(provider: str, latency: float) -> CountingFake:
    """Start a counting fake of `provider` in this process."""
    fake = make_fake(provider, latency)
    fake.start()
    return fake


def duplicate_runs(fake: CountingFake) -> int:
    """Provider runs beyond one per WES run (0 when each run was submitted exactly once)."""
    if isinstance(fake, CountingSevenBridgesFake):
        with fake.lock:
            names = [task.name for task in fake.tasks.values() if not task.deleted]
    elif isinstance(fake, CountingArvadosFake):
        with fake._state_lock:
            requests = fake.records["container_requests"].values()
            names = [request["properties"].get("wes_run_id") for request in requests]
    else:
        with fake.lock:
            names = [run.request.get("name") for run in fake._runs.values()]
    return len(names) - len(set(names))


class FakeHandle:
    """A counting fake in a child process (`wesctl.simulated.serve`), as a real provider runs
    on other machines: its CPU neither competes with wesctl for a GIL nor counts as wesctl's.
    With `tls` it serves https; `ca_file` is its CA."""

    def __init__(self, provider: str, latency: float, *, tls: bool = False) -> None:
        command = [sys.executable, __file__, "serve-fake", provider, str(latency)]
        self._child = subprocess.Popen(
            [*command, *(["--tls"] if tls else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._child.stdout is not None
        started = json.loads(self._child.stdout.readline())
        self.base_url: str = started["url"]
        self.ca_file: str | None = started["ca_file"]

    def stats(self) -> dict[str, Any]:
        """{"endpoints": requests per endpoint, "duplicates": extra provider runs,
        "cpu_seconds": the simulator process's CPU so far (user + sys)}."""
        assert self._child.stdin is not None
        assert self._child.stdout is not None
        self._child.stdin.write("stats\n")
        self._child.stdin.flush()
        stats: dict[str, Any] = json.loads(self._child.stdout.readline())
        return stats

    def stop(self) -> None:
        assert self._child.stdin is not None
        self._child.stdin.close()
        try:
            self._child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._child.terminate()
            self._child.wait()


def _serve_fake(provider: str, latency: float, tls: bool) -> None:
    """Child process of FakeHandle: the counting fake behind wesctl's own serve entry."""
    from wesctl.simulated.serve import serve

    fake = make_fake(provider, latency)

    def stats() -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "endpoints": dict(fake.endpoints.counts),
            "duplicates": duplicate_runs(fake),
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
        }

    serve(provider, fake, tls=tls or provider == "arvados", stats=stats)


def busy_cpu_seconds() -> float:
    """CPU seconds every core of this machine has spent on anything but idling and waiting for
    I/O since boot (/proc/stat): the difference over an interval is the whole machine's load,
    the database server and other processes included."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(value) for value in fields]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def provider_environ(provider: str, base_url: str, config_dir: Path) -> dict[str, str]:
    """wesctl's and boto3's variables pointing at the fake at `base_url`, rate limits lifted
    (for Arvados, `base_url` is the simulator's https URL; SSL_CERT_FILE is set by
    `trust_arvados`)."""
    environ = {
        "WESCTL_DEFAULT_PROVIDER": provider,
        "WESCTL_PROVIDERS": provider,
        "WESCTL_PROVIDER_TIMEOUT": "10",
        "WESCTL_RETRY_INITIAL_WAIT": "0.01",
        "WESCTL_RETRY_MAX_WAIT": "2",
        "DAEMON_MAX_CONCURRENT_WORKFLOWS": "1000000",
    }
    if provider == "arvados":
        return {
            **environ,
            "ARVADOS_API_HOST": base_url.removeprefix("https://"),
            "ARVADOS_API_TOKEN": ARVADOS_TOKEN,
            "ARVADOS_PROJECT_UUID": ARVADOS_PROJECT,
            "WESCTL_ARVADOS_RATE": RATE_LIMIT,
        }
    if provider == "sevenbridges":
        return {
            **environ,
            "SEVENBRIDGES_API_TOKEN": SBG_TOKEN,
            "SEVENBRIDGES_API_ENDPOINT": base_url + API_PREFIX,
            "SEVENBRIDGES_PROJECT": DEFAULT_PROJECT,
            "WESCTL_SEVENBRIDGES_RATE": RATE_LIMIT,
        }
    return {
        **environ,
        "AWS_CONFIG_FILE": str(config_dir / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(config_dir / "aws-credentials"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_OMICS": base_url,
        "AWS_ENDPOINT_URL_S3": base_url,  # never called: no benchmark reads outputs
        "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_HEALTHOMICS_WORKFLOW_ROLE_ARN": HO_ROLE_ARN,
        "AWS_HEALTHOMICS_OUTPUT_URI": HO_OUTPUT_URI,
        "WESCTL_HEALTHOMICS_START_RATE": RATE_LIMIT,
        "WESCTL_HEALTHOMICS_API_RATE": RATE_LIMIT,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def settings_for(
    database_uri: str, environ: Mapping[str, str], config_dir: Path, **extra: str
) -> Settings:
    """Settings from exactly `environ` plus `extra` (no .env file, no process environment).

    boto3 reads its configuration from the process environment, so the AWS variables are also
    exported; each benchmark runs in its own process.
    """
    values = {"DATABASE_URI": database_uri, **environ, **extra}
    for name, value in values.items():
        if name.startswith("AWS_") or name.lower() == "no_proxy":
            os.environ[name] = value
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    env_file = config_dir / "empty.env"
    env_file.touch()
    return load_settings(environ=values, env_file=env_file, export_sdk=False)


def add_sevenbridges_task(fake: SimulatedSevenBridges, run_id: str, status: str) -> str:
    """Put a task the way wesctl would have created and run it straight into the fake's state."""
    now = datetime.now(UTC)
    task = FakeTask(
        id=str(uuid.uuid4()),
        name=f"wes-{run_id}",
        description=f"Submitted by wesctl for WES run {run_id}.\nwesctl-run-id={run_id}",
        project=DEFAULT_PROJECT,
        app=f"{DEFAULT_APP}/1",
        inputs={"message": "hello"},
        created=now,
        created_by=fake.username,
        status=status,
        started=now if status == "RUNNING" else None,
        runs=1,
    )
    with fake.lock:
        fake.tasks[task.id] = task
    return task.id


def trust_arvados(fake: SimulatedArvados, config_dir: Path) -> None:
    """The SDK reads its trust and cache from the process environment, as boto3 does."""
    os.environ["SSL_CERT_FILE"] = fake.ca_file
    os.environ["XDG_CACHE_HOME"] = str(config_dir / "cache")


def add_arvados_request(fake: SimulatedArvados, run_id: str, container_state: str) -> str:
    """Put a committed container request as wesctl leaves it straight into the simulator's
    state, its container in `container_state` (Queued or Running)."""
    uuid = fake.add_committed_request({"wes_run_id": run_id})
    if container_state != "Queued":
        fake.set_container_state(uuid, container_state)
    return uuid


def add_healthomics_run(fake: SimulatedHealthOmics, run_id: str, status: str) -> str:
    """Put a run as StartRun would have created it straight into the fake's state (StartRun
    through boto3 would take minutes for 10,000 runs)."""
    with fake.lock:
        provider_id = str(fake._next_run)
        fake._next_run += 1
        request = {
            "workflowId": HO_WORKFLOW,
            "workflowType": "PRIVATE",
            "roleArn": HO_ROLE_ARN,
            "outputUri": HO_OUTPUT_URI,
            "name": f"wes-{run_id}",
            "requestId": f"wesctl-{run_id}",
            "parameters": {},
            "tags": {"wes_run_id": run_id},
        }
        run = FakeRun(
            id=provider_id,
            request=request,
            workflow=fake.workflows[HO_WORKFLOW],
            run_output_uri=f"{HO_OUTPUT_URI}/{provider_id}",
            created=fake.clock.now(),
        )
        fake._runs[provider_id] = run
        if status != "PENDING":
            fake._move(run, status)
    return provider_id


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    """A temporary directory for databases and the AWS config files."""
    with tempfile.TemporaryDirectory(prefix="wesctl-bench-") as directory:
        yield Path(directory)


if __name__ == "__main__" and sys.argv[1:2] == ["serve-fake"]:
    _serve_fake(sys.argv[2], float(sys.argv[3]), tls="--tls" in sys.argv[4:])
