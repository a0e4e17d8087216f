"""MariaDB as the WES API deploys it: its DDL, its URLs, its JSON and times, InnoDB's locks.

The engine-independent guarantees (claims, the race and crash tests, either deployment order) run
on MariaDB through the `db_url` fixture; these are the parts only MySQL/MariaDB have.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.cli_helpers import wesctl, wesctl_json
from tests.e2e.providers import SBG_APP, sevenbridges_env, sevenbridges_fake
from tests.wes_api import API_REVISION, create_api_schema, insert_api_run
from wesctl.config import Settings, load_settings
from wesctl.db import runs as run_queries
from wesctl.db.engine import make_engine, make_session_factory, utcnow
from wesctl.domain.outcomes import Report
from wesctl.services.runtime import Runtime, default_actor
from wesctl.services.submit import Submitter

pytestmark = pytest.mark.mariadb

API_COLUMNS = {
    "workflow_runs": (
        "run_id",
        "state",
        "workflow_params",
        "workflow_type",
        "workflow_type_version",
        "workflow_engine",
        "workflow_engine_version",
        "workflow_url",
        "tags",
        "start_time",
        "end_time",
    ),
}


def _ddl(url: str, table: str) -> str:
    engine = create_engine(url)
    with engine.connect() as connection:
        ddl: str = connection.execute(text(f"SHOW CREATE TABLE `{table}`")).one()[1]
    engine.dispose()
    return ddl


def _column_lines(ddl: str) -> dict[str, str]:
    """Each column's definition line of SHOW CREATE TABLE, by column name."""
    return {
        match.group(1): match.group(0).strip().rstrip(",")
        for match in re.finditer(r"^\s*`(\w+)` .*$", ddl, re.MULTILINE)
    }


