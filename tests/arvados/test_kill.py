"""kill -9 of a real submitter process at each step of an Arvados submission, then the next
attempt (may_exist, with whatever uuid was stored): exactly one committed container request per
run, no draft left that could be taken for live."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.contract.arvados_fixtures import make_provider, run_spec
from wesctl.domain.types import Attempt
from wesctl.simulated.arvados import DEFAULT_PROJECT, SimulatedArvados
from wesctl.simulated.http import SLOW, SLOW_AFTER

ROOT = Path(__file__).resolve().parents[2]
STEPS = {
    # step: (fault kind, operation it holds the submitter in); None: the child kills itself
    "before create": (SLOW, "workflows.get"),
    "after create, before the uuid is stored": (SLOW_AFTER, "container_requests.create"),
    "after the uuid is stored, before commit": None,
    "after commit, before the outcome is stored": (SLOW_AFTER, "container_requests.update"),
}


def _wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.mark.parametrize("step", list(STEPS))
def test_kill_9_at_each_step_leaves_exactly_one_committed_request(
    sim: SimulatedArvados, tmp_path: Path, step: str
) -> None:
    run_id = "run-kill"
    record_file = tmp_path / "recorded"
    record_file.write_text("")
    fault = STEPS[step]
    if fault is not None:
        kind, operation = fault
        sim.inject(kind, operation, delay=5.0)
    command = [sys.executable, "-m", "tests.arvados.crash_child", sim.host, sim.token]
    command += [DEFAULT_PROJECT, run_id, str(record_file)]
    if fault is None:
        command.append("kill-after-record")
    child = subprocess.Popen(command, cwd=ROOT)
    try:
        if fault is not None:
            _wait_for(lambda: sim.calls[fault[1]] >= 1, f"the submitter's {fault[1]}")
            child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
    sim.faults.clear()
    stored = record_file.read_text().split()
    provider = make_provider(sim)
    try:
        result = provider.submit(
            Attempt(run_spec(run_id), f"wesctl-{run_id}-1", stored[-1] if stored else None, True),
            stored.append,
        )
        requests = sim.requests_for_run(run_id)
        live = [r for r in requests if r["state"] != "Uncommitted"]
        assert [r["uuid"] for r in live] == [result.provider_id]
        drafts = [r for r in requests if r["state"] == "Uncommitted"]
        assert all("wesctl_duplicate_of" in r["properties"] for r in drafts)
        assert stored[-1] == result.provider_id
        status = provider.statuses([result.provider_id])[result.provider_id]
        assert status is not None
        assert status.state is not None
        assert status.state.value == "INITIALIZING"
    finally:
        provider.close()
