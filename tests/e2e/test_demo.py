"""`wesctl demo` as a newcomer runs it: a real process, a fresh SQLite file, exit 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_demo_runs_every_case_to_its_final_state_and_exits(tmp_path: Path) -> None:
    database = tmp_path / "demo.db"
    result = subprocess.run(
        [sys.executable, "-m", "wesctl", "demo", "--database", str(database)],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SIMULATED" in result.stdout
    assert "Traceback" not in result.stderr
    # Off a terminal (a pipe here, a CI log or a file for a newcomer) the output is whole lines:
    # nothing wrapped at 80 columns, no frame whose cells cut what they hold.
    lines = result.stdout.splitlines()
    queued = [line for line in lines if line.startswith("  queued ")]
    assert len(queued) == 6, result.stdout
    assert all(line.endswith("(notification answered HTTP 200)") for line in queued), queued
    assert not [line for line in lines if set(line) & set("│╭╰…")], result.stdout
    assert any(line.startswith("command=status ") for line in lines), "status as plain lines"
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "wesctl",
            "-q",
            "--database-uri",
            f"sqlite:///{database}",
            "runs",
            "list",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    states = sorted(item["state"] for item in json.loads(listed.stdout))
    assert states == [
        "CANCELED",
        "COMPLETE",
        "COMPLETE",
        "COMPLETE",
        "EXECUTOR_ERROR",
        "EXECUTOR_ERROR",
    ]