def _api_data(url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    engine = create_engine(url)
    with engine.connect() as connection:
        runs = connection.execute(
            text(f"SELECT {', '.join(API_COLUMNS['workflow_runs'])} FROM workflow_runs ORDER BY 1")
        ).all()
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    engine.dispose()
    return [tuple(row) for row in runs], [tuple(row) for row in versions]


def _migrated(url: str) -> str:
    result = wesctl("--database-uri", url, "db", "upgrade")
    assert result.exit_code == 0, result.output
    return url


def test_upgrade_of_the_api_s_mariadb_schema_adds_only_and_twice_is_a_no_op(
    mariadb_url: str,
) -> None:
    engine = create_engine(mariadb_url)
    create_api_schema(engine)
    insert_api_run(engine, workflow_params={"n": 1}, tags={"provider_type": "healthomics"})
    insert_api_run(engine, tags=None)
    engine.dispose()
    api_ddl = {table: _ddl(mariadb_url, table) for table in ("task_logs", "alembic_version")}
    api_runs = _column_lines(_ddl(mariadb_url, "workflow_runs"))
    data = _api_data(mariadb_url)

    first = wesctl("--database-uri", mariadb_url, "db", "upgrade")
    assert first.exit_code == 0, first.output
    second = wesctl("--database-uri", mariadb_url, "db", "upgrade")
    assert second.exit_code == 0, second.output
    assert "nothing to do" in second.stdout

    assert _api_data(mariadb_url) == data, "the API's rows and revision are untouched"
    for table, ddl in api_ddl.items():
        assert _ddl(mariadb_url, table) == ddl, f"{table} is untouched"
    runs_ddl = _ddl(mariadb_url, "workflow_runs")
    lines = _column_lines(runs_ddl)
    for name in API_COLUMNS["workflow_runs"]:
        assert lines[name] == api_runs[name], f"the API's column {name} is unchanged"
    # wesctl's additions: times to the microsecond, JSON as the API's JSON columns are.
    for name in ("claim_expires_at", "submitted_at", "provider_stopped_at", "cancel_sent_at"):
        assert lines[name] == f"`{name}` datetime(6) DEFAULT NULL", name
    for name in ("provider_metadata", "outputs"):
        assert "longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin" in lines[name], name
        assert f"CHECK (json_valid(`{name}`))" in lines[name], name
    assert "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci" in runs_ddl
    history = _ddl(mariadb_url, "run_state_history")
    assert "`at` datetime(6) NOT NULL" in history
    assert "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4" in history
    status = wesctl_json("--database-uri", mariadb_url, "db", "status")
    assert status["wes_api_revision"] == API_REVISION
    assert status["upgrade_pending"] is False


@pytest.mark.parametrize("scheme", ["mysql", "mariadb", "mysql+pymysql", "mariadb+pymysql"])
def test_every_mysql_url_form_works_through_pymysql(mariadb_url: str, scheme: str) -> None:
    url = make_url(mariadb_url).set(drivername=scheme).render_as_string(hide_password=False)
    _migrated(url)
    run_id = insert_api_run(create_engine(mariadb_url), tags={"provider_type": "healthomics"})
    listed = wesctl_json("--database-uri", url, "runs", "list")
    assert [(item["run_id"], item["provider"]) for item in listed] == [(run_id, "healthomics")]


def test_a_wrong_password_is_one_line_and_exit_78(mariadb_admin: str) -> None:
    url = make_url(mariadb_admin).set(password="hunter2secret").render_as_string(False)
    result = wesctl("--database-uri", url, "runs", "list")
    assert result.exit_code == 78, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "Access denied for user" in lines[0]
    assert "hunter2secret" not in result.output
    assert "Traceback" not in result.output


def test_an_unknown_database_is_one_line_and_exit_78(mariadb_admin: str) -> None:
    url = make_url(mariadb_admin).set(database="no_such_wes_db").render_as_string(False)
    result = wesctl("--database-uri", url, "runs", "list")
    assert result.exit_code == 78, result.output
    assert "Unknown database 'no_such_wes_db'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("scheme", ["mysql", "mariadb"])
def test_a_down_server_is_one_line_and_exit_75(scheme: str) -> None:
    result = wesctl("--database-uri", f"{scheme}://wes:pw-secret@127.0.0.1:1/wes", "runs", "list")
    assert result.exit_code == 75, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "database unavailable: Can't connect to MySQL server" in lines[0]
    assert "pw-secret" not in result.output


def test_json_and_times_the_api_wrote_are_read_and_wesctl_writes_what_it_reads(
    mariadb_url: str,
) -> None:
    """Tags the API stored as the text 'null', whole-second queue times: read as on the other
    engines; what wesctl writes is valid JSON text the API's CHECK accepts and its reader parses,
    and its own times keep their microseconds."""
    engine = create_engine(mariadb_url)
    create_api_schema(engine)
    _migrated(mariadb_url)
    with sevenbridges_fake() as fake:
        reads = fake.add_file("reads.fastq", b"ACGT\n")
        run_id = insert_api_run(
            engine,
            workflow_url=SBG_APP,
            workflow_params={"reads": {"class": "File", "path": reads}, "n": 2, "ü": "é"},
            tags=None,
        )
        env = {"DATABASE_URI": mariadb_url, **sevenbridges_env(fake)}
        submitted = wesctl("submit-queued", "--json", env=env)
        assert submitted.exit_code == 0, submitted.output
        assert json.loads(submitted.stdout)["counts"] == {"submitted": 1}
        task_id = fake.runs_for(run_id)[0]
        fake.finish(task_id, succeed=True)
        synced = wesctl("sync-status", env=env)
        assert synced.exit_code == 0, synced.output
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT tags, start_time, state, submitted_at, outputs, provider_metadata, "
                "JSON_VALID(outputs) AS outputs_valid FROM workflow_runs WHERE run_id = :id"
            ),
            {"id": run_id},
        ).one()
        logs = connection.execute(
            text("SELECT cmd, system_logs FROM task_logs WHERE run_id = :id"), {"id": run_id}
        ).all()
    engine.dispose()
    assert row.tags == "null"
    assert row.start_time.microsecond == 0, "the API's DATETIME keeps whole seconds"
    assert row.state == "COMPLETE"
    assert isinstance(row.submitted_at, datetime)
    assert row.outputs_valid == 1
    assert isinstance(json.loads(row.outputs), dict)
    assert isinstance(json.loads(row.provider_metadata), dict)
    for cmd, system_logs in logs:
        assert cmd is None or isinstance(json.loads(cmd), list)
        assert isinstance(json.loads(system_logs), list)
    shown = wesctl_json("--database-uri", mariadb_url, "runs", "show", run_id)
    assert shown["state"] == "COMPLETE"


def test_a_lease_keeps_its_microseconds(mariadb_url: str) -> None:
    _migrated(mariadb_url)
    engine = make_engine(mariadb_url)
    run_id = insert_api_run(engine)
    now = utcnow().replace(microsecond=123456)
    with make_session_factory(engine).begin() as session:
        run_queries.lock_claims(session)
        [claimed] = run_queries.claim_runs(
            session,
            [run_id],
            owner="t",
            now=now,
            lease=timedelta(seconds=30),
            default_provider="sevenbridges",
        )
    assert claimed.claim_expires_at == now + timedelta(seconds=30)
    engine.dispose()


