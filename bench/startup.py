"""Process start time of wesctl commands (wall clock, median of N runs).

Run: .venv/bin/python bench/startup.py [--runs 15]
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

COMMANDS = (
    ("wesctl --help", ["--help"]),
    ("wesctl runs list (empty SQLite)", ["-q", "runs", "list"]),
)


def measure(args: list[str], runs: int, cwd: str) -> list[float]:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "wesctl", *args],
            cwd=cwd,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "0"},
        )
        timings.append(time.perf_counter() - start)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as cwd:
        subprocess.run(
            [sys.executable, "-m", "wesctl", "-q", "db", "upgrade"],
            cwd=cwd,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"{'command':40} {'median s':>9} {'min s':>7} {'max s':>7}")
        for label, args in COMMANDS:
            timings = measure(args, options.runs, cwd)
            print(
                f"{label:40} {statistics.median(timings):9.3f} {min(timings):7.3f} "
                f"{max(timings):7.3f}"
            )


if __name__ == "__main__":
    main()
