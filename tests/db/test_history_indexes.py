"""Finished runs stay for ever: wesctl's indexes exist after `db upgrade` on every engine, and no
statement of `status`, `sync-status`, `submit-queued` or `runs show/list` reads the finished
runs, their task logs or their history at large (checked on the plans SQLite and PostgreSQL
choose, the commands running for real against a simulated Seven Bridges). The queue may be long
too: a claim reads no queued run it cannot take (checked on what each engine executes)."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, insert, inspect, text

from tests import wes_api_alembic
from tests.cli_helpers import upgrade_database, wesctl
from wesctl.config import load_settings
from wesctl.db.engine import is_mysql
from wesctl.db.tables import ALL_INDEXES, StateTransition, TaskLogRow, WorkflowRun
from wesctl.domain.outcomes import Report
from wesctl.services.runtime import Runtime
from wesctl.services.submit import Submitter
from wesctl.simulated.sevenbridges import (
    API_PREFIX,
    DEFAULT_APP,
    DEFAULT_PROJECT,
    FakeTask,
    SimulatedSevenBridges,
)

TABLES = ("workflow_runs", "task_logs", "run_state_history")
FINISHED = 3000
ACTIVE = 30
TOKEN = "history-test-token"
# Indexes a scan may walk from end to end: partial ones hold no finished run, and `runs list`
# reads ix_wesctl_runs_queued_at newest first only up to its limit.
WALKABLE = {spec.name for spec in ALL_INDEXES if spec.where is not None}
WALKABLE |= {"ix_wesctl_runs_queued_at"}


def _indexes(url: str) -> dict[str, dict[str, Any]]:
    engine = create_engine(url)
    found: dict[str, dict[str, Any]] = {}
    with engine.connect() as connection:
        inspector = inspect(connection)
        for table in TABLES:
            for index in inspector.get_indexes(table):
                found[str(index["name"])] = {"table": table, "columns": index["column_names"]}
        if engine.dialect.name == "sqlite":
            rows = connection.execute(text("SELECT name, sql FROM sqlite_master WHERE sql > ''"))
            for name, sql in rows:
                if name in found:
                    found[name]["sql"] = sql
        elif engine.dialect.name == "postgresql":
            rows = connection.execute(text("SELECT indexname, indexdef FROM pg_indexes"))
            for name, sql in rows:
                if name in found:
                    found[name]["sql"] = sql
    engine.dispose()
    return found


def _assert_indexes(url: str) -> None:
    engine = create_engine(url)
    mysql = is_mysql(engine.dialect)
    engine.dispose()
    found = _indexes(url)
    for spec in ALL_INDEXES:
        columns = spec.mysql_columns if mysql else spec.columns
        if columns is None:
            assert spec.name not in found, spec.name
            continue
        assert found[spec.name]["table"] == spec.table, spec.name
        assert tuple(found[spec.name]["columns"]) == columns, spec.name
        if not mysql:
            partial = " WHERE " in found[spec.name]["sql"].upper()
            assert partial == (spec.where is not None), found[spec.name]
    assert "ix_workflow_runs_wesctl_state" not in found, "replaced by ix_wesctl_runs_queue"
    if mysql:  # InnoDB's own index of the API's foreign key serves task_logs.run_id
        assert any(
            info["table"] == "task_logs" and info["columns"][:1] == ["run_id"]
            for info in found.values()
        )


def test_the_indexes_exist_after_upgrade_on_an_empty_database(db_url: str) -> None:
    upgrade_database(db_url)
    _assert_indexes(db_url)


def test_the_indexes_exist_on_the_apis_database_and_its_later_migration_still_runs(
    db_url: str, tmp_path: Path
) -> None:
    wes_api_alembic.upgrade_head(db_url)
    upgrade_database(db_url)
    _assert_indexes(db_url)

    # A later revision of the API, as Flask-Migrate would write it: a column and its own index.
    history = tmp_path / "api_alembic"
    shutil.copytree(Path(wes_api_alembic.__file__).parent, history)
    (history / "versions" / "7c1d2e3f4a5b_user_id.py").write_text(LATER_API_REVISION)
    config = wes_api_alembic._config(db_url)
    config.set_main_option("script_location", str(history))
    from alembic import command

    command.upgrade(config, "head")

    _assert_indexes(db_url)
    listed = wesctl("--database-uri", db_url, "runs", "list")
    assert listed.exit_code == 0, listed.output
    status = wesctl("--database-uri", db_url, "status")
    assert status.exit_code == 0, status.output


LATER_API_REVISION = '''"""user_id

