"""wesctl and the WES API migrate the shared database in either order.

The API's side is its real Alembic history (tests/wes_api_alembic), run through Alembic's Python
API with its default `alembic_version` table, exactly as its `flask db upgrade` would.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import MetaData, create_engine, inspect, text

from tests import wes_api_alembic
from tests.cli_helpers import wesctl, wesctl_json
from tests.wes_api import API_REVISION, insert_api_run
from wesctl.db import schema
from wesctl.db.engine import is_mysql
from wesctl.db.tables import ALL_INDEXES, API_RUN_COLUMNS

API_TABLES = ("workflow_runs", "task_logs", "alembic_version")
LATER_API_REVISION = "9f3c2a1b7d4e"

# The API's columns per its revision 65510080a98b (name, reflected type, nullable), by dialect.
_VARCHAR = "VARCHAR({})"
_API_COLUMNS = {
    "workflow_runs": [
        ("run_id", _VARCHAR.format(36), False),
        ("state", _VARCHAR.format(20), False),
        ("workflow_params", "{json}", True),
        ("workflow_type", _VARCHAR.format(50), False),
        ("workflow_type_version", _VARCHAR.format(20), False),
        ("workflow_engine", _VARCHAR.format(50), True),
        ("workflow_engine_version", _VARCHAR.format(20), True),
        ("workflow_url", _VARCHAR.format(500), False),
        ("tags", "{json}", True),
        ("start_time", "{timestamp}", True),
        ("end_time", "{timestamp}", True),
    ],
    "task_logs": [
        ("id", _VARCHAR.format(36), False),
        ("run_id", _VARCHAR.format(36), True),
        ("name", _VARCHAR.format(200), False),
        ("cmd", "{json}", True),
        ("start_time", "{timestamp}", True),
        ("end_time", "{timestamp}", True),
        ("stdout", _VARCHAR.format(500), True),
        ("stderr", _VARCHAR.format(500), True),
        ("exit_code", "INTEGER", True),
        ("system_logs", "{json}", True),
    ],
    "alembic_version": [("version_num", _VARCHAR.format(32), False)],
}
# What the API's sa.DateTime() and sa.JSON() become; MariaDB's JSON is LONGTEXT with a
# json_valid() CHECK, which SQLAlchemy reflects as LONGTEXT.
_TYPES = {
    "sqlite": {"timestamp": "DATETIME", "json": "JSON"},
    "postgresql": {"timestamp": "TIMESTAMP", "json": "JSON"},
    "mysql": {"timestamp": "DATETIME", "json": "LONGTEXT"},
}
# Indexes on the API's tables the API's revision makes: InnoDB indexes a foreign key's column.
_API_INDEXES = {"mysql": [("run_id", ("run_id",), False)]}


def _layout(url: str) -> dict[str, Any]:
    """Everything a migration decides about the API's tables: columns in order with type,
    nullability and default, keys with their names, indexes; on SQLite and MySQL also the DDL."""
    engine = create_engine(url)
    layout: dict[str, Any] = {}
    with engine.connect() as connection:
        inspector = inspect(connection)
        for table in API_TABLES:
            layout[table] = {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"], c["default"])
                    for c in inspector.get_columns(table)
                ],
                "primary_key": inspector.get_pk_constraint(table),
                "foreign_keys": inspector.get_foreign_keys(table),
                "unique": inspector.get_unique_constraints(table),
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), i["unique"])
                    for i in inspector.get_indexes(table)
                ),
            }
        if engine.dialect.name == "sqlite":
            layout["ddl"] = connection.execute(
                text("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
            ).all()
        if is_mysql(engine.dialect):  # column types, collations, CHECKs, engine, charset
            layout["ddl"] = [
                connection.execute(text(f"SHOW CREATE TABLE {table}")).one()[1]
                for table in ("task_logs", "alembic_version")
            ]
    engine.dispose()
    return layout


def _wesctl_indexes(table: str, dialect: str) -> list[tuple[str, tuple[str, ...]]]:
    """(name, columns) of the indexes wesctl documents for `table` on `dialect`."""
    if dialect != "mysql":
        return [(spec.name, spec.columns) for spec in ALL_INDEXES if spec.table == table]
    return [
        (spec.name, spec.mysql_columns)
        for spec in ALL_INDEXES
        if spec.table == table and spec.mysql_columns is not None
    ]


def _api_versions(url: str) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
        versions = list(rows)
    engine.dispose()
    return versions


def _drop_everything(url: str) -> None:
    engine = create_engine(url)
    metadata = MetaData()
    metadata.reflect(engine)
    metadata.drop_all(engine)
    engine.dispose()


def _wesctl_upgrade(url: str) -> None:
    result = wesctl("--database-uri", url, "db", "upgrade")
    assert result.exit_code == 0, result.output


def _create_api_version_table(url: str, *versions: str) -> None:
    """The API's version table as Alembic creates it, holding `versions`."""
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
            )
        )
        for version in versions:
            connection.execute(
                text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": version}
            )
    engine.dispose()


