"""Settings: precedence, validation (all problems at once), secrets and the env file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_helpers import wesctl, wesctl_json
from wesctl.config import FIELDS, Secret, env_example, load_settings
from wesctl.errors import ConfigError
from wesctl.providers.sevenbridges.settings import SPEC as SEVENBRIDGES


def test_defaults_use_embedded_sqlite_in_the_working_directory(tmp_path: Path) -> None:
    settings = load_settings(environ={})
    assert settings.database_uri == f"sqlite:///{tmp_path / 'wes.db'}"
    assert settings.uses_embedded_database
    assert settings.poll_interval == 300
    assert settings.enabled_providers == ()  # nothing configured, nothing enabled


def test_empty_database_uri_means_the_embedded_default(tmp_path: Path) -> None:
    settings = load_settings(environ={"DATABASE_URI": ""})
    assert settings.database_uri == f"sqlite:///{tmp_path / 'wes.db'}"
    assert settings.uses_embedded_database


SBG_SETTINGS = {"SEVENBRIDGES_API_TOKEN": "tok", "SEVENBRIDGES_PROJECT": "alice/wes"}
HO_SETTINGS = {
    "AWS_HEALTHOMICS_WORKFLOW_ROLE_ARN": "arn:aws:iam::123456789012:role/omics",
    "AWS_HEALTHOMICS_OUTPUT_URI": "s3://bucket/out",
}


def test_every_configured_provider_is_enabled_when_wesctl_providers_is_unset() -> None:
    both = load_settings(environ={**SBG_SETTINGS, **HO_SETTINGS})
    assert both.enabled_providers == ("healthomics", "sevenbridges")
    assert both.require_providers() is None
    only_ho = load_settings(environ={**HO_SETTINGS, "SEVENBRIDGES_API_TOKEN": "tok"})
    assert only_ho.enabled_providers == ("healthomics",)  # no project: not configured
    why = {name: (enabled, reason) for name, enabled, reason in only_ho.provider_enablement()}
    assert why["sevenbridges"] == (False, "not configured: SEVENBRIDGES_PROJECT not set")
    assert why["healthomics"][0] is True


def test_wesctl_providers_restricts_and_requires() -> None:
    restricted = load_settings(
        environ={**SBG_SETTINGS, **HO_SETTINGS, "WESCTL_PROVIDERS": "healthomics"}
    )
    assert restricted.enabled_providers == ("healthomics",)
    incomplete = load_settings(environ={**HO_SETTINGS, "WESCTL_PROVIDERS": "sevenbridges"})
    with pytest.raises(ConfigError, match="SEVENBRIDGES_API_TOKEN is not set"):
        incomplete.require_providers()


def test_no_provider_configured_is_one_error_per_missing_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}).require_providers()
    assert caught.value.problems[0].startswith("no provider is configured")
    assert len(caught.value.problems) == 8  # 3 Arvados, 2 HealthOmics, 2 Seven Bridges


def test_config_show_says_which_providers_are_enabled_and_why() -> None:
    shown = wesctl_json("config", "show", env={**SBG_SETTINGS})
    rows = {row["name"]: row for row in shown}
    assert rows["provider sevenbridges"]["value"] == "enabled"
    assert rows["provider healthomics"]["value"] == "not enabled"
    assert "AWS_HEALTHOMICS_WORKFLOW_ROLE_ARN" in rows["provider healthomics"]["source"]


def test_an_unknown_database_driver_is_one_line_and_exit_78() -> None:
    result = wesctl("--database-uri", "postgresql+nosuchdriver://u:secret@db.invalid/wes", "status")
    assert result.exit_code == 78
    assert "Traceback" not in result.stderr
    assert "nosuchdriver" in result.stderr
    assert "secret" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_precedence_cli_over_environment_over_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / "site.env"
    env_file.write_text(
        "# comment\nDAEMON_POLL_INTERVAL=10\nDAEMON_STATUS_CHECK_INTERVAL=20\n"
        "export SEVENBRIDGES_PROJECT='alice/wes'\nDATABASE_URI=sqlite:///from-file.db\n"
    )
    settings = load_settings(
        overrides={"database_uri": "sqlite:///from-cli.db"},
        env_file=env_file,
        environ={"DAEMON_POLL_INTERVAL": "5m", "DATABASE_URI": "sqlite:///from-env.db"},
    )
    assert settings.database_uri == "sqlite:///from-cli.db"
    assert settings.sources["database_uri"] == "command line"
    assert settings.poll_interval == 300
    assert settings.sources["poll_interval"] == "environment"
    assert settings.status_check_interval == 20
    assert settings.sources["status_check_interval"] == f"env file {env_file}"
    assert settings.provider(SEVENBRIDGES).project == "alice/wes"


def test_dot_env_in_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DAEMON_MAX_CONCURRENT_WORKFLOWS=3\n")
    assert load_settings(environ={}).max_concurrent_workflows == 3


def test_systemd_credentials_win_over_environment(tmp_path: Path) -> None:
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "sevenbridges-api-token").write_text("from-credential\n")
    settings = load_settings(
        environ={"CREDENTIALS_DIRECTORY": str(credentials), "SEVENBRIDGES_API_TOKEN": "from-env"}
    )
    assert settings.provider(SEVENBRIDGES).api_token == Secret("from-credential")
    assert settings.sources["sevenbridges_api_token"] == "systemd credential sevenbridges-api-token"


def test_all_problems_are_reported_together_one_line_each() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(
            environ={
                "DAEMON_POLL_INTERVAL": "soon",
                "DAEMON_NOTIFICATION_PORT": "99999",
                "WESCTL_DEFAULT_PROVIDER": "cromwell",
                "DATABASE_URI": "not a url",
                "AWS_HEALTHOMICS_OUTPUT_URI": "bucket/out",
            }
        )
    problems = info.value.problems
    assert len(problems) == 5
    assert any(p.startswith("DAEMON_POLL_INTERVAL = 'soon'") for p in problems)
    assert any("WESCTL_DEFAULT_PROVIDER" in p and "sevenbridges" in p for p in problems)
    assert all("\n" not in p for p in problems)


def test_secret_values_never_appear_in_errors_or_display() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"DATABASE_URI": "oracle://u:topsecret@h/db"})
    assert "topsecret" not in str(info.value)
    settings = load_settings(
        environ={
            "SEVENBRIDGES_API_TOKEN": "tok-123456",
            "DATABASE_URI": "postgresql://wes:pw-987@db/wes",
            "AWS_SECRET_ACCESS_KEY": "aws-secret-xyz",
        }
    )
    shown = repr(settings) + str(settings.display())
    for secret in ("tok-123456", "pw-987", "aws-secret-xyz"):
        assert secret not in shown


def test_provider_requirements_are_listed_together() -> None:
    settings = load_settings(environ={"WESCTL_PROVIDERS": "sevenbridges,healthomics"})
    problems = settings.provider_problems()
    assert len(problems) == 4
    assert any("SEVENBRIDGES_API_TOKEN" in p for p in problems)
    assert any("AWS_HEALTHOMICS_WORKFLOW_ROLE_ARN" in p for p in problems)


def test_plain_http_endpoint_only_for_loopback() -> None:
    ok = load_settings(environ={"SEVENBRIDGES_API_ENDPOINT": "http://127.0.0.1:8080/v2/"})
    assert ok.provider(SEVENBRIDGES).api_endpoint == "http://127.0.0.1:8080/v2"
    with pytest.raises(ConfigError, match="must use https"):
        load_settings(environ={"SEVENBRIDGES_API_ENDPOINT": "http://api.example.org/v2"})


def test_unknown_wesctl_setting_in_env_file_is_an_error(tmp_path: Path) -> None:
    env_file = tmp_path / "x.env"
    env_file.write_text("WESCTL_POLL=3\n")
    with pytest.raises(ConfigError, match="unknown setting WESCTL_POLL"):
        load_settings(env_file=env_file, environ={})


def test_env_example_documents_every_setting() -> None:
    text = env_example()
    for field in FIELDS:
        assert f"#{field.env}=" in text
    shipped = Path(__file__).resolve().parents[2] / ".env.example"
    assert shipped.read_text() == text + "\n", "regenerate .env.example from config.env_example()"


# --- through the command line ------------------------------------------------------------------


def test_malformed_interval_exits_78_with_one_line() -> None:
    result = wesctl("config", "show", env={"DAEMON_STATUS_CHECK_INTERVAL": "-5"})
    assert result.exit_code == 78
    assert result.stderr.strip().splitlines() == [
        "ERROR wesctl: configuration error: DAEMON_STATUS_CHECK_INTERVAL = '-5': "
        "must be a number of seconds, such as 300 or 5m"
    ]


def test_wrong_database_uri_exits_78() -> None:
    result = wesctl("runs", "list", env={"DATABASE_URI": "oracle://db/wes"})
    assert result.exit_code == 78
    assert "DATABASE_URI" in result.stderr
    assert "postgresql://" in result.stderr


def test_config_show_redacts_and_names_sources() -> None:
    rows = wesctl_json(
        "config",
        "show",
        env={"SEVENBRIDGES_API_TOKEN": "s3cr3t-token", "DAEMON_POLL_INTERVAL": "60"},
    )
    by_name = {row["name"]: row for row in rows}
    assert by_name["SEVENBRIDGES_API_TOKEN"]["value"] == "******** (set)"
    assert by_name["DAEMON_POLL_INTERVAL"] == {
        "name": "DAEMON_POLL_INTERVAL",
        "value": "60",
        "source": "environment",
    }
    assert by_name["DATABASE_URI"]["source"] == "default"
    human = wesctl("config", "show", env={"SEVENBRIDGES_API_TOKEN": "s3cr3t-token"})
    assert "s3cr3t-token" not in human.output


def test_help_never_shows_secrets() -> None:
    result = wesctl("--help", env={"SEVENBRIDGES_API_TOKEN": "s3cr3t-token"})
    assert result.exit_code == 0
    assert "s3cr3t-token" not in result.output
