"""What one claim costs while a long pass has many runs in flight, under a cap far above them.

A `submit-queued` pass claims a batch of runs whenever its workers run short, so a claim that
grows with the runs in flight slows the pass as it goes: 50k runs submitted at once need a cap of
at least 50k. For each number of runs in flight (already submitted, not finished), this inserts
them and 2,000 queued runs into a scratch database, analyzes it, and times, in one pass (one
`Submitter`, DAEMON_MAX_CONCURRENT_WORKFLOWS = 1,000,000), its first claim and the next
`--claims` claims of 16 runs: wall time per claim (the pass's main thread waits for it) and the
statements each sent. No provider is called.

Run: .venv/bin/python bench/claim_cost.py --database-uri postgresql://postgres@127.0.0.1:5432/test
     [--in-flight 0,10000,50000] [--claims 100]
Prints numbers; nothing is asserted.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

import common
from sqlalchemy import Engine, create_engine, event, text

from wesctl.db.engine import is_mysql, utcnow
from wesctl.domain.outcomes import Report
from wesctl.services.runtime import Runtime
from wesctl.services.submit import Submitter

BATCH = 16
QUEUED = 2000


def load(url: str, in_flight: int) -> None:
    """`in_flight` submitted, unfinished Seven Bridges runs and QUEUED queued ones."""
    queued = common.queued_rows(QUEUED, "sevenbridges")
    now = utcnow()
    submitted = [
        {
            **row,
            "state": "RUNNING",
            "provider_type": "sevenbridges",
            "provider_id": str(uuid.uuid4()),
            "submitted_at": now,
        }
        for row in common.queued_rows(in_flight, "sevenbridges")
    ]
    engine = create_engine(url)
    try:
        for start in range(0, len(submitted), 10_000):
            common.insert_rows(engine, submitted[start : start + 10_000])
        common.insert_rows(engine, queued)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("ANALYZE workflow_runs"))
            elif is_mysql(engine.dialect):
                connection.execute(text("ANALYZE TABLE workflow_runs"))
    finally:
        engine.dispose()


def measure(url: str, claims: int, directory: Any) -> dict[str, float]:
    settings = common.settings_for(
        url,
        {"WESCTL_PROVIDERS": "sevenbridges", "DAEMON_MAX_CONCURRENT_WORKFLOWS": "1000000"},
        directory,
    )
    statements = [0]

    def count(*_: Any) -> None:
        statements[0] += 1

    runtime = Runtime.open(settings, command="claim-cost")
    try:
        submitter = Submitter(runtime, Report("claim-cost"))
        started = time.perf_counter()
        first = submitter.claim(limit=BATCH)
        first_ms = (time.perf_counter() - started) * 1000
        event.listen(Engine, "before_cursor_execute", count)
        times, taken = [], 0
        try:
            for _ in range(claims):
                started = time.perf_counter()
                taken += len(submitter.claim(limit=BATCH))
                times.append((time.perf_counter() - started) * 1000)
        finally:
            event.remove(Engine, "before_cursor_execute", count)
    finally:
        runtime.close()
    if len(first) != BATCH or taken != BATCH * claims:
        raise SystemExit(f"a claim took less than a batch: {len(first)}, {taken}")
    return {
        "first": first_ms,
        "median": statistics.median(times),
        "p90": common.percentile(times, 0.9),
        "statements": statements[0] / claims,
    }


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--in-flight", default="0,10000,50000")
    parser.add_argument("--claims", type=int, default=100)
    options = parser.parse_args()
    result = common.Result()
    engine_name = common.database_name(options.database_uri)
    with common.workspace() as directory:
        for in_flight in (int(value) for value in options.in_flight.split(",")):
            with common.scratch_database(options.database_uri, directory) as url:
                load(url, in_flight)
                figures = measure(url, options.claims, directory)
            common.log(f"{in_flight} in flight: {figures}")
            name = f"claim of {BATCH} ({engine_name}, {in_flight} runs in flight, cap 1,000,000)"
            result.add(name, "first claim of the pass", f"{figures['first']:.1f} ms")
            result.add(
                name,
                f"next {options.claims} claims, median / p90",
                f"{figures['median']:.2f} / {figures['p90']:.2f} ms",
            )
            result.add(name, "statements per claim", f"{figures['statements']:.1f}")
    result.notes.append(
        f"One pass (one Submitter) claiming {BATCH} runs at a time from {QUEUED} queued; wall "
        "time per claim, which the pass's main thread waits for; no provider call."
    )
    result.emit(options.json)


if __name__ == "__main__":
    main()