Revision ID: 7c1d2e3f4a5b
Revises: 65510080a98b
"""
import sqlalchemy as sa
from alembic import op

revision = "7c1d2e3f4a5b"
down_revision = "65510080a98b"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("workflow_runs") as batch:
        batch.add_column(sa.Column("user_id", sa.String(length=36), nullable=True))
        batch.create_index("ix_workflow_runs_user_id", ["user_id"])
    with op.batch_alter_table("task_logs") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=True))


def downgrade():
    pass
'''


# --- the plans -------------------------------------------------------------------------------


@pytest.fixture
def simulator() -> Iterator[SimulatedSevenBridges]:
    fake = SimulatedSevenBridges(token=TOKEN)
    fake.start()
    yield fake
    fake.stop()


def _running_task(fake: SimulatedSevenBridges, run_id: str) -> str:
    task = FakeTask(
        id=str(uuid.uuid4()),
        name=f"wes-{run_id}",
        description=f"wesctl-run-id={run_id}",
        project=DEFAULT_PROJECT,
        app=f"{DEFAULT_APP}/1",
        inputs={},
        created=datetime.now(UTC),
        created_by=fake.username,
        status="RUNNING",
        runs=1,
    )
    with fake.lock:
        fake.tasks[task.id] = task
    return task.id


def _load(url: str, fake: SimulatedSevenBridges) -> str:
    """FINISHED finished runs with task logs and history, ACTIVE queued and ACTIVE running at
    `fake`, one run the WES API cancelled at a provider; return a finished run's id."""
    now = datetime.now(UTC).replace(tzinfo=None)
    tags = {"provider_type": "sevenbridges"}
    base = {
        "workflow_type": "CWL",
        "workflow_type_version": "v1.0",
        "workflow_url": DEFAULT_APP,
        "workflow_params": {},
        "tags": tags,
    }
    runs: list[dict[str, Any]] = []
    logs: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    for index in range(FINISHED):
        run_id = str(uuid.uuid4())
        ended = now - timedelta(hours=index)
        state = ("COMPLETE", "EXECUTOR_ERROR", "CANCELED", "SYSTEM_ERROR")[index % 4]
        runs.append(
            {
                **base,
                "run_id": run_id,
                "state": state,
                "start_time": ended - timedelta(hours=1),
                "end_time": ended,
                "provider_type": "sevenbridges",
                "provider_id": str(uuid.uuid4()),
                "provider_status": "COMPLETED",
                "submitted_at": ended - timedelta(hours=1),
                "provider_stopped_at": ended,
            }
        )
        for task in range(2):
            logs.append({"id": str(uuid.uuid4()), "run_id": run_id, "name": f"step-{task}"})
        for before, after in (("QUEUED", "INITIALIZING"), ("INITIALIZING", "RUNNING")):
            history.append(_transition(run_id, ended - timedelta(minutes=30), before, after))
        history.append(_transition(run_id, ended, "RUNNING", state))
    queued = [
        {**base, "run_id": str(uuid.uuid4()), "state": "QUEUED", "start_time": now}
        for _ in range(ACTIVE)
    ]
    running = []
    for _ in range(ACTIVE):
        run_id = str(uuid.uuid4())
        running.append(
            {
                **base,
                "run_id": run_id,
                "state": "RUNNING",
                "start_time": now - timedelta(hours=1),
                "provider_type": "sevenbridges",
                "provider_id": _running_task(fake, run_id),
                "provider_status": "RUNNING",
                "submitted_at": now - timedelta(hours=1),
            }
        )
    cancelled = {**running.pop(), "state": "CANCELED"}  # by the WES API: a stop is pending
    engine = create_engine(url)
    with engine.begin() as connection:
        for table, rows in (
            (WorkflowRun.__table__, runs),
            (WorkflowRun.__table__, queued),
            (WorkflowRun.__table__, running),
            (WorkflowRun.__table__, [cancelled]),
            (TaskLogRow.__table__, logs),
            (StateTransition.__table__, history),
        ):
            connection.execute(insert(table), rows)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))
    engine.dispose()
    return str(runs[0]["run_id"])


def _transition(run_id: str, at: datetime, before: str, after: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "at": at,
        "from_state": before,
        "to_state": after,
        "reason": "test",
        "actor": "sync-status@test",
    }


def _statements(url: str, environ: dict[str, str], commands: list[list[str]]) -> list[Any]:
    """(command, statement, parameters) of every distinct statement on the run tables."""
    seen: dict[str, tuple[str, str, Any]] = {}
    current = [""]

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb in ("SELECT", "UPDATE", "DELETE") and any(t in statement for t in TABLES):
            seen.setdefault(statement, (current[0], statement, parameters))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        for command in commands:
            current[0] = " ".join(command)
            result = wesctl("--database-uri", url, *command, env=environ)
            assert result.exit_code == 0, (command, result.output)
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    return list(seen.values())


