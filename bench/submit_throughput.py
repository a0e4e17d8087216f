"""Submission throughput as an operator gets it: the whole `wesctl submit-queued` process.

N queued runs (default 1000) wait in a scratch database; the provider simulator runs in its own
process (`wesctl.simulated.serve`) with a fixed latency per API call; then `wesctl submit-queued`
runs as a subprocess with the environment an operator has (the original variable names,
DATABASE_URI, the provider endpoint, the CA through the client's standard variable,
REQUESTS_CA_BUNDLE / AWS_CA_BUNDLE / SSL_CERT_FILE), its output going to a file as under a
timer. Measured: runs/s and wall time of the whole process (start, imports and rendering
included), its CPU (user + sys from wait4) per submitted run, its peak RSS (measured by GNU
time, whose own small process forks it: a child forked from this process would report this
process's peak, which holds the N queued rows it inserted, as Linux keeps the larger peak across
exec), API calls and duplicate provider runs. Beside it, a naive loop measured the same way: a
child process with the same environment that submits one run at a time through the same adapter
and writes one UPDATE per run (no claims, no pool).

Setups (`--setups`):
- operator: PostgreSQL (a scratch database on --database-uri), https with a private CA;
- friendly: SQLite in a temp dir, plain http (Arvados: https, its SDK speaks nothing else).

On PostgreSQL the queue is analyzed once inserted (`analyze`). Client rate limits are lifted
(100000/s), DAEMON_MAX_CONCURRENT_WORKFLOWS and WESCTL_PASS_TIMEOUT raised, so only the
simulator's latency paces the calls.

Run: .venv/bin/python bench/submit_throughput.py [--runs 1000] [--latency 0.02]
     [--providers sevenbridges,healthomics,arvados] [--setups operator,friendly]
     [--baseline-runs N (0: none)] [--workers N] [--processes N] [--profile DIR]
     [--database-uri postgresql://postgres@127.0.0.1:5432/test]
     .venv/bin/python bench/submit_throughput.py --runs 50000 --baseline-runs 0 --setups operator
Prints numbers; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common
from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.orm import Session

from wesctl.config import load_settings
from wesctl.db.engine import make_engine, utcnow
from wesctl.db.runs import ProviderFilter, queued_unsubmitted
from wesctl.db.tables import WorkflowRun
from wesctl.domain.states import RunState
from wesctl.domain.types import Attempt
from wesctl.providers.registry import build_provider
from wesctl.services.submit import spec_from_row
from wesctl.simulated.serve import CA_VARIABLE

CORES = os.cpu_count() or 1

WESCTL = Path(sys.executable).parent / "wesctl"
TIME = "/usr/bin/time"  # GNU time
PROVIDER_NAMES = ("sevenbridges", "healthomics", "arvados")
SETUPS = ("operator", "friendly")


@dataclass
class ProcessRun:
    """One child process: what it did and what it cost."""

    runs: int
    wall: float
    cpu: float  # user + sys of the child
    sys_cpu: float
    peak_rss_mib: float
    exit_code: int
    submitted: int  # runs that left QUEUED with a provider id (read from the database)
    endpoints: dict[str, int]
    duplicates: int
    summary: dict[str, str] = field(default_factory=dict)  # the `command=` line, if any
    instructions: int | None = None  # counted by callgrind (--callgrind), load-independent
    simulator_cpu: float = 0.0  # the simulator process's CPU during the pass
    machine_cpu: float = 0.0  # every core's busy time during the pass (/proc/stat)

    @property
    def rate(self) -> float:
        return self.runs / self.wall

    @property
    def cpu_per_run(self) -> float:
        return self.cpu / max(1, self.submitted)

    @property
    def api_calls(self) -> int:
        return sum(self.endpoints.values())

    def describe(self, label: str) -> str:
        return (
            f"{label}: {self.runs} runs in {self.wall:.2f} s ({self.rate:.1f} runs/s), CPU "
            f"{self.cpu:.2f} s (sys {self.sys_cpu:.2f} s; {common.ms(self.cpu_per_run)} per "
            "submitted run), peak RSS "
            f"{self.peak_rss_mib:.0f} MiB, exit {self.exit_code}, submitted {self.submitted}, "
            f"duplicates {self.duplicates}, API calls {self.endpoints}"
            + (
                f", {self.instructions / 1e6:.0f} M instructions"
                if self.instructions is not None
                else ""
            )
        )


def operator_environment(
    provider: str, fake: common.FakeHandle, database_uri: str, directory: Path, workers: int | None
) -> dict[str, str]:
    """Only what an operator's unit would set: no inherited variables, a private HOME."""
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(directory),
        "XDG_CACHE_HOME": str(directory / "cache"),
        "XDG_CONFIG_HOME": str(directory / "config"),
        **common.provider_environ(provider, fake.base_url, directory),
        "DATABASE_URI": database_uri,
        "WESCTL_PASS_TIMEOUT": "86400",
    }
    if fake.ca_file is not None:
        environment[CA_VARIABLE[provider]] = fake.ca_file
    if workers is not None:
        environment["WESCTL_SUBMIT_WORKERS"] = str(workers)
    return environment


