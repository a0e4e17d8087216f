"""Process start time of wesctl commands (wall clock, median of N runs).

Measured: `wesctl --help`, `wesctl runs list` on an empty SQLite database, and a no-op
`wesctl submit-queued` (nothing queued, embedded SQLite; a provider token is set but no provider
is called). Goal: --help under 0.3 s.

Run: /work/venv/bin/python bench/startup.py [--runs 15] [--json]
Prints one line per command; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import common

HELP_GOAL = 0.3  # seconds
COMMANDS = (
    ("wesctl --help", ["--help"]),
    ("wesctl runs list (empty SQLite)", ["-q", "runs", "list"]),
    ("wesctl submit-queued (nothing queued, SQLite)", ["-q", "submit-queued"]),
)
# Settings a no-op submit-queued checks before it finds nothing to do; never sent anywhere.
ENVIRONMENT = {
    "SEVENBRIDGES_API_TOKEN": "startup-bench-token",
    "SEVENBRIDGES_PROJECT": "wes-user/wes",
}


def measure(args: list[str], runs: int, cwd: str) -> list[float]:
    """Wall-clock seconds of `runs` starts of `python -m wesctl ARGS`."""
    timings = []
    environ = {**os.environ, **ENVIRONMENT}
    environ.pop("DATABASE_URI", None)  # the embedded SQLite file in `cwd`
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "wesctl", *args],
            cwd=cwd,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=environ,
        )
        timings.append(time.perf_counter() - start)
    return timings


def measure_all(runs: int) -> list[tuple[str, list[float]]]:
    """(label, timings) for every command, in a fresh directory with a migrated database."""
    with tempfile.TemporaryDirectory() as cwd:
        subprocess.run(
            [sys.executable, "-m", "wesctl", "-q", "db", "upgrade"],
            cwd=cwd,
            check=True,
            stdout=subprocess.DEVNULL,
            env={key: value for key, value in os.environ.items() if key != "DATABASE_URI"},
        )
        return [(label, measure(args, runs, cwd)) for label, args in COMMANDS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", action="store_true", help="print result rows as JSON")
    options = parser.parse_args()
    results = measure_all(options.runs)
    if not options.json:
        print(f"{'command':46} {'median s':>9} {'min s':>7} {'max s':>7}")
        for label, timings in results:
            print(
                f"{label:46} {statistics.median(timings):9.3f} {min(timings):7.3f} "
                f"{max(timings):7.3f}"
            )
        return
    result = common.Result()
    name = f"process start (median of {options.runs})"
    for label, timings in results:
        median = statistics.median(timings)
        goal = ""
        if label == "wesctl --help":
            goal = f"goal < {HELP_GOAL} s: {'met' if median < HELP_GOAL else 'missed'}"
        result.add(name, label, f"{median:.3f} s (min {min(timings):.3f})", "", goal)
    result.emit(as_json=True)


if __name__ == "__main__":
    main()
