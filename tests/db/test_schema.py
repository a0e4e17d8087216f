"""`wesctl db upgrade` / `db status` on empty databases and on a database the WES API made."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, inspect, text

from tests.cli_helpers import upgrade_database, wesctl, wesctl_json
from tests.wes_api import API_REVISION, create_api_schema, insert_api_run
from wesctl.db import schema
from wesctl.db.tables import Base


def _dump_api_data(url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    engine = create_engine(url)
    with engine.connect() as connection:
        runs = connection.execute(
            text(
                "SELECT run_id, state, workflow_params, workflow_type, workflow_type_version, "
                "workflow_url, tags, start_time, end_time FROM workflow_runs ORDER BY run_id"
            )
        ).all()
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    engine.dispose()
    normalised = [
        tuple(json.loads(v) if isinstance(v, str) and v[:1] in "{[n" else v for v in row)
        for row in runs
    ]
    return normalised, [tuple(v) for v in versions]


def test_upgrade_creates_everything_on_an_empty_database_twice(db_url: str) -> None:
    first = wesctl("--database-uri", db_url, "db", "upgrade")
    assert first.exit_code == 0, first.output
    assert "upgraded from empty" in first.stdout
    second = wesctl("--database-uri", db_url, "db", "upgrade")
    assert second.exit_code == 0, second.output
    assert "nothing to do" in second.stdout

    engine = create_engine(db_url)
    inspector = inspect(engine)
    tables = set(inspector.get_table_names())
    assert {"workflow_runs", "task_logs", "run_state_history", schema.VERSION_TABLE} <= tables
    versions = inspector.get_columns("alembic_version")
    assert [(c["name"], c["nullable"]) for c in versions] == [("version_num", False)]
    with engine.connect() as connection:
        recorded = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    assert recorded == [(API_REVISION,)], "the API's first revision is marked done, once"
    columns = {c["name"] for c in inspector.get_columns("workflow_runs")}
    assert set(Base.metadata.tables["workflow_runs"].columns.keys()) <= columns
    engine.dispose()
    status = wesctl_json("--database-uri", db_url, "db", "status")
    assert status["current"] == status["head"] == schema.SCHEMA_HEAD
    assert status["upgrade_pending"] is False
    assert status["wes_api_revision"] == API_REVISION


def test_upgrade_of_a_wes_api_database_keeps_its_data_and_version(db_url: str) -> None:
    engine = create_engine(db_url)
    create_api_schema(engine)
    insert_api_run(
        engine,
        workflow_params={"reads": {"class": "File", "path": "f1"}, "n": 3},
        tags={"provider_type": "healthomics", "team": "a"},
    )
    insert_api_run(engine, tags=None)  # the API stores an absent value as JSON null
    insert_api_run(engine, state="RUNNING", workflow_params={"x": [1, 2]}, tags={"k": "v"})
    engine.dispose()
    before = _dump_api_data(db_url)
    assert before[1] == [(API_REVISION,)]

    for _ in range(2):
        result = wesctl("--database-uri", db_url, "db", "upgrade")
        assert result.exit_code == 0, result.output
        assert _dump_api_data(db_url) == before

    listed = wesctl_json("--database-uri", db_url, "runs", "list")
    assert len(listed) == 3
    providers = {item["provider"] for item in listed}
    assert "healthomics" in providers  # read from the API's tags
    status = wesctl_json("--database-uri", db_url, "db", "status")
    assert status["wes_api_revision"] == API_REVISION
    assert status["upgrade_pending"] is False


def test_upgrade_refuses_a_workflow_runs_table_missing_columns(db_url: str) -> None:
    engine = create_engine(db_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE workflow_runs (run_id VARCHAR(36) PRIMARY KEY)"))
    engine.dispose()
    result = wesctl("--database-uri", db_url, "db", "upgrade")
    assert result.exit_code == 78
    assert "lacks required column(s) state" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_commands_hint_at_db_upgrade_when_schema_is_missing_or_behind(db_url: str) -> None:
    result = wesctl("--database-uri", db_url, "runs", "list")
    assert result.exit_code == 78
    assert "run `wesctl db upgrade`" in result.stderr
    status = wesctl("--database-uri", db_url, "db", "status")
    assert status.exit_code == 1, "an upgrade is pending"

    upgrade_database(db_url)
    engine = create_engine(db_url)
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {schema.VERSION_TABLE} SET version_num = 'older'"))
    engine.dispose()
    behind = wesctl("--database-uri", db_url, "runs", "list")
    assert behind.exit_code == 78
    assert "at revision older" in behind.stderr
    assert "wesctl db upgrade" in behind.stderr


def test_schema_head_constant_matches_the_migrations() -> None:
    assert schema.head_revision() == schema.SCHEMA_HEAD


@pytest.mark.parametrize(
    "uri",
    [
        "postgresql://nobody@127.0.0.1:1/wes",  # nothing listens on port 1
        "sqlite:////nonexistent-directory/wes.db",
    ],
)
def test_unreachable_database_is_one_line_and_exit_75(uri: str) -> None:
    result = wesctl("--database-uri", uri, "runs", "list")
    assert result.exit_code == 75, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "database unavailable" in lines[0]
    assert "Traceback" not in result.output


def test_password_never_appears_in_database_errors() -> None:
    result = wesctl(
        "--database-uri", "postgresql://wes:hunter2secret@127.0.0.1:1/wes", "runs", "list"
    )
    assert result.exit_code == 75
    assert "hunter2secret" not in result.output