def test_tags_that_are_not_json_resolve_to_the_default_and_fail_alone(mariadb_url: str) -> None:
    """A JSON column without the API's CHECK (an older MySQL table, or one altered by hand)
    may hold any text: resolving the provider in SQL must not fail the statement."""
    engine = create_engine(mariadb_url)
    create_api_schema(engine)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE workflow_runs MODIFY tags LONGTEXT"))
    good = insert_api_run(engine, tags={"provider_type": "healthomics"})
    bad = insert_api_run(engine)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE workflow_runs SET tags = '{not json' WHERE run_id = :id"), {"id": bad}
        )
    engine.dispose()
    _migrated(mariadb_url)
    listed = {
        item["run_id"]: item["provider"]
        for item in wesctl_json("--database-uri", mariadb_url, "runs", "list")
    }
    assert listed == {good: "healthomics", bad: "sevenbridges"}
    status = wesctl("--database-uri", mariadb_url, "status")
    assert status.exit_code == 0, status.output


def _settings(url: str, **overrides: object) -> Settings:
    settings = load_settings(
        environ={"DATABASE_URI": url, "WESCTL_PROVIDERS": "sevenbridges"}, export_sdk=False
    )
    return dataclasses.replace(settings, **overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize("isolation", ["REPEATABLE READ", "READ COMMITTED"])
def test_claims_hold_under_either_innodb_isolation_level(mariadb_url: str, isolation: str) -> None:
    """wesctl's sessions use READ COMMITTED; claims are exact under REPEATABLE READ too (the lock
    row is a locking read taken first, the claim re-reads its rows with a locking read)."""
    _migrated(mariadb_url)
    engine = create_engine(mariadb_url)
    ids = [insert_api_run(engine, run_id=f"run-{i:03d}") for i in range(40)]
    engine.dispose()
    settings = _settings(mariadb_url, max_concurrent_workflows=23)
    workers = 6
    barrier = threading.Barrier(workers)
    results: list[list[str]] = [[] for _ in range(workers)]

    def claim(index: int) -> None:
        engine = make_engine(mariadb_url).execution_options(isolation_level=isolation)
        runtime = Runtime(
            settings,
            engine,
            make_session_factory(engine),
            make_session_factory(engine, read_only=True),
            default_actor(f"claimer-{index}"),
        )
        try:
            submitter = Submitter(runtime, Report("test"))
            barrier.wait()
            for _ in range(10):
                results[index].extend(c.run_id for c in submitter.claim(limit=3))
        finally:
            runtime.close()

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    claimed = [run_id for batch in results for run_id in batch]
    assert len(claimed) == 23, "the cap holds"
    assert len(set(claimed)) == 23, "no run claimed twice"
    assert set(claimed) <= set(ids)


def test_a_lock_wait_timeout_is_transient_one_line_and_exit_75(mariadb_url: str) -> None:
    """Another transaction holds the claim lock longer than the server lets wesctl wait."""
    _migrated(mariadb_url)
    engine = create_engine(mariadb_url)
    insert_api_run(engine, workflow_url=SBG_APP)
    waiting = (
        make_url(mariadb_url)
        .update_query_dict({"init_command": "SET innodb_lock_wait_timeout = 1"})
        .render_as_string(hide_password=False)
    )
    with sevenbridges_fake() as fake, engine.connect() as holder:
        holder.execute(text("SELECT name FROM wesctl_locks FOR UPDATE"))
        result = wesctl("submit-queued", env={"DATABASE_URI": waiting, **sevenbridges_env(fake)})
        holder.rollback()
        assert fake.tasks == {}
    engine.dispose()
    assert result.exit_code == 75, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Lock wait timeout exceeded" in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("password", "port", "detail"),
    [
        ("hunter2secret", None, "database refused the connection: Access denied for user"),
        ("pw", 1, "database unavailable: Can't connect to MySQL server"),
    ],
    ids=["refused", "down"],
)
def test_doctor_names_a_refused_or_down_mariadb_in_its_database_check(
    mariadb_admin: str, password: str, port: int | None, detail: str
) -> None:
    url = make_url(mariadb_admin).set(password=password, port=port or 3306)
    result = wesctl("doctor", env={"DATABASE_URI": url.render_as_string(hide_password=False)})
    assert "Traceback" not in result.output
    [line] = [item for item in result.stdout.splitlines() if item.startswith("check=database ")]
    assert "result=fail" in line
    assert detail in line
    assert password not in result.output