def run_child(command: list[str], environment: dict[str, str], directory: Path, name: str) -> Any:
    """Run `command` in `directory` with exactly `environment`, stdout and stderr to files;
    return (wall seconds, rusage of the child, its peak RSS in MiB, exit code, stdout text)."""
    out, err = directory / f"{name}.out", directory / f"{name}.err"
    peak = directory / f"{name}.peak"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        started = time.perf_counter()
        child = subprocess.Popen(
            [TIME, "-q", "-o", str(peak), "-f", "%M", *command],
            env=environment,
            cwd=directory,
            stdout=stdout,
            stderr=stderr,
        )
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    errors = [line for line in err.read_text().splitlines() if " ERROR " in line][:3]
    if errors:
        common.log(f"{name}: {errors}")
    peak_mib = int(peak.read_text().split()[-1]) / 1024
    return wall, usage, peak_mib, child.returncode, out.read_text()


def submitted_runs(database_uri: str) -> int:
    engine = make_engine(database_uri)
    try:
        with engine.connect() as connection:
            query = select(func.count()).where(
                WorkflowRun.state != RunState.QUEUED.value, WorkflowRun.provider_id.is_not(None)
            )
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


def summary_pairs(output: str) -> dict[str, str]:
    """The `command=...` summary line of a report printed off a terminal."""
    for line in reversed(output.splitlines()):
        if line.startswith("command="):
            return dict(re.findall(r"(\w+)=(\S+)", line))
    return {}