def _sqlite_problems(engine: Engine, statement: str, parameters: Any) -> list[str]:
    raw = engine.raw_connection()
    try:
        plan = raw.cursor().execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
    finally:
        raw.close()
    problems = []
    for row in plan:
        detail = str(row[3])
        if detail.split()[0] not in ("SCAN", "SEARCH") or detail.split()[1] not in TABLES:
            continue
        partial = any(f"INDEX {name} " in f"{detail} " for name in WALKABLE)
        # A scan must walk an index without finished runs; a search by state one too (an
        # index of every run's state reads all runs in a finished state).
        if not partial and (detail.startswith("SCAN ") or "(state=?" in detail):
            problems.append(detail)
    return problems


def _postgres_problems(engine: Engine, statement: str, parameters: Any) -> list[str]:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SET enable_seqscan = off")  # an index the planner can use, it uses
        cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
        plan = cursor.fetchone()[0]
        raw.rollback()
    finally:
        raw.close()
    problems: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        kind = node["Node Type"]
        if kind == "Seq Scan" and node.get("Relation Name") in TABLES:
            problems.append(f"Seq Scan on {node['Relation Name']}")
        if kind in ("Index Scan", "Index Only Scan", "Bitmap Index Scan"):
            name = node["Index Name"]
            condition = node.get("Index Cond")
            if name not in WALKABLE and (condition is None or "(state)" in condition):
                problems.append(f"{kind} of {name} ({condition or 'all of it'})")
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return problems


@pytest.mark.parametrize(
    "db_url",
    ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
    indirect=True,
)
def test_no_statement_of_the_commands_reads_the_finished_runs(
    db_url: str, simulator: SimulatedSevenBridges
) -> None:
    upgrade_database(db_url)
    finished = _load(db_url, simulator)
    environ = {
        "WESCTL_PROVIDERS": "sevenbridges",
        "SEVENBRIDGES_API_TOKEN": TOKEN,
        "SEVENBRIDGES_API_ENDPOINT": simulator.base_url + API_PREFIX,
        "SEVENBRIDGES_PROJECT": DEFAULT_PROJECT,
        "DAEMON_MAX_CONCURRENT_WORKFLOWS": str(ACTIVE + 5),  # room for a few claims
    }
    commands = [
        ["status", "--json"],
        ["sync-status", "--json"],
        ["submit-queued", "--dry-run", "--json"],
        ["submit-queued", "--json"],
        ["submit-queued", "--json"],  # no slot left: the no-op pass
        ["runs", "show", finished, "--json"],
        ["runs", "list", "--json"],
        ["runs", "list", "--state", "COMPLETE", "--json"],
        ["runs", "list", "--state", "RUNNING", "--json"],
    ]
    statements = _statements(db_url, environ, commands)
    assert len(statements) > 20, "the commands ran their queries"
    engine = create_engine(db_url)
    check = _postgres_problems if engine.dialect.name == "postgresql" else _sqlite_problems
    problems = {
        f"{command}: {' '.join(statement.split())[:240]}": found
        for command, statement, parameters in statements
        if (found := check(engine, statement, parameters))
    }
    engine.dispose()
    assert problems == {}, json.dumps(problems, indent=1)


def test_status_counts_unfinished_runs_and_runs_finished_in_the_last_24_hours(db_url: str) -> None:
    upgrade_database(db_url)
    engine = create_engine(db_url)
    now = datetime.now(UTC).replace(tzinfo=None)
    old, recent, running = (str(uuid.uuid4()) for _ in range(3))
    rows = [
        (old, "COMPLETE", now - timedelta(days=2)),
        (recent, "COMPLETE", now - timedelta(hours=1)),
        (running, "RUNNING", now - timedelta(days=3)),
    ]
    with engine.begin() as connection:
        for run_id, state, at in rows:
            connection.execute(
                insert(WorkflowRun.__table__),
                {
                    "run_id": run_id,
                    "state": state,
                    "workflow_type": "CWL",
                    "workflow_type_version": "v1.0",
                    "workflow_url": DEFAULT_APP,
                    "tags": {"provider_type": "sevenbridges"},
                    "start_time": at,
                    "provider_type": "sevenbridges",
                    "provider_id": str(uuid.uuid4()),
                    "submitted_at": at,
                },
            )
            connection.execute(
                insert(StateTransition.__table__), _transition(run_id, at, "QUEUED", state)
            )
    engine.dispose()

    result = wesctl("--database-uri", db_url, "status", "--json")

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    counts = {(item["state"], item["provider"]): item["runs"] for item in shown["counts"]}
    assert counts == {("COMPLETE", "sevenbridges"): 1, ("RUNNING", "sevenbridges"): 1}
    assert shown["history_since"] is not None
    assert shown["last_sync"] is not None, "the recent run's move, by sync-status@test"


