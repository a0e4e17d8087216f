"""The provider contract for HealthOmics: the real adapter and boto3's `omics` client over HTTP
against the HealthOmics fake, with moto's server holding the S3 outputs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ClientError

from tests.contract.aws_fixtures import (
    ROLE_ARN,
    aws_environment,
    build_provider,
    make_settings,
    s3_client,
)
from tests.contract.base import ProviderContract
from wesctl.domain.types import Attempt, RunSpec
from wesctl.providers.base import ProviderMisconfigured, ProviderRejected, ProviderUnavailable
from wesctl.providers.healthomics.adapter import (
    CREDENTIALS_FIX,
    ENDPOINT_FIX,
    EXPIRED_FIX,
    HealthOmicsProvider,
)
from wesctl.simulated.healthomics import SimulatedHealthOmics
from wesctl.simulated.http import ERROR, NOT_THE_API

WORKFLOW_ID = "1234567"  # a WDL workflow the fake knows


ACCESS_KEY_ID = "testing"  # what aws_environment sets
SECRET_ACCESS_KEY = "contract-secret-access-key-0123456789"


class OmicsHarness:
    running_status = "RUNNING"
    secret = SECRET_ACCESS_KEY
    credential_setting = "AWS_ACCESS_KEY_ID"

    def __init__(self, provider: HealthOmicsProvider, fake: SimulatedHealthOmics) -> None:
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
        return len(self.fake.runs_for(run_id))

    def set_raw_status(self, provider_id: str, raw_status: str) -> None:
        self.fake.set_status(provider_id, raw_status)

    def finish(self, provider_id: str, *, succeed: bool) -> None:
        self.fake.finish(provider_id, succeed=succeed)

    def inject(self, kind: str, operation: str, *, count: int = 1, message: str = "") -> None:
        self.fake.inject(kind, operation, count=count, message=message or "injected fault")

    def status_calls(self) -> int:
        return self.fake.calls["GetRun"] + self.fake.calls["ListRuns"]

    def requests(self) -> int:
        return sum(self.fake.calls.values())

    def reject_credentials(self) -> None:
        self.fake.reject_credentials(ACCESS_KEY_ID)

    def accept_credentials(self) -> None:
        self.fake.accept_credentials(ACCESS_KEY_ID)


@pytest.fixture(scope="module")
def fake(moto_url: str) -> Iterator[SimulatedHealthOmics]:
    """One fake per module (stopping one takes half a second); tests use distinct run ids."""
    with SimulatedHealthOmics(s3=s3_client(moto_url)) as service:
        yield service


@pytest.fixture
def harness(
    fake: SimulatedHealthOmics, moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[OmicsHarness]:
    fake.clear_faults()
    aws_environment(monkeypatch, omics_url=fake.base_url, moto_url=moto_url, tmp_path=tmp_path)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    provider, _ = build_provider(make_settings(tmp_path))
    yield OmicsHarness(provider, fake)
    provider.close()


class TestHealthOmicsContract(ProviderContract):
    def missing_id(self) -> str:
        return "999999999999999999"


# --- installation errors ------------------------------------------------------------------------

OTHER_ROLE = "arn:aws:iam::123456789012:role/team-b-runs"


def submit_run(harness: OmicsHarness, run_id: str, **options: Any) -> str:
    tags: dict[str, Any] = {"workflow_engine_parameters": options} if options else {}
    return harness.provider.submit(
        Attempt(harness.spec(run_id, tags=tags), f"wesctl-{run_id}"), lambda provider_id: None
    ).provider_id


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        ("UnrecognizedClientException", "credentials"),
        ("InvalidSignatureException", "credentials"),
        ("ExpiredTokenException", "expired"),
    ],
)
def test_refused_keys_name_the_credential_chain(harness: OmicsHarness, code: str, fix: str) -> None:
    harness.fake.reject_credentials(ACCESS_KEY_ID, code)
    with pytest.raises(ProviderMisconfigured, match=code) as info:
        submit_run(harness, f"run-{code}")
    assert info.value.fix == {"credentials": CREDENTIALS_FIX, "expired": EXPIRED_FIX}[fix]
    assert harness.created_count(f"run-{code}") == 0


def test_the_installations_role_denied_is_the_installations(harness: OmicsHarness) -> None:
    harness.fake.deny_role(ROLE_ARN)
    with pytest.raises(ProviderMisconfigured, match="iam:PassRole") as info:
        submit_run(harness, "run-role-denied")
    assert "AWS_HEALTHOMICS_WORKFLOW_ROLE_ARN" in info.value.fix
    # the same role named again by the run is still the installation's
    with pytest.raises(ProviderMisconfigured):
        submit_run(harness, "run-role-denied-again", role_arn=ROLE_ARN)


def test_a_runs_own_role_denied_is_that_runs(harness: OmicsHarness) -> None:
    harness.fake.deny_role(OTHER_ROLE)
    with pytest.raises(ProviderRejected, match="the run's own role_arn") as info:
        submit_run(harness, "run-own-role", role_arn=OTHER_ROLE)
    assert not isinstance(info.value, ProviderMisconfigured)
    assert submit_run(harness, "run-installation-role")  # other runs go on


def test_a_runs_own_output_uri_denied_is_that_runs(harness: OmicsHarness) -> None:
    harness.fake.inject(
        ERROR, "StartRun", code="AccessDeniedException", message="no access to bucket"
    )
    with pytest.raises(ProviderRejected, match="output_uri"):
        submit_run(harness, "run-own-output", output_uri="s3://team-b-bucket/out")


@pytest.mark.parametrize("operation", ["GetRun", "ListRuns", "CancelRun"])
def test_access_denied_on_the_callers_own_calls_is_the_installations(
    harness: OmicsHarness, operation: str
) -> None:
    pids = [submit_run(harness, f"run-denied-{operation}-{n}") for n in range(2)]
    calls = {
        "GetRun": lambda: harness.provider.statuses(pids[:1]),
        "ListRuns": lambda: harness.provider.statuses(pids),  # two ids: listed, not got
        "CancelRun": lambda: harness.provider.cancel(pids[0]),
    }
    harness.fake.inject(ERROR, operation, code="AccessDeniedException", message="not authorized")
    with pytest.raises(ProviderMisconfigured, match="not authorized") as info:
        calls[operation]()
    assert f"omics:{operation}" in info.value.fix


def deny_s3_reads(provider: HealthOmicsProvider) -> None:
    """Answer the adapter's S3 reads with S3's own AccessDenied, before they are sent."""

    def deny(request: AWSPreparedRequest, **kwargs: Any) -> AWSResponse:
        body = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        return AWSResponse(request.url, 403, {"x-amz-request-id": "denied"}, _Raw(body))

    provider.s3.meta.events.register("before-send.s3.GetObject", deny)


class _Raw:
    """What botocore reads an answer's body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._body


