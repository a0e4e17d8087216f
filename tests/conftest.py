"""Shared fixtures: isolated settings, and databases on SQLite, PostgreSQL and MariaDB.

PostgreSQL tests use a fresh database per test on WESCTL_TEST_POSTGRES_URL (default: the local
server on 127.0.0.1:5432, database `test`), MariaDB tests one on WESCTL_TEST_MARIADB_URL (default:
root on 127.0.0.1:3306), created with the WES API's character set and collation. When
WESCTL_REQUIRE_POSTGRES=1 / WESCTL_REQUIRE_MARIADB=1 (CI), an unreachable server fails those tests
instead of skipping them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from wesctl.config import FIELDS

POSTGRES_ADMIN_URL = os.environ.get(
    "WESCTL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("WESCTL_REQUIRE_POSTGRES") == "1"
MARIADB_ADMIN_URL = os.environ.get(
    "WESCTL_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)
REQUIRE_MARIADB = os.environ.get("WESCTL_REQUIRE_MARIADB") == "1"


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run every test in its own directory with none of wesctl's settings inherited."""
    for field in FIELDS:
        monkeypatch.delenv(field.env, raising=False)
    for name in ("CREDENTIALS_DIRECTORY", "JOURNAL_STREAM", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.chdir(tmp_path)


def _server_problem(url: str) -> str | None:
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return str(exc).splitlines()[0]
    return None


def _require_server(name: str, url: str, required: bool) -> str:
    problem = _server_problem(url)
    if problem is not None:
        message = f"{name} at {url} is not available: {problem}"
        if required:
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    return _require_server("PostgreSQL", POSTGRES_ADMIN_URL, REQUIRE_POSTGRES)


@pytest.fixture(scope="session")
def mariadb_admin() -> str:
    return _require_server("MariaDB", MARIADB_ADMIN_URL, REQUIRE_MARIADB)


@pytest.fixture
def postgres_url(postgres_admin: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    name = f"wesctl_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_admin, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_admin).set(database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def mariadb_url(mariadb_admin: str) -> Iterator[str]:
    """A fresh, empty MariaDB database for one test, in the character set and collation the WES
    API's tables have there."""
    name = f"wesctl_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(mariadb_admin, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(
            text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
        )
    url = make_url(mariadb_admin).set(database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'wes-test.db'}"


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty database, once on each engine: SQLite, PostgreSQL and MariaDB."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's server (S3, CloudWatch Logs, STS) on loopback, with the test bucket created."""
    from tests.contract.aws_fixtures import start_moto

    server, url = start_moto()
    yield url
    server.stop()
