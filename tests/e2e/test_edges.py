"""Exactly once and cancel at every edge: answers lost after the provider acted, look-ups that
fail, `retry` of a run whose provider run may exist, a cancel that lands while the run call is
in flight (with the abort failing, or the submitter killed)."""

from __future__ import annotations

import os
import signal
import socket
import time
from typing import Any

from sqlalchemy import text

from tests.cli_helpers import wesctl_process
from tests.e2e.conftest import Site
from tests.wes_api import expire_claim

FEW_ATTEMPTS = {"WESCTL_MAX_SUBMIT_ATTEMPTS": "2", "WESCTL_RETRY_ATTEMPTS": "1"}


def _history(site: Site, run_id: str) -> list[Any]:
    with site.engine.connect() as connection:
        return list(
            connection.execute(
                text(
                    "SELECT from_state, to_state, reason FROM run_state_history "
                    "WHERE run_id = :id ORDER BY id"
                ),
                {"id": run_id},
            )
        )


def _passes(site: Site, command: str, count: int, env: dict[str, str]) -> None:
    for _ in range(count):
        result = site.cli(command, env=env)
        assert "Traceback" not in result.output
        assert result.exit_code in (0, 1, 75), result.output


def test_lost_start_run_answer_and_failing_lookups_never_end_the_run(site: Site) -> None:
    env = {**site.env, **FEW_ATTEMPTS}
    run_id = site.add_healthomics_run()
    site.omics.inject("drop_after_accept", "submit")
    site.omics.inject("unavailable", "status", count=None)
    _passes(site, "submit-queued", 4, env)
    row = site.row(run_id)
    assert row.state == "QUEUED", row.last_error
    assert row.submit_attempts >= 2, "the attempts are used up, yet the run is not ended"
    assert len(site.omics.runs_for(run_id)) == 1

    site.omics.clear_faults()
    report = site.cli_json("submit-queued", env=env)
    assert report["counts"] == {"adopted": 1}, report
    assert len(site.omics.runs_for(run_id)) == 1
    assert site.row(run_id).state == "INITIALIZING"


def test_lost_run_answer_and_failing_task_lookups_never_end_the_run(site: Site) -> None:
    env = {**site.env, **FEW_ATTEMPTS}
    run_id = site.add_sevenbridges_run()
    site.sbg.inject("drop_after_accept", "submit", skip=1)  # the create passes, the run is lost
    site.sbg.inject("unavailable", "status", count=None)
    site.sbg.inject("unavailable", "list", count=None)
    _passes(site, "submit-queued", 4, env)
    row = site.row(run_id)
    assert row.state == "QUEUED", row.last_error
    assert row.provider_id is not None, "the draft id was recorded"
    tasks = site.sbg.runs_for(run_id)
    assert len(tasks) == 1
    assert site.sbg.task(tasks[0]).status != "DRAFT", "the run call was carried out"

    site.sbg.faults.clear()
    assert site.cli_json("submit-queued", env=env)["counts"] == {"adopted": 1}
    assert site.sbg.runs_for(run_id) == tasks


def test_attempts_used_up_end_the_run_only_when_the_provider_proves_nothing_exists(
    site: Site,
) -> None:
    env = {**site.env, **FEW_ATTEMPTS}
    run_id = site.add_healthomics_run()
    site.omics.inject("unavailable", "submit", count=None)  # refused: nothing is created
    _passes(site, "submit-queued", 3, env)
    row = site.row(run_id)
    assert row.state == "SYSTEM_ERROR"
    assert "confirmed that no run exists" in row.last_error
    assert len(site.omics.runs_for(run_id)) == 0


def _system_error_with_live_provider_run(site: Site, run_id: str) -> None:
    """What an older wesctl's give-up left: SYSTEM_ERROR although the provider run exists."""
    with site.engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE workflow_runs SET state = 'SYSTEM_ERROR', claimed_by = NULL, "
                "claim_expires_at = NULL, last_error = 'gave up after 5 submission attempts' "
                "WHERE run_id = :id"
            ),
            {"id": run_id},
        )


def _slots_granted(site: Site) -> int:
    """The claim ledger: slots granted so far (see wesctl.db.runs.grant_slots)."""
    with site.engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT slots_granted FROM wesctl_locks WHERE name = 'claims'")
            ).scalar_one()
        )


def test_retry_adopts_the_healthomics_run_a_lost_answer_left(site: Site) -> None:
    run_id = site.add_healthomics_run()
    site.omics.inject("drop_after_accept", "submit")
    site.cli("submit-queued")
    assert len(site.omics.runs_for(run_id)) == 1
    _system_error_with_live_provider_run(site, run_id)

    site.omics.inject("unavailable", "status", count=None)
    granted = _slots_granted(site)
    refused = site.cli("retry", run_id)
    assert refused.exit_code == 75, refused.output
    assert site.row(run_id).state == "SYSTEM_ERROR", "nothing changed while it cannot tell"
    site.omics.clear_faults()

    result = site.cli("retry", run_id)
    assert result.exit_code == 0, result.output
    assert "will be adopted" in result.stdout
    assert _slots_granted(site) == granted + 1, "its live run holds a slot again: in the ledger"
    assert site.cli_json("submit-queued")["counts"] == {"adopted": 1}
    assert len(site.omics.runs_for(run_id)) == 1, "retry never starts a second run"


