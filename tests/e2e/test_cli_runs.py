"""`wesctl runs add/list/show` round-trip, help texts, and the real entry points."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import upgrade_database, wesctl, wesctl_json
from wesctl.cli import app


@pytest.fixture
def migrated(db_url: str) -> str:
    upgrade_database(db_url)
    return db_url


def test_add_list_show_round_trip(migrated: str, tmp_path: Path) -> None:
    params = tmp_path / "params.json"
    params.write_text('{"reads": {"class": "File", "path": "5f3a"}, "n": 3}')
    added = wesctl_json(
        "--database-uri",
        migrated,
        "runs",
        "add",
        "-u",
        "alice/wes/hello/3",
        "--params",
        f"@{params}",
        "-t",
        "team=genomics",
        "--provider",
        "healthomics",
    )
    run_id = added["run_id"]
    listed = wesctl_json("--database-uri", migrated, "runs", "list")
    assert [item["run_id"] for item in listed] == [run_id]
    assert listed[0]["state"] == "QUEUED"
    assert listed[0]["provider"] == "healthomics"

    shown = wesctl_json("--database-uri", migrated, "runs", "show", run_id)
    assert shown["request"]["workflow_params"] == {
        "reads": {"class": "File", "path": "5f3a"},
        "n": 3,
    }
    assert shown["request"]["tags"] == {"team": "genomics", "provider_type": "healthomics"}
    assert shown["request"]["workflow_url"] == "alice/wes/hello/3"
    assert [(h["from"], h["to"]) for h in shown["history"]] == [(None, "QUEUED")]

    human = wesctl("--database-uri", migrated, "runs", "show", run_id)
    assert human.exit_code == 0
    assert run_id in human.stdout


def test_list_filters_by_state_provider_and_limit(migrated: str) -> None:
    ids = [
        wesctl_json(
            "--database-uri",
            migrated,
            "runs",
            "add",
            "-u",
            f"a/b/app{i}",
            "--provider",
            "sevenbridges" if i % 2 else "healthomics",
        )["run_id"]
        for i in range(5)
    ]
    sbg = wesctl_json("--database-uri", migrated, "runs", "list", "--provider", "sevenbridges")
    assert {item["run_id"] for item in sbg} == {ids[1], ids[3]}
    limited = wesctl_json("--database-uri", migrated, "runs", "list", "--limit", "2")
    assert len(limited) == 2
    none = wesctl_json("--database-uri", migrated, "runs", "list", "--state", "running")
    assert none == []
    recent = wesctl_json("--database-uri", migrated, "runs", "list", "--older-than", "1h")
    assert recent == []


def test_bad_input_is_a_usage_error_not_a_traceback(migrated: str) -> None:
    bad_json = wesctl("--database-uri", migrated, "runs", "add", "-u", "a/b/c", "-p", "{nope")
    assert bad_json.exit_code == 2
    assert "not valid JSON" in bad_json.output
    bad_state = wesctl("--database-uri", migrated, "runs", "list", "--state", "DONE")
    assert bad_state.exit_code == 2
    assert "unknown WES state" in bad_state.output
    missing = wesctl("--database-uri", migrated, "runs", "show", "no-such-run")
    assert missing.exit_code == 1
    assert missing.stderr.strip() == "ERROR wesctl: no run with id 'no-such-run'"
    too_long = wesctl("--database-uri", migrated, "runs", "add", "-u", "x" * 501)
    assert too_long.exit_code == 1
    assert "workflow_url is longer than 500" in too_long.stderr


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        if hasattr(command, "commands"):
            found.extend(_commands(command, path))
        else:
            found.append(path)
    return found


def test_every_command_has_help_with_an_example() -> None:
    import typer.main

    commands = _commands(typer.main.get_command(app))
    assert ("runs", "add") in commands
    for path in commands:
        result = wesctl(*path, "--help")
        assert result.exit_code == 0, path
        assert "Example" in result.stdout, f"`wesctl {' '.join(path)} --help` shows no example"


def test_python_dash_m_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wesctl", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "runs" in result.stdout


def test_systemd_install_writes_the_units_rendered_from_the_settings(tmp_path: Path) -> None:
    result = wesctl(
        "systemd", "install", "--prefix", str(tmp_path / "root"), env={"DAEMON_POLL_INTERVAL": "90"}
    )
    assert result.exit_code == 0, result.output
    timer = tmp_path / "root/etc/systemd/system/wesctl-submit-queued.timer"
    assert "OnUnitInactiveSec=90s" in timer.read_text()
    rendered = wesctl("systemd", "render", env={"DAEMON_POLL_INTERVAL": "90"})
    assert "OnUnitInactiveSec=90s" in rendered.stdout
    bad = wesctl("systemd", "render", env={"DAEMON_POLL_INTERVAL": "often"})
    assert bad.exit_code == 78
