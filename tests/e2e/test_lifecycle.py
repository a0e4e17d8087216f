"""The run lifecycle end to end: the real CLI, a real database (SQLite and PostgreSQL), the real
sevenbridges-python client over HTTP against the Seven Bridges fake."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine

from tests.cli_helpers import upgrade_database, wesctl, wesctl_process
from tests.e2e.providers import SBG_APP, sevenbridges_env, sevenbridges_fake
from tests.wes_api import insert_api_run, read_run, write_state
from wesctl.simulated.sevenbridges import SimulatedSevenBridges


class World:
    """A migrated database plus a Seven Bridges fake, and the CLI wired to both."""

    def __init__(self, db_url: str, fake: SimulatedSevenBridges) -> None:
        self.db_url = db_url
        self.fake = fake
        self.engine: Engine = create_engine(db_url)
        self.env = {"DATABASE_URI": db_url, **sevenbridges_env(fake)}
        self.reads = fake.add_file("reads.fastq", b"ACGT\n")
        # Runs are queued a second apart, in the order added: MariaDB keeps the API's queue time
        # to the second, and the tests check oldest-first order.
        self._queued_at = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=10)

    def cli(self, *args: str, **extra_env: str) -> Any:
        return wesctl(*args, env={**self.env, **extra_env})

    def cli_json(self, *args: str, expect: int = 0, **extra_env: str) -> Any:
        result = self.cli(*args, "--json", **extra_env)
        assert result.exit_code == expect, result.output
        return json.loads(result.stdout)

    def add_run(self, **kwargs: Any) -> str:
        kwargs.setdefault("workflow_url", SBG_APP)
        kwargs.setdefault(
            "workflow_params", {"reads": {"class": "File", "path": self.reads}, "n": 2}
        )
        kwargs.setdefault("tags", {"provider_type": "sevenbridges"})
        self._queued_at += timedelta(seconds=1)
        return insert_api_run(self.engine, queued_at=self._queued_at, **kwargs)

    def row(self, run_id: str) -> Any:
        return read_run(self.engine, run_id)

    def set_state(self, run_id: str, state: str) -> None:
        write_state(self.engine, run_id, state)

    def tasks(self, run_id: str) -> list[str]:
        return self.fake.runs_for(run_id)


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    upgrade_database(db_url)
    with sevenbridges_fake() as fake:
        created = World(db_url, fake)
        yield created
        created.engine.dispose()


def test_queued_to_complete_with_outputs_task_logs_and_history(world: World) -> None:
    run_id = world.add_run()
    report = world.cli_json("submit-queued")
    assert report["counts"] == {"submitted": 1}
    [task_id] = world.tasks(run_id)
    row = world.row(run_id)
    assert row.state == "INITIALIZING"
    assert row.provider_id == task_id
    assert row.submission_key == f"wesctl-{run_id}"

    # Waiting at the provider is never "queued" again: more passes submit nothing.
    for _ in range(2):
        assert world.cli_json("submit-queued")["counts"] == {}
    assert world.tasks(run_id) == [task_id]

    world.fake.set_status(task_id, "RUNNING")
    assert world.cli_json("sync-status")["counts"] == {"updated": 1}
    assert world.row(run_id).state == "RUNNING"
    assert world.cli_json("sync-status")["counts"] == {"unchanged": 1}

    world.fake.finish(task_id, succeed=True)
    status_calls = world.fake.calls["status"]
    assert world.cli_json("sync-status")["counts"] == {"updated": 1}
    assert world.fake.calls["status"] == status_calls + 1, "details reuse the bulk get's task"
    shown = world.cli_json("runs", "show", run_id)
    assert shown["state"] == "COMPLETE"
    assert shown["ended_at"] is not None
    assert shown["outputs"], "outputs are stored"
    files = [v for v in shown["outputs"].values() if isinstance(v, dict)]
    assert all(f["class"] in ("File", "Directory") and f["location"] for f in files)
    assert shown["task_logs"], "task logs are stored"
    assert all(log["name"] for log in shown["task_logs"])
    transitions = [(h["from"], h["to"]) for h in shown["history"]]
    assert transitions == [
        ("QUEUED", "INITIALIZING"),
        ("INITIALIZING", "RUNNING"),
        ("RUNNING", "COMPLETE"),
    ]

    # A second sync of the finished run neither duplicates task logs nor leaves COMPLETE.
    world.fake.set_status(task_id, "RUNNING")
    assert world.cli_json("sync-status")["counts"] == {}
    again = world.cli_json("runs", "show", run_id)
    assert again["state"] == "COMPLETE"
    assert len(again["task_logs"]) == len(shown["task_logs"])


def test_failed_workflow_is_executor_error_with_the_message(world: World) -> None:
    run_id = world.add_run()
    world.cli_json("submit-queued")
    [task_id] = world.tasks(run_id)
    world.fake.finish(task_id, succeed=False)
    world.cli_json("sync-status")
    row = world.row(run_id)
    assert row.state == "EXECUTOR_ERROR"
    assert row.last_error
    assert row.end_time is not None


def test_permanent_provider_error_ends_in_system_error_with_its_message(world: World) -> None:
    run_id = world.add_run()
    world.fake.inject("permanent", "submit", message="input 'reads' is not a valid file")
    report = world.cli_json("submit-queued", expect=1)
    assert report["counts"] == {"failed": 1}
    row = world.row(run_id)
    assert row.state == "SYSTEM_ERROR"
    assert "input 'reads' is not a valid file" in row.last_error
    assert row.end_time is not None


def test_provider_down_keeps_runs_queued_and_exits_75(world: World) -> None:
    ids = [world.add_run() for _ in range(3)]
    world.fake.inject("server_error", None, count=None)
    result = world.cli("submit-queued")
    assert result.exit_code == 75, result.output
    for run_id in ids:
        row = world.row(run_id)
        assert row.state == "QUEUED"
        assert row.claimed_by is None
        assert row.last_error
    world.fake.faults.clear()
    assert world.cli_json("submit-queued")["counts"] == {"submitted": 3}
    assert all(len(world.tasks(run_id)) == 1 for run_id in ids)


def test_transient_failures_stop_after_max_attempts(world: World) -> None:
    run_id = world.add_run()
    world.fake.inject("server_error", "submit", count=None)  # look-ups answer: nothing exists
    for attempt in range(1, 3):
        result = world.cli("submit-queued", WESCTL_MAX_SUBMIT_ATTEMPTS="2")
        assert result.exit_code == (75 if attempt == 1 else 1), result.output
    row = world.row(run_id)
    assert row.state == "SYSTEM_ERROR"
    assert "gave up after 2 submission attempts" in row.last_error
    assert "confirmed that no run exists" in row.last_error
    history = world.cli_json("runs", "show", run_id)["history"]
    assert any("attempt 1 failed (transient)" in (h["reason"] or "") for h in history)


def test_a_pass_tries_each_run_once_and_stops_when_the_provider_is_down(world: World) -> None:
    ids = [world.add_run() for _ in range(30)]
    world.fake.inject("server_error", "submit", count=None, rate=0.5)
    env = {
        "WESCTL_RETRY_ATTEMPTS": "1",
        "WESCTL_MAX_SUBMIT_ATTEMPTS": "10",
        "DAEMON_MAX_CONCURRENT_WORKFLOWS": "1000",
    }
    report = world.cli_json("submit-queued", expect=0, WESCTL_SUBMIT_WORKERS="2", **env)
    requeued = {item["run_id"] for item in report["runs"] if item["outcome"] == "requeued"}
    assert requeued
    assert report["counts"]["submitted"] == 30 - len(requeued)
    for run_id in ids:  # a transient failure waits for the next tick, not a retry in this pass
        row = world.row(run_id)
        assert row.submit_attempts == 1, run_id
        assert row.state == ("QUEUED" if run_id in requeued else "INITIALIZING")

    more = [world.add_run() for _ in range(100)]
    world.fake.inject("server_error", None, count=None)
    world.cli_json("submit-queued", expect=75, WESCTL_SUBMIT_WORKERS="2", **env)
    untouched = [run_id for run_id in more if world.row(run_id).submit_attempts == 0]
    assert len(untouched) > 30, "the pass went on claiming runs while the provider was down"


def test_thirty_percent_transient_faults_still_submit_every_run_once(world: World) -> None:
    ids = [world.add_run() for _ in range(20)]
    world.fake.inject("server_error", None, count=None, rate=0.3)
    for _ in range(10):
        world.cli(
            "submit-queued", WESCTL_MAX_SUBMIT_ATTEMPTS="10", DAEMON_MAX_CONCURRENT_WORKFLOWS="100"
        )
        if all(world.row(run_id).state != "QUEUED" for run_id in ids):
            break
    world.fake.faults.clear()
    for run_id in ids:
        assert world.row(run_id).state == "INITIALIZING", run_id
        assert len(world.tasks(run_id)) == 1, run_id


def test_bad_rows_fail_clearly_and_the_batch_goes_on(world: World) -> None:
    good = world.add_run()
    bad_params = world.add_run(workflow_params=["not", "an", "object"])
    unknown_provider = world.add_run(tags={"provider_type": "cromwell"})
    bad_app = world.add_run(workflow_url="no-slashes-here")
    report = world.cli_json("submit-queued", expect=1)
    assert report["counts"] == {"submitted": 1, "failed": 3}
    assert world.row(good).state == "INITIALIZING"
    assert "workflow_params must be a JSON object" in world.row(bad_params).last_error
    assert "unknown provider 'cromwell'" in world.row(unknown_provider).last_error
    assert "workflow_url" in world.row(bad_app).last_error
    for run_id in (bad_params, unknown_provider, bad_app):
        assert world.row(run_id).state == "SYSTEM_ERROR"
        assert world.tasks(run_id) == []


def test_submit_one_is_idempotent(world: World) -> None:
    run_id = world.add_run()
    first = world.cli_json("submit-one", run_id)
    assert first["counts"] == {"submitted": 1}
    second = world.cli_json("submit-one", run_id)
    assert second["counts"] == {"skipped": 1}
    assert "not queued" in second["runs"][0]["reason"]
    assert len(world.tasks(run_id)) == 1
    missing = world.cli("submit-one", "no-such-run")
    assert missing.exit_code == 1
    assert "no run with id" in missing.stderr


def test_concurrency_cap_holds_and_dry_run_explains_waiting(world: World) -> None:
    ids = [world.add_run() for _ in range(5)]
    plan = world.cli_json("submit-queued", "--dry-run", DAEMON_MAX_CONCURRENT_WORKFLOWS="2")
    outcomes = [item["outcome"] for item in plan["runs"]]
    assert outcomes == ["would-submit", "would-submit", "waiting", "waiting", "waiting"]
    assert world.fake.calls["submit"] == 0, "a dry run calls no provider"
    report = world.cli_json("submit-queued", DAEMON_MAX_CONCURRENT_WORKFLOWS="2")
    assert report["counts"] == {"submitted": 2}
    submitted = [run_id for run_id in ids if world.tasks(run_id)]
    assert submitted == ids[:2], "oldest first"
    for task_id in (world.tasks(ids[0])[0], world.tasks(ids[1])[0]):
        world.fake.finish(task_id, succeed=True)
    world.cli_json("sync-status")
    report = world.cli_json("submit-queued", DAEMON_MAX_CONCURRENT_WORKFLOWS="2")
    assert report["counts"] == {"submitted": 2}


def test_cancel_in_every_state_reaches_the_provider(world: World) -> None:
    running = world.add_run()
    api_canceled = world.add_run()
    finished = world.add_run()
    queued = world.add_run()
    world.cli_json("submit-queued", "--limit", "3")  # the three oldest
    assert world.tasks(queued) == []

    for run_id in (running, api_canceled, finished):
        world.fake.set_status(world.tasks(run_id)[0], "RUNNING")
    world.fake.finish(world.tasks(finished)[0], succeed=True)
    world.cli_json("sync-status")

    report = world.cli_json("cancel", queued, running, finished)
    by_run = {item["run_id"]: item["outcome"] for item in report["runs"]}
    assert by_run == {queued: "canceled", running: "cancel-sent", finished: "skipped"}
    assert world.row(queued).state == "CANCELED"
    assert world.tasks(queued) == []
    assert world.row(running).state == "CANCELING"
    assert world.fake.task(world.tasks(running)[0]).status in ("ABORTING", "ABORTED")

    # The WES API writes CANCELED directly while the provider run keeps going.
    world.set_state(api_canceled, "CANCELED")
    sync = world.cli_json("sync-status")
    assert {item["run_id"]: item["outcome"] for item in sync["runs"]}[api_canceled] == (
        "cancel-sent"
    )
    assert world.fake.task(world.tasks(api_canceled)[0]).status in ("ABORTING", "ABORTED")
    assert world.row(api_canceled).state == "CANCELED"
    assert world.row(running).state == "CANCELED"  # the provider confirmed the abort
    assert world.row(finished).state == "COMPLETE"
    # Nothing is sent twice.
    aborts = world.fake.calls["cancel"]
    world.cli_json("sync-status")
    world.cli_json("cancel")
    assert world.fake.calls["cancel"] == aborts


def test_vanished_provider_run_ends_in_system_error_after_confirmation(world: World) -> None:
    run_id = world.add_run()
    world.cli_json("submit-queued")
    [task_id] = world.tasks(run_id)
    del world.fake.tasks[task_id]
    world.cli_json("sync-status")
    assert world.row(run_id).state == "INITIALIZING", "one blip is not enough"
    world.cli_json("sync-status", expect=1)
    row = world.row(run_id)
    assert row.state == "SYSTEM_ERROR"
    assert "no longer exists" in row.last_error


def test_unknown_provider_status_keeps_the_run_tracked(world: World) -> None:
    run_id = world.add_run()
    world.cli_json("submit-queued")
    [task_id] = world.tasks(run_id)
    world.fake.set_status(task_id, "HIBERNATING")
    world.cli_json("sync-status")
    row = world.row(run_id)
    assert row.state == "INITIALIZING"
    assert row.provider_status == "HIBERNATING"
    world.fake.finish(task_id, succeed=True)
    world.cli_json("sync-status")
    assert world.row(run_id).state == "COMPLETE"


def test_retry_re_drives_a_system_error_run(world: World) -> None:
    run_id = world.add_run()
    world.fake.inject("permanent", "submit", message="quota exceeded for project")
    world.cli_json("submit-queued", expect=1)
    assert world.row(run_id).state == "SYSTEM_ERROR"
    result = world.cli("retry", run_id)
    assert result.exit_code == 0, result.output
    assert world.row(run_id).state == "QUEUED"
    assert world.cli_json("submit-queued")["counts"] == {"submitted": 1}
    assert len(world.tasks(run_id)) == 1
    history = world.cli_json("runs", "show", run_id)["history"]
    assert [h["to"] for h in history][-3:] == ["SYSTEM_ERROR", "QUEUED", "INITIALIZING"]
    refused = world.cli("retry", run_id)
    assert refused.exit_code == 1
    assert "only SYSTEM_ERROR runs can be retried" in refused.stderr


def test_stale_after_skips_recently_checked_runs(world: World) -> None:
    ids = [world.add_run() for _ in range(3)]
    world.cli_json("submit-queued")
    assert world.cli_json("sync-status")["counts"] == {"unchanged": 3}
    assert world.cli_json("sync-status", "--stale-after", "3600")["counts"] == {}
    assert world.cli_json("sync-status", ids[0])["counts"] == {"unchanged": 1}


def test_missing_token_is_a_config_error_before_any_io(world: World) -> None:
    result = world.cli("submit-queued", SEVENBRIDGES_API_TOKEN="")
    assert result.exit_code == 78
    assert "SEVENBRIDGES_API_TOKEN is not set" in result.stderr
    assert world.fake.calls.total() == 0


def test_dead_database_exits_75_and_writes_nothing(world: World) -> None:
    world.add_run()
    result = world.cli("submit-queued", DATABASE_URI="postgresql://wes@127.0.0.1:1/wes")
    assert result.exit_code == 75
    assert "database unavailable" in result.stderr
    assert world.fake.calls.total() == 0


def _metrics(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    samples = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "command"))
            samples[(sample.name, labels)] = sample.value
    return samples


def test_metrics_files_match_what_the_commands_did(world: World, tmp_path: Path) -> None:
    ok = [world.add_run() for _ in range(2)]
    world.add_run(workflow_params=["bad"])
    submit_file = tmp_path / "submit.prom"
    world.cli("submit-queued", "--metrics-file", str(submit_file))
    metrics = _metrics(submit_file)
    sbg = ("provider", "sevenbridges")
    assert metrics[("wesctl_runs", (("outcome", "submitted"), sbg))] == 2
    assert metrics[("wesctl_runs", (("outcome", "failed"), sbg))] == 1
    assert metrics[("wesctl_provider_errors", (("kind", "permanent"), sbg))] == 1
    assert metrics[("wesctl_last_exit_code", ())] == 1
    assert ("wesctl_last_success_timestamp_seconds", ()) not in metrics
    assert metrics[("wesctl_runs_in_flight", (sbg,))] == 2
    assert metrics[("wesctl_queue_depth", ())] == 0
    assert metrics[("wesctl_provider_api_calls", (sbg,))] == world.fake.calls.total()
    assert oct(submit_file.stat().st_mode & 0o777) == "0o644"

    world.fake.finish(world.tasks(ok[0])[0], succeed=True)
    metrics_dir = tmp_path / "textfile"
    result = world.cli("sync-status", WESCTL_METRICS_DIR=str(metrics_dir))
    assert result.exit_code == 0
    sync_file = metrics_dir / "wesctl_sync_status.prom"
    synced = _metrics(sync_file)
    assert synced[("wesctl_runs_synced", (sbg, ("state", "COMPLETE")))] == 1
    assert synced[("wesctl_last_exit_code", ())] == 0
    last_success = synced[("wesctl_last_success_timestamp_seconds", ())]

    # A failed run keeps the last success time and records its own exit code.
    down = world.cli(
        "sync-status",
        WESCTL_METRICS_DIR=str(metrics_dir),
        DATABASE_URI="postgresql://wes@127.0.0.1:1/wes",
    )
    assert down.exit_code == 75
    after = _metrics(sync_file)
    assert after[("wesctl_last_exit_code", ())] == 75
    assert after[("wesctl_last_success_timestamp_seconds", ())] == last_success


def test_status_overview_counts_queue_flight_and_failures(world: World) -> None:
    ids = [world.add_run() for _ in range(3)]
    world.add_run(workflow_params=["bad"])
    world.cli("submit-queued", "--limit", "3")
    world.fake.finish(world.tasks(ids[0])[0], succeed=True)
    world.cli_json("sync-status")
    world.add_run()
    data = world.cli_json("status")
    counts = {(c["state"], c["provider"]): c["runs"] for c in data["counts"]}
    assert counts == {
        ("COMPLETE", "sevenbridges"): 1,
        ("INITIALIZING", "sevenbridges"): 2,
        ("QUEUED", "sevenbridges"): 2,
    }
    assert data["queued"] == 2
    assert data["oldest_queued"]["run_id"] not in ids[:3]
    assert data["in_flight"]["total"] == 2
    assert data["in_flight"]["cap"] == 10
    assert data["last_submit"] is not None
    assert data["last_sync"] is not None
    assert data["failures_last_hour"] == []
    human = world.cli("status")
    assert human.exit_code == 0
    assert " queued=2 " in human.stdout
    assert " in_flight=2 cap=10 " in human.stdout


def test_status_watch_refreshes_until_interrupted(world: World) -> None:
    import queue
    import threading

    first = world.add_run()
    watcher = wesctl_process(
        "status",
        "--watch",
        "0.5",
        env={**os.environ, **world.env, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watcher.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    output = watcher.stdout
    reader = threading.Thread(target=lambda: [lines.put(line) for line in output], daemon=True)
    reader.start()
    seen: list[str] = []

    def wait_for_summary(text: str) -> None:
        """Read the watcher's output until a refresh's summary line holds `text` (a loaded
        machine may take seconds per refresh)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            seen.append(line)
            if line.startswith("command=status ") and text in line:
                return
        raise AssertionError(f"no refresh showed {text!r}: {''.join(seen)}")

    try:
        wait_for_summary(" queued=1 ")  # started, and showed one queued run
        world.add_run()
        wait_for_summary(" queued=2 ")  # a later refresh saw the new run
    finally:
        watcher.send_signal(signal.SIGINT)
        watcher.wait(timeout=20)
    assert watcher.stderr is not None
    err = watcher.stderr.read()
    watcher.stderr.close()
    reader.join(timeout=20)
    watcher.stdout.close()
    assert watcher.returncode == 0, err
    # Not a terminal, so each refresh prints its lines again.
    summaries = [line for line in seen if line.startswith("command=status ")]
    assert len(summaries) >= 2
    assert first in "".join(seen)  # still the oldest queued run
    assert "Traceback" not in err


def test_cancel_racing_a_submission_leaves_no_live_provider_run(world: World) -> None:
    import threading

    from wesctl.config import load_settings
    from wesctl.services.runtime import Runtime
    from wesctl.services.submit import submit_one

    run_id = world.add_run()
    # Hold the task-run request at the fake so the WES API's cancel lands mid-submission.
    world.fake.inject("slow", "submit", delay=1.0, skip=1)
    settings = load_settings(environ=world.env, export_sdk=False)
    runtime = Runtime.open(settings, command="submit-one")
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(submit_one(runtime, run_id)))
    thread.start()
    deadline = time.monotonic() + 10
    while world.fake.calls["submit"] < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    world.set_state(run_id, "CANCELED")  # POST /runs/{id}/cancel on the WES API
    thread.join(timeout=30)
    runtime.close()
    [task_id] = world.tasks(run_id)
    assert world.fake.task(task_id).status in ("ABORTING", "ABORTED")
    assert outcome[0].outcomes[0].outcome == "canceled"
    row = world.row(run_id)
    assert row.state == "CANCELED"
    assert row.provider_id == task_id
    assert row.cancel_sent_at is not None
