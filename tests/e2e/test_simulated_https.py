"""Every simulator in its own process over https, and wesctl trusting its private CA only
through each client library's standard variable (no CA setting of wesctl's own)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import parse_plain_line
from wesctl.simulated.serve import CA_VARIABLE

WORKFLOW = {"sevenbridges": "wes-user/wes/hello", "healthomics": "1234567"}
WESCTL = [sys.executable, "-m", "wesctl"]


@pytest.fixture(params=["sevenbridges", "healthomics"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, dict[str, Any]]]:
    """A simulator started with `python -m wesctl.simulated.serve NAME --tls`, and what it
    printed."""
    provider: str = request.param
    with subprocess.Popen(
        [sys.executable, "-m", "wesctl.simulated.serve", provider, "--tls"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        assert child.stdin is not None
        started = json.loads(child.stdout.readline())
        yield provider, started
        child.stdin.close()
        child.wait(timeout=10)


def _environment(provider: str, started: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "NO_PROXY": "127.0.0.1,localhost",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "WESCTL_PROVIDERS": provider,
        "WESCTL_RETRY_MAX_WAIT": "1",
        "DATABASE_URI": f"sqlite:///{tmp_path / 'wes.db'}",
        **started["environment"],
    }


def _submit_one(provider: str, environment: dict[str, str], tmp_path: Path) -> Any:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*WESCTL, *args], env=environment, cwd=tmp_path, capture_output=True, text=True
        )

    assert run("db", "upgrade").returncode == 0
    added = run("runs", "add", "-u", WORKFLOW[provider], "--provider", provider)
    assert added.returncode == 0, added.stderr
    return run("submit-queued")


def test_a_simulator_serves_https_trusted_through_the_clients_standard_variable(
    served: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    provider, started = served
    assert started["url"].startswith("https://127.0.0.1:")
    assert started["environment"][CA_VARIABLE[provider]] == started["ca_file"]
    assert Path(started["ca_file"]).read_text().startswith("-----BEGIN CERTIFICATE-----")

    done = _submit_one(provider, _environment(provider, started, tmp_path), tmp_path)

    assert done.returncode == 0, done.stderr
    summary = parse_plain_line(done.stdout.splitlines()[-1])
    assert summary["submitted"] == "1"


def test_without_the_ca_the_certificate_is_refused(
    served: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    provider, started = served
    environment = _environment(provider, started, tmp_path)
    del environment[CA_VARIABLE[provider]]

    done = _submit_one(provider, environment, tmp_path)

    assert done.returncode != 0
    assert "submitted" not in parse_plain_line(done.stdout.splitlines()[-1])
    assert "CERTIFICATE_VERIFY_FAILED" in done.stdout + done.stderr
