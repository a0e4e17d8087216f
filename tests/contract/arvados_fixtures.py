"""Arvados plumbing for the contract and the Arvados tests: the SDK's settings isolated from the
developer's own, wesctl settings and adapters built with the real SDK under the original
variable names, trusting the simulator's private CA through SSL_CERT_FILE."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import arvados
import pytest

from tests.contract.base import VirtualClock
from wesctl.config import Settings, load_settings
from wesctl.domain.types import RunSpec
from wesctl.providers.arvados.adapter import ArvadosProvider, build
from wesctl.providers.arvados.settings import SPEC as ARVADOS
from wesctl.providers.ratelimit import TokenBucket
from wesctl.simulated.arvados import DEFAULT_PROJECT, DEFAULT_WORKFLOW, SimulatedArvados


class LimiterClock(VirtualClock):
    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 1e-6)


def isolate_sdk(sim: SimulatedArvados, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Forget the developer's ARVADOS_* variables and settings.conf; trust the simulator's CA."""
    for name in list(os.environ):
        if name.startswith("ARVADOS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SSL_CERT_FILE", sim.ca_file)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    arvados.config.initialize()


def arvados_settings(host: str, token: str, project: str = DEFAULT_PROJECT, **env: str) -> Settings:
    """wesctl's settings with the original variable names; `env` adds or overrides some."""
    env_file = Path(tempfile.mkdtemp()) / "empty.env"  # keeps a developer's ./.env out
    env_file.write_text("")
    return load_settings(
        environ={
            "ARVADOS_API_HOST": host,
            "ARVADOS_API_TOKEN": token,
            "ARVADOS_PROJECT_UUID": project,
            "WESCTL_PROVIDER_TIMEOUT": "5",
            "WESCTL_RETRY_ATTEMPTS": "3",
            **env,
        },
        env_file=env_file,
        export_sdk=False,
    )


def make_provider(sim: SimulatedArvados, token: str | None = None, **env: str) -> ArvadosProvider:
    settings = arvados_settings(sim.host, token or sim.token, **env)
    provider = build(settings, sleep=lambda seconds: None)
    clock = LimiterClock()
    provider.limiter = TokenBucket(settings.provider(ARVADOS).rate, clock=clock, sleep=clock.sleep)
    return provider


def run_spec(run_id: str, **overrides: Any) -> RunSpec:
    spec = RunSpec(
        run_id=run_id,
        workflow_url=DEFAULT_WORKFLOW,
        workflow_type="CWL",
        workflow_type_version="v1.2",
        workflow_params={"message": "hello"},
    )
    return dataclasses.replace(spec, **overrides)


class ArvadosHarness:
    """The Harness of tests.contract.base for Arvados."""

    running_status = "Running"
    credential_setting = "ARVADOS_API_TOKEN"

    def __init__(self, sim: SimulatedArvados) -> None:
        self.sim = sim
        self.provider = make_provider(sim)
        self.secret = sim.token

    def spec(self, run_id: str, **overrides: Any) -> RunSpec:
        return run_spec(run_id, **overrides)

    def created_count(self, run_id: str) -> int:
        return len(self.sim.runs_for(run_id))

    def set_raw_status(self, provider_id: str, raw_status: str) -> None:
        self.sim.set_container_state(provider_id, raw_status)

    def finish(self, provider_id: str, *, succeed: bool) -> None:
        self.sim.finish(provider_id, succeed=succeed)

    def inject(self, kind: str, operation: str, *, count: int = 1, message: str = "") -> None:
        if kind == "drop_after_accept":
            # httplib2 sends a request again when its answer was lost: losing the answer to
            # the caller means losing both (the create is performed twice)
            count *= 2
        self.sim.inject(kind, operation, count=count, message=message or "fault")

    def status_calls(self) -> int:
        return self.sim.calls["container_requests.list"]

    def requests(self) -> int:
        return sum(self.sim.calls.values())

    def reject_credentials(self) -> None:
        self.sim.reject_token(self.secret)

    def accept_credentials(self) -> None:
        self.sim.accept_token(self.secret)
