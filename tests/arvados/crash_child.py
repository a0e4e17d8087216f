"""A submitter process for the kill -9 tests: submits one run through the real adapter and
appends every uuid it is told to record to a file, as wesctl stores it before going on.

Usage: python -m tests.arvados.crash_child HOST TOKEN PROJECT RUN_ID RECORD_FILE [kill-after-record]
"""

from __future__ import annotations

import os
import signal
import sys

from tests.contract.arvados_fixtures import arvados_settings, run_spec
from wesctl.domain.types import Attempt
from wesctl.providers.arvados.adapter import build


def main(argv: list[str]) -> None:
    host, token, project, run_id, record_file, *mode = argv
    provider = build(arvados_settings(host, token, project))

    def record(uuid: str) -> None:
        with open(record_file, "a", encoding="utf-8") as handle:
            handle.write(uuid + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if mode == ["kill-after-record"]:
            os.kill(os.getpid(), signal.SIGKILL)

    provider.submit(Attempt(run_spec(run_id), f"wesctl-{run_id}-1"), record)


if __name__ == "__main__":
    main(sys.argv[1:])
