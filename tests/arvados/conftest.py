"""Arvados fixtures: one https simulator per session, reset per test, and adapters built with
the real SDK, trusting the simulator's private CA through SSL_CERT_FILE."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import arvados
import pytest

from tests.contract.base import FakeClock
from wesctl.config import Secret, load_settings
from wesctl.domain.types import RunSpec
from wesctl.providers.arvados.adapter import ArvadosProvider, build
from wesctl.providers.arvados.settings import ArvadosSettings
from wesctl.providers.arvados.simulator import DEFAULT_PROJECT, DEFAULT_WORKFLOW, ArvadosSimulator
from wesctl.providers.ratelimit import TokenBucket

# the contract's name for a logical operation -> the simulator's operations
OPERATIONS = {
    "submit": "container_requests.create",
    "status": "container_requests.list",
    "cancel": "container_requests.update",
}


class LimiterClock(FakeClock):
    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 1e-6)


@pytest.fixture(scope="session")
def simulator() -> Iterator[ArvadosSimulator]:
    with ArvadosSimulator() as sim:
        yield sim


@pytest.fixture
def sim(simulator: ArvadosSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The simulator, reset, with the SDK's settings isolated from the developer's own."""
    simulator.reset()
    for name in list(__import__("os").environ):
        if name.startswith("ARVADOS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SSL_CERT_FILE", simulator.ca_file)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    arvados.config.initialize()
    yield simulator
    arvados.config.initialize()


def make_provider(sim: ArvadosSimulator, token: str | None = None, **env: str) -> ArvadosProvider:
    env_file = Path("empty.env")
    env_file.write_text("")
    settings = load_settings(
        environ={"WESCTL_PROVIDER_TIMEOUT": "5", "WESCTL_RETRY_ATTEMPTS": "3", **env},
        env_file=env_file,
        export_aws=False,
    )
    own = ArvadosSettings(sim.host, Secret(token or sim.token), DEFAULT_PROJECT)
    provider = build(settings, own, sleep=lambda seconds: None)
    clock = LimiterClock()
    provider.limiter = TokenBucket(own.rate, clock=clock, sleep=clock.sleep)
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

    def __init__(self, sim: ArvadosSimulator) -> None:
        self.sim = sim
        self.provider = make_provider(sim)
        self.secret = sim.token

    def spec(self, run_id: str, **overrides: Any) -> RunSpec:
        return run_spec(run_id, **overrides)

    def created_count(self, run_id: str) -> int:
        """Requests of the run that are not marked duplicates of another."""
        return sum(
            1
            for request in self.sim.requests_for_run(run_id)
            if "wesctl_duplicate_of" not in request["properties"]
        )

    def set_raw_status(self, provider_id: str, raw_status: str) -> None:
        self.sim.set_container_state(provider_id, raw_status)

    def finish(self, provider_id: str, *, succeed: bool) -> None:
        self.sim.finish(provider_id, succeed=succeed)

    def inject(self, kind: str, operation: str, *, count: int = 1, message: str = "") -> None:
        if kind == "drop_after_accept":
            # httplib2 sends a request again when its answer was lost: losing the answer to
            # the caller means losing both (the create is performed twice)
            count *= 2
        self.sim.inject(kind, OPERATIONS[operation], count=count, message=message or "fault")

    def status_calls(self) -> int:
        return self.sim.calls["container_requests.list"]

    def requests(self) -> int:
        return sum(self.sim.calls.values())

    def reject_credentials(self) -> None:
        self.sim.reject_token(self.secret)

    def accept_credentials(self) -> None:
        self.sim.accept_token(self.secret)