# --- the claims --------------------------------------------------------------------------------

QUEUE = 3000  # queued runs waiting for a slot
IN_FLIGHT = 20
CLAIM_LIMIT = 8
# Rows a claim statement may read: what it takes and counts (a batch, the runs in flight, a
# recovery, a claimed run) with room to spare, and far fewer than the queue.
CLAIM_READ_BOUND = QUEUE // 10


def _load_queue(url: str, *, queued: int = QUEUE, in_flight: int = IN_FLIGHT) -> None:
    """`queued` queued runs, `in_flight` running ones, one queued run an interrupted submission
    left with a provider id, and one being submitted by another process."""
    now = datetime.now(UTC).replace(tzinfo=None)
    base = {
        "workflow_type": "CWL",
        "workflow_type_version": "v1.0",
        "workflow_url": DEFAULT_APP,
        "workflow_params": {},
        "tags": {"provider_type": "sevenbridges"},
        # every row names the same columns: one executemany inserts them all
        "provider_type": None,
        "provider_id": None,
        "submitted_at": None,
        "submit_attempts": 0,
        "claimed_by": None,
        "claim_expires_at": None,
    }

    def run(index: int, state: str, **values: Any) -> dict[str, Any]:
        at = now - timedelta(hours=1) + timedelta(microseconds=index)
        return {**base, "run_id": str(uuid.uuid4()), "state": state, "start_time": at, **values}

    rows = [run(index, "QUEUED") for index in range(queued)]
    for index in range(in_flight):
        provider = {"provider_type": "sevenbridges", "provider_id": str(uuid.uuid4())}
        rows.append(run(index, "RUNNING", submitted_at=now, **provider))
    rows.append(run(queued // 2, "QUEUED", provider_id=str(uuid.uuid4()), submit_attempts=1))
    claim = {"claimed_by": "other@host", "claim_expires_at": now + timedelta(hours=1)}
    rows.append(run(queued // 3, "QUEUED", submit_attempts=1, **claim))
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(insert(WorkflowRun.__table__), rows)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("ANALYZE workflow_runs"))
        elif is_mysql(engine.dialect):
            connection.execute(text("ANALYZE TABLE workflow_runs"))
    engine.dispose()


def _claim_statements(
    url: str, *, cap: int = IN_FLIGHT + 2 + CLAIM_LIMIT
) -> tuple[list[tuple[str, Any]], list[str]]:
    """The SELECTs on workflow_runs of one claim, and the runs it took."""
    settings = load_settings(
        environ={
            "DATABASE_URI": url,
            "WESCTL_PROVIDERS": "sevenbridges",
            "DAEMON_MAX_CONCURRENT_WORKFLOWS": str(cap),
        },
        export_sdk=False,
    )
    seen: dict[str, tuple[str, Any]] = {}

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "workflow_runs" in statement:
            seen.setdefault(statement, (statement, parameters))

    runtime = Runtime.open(settings, command="claim-test")
    event.listen(Engine, "before_cursor_execute", record)
    try:
        claims = Submitter(runtime, Report("test")).claim(limit=CLAIM_LIMIT)
    finally:
        event.remove(Engine, "before_cursor_execute", record)
        runtime.close()
    return list(seen.values()), [claim.run_id for claim in claims]


def _postgres_rows_read(engine: Engine, statement: str, parameters: Any) -> int:
    """Rows PostgreSQL read from workflow_runs running `statement` (kept and filtered out)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
        plan = cursor.fetchone()[0]
        raw.rollback()
    finally:
        raw.close()

    def read(node: dict[str, Any]) -> int:
        own = 0
        if node.get("Relation Name") == "workflow_runs":
            kept = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
            own = int(kept * node["Actual Loops"])
        return own + sum(read(child) for child in node.get("Plans", []))

    return read(plan[0]["Plan"])


def _mariadb_rows_read(engine: Engine, statement: str, parameters: Any) -> int:
    """Rows MariaDB read from workflow_runs running `statement` (ANALYZE's r_rows per loop)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("ANALYZE FORMAT=JSON " + statement, parameters)
        plan = json.loads(cursor.fetchone()[0])
        raw.rollback()
    finally:
        raw.close()

    def read(node: Any) -> int:
        if isinstance(node, list):
            return sum(read(item) for item in node)
        if not isinstance(node, dict):
            return 0
        own = 0
        if node.get("table_name") == "workflow_runs":
            own = int((node.get("r_rows") or 0) * (node.get("r_loops") or 0))
        return own + sum(read(value) for value in node.values())

    return read(plan)


def _sqlite_steps(engine: Engine, statement: str, parameters: Any) -> int:
    """Virtual machine steps of SQLite running `statement`: reading every queued run takes
    more than QUEUE (SQLite counts no rows read; a step per row at least)."""
    raw = engine.raw_connection()
    steps = [0]

    def step() -> int:
        steps[0] += 1
        return 0

    try:
        connection = raw.driver_connection
        assert connection is not None
        connection.set_progress_handler(step, 1)
        connection.execute(statement, parameters).fetchall()
        connection.set_progress_handler(None, 1)
        raw.rollback()
    finally:
        raw.close()
    return steps[0]


def _rows_read(db_url: str, statements: list[tuple[str, Any]]) -> tuple[dict[str, int], int]:
    """What each statement read (rows, or SQLite's steps), and the bound for this engine."""
    engine = create_engine(db_url)
    if engine.dialect.name == "postgresql":
        measure, bound = _postgres_rows_read, CLAIM_READ_BOUND
    elif is_mysql(engine.dialect):
        measure, bound = _mariadb_rows_read, CLAIM_READ_BOUND
    else:
        measure, bound = _sqlite_steps, QUEUE
    read = {
        " ".join(statement.split()): measure(engine, statement, parameters)
        for statement, parameters in statements
    }
    engine.dispose()
    return read, bound


def test_the_slot_count_reads_no_more_runs_in_flight_than_the_cap(db_url: str) -> None:
    """Past the cap a count cannot change what a claim may take: with thousands of runs in flight
    and a cap of 10, the slot count reads about 10 of them, not all."""
    upgrade_database(db_url)
    _load_queue(db_url, queued=50, in_flight=QUEUE)

    statements, claimed = _claim_statements(db_url, cap=10)

    assert len(claimed) == 1, "only the recovery, which holds its slot already: none is free"
    read, bound = _rows_read(db_url, statements)
    counts = {statement: rows for statement, rows in read.items() if "count(" in statement}
    assert len(counts) == 1, read
    assert {statement: rows for statement, rows in counts.items() if rows >= bound} == {}, read


def test_a_pass_far_from_the_cap_counts_the_runs_in_flight_once(db_url: str) -> None:
    """Under a cap far above the runs in flight, a pass's later claims bound them by the claim
    ledger instead of counting them again: a long pass under a large cap does not read every
    run it submitted per claim."""
    upgrade_database(db_url)
    _load_queue(db_url, queued=50, in_flight=QUEUE)
    settings = load_settings(
        environ={
            "DATABASE_URI": db_url,
            "WESCTL_PROVIDERS": "sevenbridges",
            "DAEMON_MAX_CONCURRENT_WORKFLOWS": "1000000",
        },
        export_sdk=False,
    )
    counts: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "count(" in statement and "workflow_runs" in statement:
            counts.append(statement)

    runtime = Runtime.open(settings, command="claim-test")
    try:
        submitter = Submitter(runtime, Report("test"))
        assert len(submitter.claim(limit=CLAIM_LIMIT)) == CLAIM_LIMIT
        event.listen(Engine, "before_cursor_execute", record)
        try:
            later = [submitter.claim(limit=CLAIM_LIMIT) for _ in range(3)]
        finally:
            event.remove(Engine, "before_cursor_execute", record)
    finally:
        runtime.close()
    assert [len(claims) for claims in later] == [CLAIM_LIMIT] * 3
    assert counts == [], "no later claim counts the runs in flight"


def test_a_claim_reads_no_queued_run_it_cannot_take(db_url: str) -> None:
    """The recoveries and the slot count are read through indexes of those runs only, and new
    runs from the head of the queue: a claim's cost does not grow with the queue."""
    upgrade_database(db_url)
    _load_queue(db_url)

    statements, claimed = _claim_statements(db_url)

    assert len(claimed) == CLAIM_LIMIT, "the recovery and new runs, within the cap"
    read, bound = _rows_read(db_url, statements)
    assert len(read) >= 4, "the recoveries, the slot count, new runs, the claimed rows"
    assert {statement: count for statement, count in read.items() if count >= bound} == {}, read
