"""Reliability under races and crashes: real processes, real databases, the Seven Bridges fake.

- Race: 4 `wesctl submit-queued` processes and 50 concurrent submit-one calls on 200 runs:
  every run is submitted exactly once and the concurrency cap is never exceeded.
- Crash: `wesctl submit-one` is killed with SIGKILL at each step of a submission; after the
  lease expires the commands adopt what was started: one provider task per run, none stuck.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from tests.cli_helpers import upgrade_database, wesctl, wesctl_process
from tests.e2e.providers import SBG_APP, sevenbridges_env, sevenbridges_fake
from tests.wes_api import expire_claim, insert_api_run
from wesctl.config import load_settings
from wesctl.services.runtime import Runtime
from wesctl.services.submit import submit_one
from wesctl.simulated.sevenbridges import SimulatedSevenBridges


@pytest.fixture
def fake() -> Iterator[SimulatedSevenBridges]:
    with sevenbridges_fake() as started:
        yield started


def _environment(db_url: str, fake: SimulatedSevenBridges, **extra: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URI": db_url, **sevenbridges_env(fake), **extra}
    env.pop("JOURNAL_STREAM", None)
    return env


def _wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached in time")


def _active_tasks(fake: SimulatedSevenBridges) -> int:
    with fake.lock:
        return sum(
            1
            for task in fake.tasks.values()
            if not task.deleted and task.status not in ("COMPLETED", "FAILED", "ABORTED")
        )


def test_race_of_processes_submits_every_run_exactly_once_within_the_cap(
    db_url: str, fake: SimulatedSevenBridges
) -> None:
    cap = 80
    upgrade_database(db_url)
    engine = create_engine(db_url)
    ids = [insert_api_run(engine, workflow_url=SBG_APP) for _ in range(200)]
    env = _environment(db_url, fake, DAEMON_MAX_CONCURRENT_WORKFLOWS=str(cap))
    settings = dataclasses.replace(
        load_settings(
            environ={k: v for k, v in env.items() if k != "CREDENTIALS_DIRECTORY"}, export_sdk=False
        ),
    )
    rounds = 0
    while rounds < 6:
        rounds += 1
        processes = [
            wesctl_process(
                "-q", "submit-queued", "--json", env=env, stderr=subprocess.PIPE, text=True
            )
            for _ in range(4)
        ]

        def notify(run_id: str) -> None:
            runtime = Runtime.open(settings, command="race-submit-one")
            try:
                submit_one(runtime, run_id)
            finally:
                runtime.close()

        threads = [threading.Thread(target=notify, args=(run_id,)) for run_id in ids[:50]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        for process in processes:
            _, stderr = process.communicate(timeout=120)
            assert process.returncode in (0, 75), stderr
        # Within a round tasks are only created, so the count now is the round's peak.
        assert _active_tasks(fake) <= cap
        per_run = {run_id: len(fake.runs_for(run_id)) for run_id in ids}
        assert max(per_run.values()) <= 1, "a run was submitted twice"
        if all(per_run.values()):
            break
        for task_id, task in list(fake.tasks.items()):
            if task.status not in ("COMPLETED", "FAILED", "ABORTED"):
                fake.finish(task_id, succeed=True)
        result = wesctl("sync-status", env=env)
        assert result.exit_code == 0, result.output
    assert all(len(fake.runs_for(run_id)) == 1 for run_id in ids)
    assert all(task.runs == 1 for task in fake.tasks.values()), "a task was run twice"
    assert rounds == 3, "80 + 80 + 40 runs with a cap of 80"
    engine.dispose()


# (name, fault kind, skip, expected provider-side state right after the kill)
CRASH_POINTS = [
    ("after claim, before the provider saw anything", "slow", 0, "none"),
    ("after the draft was created, before its id was stored", "slow_after", 0, "draft"),
    ("after the draft id was stored, before the task was run", "slow", 1, "draft"),
    ("after the task was run, before the outcome was stored", "slow_after", 1, "queued"),
]


@pytest.mark.parametrize(("step", "kind", "skip", "provider_side"), CRASH_POINTS)
def test_kill_dash_nine_at_each_step_never_duplicates_nor_strands(
    db_url: str, fake: SimulatedSevenBridges, step: str, kind: str, skip: int, provider_side: str
) -> None:
    upgrade_database(db_url)
    engine = create_engine(db_url)
    run_id = insert_api_run(engine, workflow_url=SBG_APP)
    env = _environment(db_url, fake)
    fake.inject(kind, "submit", delay=30.0, skip=skip)
    process = wesctl_process("-q", "submit-one", run_id, env=env)
    try:
        _wait_for(lambda: fake.calls["submit"] >= skip + 1)
        if kind == "slow_after":
            _wait_for(lambda: len(fake.runs_for(run_id)) == 1)
            if skip:
                _wait_for(lambda: fake.task(fake.runs_for(run_id)[0]).runs == 1)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    fake.faults.clear()

    tasks = fake.runs_for(run_id)
    if provider_side == "none":
        assert tasks == []
    else:
        assert len(tasks) == 1
        assert fake.task(tasks[0]).status == ("DRAFT" if provider_side == "draft" else "QUEUED")

    with engine.connect() as connection:
        state = connection.execute(
            text("SELECT state, claimed_by FROM workflow_runs WHERE run_id = :id"), {"id": run_id}
        ).one()
    assert state.state == "QUEUED", step
    assert state.claimed_by is not None, "the dead process still holds its lease"

    # While the lease holds, nobody else touches the run.
    held = wesctl("submit-queued", "--json", env=env)
    assert held.exit_code == 0
    assert len(fake.runs_for(run_id)) == len(tasks)

    # The lease expires (fast-forwarded here instead of waiting WESCTL_CLAIM_TIMEOUT).
    expire_claim(engine, run_id)
    result = wesctl("submit-queued", "--json", env=env)
    assert result.exit_code == 0, result.output

    tasks = fake.runs_for(run_id)
    assert len(tasks) == 1, f"{step}: exactly one provider task"
    task = fake.task(tasks[0])
    assert task.status == "QUEUED", f"{step}: the task was run, not left as a draft"
    assert task.runs == 1
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT state, provider_id, claimed_by FROM workflow_runs WHERE run_id = :id"),
            {"id": run_id},
        ).one()
    assert row.state == "INITIALIZING", step
    assert row.provider_id == tasks[0]
    assert row.claimed_by is None
    engine.dispose()
