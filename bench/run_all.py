"""Run every benchmark, each in its own process (clean peak RSS), and print one markdown table.

Order: process start, submission throughput (the whole `wesctl submit-queued` process, on
PostgreSQL over https and on SQLite over http), sync-status, notification burst, report
rendering. The table has one
line per metric (benchmark, metric, wesctl, naive baseline, ratio / goal), followed by the
machine it ran on and the notes of each benchmark; it is meant to be pasted into bench/README.md.

Run: /work/venv/bin/python bench/run_all.py [--latency 0.02] [--database-uri postgresql://...]
     [--only startup,submit,sync,notify,render]
Prints numbers; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import common

HERE = Path(__file__).resolve().parent


def benchmarks(options: argparse.Namespace) -> dict[str, list[str]]:
    """Command line of each benchmark script, by short name."""
    shared = ["--latency", str(options.latency)]
    if options.database_uri:
        shared += ["--database-uri", options.database_uri]
    return {
        "startup": ["startup.py", "--runs", str(options.startup_runs)],
        "submit": [
            "submit_throughput.py",
            *shared,
            "--runs",
            str(options.submit_runs),
            "--baseline-runs",
            str(options.submit_baseline_runs),
            "--providers",
            options.submit_providers,
            "--setups",
            options.submit_setups,
        ],
        "sync": [
            "sync_status.py",
            *shared,
            "--runs",
            str(options.sync_runs),
            "--provider",
            options.sync_providers,
        ],
        "notify": ["notify_burst.py", *shared, "--runs", str(options.notify_runs)],
        "render": ["render_report.py"],
    }


def run(script: list[str]) -> tuple[common.Result, float]:
    """Run one benchmark script with --json; return its result and its wall time."""
    command = [sys.executable, str(HERE / script[0]), *script[1:], "--json"]
    common.log(f"$ {shlex.join(command)}")
    started = time.perf_counter()
    completed = subprocess.run(
        command, cwd=HERE.parent, stdout=subprocess.PIPE, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    result = common.Result()
    if completed.returncode != 0:
        result.add(script[0], "FAILED", f"exit code {completed.returncode}")
        return result, elapsed
    payload = json.loads(completed.stdout.strip().splitlines()[-1])
    result.rows = [common.Row(**row) for row in payload["rows"]]
    result.notes = list(payload["notes"])
    return result, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=0.020, help="seconds per fake call")
    parser.add_argument("--database-uri", default=None, help="PostgreSQL or MariaDB server URL")
    parser.add_argument("--only", default="startup,submit,sync,notify,render")
    parser.add_argument("--startup-runs", type=int, default=7)
    parser.add_argument("--submit-runs", type=int, default=1000)
    parser.add_argument(
        "--submit-baseline-runs",
        type=int,
        default=1000,
        help="runs the naive submit loop does in its own process (default 1000, as many as "
        "wesctl: fewer would charge its start-up to fewer runs; 0: no baseline)",
    )
    parser.add_argument("--submit-providers", default="sevenbridges,healthomics,arvados")
    parser.add_argument(
        "--submit-setups",
        default="operator,friendly",
        help="operator: PostgreSQL (--database-uri, default the local server) over https; "
        "friendly: SQLite over plain http (Arvados: https)",
    )
    parser.add_argument("--sync-runs", type=int, default=10_000)
    parser.add_argument("--sync-providers", default="sevenbridges,healthomics")
    parser.add_argument("--notify-runs", type=int, default=1000)
    options = parser.parse_args()
    info = common.machine()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    rows: list[common.Row] = []
    notes: list[str] = []
    timings: list[str] = []
    scripts = benchmarks(options)
    for name in options.only.split(","):
        result, elapsed = run(scripts[name])
        rows.extend(result.rows)
        notes.extend(f"{name}: {note}" for note in result.notes)
        timings.append(f"{name} {elapsed:.0f} s")
    total = time.perf_counter() - started
    print(common.markdown_table(rows))
    print()
    print(
        f"Machine: {info['cores']} cores, {info['cpu']}, Python {info['python']}, "
        f"SQLite {info['sqlite']}, PostgreSQL {info.get('postgresql', 'not reachable')}, "
        f"MariaDB {info.get('mariadb', 'not reachable')}; "
        f"database used: {common.database_name(options.database_uri)} (submit: its rows name "
        "theirs); "
        f"1-minute load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after."
    )
    print(f"Command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"Total {total:.0f} s ({', '.join(timings)}).")
    print()
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