@pytest.mark.parametrize("output_uri", [None, "s3://wesctl-omics-test/team-b"])
def test_denied_reads_of_the_installations_bucket_are_the_installations(
    harness: OmicsHarness, output_uri: str | None
) -> None:
    options = {"output_uri": output_uri} if output_uri else {}
    pid = submit_run(harness, f"run-s3-denied-{bool(output_uri)}", **options)
    harness.fake.finish(pid, succeed=True)
    deny_s3_reads(harness.provider)
    with pytest.raises(ProviderMisconfigured, match="AccessDenied") as info:
        harness.provider.details(pid)
    assert "AWS_HEALTHOMICS_OUTPUT_URI" in info.value.fix


def test_denied_reads_of_a_runs_own_bucket_are_that_runs(harness: OmicsHarness) -> None:
    assert harness.fake.s3 is not None
    with contextlib.suppress(ClientError):  # moto's S3 is shared by the whole session
        harness.fake.s3.create_bucket(Bucket="team-b-bucket")
    pid = submit_run(harness, "run-s3-own-bucket", output_uri="s3://team-b-bucket/out")
    harness.fake.finish(pid, succeed=True)
    deny_s3_reads(harness.provider)
    with pytest.raises(ProviderRejected, match="output_uri"):
        harness.provider.details(pid)


@pytest.mark.parametrize("status", [404, 200])
def test_a_status_read_from_an_endpoint_that_is_not_healthomics_is_the_installations(
    harness: OmicsHarness, status: int
) -> None:
    pid = submit_run(harness, f"run-not-omics-{status}")
    harness.fake.inject(NOT_THE_API, "status", count=100, status=status)
    with pytest.raises(ProviderMisconfigured) as info:
        harness.provider.statuses([pid])
    assert info.value.fix == ENDPOINT_FIX
    assert "AWS_ENDPOINT_URL_OMICS" in info.value.fix


@pytest.mark.parametrize("status", [404, 200])
def test_a_start_at_an_endpoint_that_is_not_healthomics_is_the_installations(
    harness: OmicsHarness, status: int
) -> None:
    harness.fake.inject(NOT_THE_API, "submit", count=100, status=status)
    with pytest.raises(ProviderMisconfigured) as info:
        submit_run(harness, f"run-not-omics-start-{status}")
    assert info.value.fix == ENDPOINT_FIX


def test_a_proxys_error_page_is_transient(harness: OmicsHarness) -> None:
    pid = submit_run(harness, "run-proxy-page")
    harness.fake.inject(NOT_THE_API, "status", count=100, status=502)
    with pytest.raises(ProviderUnavailable):
        harness.provider.statuses([pid])
