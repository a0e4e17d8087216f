"""Logging to stderr, one line per event.

Under journald (stderr is the stream named by $JOURNAL_STREAM) lines carry a syslog priority
prefix (`<3>`) and no timestamp, since journald adds its own. On a terminal or in a pipe they are
`LEVEL name: message`. Multi-line records are split so each line keeps its priority.
"""

from __future__ import annotations

import logging
import os
import sys

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 6)
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).splitlines())


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time, so a replaced stderr (a test runner, a
    daemon thread outliving a redirect) never leaves the handler holding a closed stream."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def stderr_is_journal() -> bool:
    stream = os.environ.get("JOURNAL_STREAM")
    if not stream:
        return False
    try:
        stat = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{stat.st_dev}:{stat.st_ino}"


def configure_logging(verbosity: int = 0) -> None:
    """Configure the root logger once: -q → warnings only, default → info, -v → debug."""
    level = logging.INFO
    if verbosity < 0:
        level = logging.WARNING
    elif verbosity > 0:
        level = logging.DEBUG
    handler = _StderrHandler()
    if stderr_is_journal():
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party clients are chatty at INFO (credential discovery, connection pools).
    for noisy in ("botocore", "boto3", "urllib3", "sevenbridges", "alembic"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
