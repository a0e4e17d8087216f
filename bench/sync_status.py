"""One `sync_status` pass over N in-flight runs (default 10,000) against a naive per-run poll.

The runs are inserted straight into the database as wesctl leaves them after submission
(provider id, submitted_at, state INITIALIZING or RUNNING) and their provider runs straight into
the fake's state. Before the pass a share of them (`--changed`, default 10%) changes at the
provider: half start running, half finish (Seven Bridges: COMPLETED/FAILED; HealthOmics:
FAILED/CANCELLED, whose details need no S3; Arvados: a failed container and one the cluster
cancelled, whose details need no Keep read), so the pass also fetches details for those.

Measured for the pass: API calls by endpoint (from the fake), status calls per 50 runs (calls made
inside the adapter's `statuses`), wall time, CPU, this process's peak RSS during the pass (VmHWM,
reset before it) minus its RSS before,
and, in separate passes at latency 0 over N/10 and N/4 runs, the tracemalloc peak (memory should
not grow with N: runs are read in keyset batches of 500).

The naive baseline asks for one run at a time (`statuses([id])`), fetches details for finished
runs and UPDATEs changed rows. It runs over a random sample of the same runs (`--baseline-sample`,
own database) and its time and calls are scaled to N: a full sequential pass at 20 ms per call
would take minutes.

With `--sizes`, one world per provider and size instead: a pass in which nothing changed, then
one after `--changed` of the runs changed, each a row of calls, SQL statements (by kind), wall,
CPU and peak RSS (the process's, which also holds the fake and the world's rows).

Run: /work/venv/bin/python bench/sync_status.py [--runs 10000] [--latency 0.02]
     [--sizes 1000,10000,100000 --changed 0.05]
     [--provider sevenbridges,healthomics,arvados] [--baseline-sample 200] [--database-uri ...]
Prints numbers; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import common
from sqlalchemy import select, update

from wesctl.config import Settings
from wesctl.db.engine import make_engine, utcnow
from wesctl.db.tables import WorkflowRun
from wesctl.domain.states import TERMINAL_STATES
from wesctl.domain.types import ProviderStatus, RunDetails
from wesctl.providers.registry import build_provider
from wesctl.services.runtime import Runtime
from wesctl.services.sync import sync_status

Fake = common.CountingFake

# Raw provider statuses: (initializing, running) before the pass; (finished A, finished B) after.
# Arvados: container states; a failed and a system-cancelled container need no Keep read.
RAW = {
    "sevenbridges": {"start": ("QUEUED", "RUNNING"), "finish": ("COMPLETED", "FAILED")},
    "healthomics": {"start": ("STARTING", "RUNNING"), "finish": ("FAILED", "CANCELLED")},
    "arvados": {"start": ("Queued", "Running"), "finish": ("Failed", "Cancelled")},
}
STATE_OF = {
    "QUEUED": "INITIALIZING",
    "STARTING": "INITIALIZING",
    "RUNNING": "RUNNING",
    "Committed/Queued": "INITIALIZING",
    "Committed/Running": "RUNNING",
}
ARVADOS_STATUS = {"Queued": "Committed/Queued", "Running": "Committed/Running"}


def set_raw_status(fake: Fake, provider_id: str, raw: str) -> None:
    """Move a provider run to `raw` (RAW's names) at the fake."""
    if not isinstance(fake, common.CountingArvadosFake):
        fake.set_status(provider_id, raw)
    elif raw == "Failed":
        fake.finish(provider_id, succeed=False)
    elif raw == "Cancelled":
        fake.cancel_by_system(provider_id, "node lost")
    else:
        fake.set_container_state(provider_id, raw)


@dataclass
class World:
    """A database of in-flight runs and a fake holding their provider runs."""

    url: str
    fake: Fake
    settings: Settings
    rows: list[dict[str, Any]]
    changed: int = 0
    finished: int = 0


@dataclass
class PassResult:
    wall: float
    cpu: float
    endpoints: dict[str, int]
    status_calls: int
    counts: dict[str, int]
    rss_growth_mib: float = 0.0
    status_endpoints: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def api_calls(self) -> int:
        return sum(self.endpoints.values())


def build_world(
    provider: str,
    count: int,
    latency: float,
    changed_share: float,
    url: str,
    directory: Path,
    seed: int = 7,
) -> World:
    """Insert `count` in-flight runs and their provider runs (checked by a pass ten minutes
    ago), then change `changed_share`."""
    fake = common.start_fake(provider, latency)
    if isinstance(fake, common.CountingArvadosFake):
        common.trust_arvados(fake, directory)
    settings = common.settings_for(
        url, common.provider_environ(provider, fake.base_url, directory), directory
    )
    raw = RAW[provider]
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for index, row in enumerate(common.queued_rows(count, provider)):
        status = raw["start"][index % 2]
        if isinstance(fake, common.CountingSevenBridgesFake):
            provider_id = common.add_sevenbridges_task(fake, row["run_id"], status)
        elif isinstance(fake, common.CountingArvadosFake):
            provider_id = common.add_arvados_request(fake, row["run_id"], status)
            status = ARVADOS_STATUS[status]
        else:
            provider_id = common.add_healthomics_run(fake, row["run_id"], status)
        rows.append(
            {
                **row,
                "state": STATE_OF[status],
                "provider_type": provider,
                "provider_id": provider_id,
                "provider_status": status,
                "submission_key": f"wesctl-{row['run_id']}",
                "submit_attempts": 1,
                "submitted_at": now - timedelta(minutes=30),
                "provider_changed_at": now - timedelta(minutes=30),
                "status_checked_at": now - timedelta(minutes=10),
            }
        )
    engine = make_engine(url)
    for start in range(0, len(rows), 10_000):
        common.insert_rows(engine, rows[start : start + 10_000])
    engine.dispose()
    world = World(url, fake, settings, rows)
    change_runs(world, provider, changed_share, seed)
    return world


def change_runs(world: World, provider: str, changed_share: float, seed: int = 7) -> None:
    """Change `changed_share` of the runs at the provider: half start running, half finish."""
    raw, rows, count = RAW[provider], world.rows, len(world.rows)
    chooser = random.Random(seed)
    share = round(count * changed_share / 2)
    finishing = chooser.sample(range(count), share)
    waiting = [i for i in range(count) if rows[i]["state"] == "INITIALIZING"]
    starting = chooser.sample(sorted(set(waiting) - set(finishing)), share)
    for number, index in enumerate(finishing):
        set_raw_status(world.fake, rows[index]["provider_id"], raw["finish"][number % 2])
    for index in starting:
        set_raw_status(world.fake, rows[index]["provider_id"], raw["start"][1])
    world.changed, world.finished = len(finishing) + len(starting), len(finishing)
    world.fake.endpoints.counts.clear()


class AdapterProbe:
    """Wraps the adapter's `statuses` and `details` to count the requests made inside
    `statuses` (status calls and detail fetches never overlap in a pass) and the time spent in
    each (summed over threads). Observation only: the calls are passed through unchanged."""

    def __init__(self, runtime: Runtime, provider: str, fake: Fake) -> None:
        self.status_endpoints: Counter[str] = Counter()
        self.status_seconds = 0.0
        self.details_seconds = 0.0
        self._lock = threading.Lock()
        adapter = runtime.provider(provider)
        statuses, details = adapter.statuses, adapter.details

        def counted(provider_ids: Sequence[str]) -> Mapping[str, ProviderStatus | None]:
            before = Counter(fake.endpoints.counts)
            started = time.perf_counter()
            try:
                return statuses(provider_ids)
            finally:
                self.status_endpoints.update(Counter(fake.endpoints.counts) - before)
                self.status_seconds += time.perf_counter() - started

        def timed(provider_id: str) -> RunDetails:
            started = time.perf_counter()
            try:
                return details(provider_id)
            finally:
                with self._lock:
                    self.details_seconds += time.perf_counter() - started

        adapter.statuses = counted  # type: ignore[method-assign]
        adapter.details = timed  # type: ignore[method-assign]


def wesctl_pass(world: World, provider: str, *, traced: bool = False) -> PassResult:
    """One sync_status pass over the world; with `traced`, also the tracemalloc peak."""
    runtime = Runtime.open(world.settings, command="bench-sync")
    try:
        probe = AdapterProbe(runtime, provider, world.fake)
        timer = common.StatementTimer(runtime.engine)
        world.fake.endpoints.counts.clear()
        common.reset_peak_rss()
        rss_before = common.rss_mib()[0]
        cpu_before = common.cpu_seconds()
        if traced:
            tracemalloc.start()
        started = time.perf_counter()
        report = sync_status(runtime)
        wall = time.perf_counter() - started
        extra: dict[str, Any] = {}
        if traced:
            extra["tracemalloc_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        cpu = common.cpu_seconds() - cpu_before
        extra["peak RSS MiB"] = common.rss_mib()[1]
        rss_growth = extra["peak RSS MiB"] - rss_before
    finally:
        runtime.close()
    counts: dict[str, int] = {}
    for outcome in report.outcomes:
        counts[outcome.outcome.value] = counts.get(outcome.outcome.value, 0) + 1
    extra["seconds in statuses()"] = round(probe.status_seconds, 2)
    extra["summed seconds in details()"] = round(probe.details_seconds, 2)
    extra["SQL statements"] = dict(timer.counts)
    extra["summed seconds in BEGIN"] = round(timer.seconds.get("BEGIN", 0.0), 2)
    return PassResult(
        wall=wall,
        cpu=cpu,
        endpoints=dict(world.fake.endpoints.counts),
        status_calls=sum(probe.status_endpoints.values()),
        counts=counts,
        rss_growth_mib=rss_growth,
        status_endpoints=dict(probe.status_endpoints),
        extra=extra,
    )


def naive_pass(world: World, provider: str, sample: list[dict[str, Any]], url: str) -> PassResult:
    """One status call per run, in turn; details for finished runs; an UPDATE per change."""
    engine = make_engine(url)
    common.insert_rows(engine, sample)
    adapter = build_provider(provider, world.settings)
    world.fake.endpoints.counts.clear()
    status_calls = 0
    counts = {"updated": 0, "unchanged": 0}
    cpu_before = common.cpu_seconds()
    started = time.perf_counter()
    with engine.connect() as connection:
        runs = connection.execute(
            select(
                WorkflowRun.run_id,
                WorkflowRun.state,
                WorkflowRun.provider_id,
                WorkflowRun.provider_status,
            ).order_by(WorkflowRun.run_id)
        ).all()
    for run in runs:
        before = world.fake.endpoints.total()
        status = adapter.statuses([run.provider_id])[run.provider_id]
        status_calls += world.fake.endpoints.total() - before
        if status is None or status.state is None:
            continue
        if status.state.value == run.state and status.raw_status == run.provider_status:
            counts["unchanged"] += 1
            continue
        values: dict[str, Any] = {"state": status.state.value, "provider_status": status.raw_status}
        if status.state in TERMINAL_STATES:
            details = adapter.details(run.provider_id)
            values["outputs"] = dict(details.outputs)
            values["end_time"] = status.ended_at or utcnow()
        with engine.begin() as transaction:
            transaction.execute(
                update(WorkflowRun).where(WorkflowRun.run_id == run.run_id).values(**values)
            )
        counts["updated"] += 1
    wall = time.perf_counter() - started
    cpu = common.cpu_seconds() - cpu_before
    adapter.close()
    engine.dispose()
    return PassResult(
        wall=wall,
        cpu=cpu,
        endpoints=dict(world.fake.endpoints.counts),
        status_calls=status_calls,
        counts=counts,
    )


def memory_scaling(
    provider: str, sizes: Sequence[int], server_uri: str | None, directory: Path
) -> dict[int, float]:
    """tracemalloc peak (MiB) of one pass at latency 0 for each number of runs."""
    peaks: dict[int, float] = {}
    for size in sizes:
        common.log(f"{provider}: traced pass over {size} runs")
        with common.scratch_database(server_uri, directory) as url:
            world = build_world(provider, size, 0.0, 0.1, url, directory)
            try:
                peaks[size] = wesctl_pass(world, provider, traced=True).extra[
                    "tracemalloc_peak_mib"
                ]
            finally:
                world.fake.stop()
        common.log(f"{provider}: tracemalloc peak over {size} runs: {peaks[size]:.1f} MiB")
    return peaks


def bench_provider(
    provider: str, options: argparse.Namespace, directory: Path, result: common.Result
) -> None:
    count = options.runs
    database = common.database_name(options.database_uri)
    name = f"sync-status {count} runs ({provider}, {options.latency * 1000:g} ms/call, {database})"
    with common.scratch_database(options.database_uri, directory) as url:
        common.log(f"{provider}: setting up {count} in-flight runs")
        world = build_world(provider, count, options.latency, options.changed, url, directory)
        try:
            common.log(f"{provider}: wesctl pass")
            mine = wesctl_pass(world, provider)
            common.log(f"{provider}: wesctl pass {mine}")
            sample = random.Random(11).sample(world.rows, min(options.baseline_sample, count))
            with common.scratch_database(options.database_uri, directory) as sample_url:
                naive = naive_pass(world, provider, sample, sample_url)
            common.log(f"{provider}: naive pass over {len(sample)} runs {naive}")
        finally:
            world.fake.stop()
    scale = count / len(sample)
    naive_wall = naive.wall * scale
    naive_calls = naive.api_calls * scale
    naive_status = naive.status_calls * scale
    per50 = mine.status_calls / (count / 50)
    result.add(
        name,
        "status calls (per 50 runs)",
        f"{mine.status_calls} ({per50:.2f}): "
        + ", ".join(f"{endpoint} {n}" for endpoint, n in mine.status_endpoints.items()),
        f"{naive_status:.0f} ({naive_status / (count / 50):.1f})",
        f"goal <= 1 per 50 runs: {'met' if per50 <= 1 else 'missed'}",
    )
    result.add(
        name,
        "all API calls incl. details",
        f"{mine.api_calls}",
        f"{naive_calls:.0f}",
        f"{naive_calls / max(1, mine.api_calls):.1f}x fewer",
    )
    result.add(
        name,
        "wall time of the pass",
        f"{mine.wall:.2f} s",
        f"{naive_wall:.1f} s",
        f"{naive_wall / mine.wall:.1f}x faster",
    )
    result.add(name, "CPU time of the pass", f"{mine.cpu:.2f} s", f"{naive.cpu * scale:.1f} s")
    result.add(
        name,
        f"runs changed / finished ({options.changed:.0%})",
        f"{world.changed} / {world.finished}; outcomes {mine.counts}",
        f"sample outcomes {naive.counts}",
    )
    result.add(name, "peak RSS during the pass minus RSS before", f"{mine.rss_growth_mib:.1f} MiB")
    result.notes.append(
        f"{provider}: where the wesctl pass went: {mine.extra} (CPU {mine.cpu:.1f} s)."
    )
    result.notes.append(
        f"{provider}: API calls by endpoint in the wesctl pass: {mine.endpoints}, of which "
        f"status calls {mine.status_endpoints}; the naive "
        f"baseline ran over a random sample of {len(sample)} runs and is scaled by {scale:g}."
    )
    if options.memory_scaling:
        sizes = (max(1, count // 10), max(2, count // 4))
        peaks = memory_scaling(provider, sizes, options.database_uri, directory)
        small, large = sizes
        per_run = (peaks[large] - peaks[small]) * 2**20 / 1024 / (large - small)
        result.add(
            name,
            "tracemalloc peak of a pass (latency 0)",
            f"{peaks[small]:.1f} MiB at {small} runs, {peaks[large]:.1f} MiB at {large} runs",
            "",
            f"flat memory: +{per_run:.2f} KiB per extra run",
        )


def bench_matrix(options: argparse.Namespace, directory: Path) -> None:
    """One world per provider and size: a pass in which nothing changed, then one after
    `--changed` of the runs changed; a table row per pass."""
    database = common.database_name(options.database_uri)
    header = (
        "provider",
        "database",
        "in flight",
        "changed / finished",
        "status calls (per 50 runs)",
        "all calls",
        "SQL statements",
        "wall",
        "CPU",
        "peak RSS (growth)",
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for provider in options.provider.split(","):
        for size in (int(text) for text in options.sizes.split(",")):
            with common.scratch_database(options.database_uri, directory) as url:
                common.log(f"{provider}: setting up {size} in-flight runs")
                world = build_world(provider, size, options.latency, 0.0, url, directory)
                world.rows = [
                    {key: row[key] for key in ("provider_id", "state")} for row in world.rows
                ]
                try:
                    for share in (0.0, options.changed):
                        if share:
                            change_runs(world, provider, share)
                        common.log(f"{provider}: pass over {size} runs, {share:.0%} changed")
                        mine = wesctl_pass(world, provider)
                        statements = mine.extra["SQL statements"]
                        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(statements.items()))
                        cells = (
                            provider,
                            database,
                            f"{size:,}",
                            f"{world.changed if share else 0} / {world.finished if share else 0}",
                            f"{mine.status_calls} ({mine.status_calls / (size / 50):.2f})",
                            str(mine.api_calls),
                            f"{sum(statements.values())} ({kinds})",
                            f"{mine.wall:.1f} s",
                            f"{mine.cpu:.1f} s",
                            f"{mine.extra['peak RSS MiB']:.0f} MiB ({mine.rss_growth_mib:+.0f})",
                        )
                        lines.append("| " + " | ".join(cells) + " |")
                        common.log(lines[-1])
                    if options.child_pass:
                        rss, code = child_pass(world, provider, url, directory)
                        common.log(f"{provider}: wesctl sync-status process: {rss:.0f} MiB")
                        lines.append(
                            f"| {provider} | {database} | {size:,} | `wesctl sync-status` in its "
                            f"own process (exit {code}): max RSS {rss:.0f} MiB |"
                        )
                finally:
                    world.fake.stop()
    print("\n".join(lines))


# Runs `wesctl sync-status --json` and, at exit, writes the process's peak RSS (VmHWM, which
# unlike the parent's rusage of a child does not count the forking parent's pages) to argv[1].
_CHILD = """
import atexit, re, runpy, sys
from pathlib import Path
out = sys.argv[1]
def peak():
    status = Path("/proc/self/status").read_text()
    Path(out).write_text(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
atexit.register(peak)
sys.argv = ["wesctl", "sync-status", "--json"]
runpy.run_module("wesctl", run_name="__main__")
"""


def child_pass(world: World, provider: str, url: str, directory: Path) -> tuple[float, int]:
    """One more pass, as the timer runs it: `wesctl sync-status` in its own process (without
    the fake and the world's rows); its peak RSS in MiB and exit code."""
    environ = {
        **os.environ,
        **common.provider_environ(provider, world.fake.base_url, directory),
        "DATABASE_URI": url,
    }
    out = directory / "child-peak-rss"
    code = subprocess.call(
        [sys.executable, "-c", _CHILD, str(out)],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return int(out.read_text()) / 1024, code


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--runs", type=int, default=10_000, help="in-flight runs (10000)")
    parser.add_argument(
        "--provider",
        default="sevenbridges,healthomics",
        help="comma-separated providers (default both)",
    )
    parser.add_argument(
        "--changed", type=float, default=0.10, help="share of runs changing in the pass (0.10)"
    )
    parser.add_argument(
        "--baseline-sample", type=int, default=200, help="runs the naive baseline polls (200)"
    )
    parser.add_argument(
        "--no-memory-scaling",
        dest="memory_scaling",
        action="store_false",
        help="skip the tracemalloc passes over N/10 and N/4 runs",
    )
    parser.add_argument(
        "--sizes",
        default=None,
        help="comma-separated in-flight sizes (e.g. 1000,10000,100000): per size, a pass with "
        "nothing changed and one with --changed changed, as one table (no baseline)",
    )
    parser.add_argument(
        "--child-pass",
        action="store_true",
        help="with --sizes: one more pass as `wesctl sync-status` in its own process, for its RSS",
    )
    options = parser.parse_args()
    if options.sizes:
        with common.workspace() as directory:
            bench_matrix(options, directory)
        return
    result = common.Result()
    with common.workspace() as directory:
        for provider in options.provider.split(","):
            bench_provider(provider, options, directory, result)
    result.notes.append(
        "Client rate limits raised (WESCTL_SEVENBRIDGES_RATE, WESCTL_HEALTHOMICS_API_RATE, "
        "WESCTL_ARVADOS_RATE = "
        f"{common.RATE_LIMIT}/s). Peak RSS and tracemalloc include the in-process fake."
    )
    result.emit(options.json)


if __name__ == "__main__":
    main()