def measure(
    provider: str,
    setup: str,
    count: int,
    options: argparse.Namespace,
    directory: Path,
    *,
    naive: bool,
) -> ProcessRun:
    """Queue `count` runs, start the simulator, run one child (wesctl or the naive loop)."""
    tls = setup == "operator" or provider == "arvados"
    server = options.database_uri if setup == "operator" else None
    fake = common.FakeHandle(provider, options.latency, tls=tls)
    try:
        with common.scratch_database(server, directory) as url:
            engine = make_engine(url)
            try:
                common.insert_rows(engine, common.queued_rows(count, provider))
                if engine.dialect.name == "postgresql":
                    analyze(engine)
            finally:
                engine.dispose()
            environment = operator_environment(provider, fake, url, directory, options.workers)
            if naive:
                command = [sys.executable, __file__, "naive-child", provider]
            else:
                command = [str(WESCTL), "submit-queued"]
                if options.profile is not None:
                    profile = Path(options.profile) / f"{provider}-{setup}-{count}.txt"
                    profile.parent.mkdir(parents=True, exist_ok=True)
                    spy = Path(sys.executable).parent / "py-spy"
                    command = [str(spy), "record", "-r", "100", "--gil", "--nonblocking"]
                    command += ["-f", "raw", "-o", str(profile)]
                    command += ["--", str(WESCTL), "submit-queued"]
                if options.callgrind is not None:
                    counts = Path(options.callgrind) / f"{provider}-{setup}-{count}.callgrind"
                    counts.parent.mkdir(parents=True, exist_ok=True)
                    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={counts}"]
                    command += ["--", str(WESCTL), "submit-queued"]
            name = f"{'naive' if naive else 'wesctl'}-{provider}-{setup}"
            names = [name] if naive else [f"{name}-{index}" for index in range(options.processes)]
            simulator_before = fake.stats()["cpu_seconds"]
            machine_before = common.busy_cpu_seconds()
            started = time.perf_counter()
            with ThreadPoolExecutor(len(names)) as pool:
                children = list(
                    pool.map(lambda each: run_child(command, environment, directory, each), names)
                )
            wall = time.perf_counter() - started
            machine_cpu = common.busy_cpu_seconds() - machine_before
            counted = [collected_instructions(directory / f"{each}.err") for each in names]
            submitted = submitted_runs(url)
        stats = fake.stats()
    finally:
        fake.stop()
    usages = [usage for _, usage, _, _, _ in children]
    return ProcessRun(
        runs=count,
        wall=wall,
        cpu=sum(usage.ru_utime + usage.ru_stime for usage in usages),
        sys_cpu=sum(usage.ru_stime for usage in usages),
        peak_rss_mib=max(peak for _, _, peak, _, _ in children),
        exit_code=max(code for _, _, _, code, _ in children),
        submitted=submitted,
        endpoints=stats["endpoints"],
        duplicates=stats["duplicates"],
        summary=summary_pairs(children[0][4]),
        instructions=None if None in counted else sum(c for c in counted if c is not None),
        simulator_cpu=stats["cpu_seconds"] - simulator_before,
        machine_cpu=machine_cpu,
    )


def collected_instructions(stderr: Path) -> int | None:
    """The instruction count callgrind prints at exit (`==PID== Collected : N`), if it ran."""
    found = re.search(r"==\d+== Collected : (\d+)", stderr.read_text())
    return int(found.group(1)) if found else None


