"""What a sync pass costs: provider calls proportional to the runs that changed, database
statements and transactions per batch of changes, and nothing written when nothing changed.

The pass is the real `sync_status` over a real database, talking to the HealthOmics simulator
through boto3; calls are counted by the simulator, statements by an engine event listener.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, insert, select

from tests.cli_helpers import upgrade_database
from tests.contract.aws_fixtures import aws_environment, make_settings
from tests.e2e.providers import HO_WORKFLOW
from tests.wes_api import read_run, write_state
from wesctl.db.engine import utcnow
from wesctl.db.tables import StateTransition, TaskLogRow, WorkflowRun
from wesctl.providers.healthomics.adapter import (
    LISTED_STATUSES,
    PAGE_SIZE,
    UNLISTED_READS_PER_PASS,
)
from wesctl.services.runtime import Runtime
from wesctl.services.sync import sync_status
from wesctl.simulated.healthomics import SimulatedHealthOmics
from wesctl.simulated.http import Request

ROLE = "arn:aws:iam::123456789012:role/omics-runs"


class Omics(SimulatedHealthOmics):
    """The simulator, running `before_tasks` when a run's tasks are first listed (details())."""

    def __init__(self) -> None:
        super().__init__()
        self.before_tasks: Callable[[str], None] | None = None

    def route(self, request: Request) -> tuple[str, Any]:
        name, handler = super().route(request)
        parts = request.path.strip("/").split("/")
        hook = self.before_tasks
        if hook is None or request.method != "GET" or len(parts) != 3 or parts[2] != "task":
            return name, handler
        run_id = parts[1]

        def racing(request: Request) -> Any:
            hook(run_id)
            return handler(request)

        return name, racing


@dataclass
class World:
    db_url: str
    engine: Engine
    fake: Omics
    runtime: Runtime
    rows: dict[str, str] = field(default_factory=dict)  # provider id -> run id

    def add_runs(self, count: int, *, checked: bool = True) -> list[str]:
        """`count` runs as wesctl leaves them after submission: PENDING at HealthOmics (started
        through boto3), INITIALIZING in the database; their check time is now when `checked`."""
        omics = self.runtime.provider("healthomics").omics  # type: ignore[attr-defined]
        now = utcnow()
        rows: list[dict[str, Any]] = []
        provider_ids: list[str] = []
        for index in range(count):
            run_id = f"run-{len(self.rows):05d}"
            started = omics.start_run(
                workflowId=HO_WORKFLOW,
                roleArn=ROLE,
                outputUri="s3://bucket/out",
                requestId=f"wesctl-{run_id}",
                name=f"wes-{run_id}",
            )
            self.rows[started["id"]] = run_id
            provider_ids.append(started["id"])
            rows.append(
                {
                    "run_id": run_id,
                    "state": "INITIALIZING",
                    "workflow_type": "WDL",
                    "workflow_type_version": "1.0",
                    "workflow_url": HO_WORKFLOW,
                    "workflow_params": {"n": index},
                    "tags": {"provider_type": "healthomics"},
                    "start_time": now - timedelta(hours=1),
                    "provider_type": "healthomics",
                    "provider_id": started["id"],
                    "provider_status": "PENDING",
                    "submission_key": f"wesctl-{run_id}",
                    "submit_attempts": 1,
                    "submitted_at": now - timedelta(minutes=30),
                    "status_checked_at": now if checked else None,
                }
            )
        with self.engine.begin() as connection:
            connection.execute(insert(WorkflowRun.__table__), rows)
        return provider_ids

    def state(self, provider_id: str) -> str:
        return str(read_run(self.engine, self.rows[provider_id]).state)

    def history(self, provider_id: str) -> list[str]:
        with self.engine.connect() as connection:
            return list(
                connection.scalars(
                    select(StateTransition.to_state).where(
                        StateTransition.run_id == self.rows[provider_id]
                    )
                )
            )

    def task_logs(self, provider_id: str) -> int:
        with self.engine.connect() as connection:
            return len(
                connection.scalars(
                    select(TaskLogRow.id).where(TaskLogRow.run_id == self.rows[provider_id])
                ).all()
            )


@pytest.fixture
def make_world(
    moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Callable[[str], World]]:
    made: list[World] = []

    def make(db_url: str) -> World:
        upgrade_database(db_url)
        fake = Omics()
        fake.start()
        aws_environment(monkeypatch, omics_url=fake.base_url, moto_url=moto_url, tmp_path=tmp_path)
        settings = make_settings(
            tmp_path,
            DATABASE_URI=db_url,
            WESCTL_PROVIDERS="healthomics",
            WESCTL_DEFAULT_PROVIDER="healthomics",
            WESCTL_HEALTHOMICS_API_RATE="100000",
        )
        world = World(db_url, create_engine(db_url), fake, Runtime.open(settings, command="t"))
        made.append(world)
        return world

    yield make
    for world in made:
        world.runtime.close()
        world.engine.dispose()
        world.fake.stop()


