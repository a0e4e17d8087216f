"""Submission throughput and latency: wesctl's `submit_queued` against a naive loop.

N queued runs (default 1000) are submitted to the provider fake (Seven Bridges by default) with a
fixed latency per API call. wesctl's real service (claims in batches, a bounded thread pool, the
guarded DB writes) is timed for each `--configs` pair (workers x claim batch size); then a naive
baseline does the same provider work one run at a time on a fresh database and a fresh fake: the
same adapter's `submit(...)`, then one plain UPDATE.

Per-run latency is from the run's claim (the claim UPDATE naming it) to the moment its
submission was recorded (its `run_state_history` row), so it includes waiting for a pool
thread. The baseline's is from the start of the run's iteration to its UPDATE.

The fake runs in a child process by default, as a real provider runs elsewhere: its CPU would
otherwise share wesctl's GIL and be counted as wesctl's (`--fake-in-process` to compare).

Run: /work/venv/bin/python bench/submit_throughput.py [--runs 1000] [--latency 0.02]
     [--provider healthomics] [--configs 16x64,32x64] [--fake-in-process]
     [--database-uri postgresql://postgres@127.0.0.1:5432/test]
Prints numbers; nothing is asserted.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import common
from sqlalchemy import Engine, event, select, update
from sqlalchemy.orm import Session

from wesctl.config import Settings
from wesctl.db.engine import make_engine, utcnow
from wesctl.db.runs import ProviderFilter, queued_unsubmitted
from wesctl.db.tables import StateTransition, WorkflowRun
from wesctl.domain.outcomes import Outcome
from wesctl.domain.states import RunState
from wesctl.domain.types import Attempt
from wesctl.providers.registry import build_provider
from wesctl.services.runtime import Runtime
from wesctl.services.submit import spec_from_row, submit_queued

DEFAULT_BATCH = 16  # submit_queued's default claim batch: one per worker


@dataclass
class Measurement:
    label: str
    runs: int
    wall: float
    cpu: float
    latencies: list[float]
    endpoints: dict[str, int]
    submitted: int
    duplicates: int
    statements: Counter[str]
    statement_seconds: Counter[str]

    @property
    def rate(self) -> float:
        return self.runs / self.wall

    @property
    def api_calls(self) -> int:
        return sum(self.endpoints.values())

    def summary(self) -> str:
        per_run = {kind: round(n / self.runs, 2) for kind, n in self.statements.items()}
        begin_wait = self.statement_seconds.get("BEGIN", 0.0)
        return (
            f"{self.label}: {self.runs} runs in {self.wall:.2f} s ({self.rate:.1f} runs/s), "
            f"CPU {self.cpu:.2f} s, p50 {common.ms(common.percentile(self.latencies, 0.5))}, "
            f"p99 {common.ms(common.percentile(self.latencies, 0.99))}, API calls "
            f"{self.endpoints}, submitted {self.submitted}, duplicates {self.duplicates}, "
            f"SQL statements per run {per_run}, summed time in BEGIN (waiting for other "
            "processes' SQLite write lock) "
            f"{begin_wait:.2f} s"
        )


@contextmanager
def queued_runs(
    provider: str,
    count: int,
    latency: float,
    server_uri: str | None,
    directory: Path,
    *,
    fake_process: bool,
    **overrides: str,
) -> Iterator[tuple[Engine, Settings, common.FakeHandle]]:
    """A started fake and a scratch database holding `count` queued runs for it, with the
    settings that point wesctl at both; everything is stopped and dropped afterwards."""
    fake = common.FakeHandle(provider, latency, separate_process=fake_process)
    try:
        with common.scratch_database(server_uri, directory) as url:
            engine = make_engine(url)
            try:
                common.insert_rows(engine, common.queued_rows(count, provider))
                environ = common.provider_environ(provider, fake.base_url, directory)
                yield engine, common.settings_for(url, environ, directory, **overrides), fake
            finally:
                engine.dispose()
    finally:
        fake.stop()


def measure_wesctl(
    provider: str,
    count: int,
    latency: float,
    server_uri: str | None,
    directory: Path,
    *,
    workers: int,
    batch_size: int,
    fake_process: bool = False,
) -> Measurement:
    """Time one `submit_queued` pass over `count` fresh queued runs."""
    with queued_runs(
        provider,
        count,
        latency,
        server_uri,
        directory,
        fake_process=fake_process,
        WESCTL_SUBMIT_WORKERS=str(workers),
    ) as (engine, settings, fake):
        runtime = Runtime.open(settings, command="bench-submit")
        timer = common.StatementTimer(runtime.engine)
        claimed_at = ClaimClock(runtime.engine)
        cpu_before = common.cpu_seconds()
        started = time.perf_counter()
        try:
            report = submit_queued(runtime, batch_size=batch_size)
        finally:
            wall = time.perf_counter() - started
            cpu = common.cpu_seconds() - cpu_before
            runtime.close()
        recorded = recorded_at(engine)
        stats = fake.stats()
    latencies = [
        (recorded[run_id] - at).total_seconds()
        for run_id, at in claimed_at.times.items()
        if run_id in recorded
    ]
    return Measurement(
        label=f"wesctl (workers={workers}, batch={batch_size})",
        runs=count,
        wall=wall,
        cpu=cpu,
        latencies=latencies,
        endpoints=stats["endpoints"],
        submitted=report.counts().get(Outcome.SUBMITTED, 0),
        duplicates=stats["duplicates"],
        statements=timer.counts,
        statement_seconds=timer.seconds,
    )


class ClaimClock:
    """When each run was claimed: the time of the claim UPDATE whose parameters name it."""

    def __init__(self, engine: Engine) -> None:
        self.times: dict[str, datetime] = {}
        event.listen(engine, "before_cursor_execute", self._before)

    def _before(self, conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        is_claim = statement.startswith("UPDATE workflow_runs") and "submission_key=" in statement
        if not is_claim:
            return
        now = utcnow()
        values = parameters.values() if isinstance(parameters, dict) else parameters
        for value in values:
            if isinstance(value, str) and value not in self.times:
                self.times[value] = now


def recorded_at(engine: Engine) -> dict[str, datetime]:
    """When each run's submission was recorded (its transition out of QUEUED)."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(StateTransition.run_id, StateTransition.at).where(
                StateTransition.from_state == RunState.QUEUED.value,
                StateTransition.to_state != RunState.QUEUED.value,
            )
        ).all()
    return {row.run_id: row.at for row in rows}