def analyze(engine: Engine) -> None:
    """Statistics of the queue just inserted, as autovacuum gathers them within a minute of a
    table's growing by a tenth. Without them PostgreSQL takes a claim's oldest new runs by
    reading and sorting the whole queue (it estimates each IS NULL to hold for 0.5% of rows)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE workflow_runs"))


def naive_child(provider: str) -> None:
    """The naive loop, in its own process, configured from the environment like wesctl."""
    settings = load_settings()
    engine = make_engine(settings.database_uri)
    adapter = build_provider(provider, settings)
    with Session(engine, expire_on_commit=False) as session:
        rows = queued_unsubmitted(session, ProviderFilter(provider))
    for row in rows:
        submission = adapter.submit(
            Attempt(spec_from_row(row), f"wesctl-{row.run_id}"), lambda provider_id: None
        )
        with engine.begin() as connection:
            connection.execute(
                update(WorkflowRun)
                .where(WorkflowRun.run_id == row.run_id)
                .values(
                    state=RunState.INITIALIZING.value,
                    provider_type=provider,
                    provider_id=submission.provider_id,
                    provider_status=submission.status.raw_status,
                    submitted_at=utcnow(),
                )
            )
    adapter.close()
    engine.dispose()


def describe_setup(setup: str, provider: str, options: argparse.Namespace) -> str:
    if setup == "friendly":
        scheme = "https" if provider == "arvados" else "http"
        return f"SQLite, {scheme}"
    return f"{common.database_name(options.database_uri)}, https"


def add_rows(
    result: common.Result, name: str, measured: ProcessRun, naive: ProcessRun | None
) -> None:
    def pair(show: Any, *, goal: str = "") -> tuple[str, str, str]:
        return show(measured), show(naive) if naive is not None else "", goal

    ratio = f"{measured.rate / naive.rate:.1f}x (goal >= 10x)" if naive is not None else ""
    result.add(
        name, "throughput (whole process)", *pair(lambda m: f"{m.rate:.1f} runs/s", goal=ratio)
    )
    result.add(name, "wall time", *pair(lambda m: f"{m.wall:.2f} s ({m.runs} runs)"))
    result.add(
        name,
        "CPU (user+sys) per submitted run",
        *pair(lambda m: common.ms(m.cpu_per_run), goal="goal <= 3 ms"),
    )
    result.add(
        name,
        "the machine's CPU per run: simulator; all cores (busy share)",
        *pair(
            lambda m: (
                f"{common.ms(m.simulator_cpu / max(1, m.runs))}; "
                f"{common.ms(m.machine_cpu / max(1, m.runs))} "
                f"({m.machine_cpu / (m.wall * CORES):.0%} of {CORES} cores)"
            )
        ),
    )
    result.add(name, "peak RSS", *pair(lambda m: f"{m.peak_rss_mib:.0f} MiB"))
    if measured.instructions is not None:
        per_run = measured.instructions / max(1, measured.submitted)
        result.add(
            name,
            "instructions (callgrind), per submitted run",
            f"{measured.instructions / 1e6:.0f} M, {per_run / 1e6:.2f} M",
            "",
            "",
        )
    result.add(
        name, "API calls (per run)", *pair(lambda m: f"{m.api_calls} ({m.api_calls / m.runs:.2f})")
    )
    result.add(
        name,
        "submitted / duplicates / exit code",
        *pair(lambda m: f"{m.submitted} / {m.duplicates} / {m.exit_code}"),
    )


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.set_defaults(database_uri=common.DEFAULT_POSTGRES)
    parser.add_argument("--runs", type=int, default=1000, help="queued runs (default 1000)")
    parser.add_argument(
        "--baseline-runs",
        type=int,
        default=None,
        help="runs for the naive loop (default --runs; 0: no baseline)",
    )
    parser.add_argument("--providers", default=",".join(PROVIDER_NAMES))
    parser.add_argument("--setups", default=",".join(SETUPS), help="operator,friendly")
    parser.add_argument(
        "--workers", type=int, default=None, help="WESCTL_SUBMIT_WORKERS (default: wesctl's)"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="wesctl submit-queued processes started at once on the same queue (default 1), as "
        "several timer units or hosts would run them; figures are for them all together",
    )
    parser.add_argument(
        "--profile",
        default=None,
        help="directory for py-spy raw profiles of the wesctl process (pip install py-spy)",
    )
    parser.add_argument(
        "--callgrind",
        default=None,
        help="directory for callgrind profiles: run wesctl under valgrind and report the "
        "instructions it executed (repeatable whatever the machine's load; ~50x slower)",
    )
    options = parser.parse_args()
    baseline_runs = options.runs if options.baseline_runs is None else options.baseline_runs
    result = common.Result()
    with common.workspace() as directory:
        for setup in options.setups.split(","):
            for provider in options.providers.split(","):
                where = describe_setup(setup, provider, options)
                processes = f", {options.processes} processes" if options.processes > 1 else ""
                name = (
                    f"submit-queued {options.runs} runs ({provider}, "
                    f"{options.latency * 1000:g} ms/call, {where}{processes})"
                )
                measured = measure(provider, setup, options.runs, options, directory, naive=False)
                common.log(measured.describe(f"{name}, wesctl"))
                naive = None
                if baseline_runs:
                    naive = measure(provider, setup, baseline_runs, options, directory, naive=True)
                    common.log(naive.describe(f"{name}, naive"))
                add_rows(result, name, measured, naive)
    result.notes.append(
        "Each figure is one child process measured from outside (with --processes, all of them: "
        "wall time from the first spawn to the last exit, CPU summed, the largest peak RSS): "
        "wall time from spawn to exit, "
        "CPU = user + sys of the child (wait4), peak RSS = its maxrss as GNU time reports it; the "
        "simulator runs in another process. Output goes to a file (key=value lines), as under a "
        "timer."
    )
    result.notes.append(
        f"Client rate limits raised to {common.RATE_LIMIT}/s, DAEMON_MAX_CONCURRENT_WORKFLOWS "
        "and WESCTL_PASS_TIMEOUT lifted, so only the simulator's latency paces calls."
    )
    result.emit(options.json)


if __name__ == "__main__":
    if sys.argv[1:2] == ["naive-child"]:
        naive_child(sys.argv[2])
    else:
        main()
