"""Log lines: one per event, a syslog priority prefix under journald, plain on a terminal."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from wesctl.log import JournalFormatter


def test_journal_formatter_prefixes_every_line_with_its_priority() -> None:
    formatter = JournalFormatter("%(name)s: %(message)s")
    record = logging.LogRecord("wesctl.x", logging.ERROR, __file__, 1, "a\nb", None, None)
    assert formatter.format(record) == "<3>wesctl.x: a\n<3>b"
    warning = logging.LogRecord("w", logging.WARNING, __file__, 1, "m", None, None)
    assert formatter.format(warning) == "<4>w: m"


def _stderr_of(env_extra: dict[str, str], tmp_path: Path) -> str:
    """Run a wesctl command whose stderr is a file, as journald's stream would be."""
    err_path = tmp_path / "stderr.txt"
    with err_path.open("w") as err:
        stat = os.fstat(err.fileno())
        env = {**os.environ, **env_extra}
        env["JOURNAL_STREAM"] = env_extra.get("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
        subprocess.run(
            [sys.executable, "-m", "wesctl", "runs", "list"],
            stderr=err,
            stdout=subprocess.DEVNULL,
            env=env,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
    return err_path.read_text()


def test_under_journald_lines_carry_priority_and_no_timestamp(tmp_path: Path) -> None:
    text = _stderr_of({"DATABASE_URI": "postgresql://x@127.0.0.1:1/db"}, tmp_path)
    assert text.splitlines() == [
        '<3>wesctl: database unavailable: connection to server at "127.0.0.1", port 1 failed: '
        "Connection refused"
    ]


def test_without_journald_lines_are_plain(tmp_path: Path) -> None:
    text = _stderr_of(
        {"DATABASE_URI": "postgresql://x@127.0.0.1:1/db", "JOURNAL_STREAM": "0:0"}, tmp_path
    )
    assert text.startswith("ERROR wesctl: database unavailable")