def measure_naive(
    provider: str,
    count: int,
    latency: float,
    server_uri: str | None,
    directory: Path,
    *,
    fake_process: bool = False,
) -> Measurement:
    """One run at a time: the adapter's submit, then one UPDATE; no claims, no pool."""
    with queued_runs(
        provider, count, latency, server_uri, directory, fake_process=fake_process
    ) as (engine, settings, fake):
        timer = common.StatementTimer(engine)
        cpu_before = common.cpu_seconds()
        started = time.perf_counter()
        latencies = naive_pass(engine, settings, provider)
        wall = time.perf_counter() - started
        cpu = common.cpu_seconds() - cpu_before
        stats = fake.stats()
    return Measurement(
        label="naive loop",
        runs=count,
        wall=wall,
        cpu=cpu,
        latencies=latencies,
        endpoints=stats["endpoints"],
        submitted=len(latencies),
        duplicates=stats["duplicates"],
        statements=timer.counts,
        statement_seconds=timer.seconds,
    )


def naive_pass(engine: Engine, settings: Settings, provider: str) -> list[float]:
    """Submit every queued run in turn; return the per-run latencies."""
    adapter = build_provider(provider, settings)
    with Session(engine, expire_on_commit=False) as session:
        rows = queued_unsubmitted(session, ProviderFilter(provider))
    latencies: list[float] = []
    for row in rows:
        begun = time.perf_counter()
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
        latencies.append(time.perf_counter() - begun)
    adapter.close()
    return latencies


