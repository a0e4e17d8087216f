"""Does a command's cost grow with the finished runs? Whole-process timings at 0 / 100k / 1M.

Each size gets a scratch database (SQLite in a temp dir, or a new database on the server
`--database-uri` names, dropped afterwards) with 1,000 QUEUED runs, 1,000 runs RUNNING at a
simulated Seven Bridges that reports them unchanged, and N finished runs as a WES database
accumulates them: 85% COMPLETE, 8% EXECUTOR_ERROR, 4% CANCELED, 3% SYSTEM_ERROR, each with two
task logs and three history rows (INITIALIZING, RUNNING, its final state), finishing at a steady
1,000 runs a day (so 1M runs are 2.7 years of history and the last 24 hours hold about 1,000 of
them whatever N is). Rows are bulk-loaded (COPY on PostgreSQL, executemany in chunks of 20,000
elsewhere) into the migrated schema, then PostgreSQL is ANALYZEd (as autovacuum would have).

Every command runs as its own `wesctl` process under GNU time (/usr/bin/time, which reads the
child's rusage with wait4), three rounds, each running every command once on every database (so
a change in the machine's load falls on all sizes alike); the table shows the median wall and
CPU time and the largest peak RSS. `submit-queued` is a no-op: the concurrency
cap (DAEMON_MAX_CONCURRENT_WORKFLOWS=1000) is full, so its claim finds no slot.

    .venv/bin/python bench/history_scale.py --sizes 0,100000
    .venv/bin/python bench/history_scale.py --database-uri postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import common
from sqlalchemy import create_engine, text

from wesctl.db.engine import database_url, is_mysql, utcnow

TIME = "/usr/bin/time"  # GNU time
QUEUED = 1000
IN_FLIGHT = 1000
CHUNK = 20_000
FINISHED_PER_DAY = 1000
TASK_LOGS_PER_RUN = 2
# (final state, share of finished runs)
FINAL_STATES = (
    ("COMPLETE", 0.85),
    ("EXECUTOR_ERROR", 0.08),
    ("CANCELED", 0.04),
    ("SYSTEM_ERROR", 0.03),
)
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("status",),
    ("sync-status",),
    ("submit-queued",),
    ("submit-queued", "--dry-run"),
    ("runs", "show", "{run}"),
    ("runs", "list"),
)

RUN_COLUMNS = (
    "run_id",
    "state",
    "workflow_params",
    "workflow_type",
    "workflow_type_version",
    "workflow_url",
    "tags",
    "start_time",
    "end_time",
    "provider_type",
    "provider_id",
    "provider_status",
    "outputs",
    "submission_key",
    "submit_attempts",
    "submitted_at",
    "provider_changed_at",
    "provider_stopped_at",
    "not_found_count",
)
TASK_LOG_COLUMNS = ("id", "run_id", "name", "cmd", "start_time", "end_time", "stdout", "exit_code")
HISTORY_COLUMNS = ("run_id", "at", "from_state", "to_state", "reason", "actor")


def _time(value: datetime) -> str:
    """The text form every engine reads and SQLite's readers expect."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _final_state(index: int) -> str:
    position = (index % 100) / 100
    for state, share in FINAL_STATES:
        if position < share:
            return state
        position -= share
    return FINAL_STATES[0][0]


@dataclass
class Rows:
    runs: list[tuple[Any, ...]]
    task_logs: list[tuple[Any, ...]]
    history: list[tuple[Any, ...]]