class Statements:
    """SQL statements by kind (UPDATE, INSERT, ...) and commits, while counting."""

    def __init__(self, engine: Engine) -> None:
        self.kinds: Counter[str] = Counter()
        self.commits = 0
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        with self._lock:
            self.kinds[statement.lstrip().split(None, 1)[0].upper()] += 1

    def _commit(self, conn: Any) -> None:
        with self._lock:
            self.commits += 1


def test_a_listing_larger_than_a_batch_costs_calls_per_change_not_per_run(
    make_world: Callable[[str], World], sqlite_url: str
) -> None:
    """An account whose listing takes more pages than a batch holds runs once made every later
    batch read each run by GetRun; the listing by status answers every run still going."""
    world = make_world(sqlite_url)
    ids = world.add_runs(1200)
    for pid in ids[:10]:
        world.fake.set_status(pid, "RUNNING")
    for pid in ids[10:20]:
        world.fake.finish(pid, succeed=False)
    for pid in ids[20:30]:
        world.fake.set_status(pid, "CANCELLED")
    before = world.fake.calls.copy()
    report = sync_status(world.runtime, batch_size=10)  # 12 pages of running runs > 10
    calls = world.fake.calls - before
    assert report.counts() == {"updated": 30, "unchanged": 1170}
    assert calls["GetRun"] == 20  # the finished runs only, read once for status and details
    pending_pages = -(-1170 // PAGE_SIZE)
    assert calls["ListRuns"] == pending_pages + len(LISTED_STATUSES) - 1
    assert calls["ListRunTasks"] == 20
    assert world.state(ids[0]) == "RUNNING"
    assert world.state(ids[10]) == "EXECUTOR_ERROR"
    assert world.state(ids[20]) == "CANCELED"
    assert world.state(ids[40]) == "INITIALIZING"


def test_changes_are_written_in_one_transaction_per_batch(
    make_world: Callable[[str], World], db_url: str
) -> None:
    world = make_world(db_url)
    ids = world.add_runs(40)
    for pid in ids[:20]:
        world.fake.set_status(pid, "RUNNING")
    for pid in ids[20:30]:
        world.fake.finish(pid, succeed=False)
    statements = Statements(world.runtime.engine)
    report = sync_status(world.runtime)
    assert report.counts() == {"updated": 30, "unchanged": 10}
    assert statements.commits == 1  # one batch, one transaction
    assert statements.kinds["UPDATE"] == 30  # one compare-and-swap per changed run
    # the history rows of all 30, and the task logs of the 10 finished runs, in bulk
    assert statements.kinds["INSERT"] == 2
    assert statements.kinds["DELETE"] == 1
    assert world.history(ids[0]) == ["RUNNING"]
    assert world.history(ids[20]) == ["EXECUTOR_ERROR"]
    assert world.task_logs(ids[20]) > 0
    assert world.task_logs(ids[0]) == 0


def test_a_pass_in_which_nothing_changed_writes_nothing(
    make_world: Callable[[str], World], db_url: str
) -> None:
    world = make_world(db_url)
    world.add_runs(30, checked=False)
    assert sync_status(world.runtime).counts() == {"unchanged": 30}  # stamps the check times
    statements = Statements(world.runtime.engine)
    report = sync_status(world.runtime)
    assert report.counts() == {"unchanged": 30}
    assert statements.kinds["UPDATE"] == 0
    assert statements.kinds["INSERT"] == 0
    assert statements.commits == 0


def test_a_run_the_api_changed_during_the_pass_is_not_overwritten(
    make_world: Callable[[str], World], db_url: str
) -> None:
    world = make_world(db_url)
    ids = world.add_runs(3)
    for pid in ids:
        world.fake.finish(pid, succeed=False)
    raced = ids[1]
    world.fake.before_tasks = lambda pid: (
        write_state(world.engine, world.rows[pid], "CANCELED") if pid == raced else None
    )
    report = sync_status(world.runtime)
    assert report.counts() == {"updated": 2, "skipped": 1}
    assert world.state(raced) == "CANCELED"  # the API's word stands
    assert world.history(raced) == []  # no history row, no task logs for the loser
    assert world.task_logs(raced) == 0
    for pid in (ids[0], ids[2]):
        assert world.state(pid) == "EXECUTOR_ERROR"
        assert world.history(pid) == ["EXECUTOR_ERROR"]
        assert world.task_logs(pid) > 0


def test_runs_finished_beyond_the_passs_getrun_bound_are_carried_to_the_next_pass(
    make_world: Callable[[str], World], sqlite_url: str
) -> None:
    world = make_world(sqlite_url)
    ids = world.add_runs(UNLISTED_READS_PER_PASS + 5)
    for pid in ids:
        world.fake.set_status(pid, "CANCELLED")
    first = sync_status(world.runtime)
    assert first.counts() == {"updated": UNLISTED_READS_PER_PASS, "requeued": 5}
    assert first.incomplete  # exit 75: work was left for the next pass
    second = sync_status(world.runtime)
    assert second.counts() == {"updated": 5}
    assert not second.incomplete
    assert {world.state(pid) for pid in ids} == {"CANCELED"}
