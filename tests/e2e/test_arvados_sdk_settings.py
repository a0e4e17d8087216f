"""An operator who configured the Arvados SDK the standard way: host and token only in
`~/.config/arvados/settings.conf` (HOME set), plus ARVADOS_PROJECT_UUID. Real `wesctl`
processes against the https simulator (its CA trusted through SSL_CERT_FILE): the provider is
enabled, `config show` and `doctor` say where host and token come from without printing the
token, and a run goes from the queue to COMPLETE. A host that does not use Arvados never imports
the SDK for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from tests.cli_helpers import upgrade_database
from tests.wes_api import insert_api_run, read_run
from wesctl.simulated.arvados import DEFAULT_PROJECT, DEFAULT_WORKFLOW, SimulatedArvados


class Operator:
    """A host whose only Arvados settings are the SDK's settings.conf and the project."""

    def __init__(self, db_url: str, sim: SimulatedArvados, home: Path) -> None:
        self.sim = sim
        self.db_url = db_url
        self.engine = create_engine(db_url)
        self.conf = home / ".config" / "arvados" / "settings.conf"
        self.conf.parent.mkdir(parents=True)
        self.conf.write_text(
            f"# written by arv-user-setup\nARVADOS_API_HOST={sim.host}\n"
            f"ARVADOS_API_TOKEN={sim.token}\n"
        )
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("ARVADOS_", "WESCTL_", "XDG_", "SEVENBRIDGES_", "AWS_"))
        }
        self.env.update(
            HOME=str(home),
            DATABASE_URI=db_url,
            ARVADOS_PROJECT_UUID=DEFAULT_PROJECT,
            SSL_CERT_FILE=sim.ca_file,
        )

    def run(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        """`python -m wesctl ARGS` in its own process, as from the operator's shell."""
        done = subprocess.run(
            [sys.executable, "-m", "wesctl", *args],
            env=self.env,
            cwd=self.conf.parents[2],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == expect, done.stderr
        assert self.sim.token not in done.stdout + done.stderr, "the token is never printed"
        return done

    def run_json(self, *args: str, expect: int = 0) -> Any:
        return json.loads(self.run(*args, "--json", expect=expect).stdout)


@pytest.fixture
def operator(db_url: str, tmp_path: Path) -> Iterator[Operator]:
    upgrade_database(db_url)
    with SimulatedArvados() as sim:
        host = Operator(db_url, sim, tmp_path / "home")
        yield host
        host.engine.dispose()


def test_host_and_token_from_the_sdks_settings_conf_run_a_workflow(operator: Operator) -> None:
    shown = {row["name"]: row for row in operator.run_json("config", "show")}
    source = f"SDK settings {operator.conf}"
    assert shown["ARVADOS_API_HOST"]["value"] == operator.sim.host
    assert shown["ARVADOS_API_HOST"]["source"] == source
    assert shown["ARVADOS_API_TOKEN"]["value"] == "******** (set)"
    assert shown["ARVADOS_API_TOKEN"]["source"] == source
    assert shown["ARVADOS_PROJECT_UUID"]["source"] == "environment"
    assert shown["provider arvados"]["value"] == "enabled"
    assert (
        f"ARVADOS_API_HOST and ARVADOS_API_TOKEN from {source}"
        in (shown["provider arvados"]["source"])
    )

    # exit 1: no notification endpoint listens here; every Arvados check passes
    checks = {item["check"]: item for item in operator.run_json("doctor", expect=1)}
    assert f"from {source}" in checks["provider settings"]["detail"]
    assert checks["arvados token"]["result"] == "ok", checks["arvados token"]
    assert checks["arvados project"]["result"] == "ok", checks["arvados project"]

    run_id = insert_api_run(
        operator.engine,
        workflow_url=DEFAULT_WORKFLOW,
        workflow_params={"message": "hello"},
        tags={"provider_type": "arvados"},
    )
    assert operator.run_json("submit-queued")["counts"] == {"submitted": 1}
    provider_id = read_run(operator.engine, run_id).provider_id
    assert operator.sim.runs_for(run_id) == [provider_id]
    operator.sim.finish(provider_id, succeed=True)
    operator.run_json("sync-status")
    assert read_run(operator.engine, run_id).state == "COMPLETE"


def test_the_environment_wins_over_settings_conf(operator: Operator) -> None:
    """As in the SDK: an ARVADOS_* variable overrides settings.conf (here a host that is not
    the cluster, so the token check fails naming the host's setting)."""
    operator.env["ARVADOS_API_HOST"] = "127.0.0.1:9"
    shown = {row["name"]: row for row in operator.run_json("config", "show")}
    assert shown["ARVADOS_API_HOST"] == {
        "name": "ARVADOS_API_HOST",
        "value": "127.0.0.1:9",
        "source": "environment",
    }
    assert shown["ARVADOS_API_TOKEN"]["source"] == f"SDK settings {operator.conf}"


def test_a_bad_host_in_settings_conf_is_a_configuration_error_naming_the_file(
    operator: Operator,
) -> None:
    operator.conf.write_text(f"ARVADOS_API_HOST=https://{operator.sim.host}\n")
    stderr = operator.run("config", "show", expect=78).stderr
    assert f"ARVADOS_API_HOST = 'https://{operator.sim.host}' (SDK settings {operator.conf})" in (
        stderr
    )
    assert "without a scheme" in stderr


def test_without_the_project_settings_conf_is_not_read_nor_the_sdk_imported(
    operator: Operator,
) -> None:
    """A host that does not use Arvados (no project) pays nothing for a settings.conf that
    its operator keeps for `arv`: the SDK is not imported by a command, nor by --help."""
    del operator.env["ARVADOS_PROJECT_UUID"]
    shown = {row["name"]: row for row in operator.run_json("config", "show")}
    assert shown["ARVADOS_API_HOST"]["source"] == "default"
    assert shown["provider arvados"]["value"] == "not enabled"
    script = (
        "import sys\n"
        "from wesctl.cli import app\n"
        "for args in (['--help'], ['config', 'show']):\n"
        "    app(args, standalone_mode=False)\n"
        "    assert 'arvados' not in sys.modules, args\n"
        "print('not imported')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=operator.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("not imported")