def finished_rows(start: int, count: int, now: datetime) -> Rows:
    """Finished runs `start` .. `start + count`, the newest finishing just now."""
    rows = Rows([], [], [])
    url = common.workflow_url("sevenbridges")
    for index in range(start, start + count):
        run_id = str(uuid.uuid4())
        state = _final_state(index)
        ended = now - timedelta(days=index / FINISHED_PER_DAY)
        queued = ended - timedelta(hours=2)
        running = queued + timedelta(minutes=5)
        provider_id = str(uuid.uuid4())
        rows.runs.append(
            (
                run_id,
                state,
                '{"message": "hello", "count": 2}',
                "CWL",
                "v1.0",
                url,
                '{"provider_type": "sevenbridges"}',
                _time(queued),
                _time(ended),
                "sevenbridges",
                provider_id,
                "COMPLETED" if state == "COMPLETE" else "FAILED",
                '{"out": {"class": "File", "location": "s3://bucket/out.txt"}}',
                f"wesctl-{run_id}",
                1,
                _time(queued + timedelta(seconds=1)),
                _time(ended),
                _time(ended),
                0,
            )
        )
        for task in range(TASK_LOGS_PER_RUN):
            rows.task_logs.append(
                (
                    str(uuid.uuid4()),
                    run_id,
                    f"step-{task}",
                    '["run", "step"]',
                    _time(running),
                    _time(ended),
                    f"https://logs.example/{run_id}/{task}.out",
                    0,
                )
            )
        for at, before, after in (
            (queued, "QUEUED", "INITIALIZING"),
            (running, "INITIALIZING", "RUNNING"),
            (ended, "RUNNING", state),
        ):
            reason = f"provider status {after}"
            rows.history.append((run_id, _time(at), before, after, reason, "sync-status@bench"))
    return rows


def _load(url: str, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    if not rows:
        return
    engine = create_engine(database_url(url))
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            buffer = io.StringIO()
            csv.writer(buffer).writerows(rows)
            buffer.seek(0)
            cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH CSV", buffer)
        else:
            marks = ", ".join(["%s" if is_mysql(engine.dialect) else "?"] * len(columns))
            cursor.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", list(rows)
            )
        raw.commit()
    finally:
        raw.close()
        engine.dispose()


def load_finished(url: str, count: int) -> None:
    now = utcnow()
    for start in range(0, count, CHUNK):
        rows = finished_rows(start, min(CHUNK, count - start), now)
        _load(url, "workflow_runs", RUN_COLUMNS, rows.runs)
        _load(url, "task_logs", TASK_LOG_COLUMNS, rows.task_logs)
        _load(url, "run_state_history", HISTORY_COLUMNS, rows.history)
        if start and start % 200_000 == 0:
            common.log(f"  {start} finished runs loaded")


def load_active(url: str, fake: common.CountingSevenBridgesFake) -> str:
    """1,000 queued runs and 1,000 running at `fake`; return one running run's id."""
    now = utcnow()
    queued = common.queued_rows(QUEUED, "sevenbridges")
    running = []
    for row in common.queued_rows(IN_FLIGHT, "sevenbridges"):
        task = common.add_sevenbridges_task(fake, row["run_id"], "RUNNING")
        submitted = now - timedelta(minutes=30)
        running.append(
            {
                **row,
                "state": "RUNNING",
                "provider_type": "sevenbridges",
                "provider_id": task,
                "provider_status": "RUNNING",
                "submission_key": f"wesctl-{row['run_id']}",
                "submit_attempts": 1,
                "submitted_at": submitted,
                "provider_changed_at": submitted,
            }
        )
    engine = create_engine(database_url(url))
    try:
        common.insert_rows(engine, queued)
        common.insert_rows(engine, running)  # one column set per executemany
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("ANALYZE"))
    finally:
        engine.dispose()
    return str(running[0]["run_id"])


def a_finished_run(url: str) -> str | None:
    engine = create_engine(database_url(url))
    try:
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT run_id FROM task_logs ORDER BY id LIMIT 1")
            ).scalar()
    finally:
        engine.dispose()
    return str(found) if found is not None else None


@contextlib.contextmanager
def database_with_history(
    server_uri: str | None, directory: Path, finished: int, fake: common.CountingSevenBridgesFake
) -> Iterator[tuple[str, str]]:
    """Yield (URL, id of a run to show: finished with task logs, or running at size 0)."""
    with common.scratch_database(server_uri, directory) as url:
        started = time.monotonic()
        load_finished(url, finished)
        running = load_active(url, fake)
        common.log(f"{finished} finished runs loaded in {time.monotonic() - started:.0f} s")
        yield url, a_finished_run(url) or running