def test_wes_api_migration_succeeds_after_wesctl_created_its_tables(db_url: str) -> None:
    first = wesctl("--database-uri", db_url, "db", "upgrade")
    assert first.exit_code == 0, first.output
    assert f"recorded its revision {API_REVISION} in alembic_version" in first.stderr
    second = wesctl("--database-uri", db_url, "db", "upgrade")
    assert second.exit_code == 0, second.output
    assert "alembic_version" not in second.stderr

    # Its revision 65510080a98b would fail on the existing tables: it must find itself at head.
    wes_api_alembic.upgrade_head(db_url)
    assert wes_api_alembic.recorded_heads(db_url) == (API_REVISION,)
    assert _api_versions(db_url) == [API_REVISION]

    run_id = insert_api_run(create_engine(db_url), tags={"provider_type": "healthomics"})
    listed = wesctl_json("--database-uri", db_url, "runs", "list")
    assert [(item["run_id"], item["provider"]) for item in listed] == [(run_id, "healthomics")]


def test_either_order_leaves_the_api_tables_as_the_api_alone_makes_them(db_url: str) -> None:
    _wesctl_upgrade(db_url)
    wes_api_alembic.upgrade_head(db_url)
    wesctl_first = _layout(db_url)

    _drop_everything(db_url)
    wes_api_alembic.upgrade_head(db_url)
    api_alone = _layout(db_url)
    _wesctl_upgrade(db_url)
    _wesctl_upgrade(db_url)
    api_first = _layout(db_url)

    assert wesctl_first == api_first
    engine = create_engine(db_url)
    dialect = "mysql" if is_mysql(engine.dialect) else engine.dialect.name
    engine.dispose()
    for table in API_TABLES:
        expected = [
            (name, kind.format(**_TYPES[dialect]), nullable, None)
            for name, kind, nullable in _API_COLUMNS[table]
        ]
        assert api_alone[table]["columns"] == expected, "the API's revision as documented"
        api_columns = wesctl_first[table]["columns"][: len(expected)]
        assert api_columns == expected, f"{table}: the API's columns come first, unchanged"
        for key in ("primary_key", "foreign_keys", "unique"):
            assert wesctl_first[table][key] == api_alone[table][key], f"{table} {key}"
    assert wesctl_first["task_logs"]["columns"] == api_alone["task_logs"]["columns"]
    # wesctl's indexes on the API's tables, the ones it documents; nothing else.
    for table in ("workflow_runs", "task_logs"):
        ours = [(name, columns) for name, columns, _ in wesctl_first[table]["indexes"] if name]
        theirs = [(name, columns) for name, columns, _ in api_alone[table]["indexes"]]
        assert sorted(ours) == sorted(theirs + _wesctl_indexes(table, dialect)), table
    assert api_alone["task_logs"]["indexes"] == _API_INDEXES.get(dialect, [])
    assert [c[0] for c in wesctl_first["workflow_runs"]["columns"]][: len(API_RUN_COLUMNS)] == list(
        API_RUN_COLUMNS
    )


def test_api_first_then_wesctl_twice_keeps_the_api_version_and_data(db_url: str) -> None:
    wes_api_alembic.upgrade_head(db_url)
    engine = create_engine(db_url)
    run_id = insert_api_run(engine, workflow_params={"n": 1}, tags=None)
    engine.dispose()

    _wesctl_upgrade(db_url)
    _wesctl_upgrade(db_url)
    assert _api_versions(db_url) == [API_REVISION]
    wes_api_alembic.upgrade_head(db_url)  # the API's next boot: still at head
    assert _api_versions(db_url) == [API_REVISION]
    shown = wesctl_json("--database-uri", db_url, "runs", "show", run_id)
    assert shown["run_id"] == run_id


@pytest.mark.parametrize("api_tables", [False, True])
def test_a_later_api_revision_is_never_overwritten(db_url: str, api_tables: bool) -> None:
    if api_tables:
        wes_api_alembic.upgrade_head(db_url)
        engine = create_engine(db_url)
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE alembic_version SET version_num = :v"), {"v": LATER_API_REVISION}
            )
        engine.dispose()
    else:
        _create_api_version_table(db_url, LATER_API_REVISION)

    _wesctl_upgrade(db_url)
    _wesctl_upgrade(db_url)
    assert _api_versions(db_url) == [LATER_API_REVISION]
    status = wesctl_json("--database-uri", db_url, "db", "status")
    assert status["wes_api_revision"] == LATER_API_REVISION
    assert status["current"] == schema.SCHEMA_HEAD


def test_an_empty_api_version_table_gets_the_first_revision(db_url: str) -> None:
    # What the API's `flask db downgrade base` leaves: the table, no row, no API tables.
    _create_api_version_table(db_url)
    _wesctl_upgrade(db_url)
    assert _api_versions(db_url) == [API_REVISION]
    wes_api_alembic.upgrade_head(db_url)
    assert _api_versions(db_url) == [API_REVISION]


def test_no_api_version_when_the_api_tables_were_not_both_created_by_wesctl(
    db_url: str,
) -> None:
    # workflow_runs from elsewhere, no task_logs: wesctl adds what is missing but has not made
    # what revision 65510080a98b makes, so it must not claim that revision ran.
    engine = create_engine(db_url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE workflow_runs (run_id VARCHAR(36) NOT NULL PRIMARY KEY, "
                "state VARCHAR(20) NOT NULL, workflow_params JSON, "
                "workflow_type VARCHAR(50) NOT NULL, workflow_type_version VARCHAR(20) NOT NULL, "
                "workflow_engine VARCHAR(50), workflow_engine_version VARCHAR(20), "
                "workflow_url VARCHAR(500) NOT NULL, tags JSON, start_time TIMESTAMP, "
                "end_time TIMESTAMP)"
            )
        )
    engine.dispose()
    _wesctl_upgrade(db_url)
    engine = create_engine(db_url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert "task_logs" in tables
    assert "alembic_version" not in tables