def add_rows(
    result: common.Result, name: str, measurement: Measurement, naive: Measurement
) -> None:
    speedup = measurement.rate / naive.rate
    result.add(
        name,
        "throughput",
        f"{measurement.rate:.1f} runs/s",
        f"{naive.rate:.1f} runs/s",
        f"{speedup:.1f}x (goal >= 10x)",
    )
    result.add(name, "wall time", f"{measurement.wall:.2f} s", f"{naive.wall:.2f} s")
    for label, fraction in (("p50", 0.5), ("p99", 0.99)):
        result.add(
            name,
            f"submit latency {label}",
            common.ms(common.percentile(measurement.latencies, fraction)),
            common.ms(common.percentile(naive.latencies, fraction)),
        )
    result.add(
        name,
        "API calls (per run)",
        f"{measurement.api_calls} ({measurement.api_calls / measurement.runs:.2f})",
        f"{naive.api_calls} ({naive.api_calls / naive.runs:.2f})",
    )
    result.add(
        name,
        "CPU time per run (this process)",
        common.ms(measurement.cpu / measurement.runs),
        common.ms(naive.cpu / naive.runs),
    )
    result.add(
        name,
        "submitted / duplicate provider runs",
        f"{measurement.submitted} / {measurement.duplicates}",
        f"{naive.submitted} / {naive.duplicates}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common.add_common_options(parser)
    parser.add_argument("--runs", type=int, default=1000, help="queued runs (default 1000)")
    parser.add_argument(
        "--baseline-runs", type=int, default=None, help="runs for the naive loop (default --runs)"
    )
    parser.add_argument("--provider", choices=common.PROVIDERS, default="sevenbridges")
    parser.add_argument(
        "--configs",
        default=f"16x{DEFAULT_BATCH}",
        help="comma-separated WORKERSxBATCH pairs to measure: WESCTL_SUBMIT_WORKERS and "
        f"submit_queued's claim batch size (default 16x{DEFAULT_BATCH}, wesctl's defaults)",
    )
    parser.add_argument(
        "--fake-in-process",
        action="store_true",
        help="run the fake inside this process (its CPU then shares wesctl's GIL)",
    )
    options = parser.parse_args()
    database = common.database_name(options.database_uri)
    fake_process = not options.fake_in_process
    where = "fake in own process" if fake_process else "in-process fake"
    bench = (
        f"submit {options.runs} runs ({options.provider}, {options.latency * 1000:g} ms/call, "
        f"{database}, {where})"
    )
    result = common.Result()
    with common.workspace() as directory:
        measurements = []
        for config in options.configs.split(","):
            workers, _, batch_size = config.partition("x")
            measurement = measure_wesctl(
                options.provider,
                options.runs,
                options.latency,
                options.database_uri,
                directory,
                workers=int(workers),
                batch_size=int(batch_size or DEFAULT_BATCH),
                fake_process=fake_process,
            )
            common.log(measurement.summary())
            measurements.append(measurement)
        naive = measure_naive(
            options.provider,
            options.baseline_runs or options.runs,
            options.latency,
            options.database_uri,
            directory,
            fake_process=fake_process,
        )
        common.log(naive.summary())
    for measurement in measurements:
        add_rows(result, f"{bench}, {measurement.label}", measurement, naive)
    p50, p99 = (common.ms(common.percentile(naive.latencies, f)) for f in (0.5, 0.99))
    result.notes.append(
        f"The naive loop submitted {naive.runs} runs (p50 {p50}, p99 {p99} per run: its rate "
        "does not depend on the number of runs)."
    )
    result.notes.append(
        f"Client rate limits raised to {common.RATE_LIMIT}/s (WESCTL_SEVENBRIDGES_RATE, "
        "WESCTL_HEALTHOMICS_START_RATE/_API_RATE; defaults 3.3, 0.1 and 10/s) and "
        "DAEMON_MAX_CONCURRENT_WORKFLOWS lifted, so only the fake's latency paces calls."
    )
    result.emit(options.json)


if __name__ == "__main__":
    main()