def command_environ(url: str, fake: common.CountingSevenBridgesFake, directory: Path) -> dict:
    environ = {
        **os.environ,
        **common.provider_environ("sevenbridges", fake.base_url, directory),
        "DATABASE_URI": url,
        "DAEMON_MAX_CONCURRENT_WORKFLOWS": str(IN_FLIGHT),
        "NO_COLOR": "1",
    }
    return environ


def run_once(argv: Sequence[str], environ: dict[str, str], cwd: Path) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MiB) of one `wesctl ARGV` process, measured by
    GNU time (its wait4): a child forked from this process would report this process's own
    peak RSS too, as Linux keeps the larger peak across exec."""
    wesctl = str(Path(sys.executable).parent / "wesctl")
    measured = cwd / "time.out"
    child = subprocess.run(
        [TIME, "-o", str(measured), "-f", "%e %U %S %M", wesctl, *argv],
        env=environ,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        raise SystemExit(
            f"wesctl {' '.join(argv)} exited {child.returncode}: {child.stderr[-2000:]}"
        )
    wall, user, system, kib = measured.read_text().split()[-4:]
    return float(wall), float(user) + float(system), int(kib) / 1024


Measured = tuple[float, float, float]  # median wall s, median CPU s, largest peak RSS MiB


def summarise(results: Sequence[tuple[float, float, float]]) -> Measured:
    """Medians of the runs, and the largest peak RSS."""
    return (
        statistics.median(r[0] for r in results),
        statistics.median(r[1] for r in results),
        max(r[2] for r in results),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-uri", default=None, help="PostgreSQL or MariaDB server URL")
    parser.add_argument("--sizes", default="0,100000,1000000", help="finished runs per database")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    engine_name = common.database_name(args.database_uri)
    runs: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    with common.workspace() as directory, contextlib.ExitStack() as stack:
        fake = common.start_fake("sevenbridges", 0.0)
        stack.callback(fake.stop)
        databases = {}
        for size in sizes:
            sub = directory / str(size)
            sub.mkdir()
            url, run = stack.enter_context(
                database_with_history(args.database_uri, sub, size, fake)
            )
            databases[size] = (command_environ(url, fake, sub), run, sub)
        # Interleaved (each round runs every command once on every database), so a change in
        # the machine's load falls on every size alike.
        for round_ in range(3):
            for command in COMMANDS:
                label = " ".join(command).replace("{run}", "ID")
                for size in sizes:
                    environ, run, sub = databases[size]
                    argv = [part.format(run=run) for part in command]
                    runs.setdefault((label, size), []).append(run_once(argv, environ, sub))
            common.log(f"round {round_ + 1} of 3 done")
    results = {key: summarise(values) for key, values in runs.items()}
    print_table(engine_name, sizes, results)


def print_table(
    engine_name: str, sizes: Sequence[int], results: dict[tuple[str, int], Measured]
) -> None:
    """One row per command: wall time, CPU time of the wesctl process (less disturbed by other
    load on the machine; a server's own work is not in it) and peak RSS per size, then the
    ratios of the largest size to the smallest."""
    header = [f"{engine_name}: command", *(f"{size:,} finished" for size in sizes)]
    if len(sizes) > 1:
        header.append(f"{sizes[-1]:,} / {sizes[0]:,} (wall, CPU)")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    labels = dict.fromkeys(label for label, _ in results)
    for label in labels:
        cells = [f"`{label}`"]
        for size in sizes:
            wall, cpu, mib = results[label, size]
            cells.append(f"{wall:.2f} s ({cpu:.2f} CPU), {mib:.0f} MiB")
        if len(sizes) > 1:
            last, first = results[label, sizes[-1]], results[label, sizes[0]]
            cells.append(f"{last[0] / first[0]:.2f}x, {last[1] / first[1]:.2f}x")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
