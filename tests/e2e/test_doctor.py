"""`wesctl doctor`'s checks against real parts: the provider fakes over HTTP, moto's STS, real
databases and a real notification endpoint; each failure is asserted with its exact message."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.contract.aws_fixtures import aws_environment, s3_client
from tests.e2e.providers import SBG_TOKEN, healthomics_env, sevenbridges_env
from tests.notify import running_server
from wesctl.config import load_settings
from wesctl.db import schema
from wesctl.db.engine import make_engine
from wesctl.notify.listeners import bind_tcp
from wesctl.services.doctor import (
    DATABASE_FIX,
    NOTIFY_FIX,
    UPGRADE_FIX,
    CheckResult,
    Status,
    all_passed,
    run_checks,
)
from wesctl.simulated.healthomics import SimulatedHealthOmics
from wesctl.simulated.http import ERROR
from wesctl.simulated.sevenbridges import DEFAULT_PROJECT, SimulatedSevenBridges

HEAD = schema.SCHEMA_HEAD


@pytest.fixture(scope="module")
def omics(moto_url: str) -> Iterator[SimulatedHealthOmics]:
    with SimulatedHealthOmics(s3=s3_client(moto_url)) as fake:
        yield fake


@pytest.fixture(scope="module")
def module_sbg() -> Iterator[SimulatedSevenBridges]:
    with SimulatedSevenBridges(token=SBG_TOKEN) as fake:
        yield fake


@pytest.fixture
def sbg(module_sbg: SimulatedSevenBridges) -> SimulatedSevenBridges:
    module_sbg.reset()
    return module_sbg


def closed_port() -> int:
    """A loopback port nothing listens on (bound once to pick it, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def migrated(url: str) -> str:
    engine = make_engine(url)
    schema.upgrade(engine)
    engine.dispose()
    return url


class Doctor:
    """Settings exactly as an operator gives them (variables only) and the checks they yield."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.env_file = tmp_path / "empty.env"  # keeps a developer's ./.env out of the settings
        self.env_file.write_text("", encoding="utf-8")
        self.env = env

    def run(self, **changes: str | None) -> list[CheckResult]:
        """Run the checks with `changes` applied to the variables (None removes one)."""
        env = {**self.env, **changes}
        environ = {key: value for key, value in env.items() if value is not None}
        return run_checks(
            lambda: load_settings(environ=environ, env_file=self.env_file, export_sdk=False)
        )

    def check(self, name: str, **changes: str | None) -> CheckResult:
        """The one result called `name`."""
        found = [result for result in self.run(**changes) if result.name == name]
        assert len(found) == 1, found
        return found[0]


@pytest.fixture
def doctor(
    tmp_path: Path,
    sqlite_url: str,
    sbg: SimulatedSevenBridges,
    omics: SimulatedHealthOmics,
    moto_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Doctor:
    """Both providers on their fakes, a migrated SQLite database, nothing on the notify port."""
    aws_environment(monkeypatch, omics_url=omics.base_url, moto_url=moto_url, tmp_path=tmp_path)
    return Doctor(
        tmp_path,
        {
            **sevenbridges_env(sbg),
            **healthomics_env(omics.base_url, moto_url, str(tmp_path)),
            "DATABASE_URI": migrated(sqlite_url),
            "WESCTL_PROVIDERS": "healthomics,sevenbridges",
            "DAEMON_NOTIFICATION_HOST": "127.0.0.1",
            "DAEMON_NOTIFICATION_PORT": str(closed_port()),
        },
    )


def failed(result: CheckResult, detail: str, fix: str) -> None:
    assert (result.status, result.detail, result.fix) == (Status.FAIL, detail, fix)


# --- everything in order -------------------------------------------------------------------------


def test_every_check_passes_on_a_working_installation(
    doctor: Doctor, sbg: SimulatedSevenBridges, omics: SimulatedHealthOmics, sqlite_url: str
) -> None:
    listener = bind_tcp("127.0.0.1", 0)
    port = listener.sock.getsockname()[1]
    doctor.env["DAEMON_NOTIFICATION_PORT"] = str(port)
    settings = load_settings(environ=doctor.env, env_file=doctor.env_file, export_sdk=False)
    listworkflows_before = omics.calls["ListWorkflows"]

    with running_server(settings, listener):
        results = doctor.run()

    assert [(result.name, result.status) for result in results] == [
        ("configuration", Status.OK),
        ("provider settings", Status.OK),
        ("database", Status.OK),
        ("schema", Status.OK),
        ("runs", Status.OK),
        ("healthomics settings", Status.OK),
        ("healthomics credentials", Status.OK),
        ("healthomics access", Status.OK),
        ("sevenbridges token", Status.OK),
        ("sevenbridges project", Status.OK),
        ("notify endpoint", Status.OK),
    ], results
    assert all_passed(results)
    details = {result.name: result.detail for result in results}
    assert details["schema"] == f"at revision {HEAD}"
    assert details["healthomics credentials"].endswith("(account 123456789012)")
    assert details["sevenbridges project"] == f"project {DEFAULT_PROJECT} is accessible"
    assert (
        details["notify endpoint"] == f"wesctl's notification endpoint answers on 127.0.0.1:{port}"
    )
    assert all(result.fix == "" for result in results)
    # one read-only request per probe
    assert (sbg.calls["user"], sbg.calls["project"]) == (1, 1)
    assert omics.calls["ListWorkflows"] - listworkflows_before == 1
    assert sum(sbg.calls.values()) == 2
    assert results[0].to_json() == {
        "check": "configuration",
        "result": "ok",
        "detail": "valid; providers: healthomics, sevenbridges",
        "fix": "",
    }


def test_invalid_configuration_stops_before_anything_else(doctor: Doctor) -> None:
    results = doctor.run(
        DAEMON_NOTIFICATION_PORT="five", DATABASE_URI="oracle://wesctl:db-password@db/wes"
    )

    failed(
        results[0],
        "DATABASE_URI: uses 'oracle'; wesctl supports postgresql://, mysql:// (or mariadb://, "
        "both through PyMySQL) and sqlite:// URLs; "
        "DAEMON_NOTIFICATION_PORT = 'five': invalid literal for int() with base 10: 'five'",
        "correct the settings named (environment, env file, systemd credentials)",
    )
    assert [(result.name, result.status) for result in results[1:]] == [
        ("provider settings", Status.SKIP),
        ("database", Status.SKIP),
        ("schema", Status.SKIP),
        ("runs", Status.SKIP),
        ("providers", Status.SKIP),
        ("notify endpoint", Status.SKIP),
    ]
    assert not all_passed(results)


# --- Seven Bridges -----------------------------------------------------------------------------


def test_rejected_token(doctor: Doctor) -> None:
    secret = "not-the-right-token-0123456789"
    results = doctor.run(SEVENBRIDGES_API_TOKEN=secret)

    token = next(result for result in results if result.name == "sevenbridges token")
    failed(
        token,
        "SEVENBRIDGES_API_TOKEN was rejected (401)",
        f"set a valid API token for {doctor.env['SEVENBRIDGES_API_ENDPOINT']} in "
        "SEVENBRIDGES_API_TOKEN (or the systemd credential 'sevenbridges-api-token')",
    )
    assert "sevenbridges project" not in [result.name for result in results]
    assert not all_passed(results)
    assert not any(secret in str(result.to_json()) for result in results)


def test_unreachable_endpoint_is_named(doctor: Doctor) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}/v2"

    result = doctor.check("sevenbridges token", SEVENBRIDGES_API_ENDPOINT=endpoint)

    assert result.status is Status.FAIL
    assert result.detail.startswith(f"cannot reach {endpoint}: get user failed: ")
    assert "Connection refused" in result.detail
    assert result.fix == (
        "check SEVENBRIDGES_API_ENDPOINT and the network path to it (DNS, proxy, firewall)"
    )


def test_missing_project(doctor: Doctor) -> None:
    result = doctor.check("sevenbridges project", SEVENBRIDGES_PROJECT=None)

    failed(
        result,
        "SEVENBRIDGES_PROJECT is not set",
        "set SEVENBRIDGES_PROJECT=<owner>/<project>, the project of runs whose tags name none",
    )


def test_inaccessible_project(doctor: Doctor) -> None:
    result = doctor.check("sevenbridges project", SEVENBRIDGES_PROJECT="someone/elses-project")

    failed(
        result,
        "project someone/elses-project not found or not accessible",
        "check SEVENBRIDGES_PROJECT (owner/project) and that the token's user is a member of "
        "that project",
    )


def test_missing_token_is_reported_once(doctor: Doctor) -> None:
    results = doctor.run(SEVENBRIDGES_API_TOKEN=None)

    checks = {result.name: result for result in results}
    assert checks["provider settings"].status is Status.FAIL
    assert checks["provider settings"].detail.startswith("SEVENBRIDGES_API_TOKEN is not set")
    assert (checks["sevenbridges"].status, checks["sevenbridges"].detail) == (
        Status.SKIP,
        "not checked: its settings are incomplete",
    )


# --- HealthOmics -------------------------------------------------------------------------------


def test_missing_role_arn(doctor: Doctor) -> None:
    checks = {r.name: r for r in doctor.run(AWS_HEALTHOMICS_WORKFLOW_ROLE_ARN=None)}

    failed(
        checks["healthomics settings"],
        "AWS_HEALTHOMICS_WORKFLOW_ROLE_ARN is not set",
        "set AWS_HEALTHOMICS_WORKFLOW_ROLE_ARN=arn:aws:iam::<account>:role/<name>",
    )
    failed(
        checks["provider settings"],
        "AWS_HEALTHOMICS_WORKFLOW_ROLE_ARN is not set; the healthomics provider needs the IAM "
        "role its runs assume",
        "set them in the environment, the env file or as systemd credentials",
    )
    # the credentials and the service are still checked
    assert checks["healthomics credentials"].status is Status.OK
    assert checks["healthomics access"].status is Status.OK


def test_no_aws_credentials_names_the_chain(
    doctor: Doctor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    results = doctor.run()

    checks = {result.name: result for result in results}
    failed(
        checks["healthomics credentials"],
        "GetCallerIdentity failed: Unable to locate credentials; configure boto3's credential "
        "chain (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, an instance or task role)",
        "configure boto3's credential chain: AWS_PROFILE, AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, or an instance or task role",
    )
    assert "healthomics access" not in checks


def test_unreachable_sts(doctor: Doctor, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", endpoint)

    result = doctor.check("healthomics credentials")

    failed(
        result,
        f'GetCallerIdentity failed: Could not connect to the endpoint URL: "{endpoint}/"',
        "check the network path to AWS STS (AWS_ENDPOINT_URL_STS, proxy, firewall)",
    )


def test_omics_access_denied(doctor: Doctor, omics: SimulatedHealthOmics) -> None:
    omics.inject(ERROR, "ListWorkflows", code="AccessDeniedException", message="not allowed")

    result = doctor.check("healthomics access")

    failed(
        result,
        "ListWorkflows failed: AccessDeniedException: not allowed",
        "allow the caller the omics actions wesctl uses (omics:ListWorkflows, omics:StartRun, "
        "...) in us-east-1; check AWS_REGION and AWS_ENDPOINT_URL_OMICS",
    )


# --- database ------------------------------------------------------------------------------------


def test_database_down(doctor: Doctor) -> None:
    port = closed_port()

    results = doctor.run(
        DATABASE_URI=f"postgresql://wesctl:db-password@127.0.0.1:{port}/wes",
        WESCTL_PROVIDERS="sevenbridges",
    )

    checks = {result.name: result for result in results}
    database = checks["database"]
    assert database.status is Status.FAIL
    assert database.detail.startswith(
        f'database unavailable: connection to server at "127.0.0.1", port {port} failed: '
    )
    assert "Connection refused" in database.detail
    assert database.fix == DATABASE_FIX
    assert (checks["schema"].status, checks["schema"].detail) == (
        Status.SKIP,
        "not checked: the database is unavailable",
    )
    assert not any("db-password" in str(result.to_json()) for result in results)


def test_database_never_upgraded(doctor: Doctor, tmp_path: Path) -> None:
    empty = f"sqlite:///{tmp_path / 'never-upgraded.db'}"

    result = doctor.check("schema", DATABASE_URI=empty, WESCTL_PROVIDERS="sevenbridges")

    failed(result, f"database has no wesctl schema (wesctl needs revision {HEAD})", UPGRADE_FIX)


def test_schema_behind(doctor: Doctor) -> None:
    engine = make_engine(doctor.env["DATABASE_URI"])
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {schema.VERSION_TABLE} SET version_num = '0000_older'"))
    engine.dispose()

    result = doctor.check("schema", WESCTL_PROVIDERS="sevenbridges")

    failed(result, f"database schema is at revision 0000_older, wesctl needs {HEAD}", UPGRADE_FIX)


# --- notify endpoint -----------------------------------------------------------------------------


def test_notify_endpoint_not_listening(doctor: Doctor) -> None:
    port = doctor.env["DAEMON_NOTIFICATION_PORT"]

    result = doctor.check("notify endpoint", WESCTL_PROVIDERS="sevenbridges")

    failed(result, f"nothing is listening on 127.0.0.1:{port} (Connection refused)", NOTIFY_FIX)


def test_another_program_on_the_notify_port(doctor: Doctor) -> None:
    class Hello(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        port = server.server_address[1]
        result = doctor.check(
            "notify endpoint", DAEMON_NOTIFICATION_PORT=str(port), WESCTL_PROVIDERS="sevenbridges"
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

    failed(
        result,
        f"another program answers on 127.0.0.1:{port} (GET / gave HTTP 200, wesctl's endpoint "
        "gives 405)",
        "stop that program or point DAEMON_NOTIFICATION_HOST/DAEMON_NOTIFICATION_PORT at "
        "wesctl's endpoint",
    )