def test_retry_adopts_the_seven_bridges_task_a_lost_answer_left(site: Site) -> None:
    run_id = site.add_sevenbridges_run()
    site.sbg.inject("drop_after_accept", "submit", skip=1)
    site.cli("submit-queued")
    _system_error_with_live_provider_run(site, run_id)
    tasks = site.sbg.runs_for(run_id)
    assert len(tasks) == 1

    result = site.cli("retry", run_id)
    assert result.exit_code == 0, result.output
    assert "will be adopted" in result.stdout
    assert site.cli_json("submit-queued")["counts"] == {"adopted": 1}
    assert site.sbg.runs_for(run_id) == tasks, "retry never creates a second task"


def test_retry_of_a_run_whose_task_finished_submits_afresh(site: Site) -> None:
    run_id = site.add_sevenbridges_run()
    site.cli_json("submit-queued")
    first = site.row(run_id).provider_id
    site.sbg.finish(first, succeed=False)
    _system_error_with_live_provider_run(site, run_id)
    result = site.cli("retry", run_id)
    assert result.exit_code == 0, result.output
    assert "new submission key" in result.stdout
    assert site.cli_json("submit-queued")["counts"] == {"submitted": 1}
    tasks = site.sbg.runs_for(run_id)
    assert len(tasks) == 2
    assert site.row(run_id).provider_id != first


def _wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _cancel_while_the_run_call_is_in_flight(site: Site, *, kill: bool) -> str:
    """Start submit-one with the run call held for 2 s, cancel the run meanwhile (the task is
    still a draft then), and let the run call go through: a paid task runs."""
    run_id = site.add_sevenbridges_run()
    site.sbg.inject("slow", "submit", skip=1, delay=2.0)
    process = wesctl_process("-q", "submit-one", run_id, env={**os.environ, **site.env})
    try:
        _wait_for(lambda: site.row(run_id).provider_id is not None)
        cancelled = site.cli("cancel", run_id)
        assert cancelled.exit_code == 0, cancelled.output
        assert site.row(run_id).state == "CANCELING"
        if kill:
            os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    task = site.row(run_id).provider_id
    _wait_for(lambda: site.sbg.task(task).status in ("QUEUED", "RUNNING"))
    return run_id


def _until_cancelled(site: Site, run_id: str) -> None:
    for _ in range(8):
        site.cli("sync-status")
        if site.row(run_id).state == "CANCELED":
            break
    row = site.row(run_id)
    assert site.sbg.task(row.provider_id).status == "ABORTED"
    assert row.state == "CANCELED"
    assert row.end_time is not None
    stops = [item for item in _history(site, run_id) if "stop sent" in (item.reason or "")]
    assert len(stops) >= 2, "the draft was marked, then the running task aborted"


def test_cancel_during_the_run_call_is_delivered_although_the_abort_fails(site: Site) -> None:
    site.sbg.inject("unavailable", "cancel", count=5)
    run_id = _cancel_while_the_run_call_is_in_flight(site, kill=False)
    _until_cancelled(site, run_id)


def test_cancel_during_the_run_call_is_delivered_after_the_submitter_died(site: Site) -> None:
    run_id = _cancel_while_the_run_call_is_in_flight(site, kill=True)
    expire_claim(site.engine, run_id)
    _until_cancelled(site, run_id)


def test_an_unreachable_provider_stalls_neither_the_pass_nor_the_other_provider(
    site: Site,
) -> None:
    env = {**site.env, "DAEMON_MAX_CONCURRENT_WORKFLOWS": "1000"}
    sbg_runs = [site.add_sevenbridges_run() for _ in range(200)]
    omics_runs = [site.add_healthomics_run() for _ in range(50)]
    assert site.cli_json("submit-queued", env=env)["counts"] == {"submitted": 250}
    for run_id in sbg_runs:
        site.set_state(run_id, "CANCELED")  # the WES API's cancel, still running at the provider
    for run_id in omics_runs:
        site.omics.set_status(site.row(run_id).provider_id, "RUNNING")

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    port = closed.getsockname()[1]
    unreachable = {**env, "SEVENBRIDGES_API_ENDPOINT": f"http://127.0.0.1:{port}/v2"}
    try:
        result = site.cli("sync-status", "--json", env=unreachable)
    finally:
        closed.close()
    assert result.exit_code == 75, result.output
    assert {site.row(run_id).state for run_id in omics_runs} == {"RUNNING"}
    assert all(site.row(run_id).provider_stopped_at is None for run_id in sbg_runs)

    report = site.cli_json("sync-status", env=env)  # Seven Bridges is back
    assert report["counts"] == {"cancel-sent": 200, "unchanged": 50}, report["counts"]
    assert {site.sbg.task(site.row(run_id).provider_id).status for run_id in sbg_runs} == {
        "ABORTED"
    }
