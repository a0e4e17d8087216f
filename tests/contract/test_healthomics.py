"""The provider contract for HealthOmics: the real adapter and boto3's `omics` client over HTTP
against the HealthOmics fake, with moto's server holding the S3 outputs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.contract.aws_fixtures import (
    aws_environment,
    build_provider,
    make_settings,
    s3_client,
)
from tests.contract.base import ProviderContract
from wesctl.domain.types import RunSpec
from wesctl.fakes.healthomics import HealthOmicsFake
from wesctl.providers.healthomics import HealthOmicsProvider

WORKFLOW_ID = "1234567"  # a WDL workflow the fake knows


class OmicsHarness:
    running_status = "RUNNING"

    def __init__(self, provider: HealthOmicsProvider, fake: HealthOmicsFake) -> None:
        self.provider = provider
        self.fake = fake

    def spec(self, run_id: str, **overrides: Any) -> RunSpec:
        spec = RunSpec(
            run_id=run_id,
            workflow_url=WORKFLOW_ID,
            workflow_type="WDL",
            workflow_type_version="1.0",
            workflow_params={"reads": "s3://wesctl-omics-test/in/reads.bam", "threads": 4},
            tags={"project": "contract"},
        )
        return replace(spec, **overrides)

    def created_count(self, run_id: str) -> int:
        return self.fake.runs_for(run_id)

    def set_raw_status(self, provider_id: str, raw_status: str) -> None:
        self.fake.set_status(provider_id, raw_status)

    def finish(self, provider_id: str, *, succeed: bool) -> None:
        self.fake.finish(provider_id, succeed=succeed)

    def inject(self, kind: str, operation: str, *, count: int = 1, message: str = "") -> None:
        self.fake.inject(kind, operation, count=count, message=message or "injected fault")

    def status_calls(self) -> int:
        return self.fake.calls["status"]


@pytest.fixture(scope="module")
def fake(moto_url: str) -> Iterator[HealthOmicsFake]:
    """One fake per module (stopping one takes half a second); tests use distinct run ids."""
    with HealthOmicsFake(s3=s3_client(moto_url)) as service:
        yield service


@pytest.fixture
def harness(
    fake: HealthOmicsFake, moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[OmicsHarness]:
    fake.clear_faults()
    aws_environment(monkeypatch, omics_url=fake.base_url, moto_url=moto_url, tmp_path=tmp_path)
    provider, _ = build_provider(make_settings(tmp_path))
    yield OmicsHarness(provider, fake)
    provider.close()


class TestHealthOmicsContract(ProviderContract):
    def missing_id(self) -> str:
        return "999999999999999999"
