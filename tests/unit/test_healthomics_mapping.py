"""HealthOmics adapter: the status table, parameter translation, error classification, standard
boto3 configuration, crash recovery and call budgets.

Pure parts are tested directly; everything else goes through boto3's real `omics` client over HTTP
to the HealthOmics fake, with moto's server holding S3.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.awsrequest import AWSPreparedRequest
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
    TokenRetrievalError,
    UnauthorizedSSOTokenError,
)

from tests.contract.aws_fixtures import (
    OUTPUT_URI,
    ROLE_ARN,
    aws_environment,
    build_provider,
    make_settings,
    s3_client,
)
from tests.contract.base import VirtualClock
from wesctl.config import Settings
from wesctl.domain.states import RunState
from wesctl.domain.types import Attempt, RunSpec
from wesctl.providers.base import (
    ProviderMisconfigured,
    ProviderRejected,
    ProviderRunNotFound,
    ProviderUnavailable,
)
from wesctl.providers.healthomics.adapter import (
    CLOCK_FIX,
    CREDENTIALS_FIX,
    ENDPOINT_FIX,
    EXPIRED_FIX,
    LISTING_TTL,
    THROTTLE_RETRY_AFTER,
    HealthOmicsProvider,
    build,
    classify_error,
    retry_now,
)
from wesctl.providers.healthomics.mapping import (
    DELETED_MESSAGE,
    STATUS_MAP,
    map_status,
    normalise_outputs,
    status_message,
)
from wesctl.providers.healthomics.settings import SPEC as HEALTHOMICS
from wesctl.simulated.healthomics import SimulatedHealthOmics
from wesctl.simulated.http import ERROR, SimulatedClock

WDL, CWL, NEXTFLOW, READY2RUN = "1234567", "2345678", "3456789", "9500764"


def with_healthomics(settings: Settings, **changes: Any) -> Settings:
    """`settings` with some HealthOmics settings changed."""
    own = replace(settings.provider(HEALTHOMICS), **changes)
    return replace(
        settings, provider_settings={**settings.provider_settings, HEALTHOMICS.name: own}
    )


# --- the status table ------------------------------------------------------------------------

EXPECTED = {
    "PENDING": RunState.INITIALIZING,
    "STARTING": RunState.INITIALIZING,
    "RUNNING": RunState.RUNNING,
    "STOPPING": RunState.RUNNING,
    "COMPLETED": RunState.COMPLETE,
    "FAILED": RunState.EXECUTOR_ERROR,
    "CANCELLED": RunState.CANCELED,
    "DELETED": None,
}
DOCUMENTED_FAILURE_REASONS = (
    "ASSUME_ROLE_FAILED",
    "ECR_PERMISSION_ERROR",
    "CANNOT_START_CONTAINER_ERROR",
    "IMAGE_VERIFICATION_FAILURE",
    "IMPORT_FAILED",
    "EXPORT_FAILED",
    "INPUT_URI_NOT_FOUND",
    "FILE_SYSTEM_OUT_OF_SPACE",
    "RUN_TASK_FAILED",
    "RUN_TIMED_OUT",
    "TASK_TIMED_OUT",
    "INVALID_RUN_PARAMETERS",
    "A_REASON_ADDED_LATER",
    None,
)


def test_table_covers_every_run_status_in_the_service_model() -> None:
    model = botocore.session.get_session().get_service_model("omics")
    statuses = set(model.shape_for("RunStatus").metadata["enum"])
    assert statuses == set(EXPECTED) == set(STATUS_MAP)


@pytest.mark.parametrize(("raw", "state"), EXPECTED.items())
def test_every_run_status_maps(raw: str, state: RunState | None) -> None:
    assert map_status(raw) == state


def test_waiting_at_the_provider_is_never_queued() -> None:
    assert RunState.QUEUED not in STATUS_MAP.values()


@pytest.mark.parametrize("reason", ["SERVICE_ERROR", "INSTANCE_RESERVATION_FAILED"])
def test_service_side_failures_are_system_errors(reason: str) -> None:
    assert map_status("FAILED", reason) == RunState.SYSTEM_ERROR


@pytest.mark.parametrize("reason", DOCUMENTED_FAILURE_REASONS)
def test_other_failures_are_executor_errors(reason: str | None) -> None:
    assert map_status("FAILED", reason) == RunState.EXECUTOR_ERROR


@pytest.mark.parametrize("raw", ["COMPLETED", "CANCELLED", "RUNNING"])
def test_failure_reason_matters_only_for_failed_runs(raw: str) -> None:
    assert map_status(raw, "SERVICE_ERROR") == EXPECTED[raw]


@pytest.mark.parametrize("raw", ["HIBERNATING", "", "running"])
def test_unknown_status_keeps_state_and_warns(raw: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="wesctl.providers.healthomics"):
        assert map_status(raw) is None
    assert "unknown HealthOmics run status" in caplog.text


@pytest.mark.parametrize(
    ("raw", "reason", "message", "expected"),
    [
        ("FAILED", "RUN_TASK_FAILED", "task x exited 1", "RUN_TASK_FAILED: task x exited 1"),
        ("FAILED", "SERVICE_ERROR", None, "SERVICE_ERROR"),
        ("FAILED", None, "out of memory", "out of memory"),
        ("RUNNING", None, None, None),
        ("DELETED", None, None, DELETED_MESSAGE),
    ],
)
def test_status_message(raw: str, reason: str | None, message: str | None, expected: str) -> None:
    assert status_message(raw, reason, message) == expected


# --- error classification ----------------------------------------------------------------------


def client_error(code: str, status: int, message: str = "service says no") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "GetRun")


URL = "http://127.0.0.1:9/run"


@pytest.mark.parametrize(
    ("error", "operation", "expected"),
    [
        (client_error("ThrottlingException", 429), "GetRun", ProviderUnavailable),
        (client_error("InternalServerException", 500), "StartRun", ProviderUnavailable),
        (client_error("RequestTimeoutException", 408), "StartRun", ProviderUnavailable),
        (client_error("502", 502), "ListRuns", ProviderUnavailable),
        (client_error("ServiceUnavailableException", 503), "GetRun", ProviderUnavailable),
        (client_error("504", 504), "CancelRun", ProviderUnavailable),
        (client_error("ServiceQuotaExceededException", 402), "StartRun", ProviderUnavailable),
        (client_error("SlowDown", 503), "GetObject", ProviderUnavailable),
        (client_error("ValidationException", 400), "StartRun", ProviderRejected),
        (client_error("AccessDeniedException", 403), "GetRun", ProviderMisconfigured),
        (client_error("ConflictException", 409), "StartRun", ProviderRejected),
        (client_error("ConflictException", 409), "CancelRun", ProviderRejected),
        (client_error("ResourceNotFoundException", 404), "GetRun", ProviderRunNotFound),
        (client_error("ResourceNotFoundException", 404), "CancelRun", ProviderRunNotFound),
        (client_error("404", 404), "ListRunTasks", ProviderMisconfigured),  # no service code
        (client_error("AccessDenied", 403), "GetObject", ProviderMisconfigured),
        (EndpointConnectionError(endpoint_url=URL), "GetRun", ProviderUnavailable),
        (ConnectTimeoutError(endpoint_url=URL), "StartRun", ProviderUnavailable),
        (ReadTimeoutError(endpoint_url=URL), "GetRun", ProviderUnavailable),
        (ConnectionClosedError(endpoint_url=URL), "StartRun", ProviderUnavailable),
        (NoCredentialsError(), "StartRun", ProviderMisconfigured),
        (
            PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
            "GetRun",
            ProviderMisconfigured,
        ),
        (
            ParamValidationError(report="Invalid type for parameter priority"),
            "StartRun",
            ProviderRejected,
        ),
    ],
)
def test_error_classification(error: Exception, operation: str, expected: type) -> None:
    translated = classify_error(error, operation)
    assert type(translated) is expected
    assert operation in translated.detail


@pytest.mark.parametrize(
    ("code", "status", "fix"),
    [
        ("UnrecognizedClientException", 403, "credentials"),
        ("UnrecognizedClientException", 400, "credentials"),  # some JSON services say 400
        ("InvalidClientTokenId", 403, "credentials"),
        ("InvalidAccessKeyId", 403, "credentials"),
        ("InvalidToken", 400, "credentials"),
        ("InvalidSignatureException", 403, "credentials"),
        ("SignatureDoesNotMatch", 403, "credentials"),
        ("IncompleteSignatureException", 400, "credentials"),
        ("ExpiredTokenException", 403, "expired"),
        ("ExpiredToken", 400, "expired"),
        ("RequestExpired", 400, "clock"),
        ("RequestTimeTooSkewed", 403, "clock"),
    ],
)
@pytest.mark.parametrize("operation", ["StartRun", "GetRun", "ListRuns", "CancelRun", "GetObject"])
def test_refused_credentials_are_the_installations(
    code: str, status: int, fix: str, operation: str
) -> None:
    translated = classify_error(
        client_error(code, status, "token invalid"), operation, ("role_arn",)
    )
    assert type(translated) is ProviderMisconfigured
    assert (
        translated.fix
        == {"credentials": CREDENTIALS_FIX, "expired": EXPIRED_FIX, "clock": CLOCK_FIX}[fix]
    )
    assert f"{operation} failed: {code}: token invalid" == translated.detail


@pytest.mark.parametrize(
    "error",
    [
        CredentialRetrievalError(provider="custom-process", error_msg="exit status 1"),
        TokenRetrievalError(provider="sso", error_msg="Token has expired and refresh failed"),
        UnauthorizedSSOTokenError(),
    ],
)
def test_a_failing_credential_provider_is_the_installations(error: Exception) -> None:
    translated = classify_error(error, "GetRun")
    assert type(translated) is ProviderMisconfigured
    assert translated.fix == CREDENTIALS_FIX


@pytest.mark.parametrize(
    ("operation", "own_options", "expected", "named"),
    [
        ("StartRun", (), ProviderMisconfigured, "AWS_HEALTHOMICS_WORKFLOW_ROLE_ARN"),
        ("StartRun", ("role_arn",), ProviderRejected, "role_arn"),
        ("StartRun", ("output_uri",), ProviderRejected, "output_uri"),
        ("StartRun", ("role_arn", "output_uri"), ProviderRejected, "role_arn / output_uri"),
        ("StartRun", ("workflow_owner_id",), ProviderRejected, "workflow_owner_id"),
        ("GetRun", (), ProviderMisconfigured, "omics:GetRun"),
        ("ListRuns", (), ProviderMisconfigured, "omics:ListRuns"),
        ("CancelRun", (), ProviderMisconfigured, "omics:CancelRun"),
        ("ListRunTasks", (), ProviderMisconfigured, "omics:ListRunTasks"),
        ("GetObject", (), ProviderMisconfigured, "AWS_HEALTHOMICS_OUTPUT_URI"),
        ("ListObjectsV2", (), ProviderMisconfigured, "AWS_HEALTHOMICS_OUTPUT_URI"),
        ("GetObject", ("output_uri",), ProviderRejected, "output_uri"),
    ],
)
def test_access_denied_blames_a_runs_own_option_else_the_installation(
    operation: str, own_options: tuple[str, ...], expected: type, named: str
) -> None:
    code = (
        "AccessDenied" if operation in ("GetObject", "ListObjectsV2") else "AccessDeniedException"
    )
    translated = classify_error(client_error(code, 403, "not authorized"), operation, own_options)
    assert type(translated) is expected
    assert "not authorized" in translated.detail
    said = translated.fix if isinstance(translated, ProviderMisconfigured) else translated.detail
    assert named in said


@pytest.mark.parametrize(
    ("code", "status", "operation", "expected"),
    [
        ("404", 404, "GetRun", ProviderMisconfigured),  # an HTML 404 page: botocore's fallback
        ("403", 403, "StartRun", ProviderMisconfigured),
        ("400", 400, "ListRuns", ProviderMisconfigured),
        ("UnknownOperationException", 404, "CancelRun", ProviderMisconfigured),
        ("MissingAuthenticationTokenException", 403, "GetRun", ProviderMisconfigured),
        ("503", 503, "GetRun", ProviderUnavailable),  # a proxy's error page: transient
        ("404", 404, "GetObject", ProviderRejected),  # S3 has its own HEAD-style 404s
    ],
)
def test_an_endpoint_that_is_not_the_service_is_the_installations(
    code: str, status: int, operation: str, expected: type
) -> None:
    translated = classify_error(client_error(code, status), operation)
    assert type(translated) is expected
    if isinstance(translated, ProviderMisconfigured):
        assert translated.fix == ENDPOINT_FIX


def test_a_missing_workflow_is_rejected_not_a_missing_run() -> None:
    translated = classify_error(client_error("ResourceNotFoundException", 404), "StartRun")
    assert type(translated) is ProviderRejected


def test_rejection_carries_the_service_message() -> None:
    translated = classify_error(client_error("ValidationException", 400, "bad param x"), "StartRun")
    assert "ValidationException: bad param x" in str(translated)


def test_throttling_hints_a_wait_and_quota_says_quota() -> None:
    throttled = classify_error(client_error("ThrottlingException", 429), "GetRun")
    assert isinstance(throttled, ProviderUnavailable)
    assert throttled.retry_after == THROTTLE_RETRY_AFTER
    quota = classify_error(client_error("ServiceQuotaExceededException", 402), "StartRun")
    assert "quota" in str(quota)


@pytest.mark.parametrize(
    ("error", "operation", "expected"),
    [
        (client_error("ThrottlingException", 429), "StartRun", True),
        (client_error("ServiceQuotaExceededException", 402), "StartRun", False),
        (ConnectionClosedError(endpoint_url=URL), "StartRun", False),  # may have arrived
        (ReadTimeoutError(endpoint_url=URL), "StartRun", False),
        (ConnectTimeoutError(endpoint_url=URL), "StartRun", True),  # never arrived
        (ConnectionClosedError(endpoint_url=URL), "GetRun", True),
    ],
)
def test_which_errors_are_retried_in_process(
    error: Exception, operation: str, expected: bool
) -> None:
    assert retry_now(error, operation) is expected


# --- outputs normalisation (pure) ---------------------------------------------------------------


def test_cwl_file_objects_are_normalised_and_wdl_values_kept() -> None:
    location = "s3://b/out/1/out/reads/x.bam"
    summary = {
        "bam": {
            "class": "File",
            "location": location,
            "basename": "x.bam",
            "size": 3,
            "checksum": "sha1$00",
        },
        "many": [{"class": "File", "path": "s3://b/o/y.txt"}],
        "record": {"report": {"class": "File", "location": "s3://b/o/r.html", "size": 9}},
        "wf.count": 3,
        "wf.files": ["s3://b/o/a", "s3://b/o/b"],
    }
    assert normalise_outputs(summary) == {
        "bam": {"class": "File", "location": location, "name": "x.bam", "size": 3},
        "many": [{"class": "File", "location": "s3://b/o/y.txt", "name": "y.txt"}],
        "record": {
            "report": {"class": "File", "location": "s3://b/o/r.html", "name": "r.html", "size": 9}
        },
        "wf.count": 3,
        "wf.files": ["s3://b/o/a", "s3://b/o/b"],
    }


# --- fixtures for the wire tests ----------------------------------------------------------------


@pytest.fixture(scope="module")
def fake(moto_url: str) -> Iterator[SimulatedHealthOmics]:
    """One fake for the module (stopping one takes half a second); tests use distinct run ids."""
    with SimulatedHealthOmics(s3=s3_client(moto_url)) as service:
        yield service


@pytest.fixture(autouse=True)
def _no_leftover_faults(request: pytest.FixtureRequest) -> None:
    if "fake" in request.fixturenames:
        request.getfixturevalue("fake").clear_faults()


@pytest.fixture(scope="module")
def provider(
    fake: SimulatedHealthOmics, moto_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HealthOmicsProvider]:
    """One adapter for the tests that need no fresh adapter state. boto3 reads the standard
    environment when it builds the clients, so the environment is set just for that."""
    tmp_path = tmp_path_factory.mktemp("provider")
    with pytest.MonkeyPatch.context() as patch:
        aws_environment(patch, omics_url=fake.base_url, moto_url=moto_url, tmp_path=tmp_path)
        built, _ = build_provider(make_settings(tmp_path))
    yield built
    built.close()


@pytest.fixture
def env(
    fake: SimulatedHealthOmics, moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> pytest.MonkeyPatch:
    """The standard environment pointing at the module's fake, for tests that build adapters."""
    aws_environment(monkeypatch, omics_url=fake.base_url, moto_url=moto_url, tmp_path=tmp_path)
    return monkeypatch


def spec(run_id: str, **options: Any) -> RunSpec:
    """A run whose engine parameters are `options`."""
    return RunSpec(
        run_id=run_id,
        workflow_url=WDL,
        workflow_type="WDL",
        workflow_type_version="1.0",
        workflow_params={"reads": "s3://in/reads.bam"},
        tags={"workflow_engine_parameters": options} if options else {},
    )


def submit(
    provider: HealthOmicsProvider, run: RunSpec, *, key: str | None = None, may_exist: bool = False
) -> str:
    recorded: list[str] = []
    result = provider.submit(
        Attempt(run, key or f"wesctl-{run.run_id}", None, may_exist), recorded.append
    )
    assert recorded == []  # StartRun creates and starts at once: the outcome write stores the id
    return result.provider_id


# --- standard boto3 configuration ----------------------------------------------------------------


class Captured(Exception):
    """Raised from botocore's before-send hook: the request is inspected, never sent."""


def sent_url(provider: HealthOmicsProvider) -> str:
    urls: list[str] = []

    def capture(request: AWSPreparedRequest, **kwargs: Any) -> None:
        urls.append(request.url)
        raise Captured

    events = provider.omics.meta.events
    events.register("before-send.omics.GetRun", capture)
    try:
        with pytest.raises(Captured):
            provider.omics.get_run(id="1")
    finally:
        events.unregister("before-send.omics.GetRun", capture)
    return urls[0]


def test_host_prefix_env_variable_wins_over_an_explicit_config_object(
    fake: SimulatedHealthOmics, provider: HealthOmicsProvider
) -> None:
    # build() passes Config(connect_timeout, read_timeout, user_agent_extra, ...) explicitly
    assert provider.omics.meta.config.inject_host_prefix is False
    assert sent_url(provider) == f"{fake.base_url}/run/1"


def test_without_the_env_variable_the_host_prefix_is_injected(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.delenv("AWS_DISABLE_HOST_PREFIX_INJECTION")
    built = build(make_settings(tmp_path))
    assert built.omics.meta.config.inject_host_prefix is True
    assert sent_url(built).startswith("http://workflows-127.0.0.1:")
    built.close()


def test_endpoint_retries_and_timeouts_follow_standard_config(
    fake: SimulatedHealthOmics, provider: HealthOmicsProvider, moto_url: str
) -> None:
    assert provider.omics.meta.endpoint_url == fake.base_url
    assert provider.s3.meta.endpoint_url == moto_url
    config: Any = provider.omics.meta.config  # the stubs omit these attributes
    assert config.read_timeout == 5
    assert "wesctl" in config.user_agent_extra
    assert config.retries["total_max_attempts"] == 1  # AWS_MAX_ATTEMPTS


def test_connection_pool_holds_a_connection_per_worker(tmp_path: Path) -> None:
    built = build(replace(make_settings(tmp_path), submit_workers=24))
    config: Any = built.omics.meta.config
    assert config.max_pool_connections == 24  # botocore's 10 would drop connections
    built.close()


def test_without_a_region_the_original_daemons_us_east_1_is_used(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.delenv("AWS_REGION")
    env.delenv("AWS_DEFAULT_REGION")
    settings = with_healthomics(make_settings(tmp_path), region=None)
    provider = build(settings)
    try:
        assert provider.omics.meta.region_name == "us-east-1"
    finally:
        provider.close()


def test_missing_credentials_are_the_installations(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.delenv("AWS_ACCESS_KEY_ID")
    env.delenv("AWS_SECRET_ACCESS_KEY")
    built, _ = build_provider(make_settings(tmp_path))
    with pytest.raises(ProviderMisconfigured, match="Unable to locate credentials") as info:
        submit(built, spec("run-no-creds"))
    assert info.value.fix == CREDENTIALS_FIX
    built.close()


def test_errors_never_show_the_secret_key(
    fake: SimulatedHealthOmics,
    env: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "wJalrXUtnFEMI-very-secret-key"
    env.setenv("AWS_SECRET_ACCESS_KEY", secret)
    built, _ = build_provider(make_settings(tmp_path))
    fake.inject("permanent", "submit", message="input 'reads' is missing")
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderRejected) as info:
        submit(built, spec("run-secret"))
    assert secret not in str(info.value)
    assert secret not in caplog.text
    built.close()


# --- parameter translation ---------------------------------------------------------------------


def test_minimal_run_translation(fake: SimulatedHealthOmics, provider: HealthOmicsProvider) -> None:
    run = replace(spec("run-minimal"), tags={"project": "p1", "nested": {"not": "a string"}})
    pid = submit(provider, run, key="key-minimal")
    sent = fake.run(pid)
    assert sent["workflowId"] == WDL
    assert sent["workflowType"] == "PRIVATE"
    assert sent["name"] == "wes-run-minimal"
    assert sent["roleArn"] == ROLE_ARN
    assert sent["outputUri"] == OUTPUT_URI
    assert sent["runOutputUri"] == f"{OUTPUT_URI}/{pid}"
    assert sent["parameters"] == {"reads": "s3://in/reads.bam"}
    assert sent["storageType"] == "DYNAMIC"  # always sent: the documented defaults disagree
    assert sent["tags"] == {
        "project": "p1",
        "wes_run_id": "run-minimal",
        "wes_request_id": "key-minimal",
    }


def test_submission_metadata_and_status(provider: HealthOmicsProvider) -> None:
    result = provider.submit(Attempt(spec("run-meta"), "key-meta"), lambda pid: None)
    assert result.status.raw_status == "PENDING"
    assert result.status.state == RunState.INITIALIZING
    assert not result.adopted
    assert result.metadata["requestId"] == "key-meta"
    assert result.metadata["arn"].endswith(f":run/{result.provider_id}")
    assert len(result.metadata["uuid"]) == 36
    assert result.metadata["runOutputUri"] == f"{OUTPUT_URI}/{result.provider_id}"


def test_all_engine_parameters_pass_through(
    fake: SimulatedHealthOmics, provider: HealthOmicsProvider
) -> None:
    run = spec(
        "run-options",
        storage_type="static",
        storage_capacity=2400,
        run_group_id="5551234",
        priority="7",  # run tags hold strings
        cache_id=424242,
        cache_behavior="CACHE_ALWAYS",
        log_level="ERROR",
        retention_mode="REMOVE",
        workflow_version_name="v1.2-rc_3",
        workflow_owner_id="210987654321",
        role_arn="arn:aws:iam::123456789012:role/other-role",
        output_uri="s3://wesctl-omics-test/elsewhere/",
    )
    sent = fake.run(submit(provider, run))
    assert {
        key: sent[key]
        for key in (
            "storageType",
            "storageCapacity",
            "runGroupId",
            "priority",
            "cacheId",
            "cacheBehavior",
            "logLevel",
            "retentionMode",
            "workflowVersionName",
            "workflowOwnerId",
            "roleArn",
            "outputUri",
        )
    } == {
        "storageType": "STATIC",
        "storageCapacity": 2400,
        "runGroupId": "5551234",
        "priority": 7,
        "cacheId": "424242",
        "cacheBehavior": "CACHE_ALWAYS",
        "logLevel": "ERROR",
        "retentionMode": "REMOVE",
        "workflowVersionName": "v1.2-rc_3",
        "workflowOwnerId": "210987654321",
        "roleArn": "arn:aws:iam::123456789012:role/other-role",
        "outputUri": "s3://wesctl-omics-test/elsewhere/",
    }
    assert sent["runOutputUri"].startswith("s3://wesctl-omics-test/elsewhere/")


def test_storage_capacity_implies_static(
    fake: SimulatedHealthOmics, provider: HealthOmicsProvider
) -> None:
    sent = fake.run(submit(provider, spec("run-capacity", storage_capacity=1200)))
    assert (sent["storageType"], sent["storageCapacity"]) == ("STATIC", 1200)


WORKFLOW_FORMS = {
    "digits": (WDL, {}, WDL, "PRIVATE"),
    "padded": (f" {WDL} ", {}, WDL, "PRIVATE"),
    "arn": (f"arn:aws:omics:us-east-1:123456789012:workflow/{CWL}", {}, CWL, "PRIVATE"),
    "ready2run": (READY2RUN, {"workflow_type": "READY2RUN"}, READY2RUN, "READY2RUN"),
    "ready2run-lower": (
        READY2RUN,
        {"healthomics_workflow_type": "ready2run"},
        READY2RUN,
        "READY2RUN",
    ),
    "ready2run-arn": (
        f"arn:aws:omics:us-east-1::workflow/{READY2RUN}",
        {"workflow_type": "READY2RUN"},
        READY2RUN,
        "READY2RUN",
    ),
}


@pytest.mark.parametrize("form", WORKFLOW_FORMS)
def test_workflow_forms(
    fake: SimulatedHealthOmics, provider: HealthOmicsProvider, form: str
) -> None:
    url, options, workflow_id, workflow_type = WORKFLOW_FORMS[form]
    run = replace(spec(f"run-form-{form}", **options), workflow_url=url)
    sent = fake.run(submit(provider, run))
    assert (sent["workflowId"], sent["workflowType"]) == (workflow_id, workflow_type)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"workflow_params": ["a", "list"]}, "workflow_params must be a JSON object"),
        ({"workflow_params": "{}"}, "workflow_params must be a JSON object"),
        ({"workflow_url": "::not a workflow::"}, "workflow_url .* is not a HealthOmics workflow"),
        ({"workflow_url": "https://github.com/x/y/main.wdl"}, "workflow_url"),
        ({"workflow_url": "1234567890123456789"}, "workflow_url"),  # 19 digits
        ({"workflow_url": "arn:aws:omics:eu-west-1:123456789012:workflow/1"}, "region eu-west-1"),
        ({"workflow_url": "arn:aws:omics:us-east-1:123456789012:run/1"}, "workflow_url"),
        ({"run_id": "x" * 125}, "run_id .* at most 128 printable"),
        ({"run_id": "a\nb"}, "run_id"),
        ({"tags": {f"t{i}": "v" for i in range(49)}}, "tags: .* at most 48"),
        ({"tags": {"aws:owner": "me"}}, "tag key"),
        ({"tags": {"k" * 129: "v"}}, "tag key"),
        ({"tags": {"long": "v" * 257}}, "tag 'long'"),
    ],
)
def test_bad_runs_are_rejected_clearly(
    provider: HealthOmicsProvider, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProviderRejected, match=message):
        provider.validate(replace(spec("run-bad"), **change))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"role_arn": "not-an-arn"}, "role_arn 'not-an-arn' is not an IAM role ARN"),
        ({"role_arn": "arn:aws:iam::123456789012:user/bob"}, "role_arn"),
        ({"role_arn": 42}, "role_arn"),
        ({"output_uri": "/local/path"}, "output_uri"),
        ({"output_uri": "s3://Bad_Bucket/x"}, "output_uri"),
        ({"workflow_type": "PUBLIC"}, "workflow_type must be one of PRIVATE, READY2RUN"),
        ({"storage_type": "FAST"}, "storage_type"),
        ({"storage_capacity": "lots"}, "storage_capacity"),
        ({"storage_capacity": 100_001}, "storage_capacity"),
        ({"storage_capacity": True}, "storage_capacity"),
        ({"storage_type": "DYNAMIC", "storage_capacity": 1200}, "storage_capacity applies"),
        ({"run_group_id": "group-1"}, "run_group_id"),
        ({"priority": -1}, "priority"),
        ({"priority": 1.5}, "priority"),
        ({"cache_id": "abc"}, "cache_id"),
        ({"cache_behavior": "CACHE_ALWAYS"}, "cache_behavior needs cache_id"),
        ({"cache_id": "1", "cache_behavior": "SOMETIMES"}, "cache_behavior"),
        ({"log_level": "DEBUG"}, "log_level"),
        ({"retention_mode": "FOREVER"}, "retention_mode"),
        ({"workflow_version_name": "-v1"}, "workflow_version_name"),
        ({"workflow_version_name": "v" * 65}, "workflow_version_name"),
        ({"workflow_owner_id": "1234"}, "workflow_owner_id"),
    ],
)
def test_bad_engine_parameters_name_the_parameter(
    provider: HealthOmicsProvider, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProviderRejected, match=message):
        provider.validate(spec("run-bad-option", **options))


def test_missing_role_and_output_location_are_rejected(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = with_healthomics(make_settings(tmp_path), role_arn=None)
    built, _ = build_provider(settings)
    with pytest.raises(ProviderRejected, match="AWS_HEALTHOMICS_WORKFLOW_ROLE_ARN"):
        built.validate(spec("run-no-role"))
    built.validate(spec("run-role-option", role_arn=ROLE_ARN))
    built = HealthOmicsProvider(with_healthomics(settings, output_uri=None), built.omics, built.s3)
    with pytest.raises(ProviderRejected, match="AWS_HEALTHOMICS_OUTPUT_URI"):
        built.validate(spec("run-no-output", role_arn=ROLE_ARN))
    built.close()


def test_unknown_workflow_is_rejected_with_the_service_message(
    provider: HealthOmicsProvider,
) -> None:
    with pytest.raises(ProviderRejected, match="Workflow 7777777 was not found") as info:
        submit(provider, replace(spec("run-no-workflow"), workflow_url="7777777"))
    assert not isinstance(info.value, ProviderRunNotFound)


# --- idempotency and crash recovery --------------------------------------------------------------


def test_accepted_then_dropped_start_is_not_retried_blindly(
    fake: SimulatedHealthOmics, provider: HealthOmicsProvider
) -> None:
    fake.inject("drop_after_accept", "submit")
    starts = fake.calls["StartRun"]
    with pytest.raises(ProviderUnavailable):
        submit(provider, spec("run-crash"))
    assert fake.calls["StartRun"] == starts + 1
    assert len(fake.runs_for("run-crash")) == 1  # the service did start it


def test_resending_the_same_request_id_creates_one_run(
    fake: SimulatedHealthOmics, provider: HealthOmicsProvider
) -> None:
    fake.inject("drop_after_accept", "submit")
    with pytest.raises(ProviderUnavailable):
        submit(provider, spec("run-resend"), key="key-resend")
    # the caller did not know a run may exist: only the requestId protects it
    pid = submit(provider, spec("run-resend"), key="key-resend")
    assert len(fake.runs_for("run-resend")) == 1
    assert fake.run(pid)["tags"]["wes_request_id"] == "key-resend"


def test_may_exist_finds_the_run_without_starting_again(
    fake: SimulatedHealthOmics, provider: HealthOmicsProvider
) -> None:
    fake.inject("drop_after_accept", "submit")
    with pytest.raises(ProviderUnavailable):
        submit(provider, spec("run-recover"), key="key-recover")
    starts = fake.calls["StartRun"]
    recorded: list[str] = []
    result = provider.submit(
        Attempt(spec("run-recover"), "key-recover", None, True), recorded.append
    )
    assert result.adopted
    assert recorded == []
    assert fake.calls["StartRun"] == starts  # found by name and tags: no StartRun spent
    assert len(fake.runs_for("run-recover")) == 1


def test_a_new_submission_key_is_not_confused_with_an_old_run(
    fake: SimulatedHealthOmics, provider: HealthOmicsProvider
) -> None:
    first = submit(provider, spec("run-again"), key="key-again-1")
    second = submit(provider, spec("run-again"), key="key-again-2", may_exist=True)
    assert first != second
    assert len(fake.runs_for("run-again")) == 2


def test_known_id_that_vanished_is_not_found(provider: HealthOmicsProvider) -> None:
    with pytest.raises(ProviderRunNotFound):
        provider.submit(Attempt(spec("run-vanished"), "k", "999999999", True), lambda pid: None)


def test_transient_faults_on_a_batch_of_submissions(
    fake: SimulatedHealthOmics, provider: HealthOmicsProvider
) -> None:
    """About 30% of all requests fail transiently; the caller resubmits what raised
    ProviderUnavailable with may_exist=True, as the submit service does."""
    for kind in ("throttle", "server_error", "unavailable", "drop_after_accept"):
        fake.inject(kind, None, count=None, rate=0.09)
    before = sum(fake.calls.values())
    ids: dict[str, str] = {}
    for index in range(20):
        run_id = f"run-storm-{index}"
        for attempt in range(5):
            try:
                ids[run_id] = submit(provider, spec(run_id), may_exist=attempt > 0)
                break
            except ProviderUnavailable:
                continue
    fake.clear_faults()
    assert len(ids) == 20
    assert all(len(fake.runs_for(run_id)) == 1 for run_id in ids)
    assert len(set(ids.values())) == 20
    assert sum(fake.calls.values()) - before > 20  # faults did fire


def test_quota_refusal_keeps_the_run_queued_without_burning_start_calls(
    fake: SimulatedHealthOmics, provider: HealthOmicsProvider
) -> None:
    fake.inject(
        ERROR, "submit", code="ServiceQuotaExceededException", message="Maximum runs reached"
    )
    starts = fake.calls["StartRun"]
    with pytest.raises(ProviderUnavailable, match="quota") as info:
        submit(provider, spec("run-quota"))
    assert "Maximum runs reached" in str(info.value)
    assert fake.calls["StartRun"] == starts + 1
    assert len(fake.runs_for("run-quota")) == 0


def test_throttling_slows_the_limiter(
    fake: SimulatedHealthOmics, env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    built, clock = build_provider(make_settings(tmp_path))
    pid = submit(built, spec("run-throttled"))
    before = clock.now
    fake.inject("throttle", "status", count=1)
    status = built.statuses([pid])[pid]
    assert status is not None
    assert clock.now - before >= THROTTLE_RETRY_AFTER - 1e-9  # penalised, then paced
    built.close()


def test_start_run_is_paced_by_its_own_limiter(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    built, clock = build_provider(make_settings(tmp_path))  # default: 0.1 StartRun per second
    for index in range(3):
        submit(built, spec(f"run-paced-{index}"))
    assert clock.now >= 20.0 - 1e-9
    built.close()


# --- statuses, details, cancel --------------------------------------------------------------------


def test_status_times_are_naive_utc_and_failures_carry_the_reason(
    fake: SimulatedHealthOmics, provider: HealthOmicsProvider
) -> None:
    pid = submit(provider, spec("run-times"))
    fake.set_status(pid, "RUNNING")
    fake.finish(pid, succeed=False, failure_reason="SERVICE_ERROR", message="try again")
    status = provider.statuses([pid])[pid]
    assert status is not None
    assert status.state == RunState.SYSTEM_ERROR
    assert status.message == "SERVICE_ERROR: try again"
    assert isinstance(status.ended_at, datetime)
    assert status.ended_at.tzinfo is None
    assert status.ended_at.isoformat(timespec="milliseconds") == fake.run(pid)["stopTime"][:-1]


def test_unknown_and_deleted_statuses(
    fake: SimulatedHealthOmics, provider: HealthOmicsProvider
) -> None:
    pid = submit(provider, spec("run-odd"))
    fake.set_status(pid, "HIBERNATING")
    odd = provider.statuses([pid])[pid]
    assert odd is not None
    assert (odd.raw_status, odd.state) == ("HIBERNATING", None)
    fake.set_status(pid, "DELETED")
    deleted = provider.statuses([pid])[pid]
    assert deleted is not None
    assert (deleted.state, deleted.message) == (None, DELETED_MESSAGE)
    fake.delete(pid)
    assert provider.statuses([pid, "not-an-id"]) == {pid: None, "not-an-id": None}


@pytest.fixture
def fresh_fake(
    moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[SimulatedHealthOmics]:
    """A fake of its own, for tests that count pages over every run it holds."""
    with SimulatedHealthOmics(s3=s3_client(moto_url)) as service:
        aws_environment(
            monkeypatch, omics_url=service.base_url, moto_url=moto_url, tmp_path=tmp_path
        )
        yield service


def test_large_status_batches_cost_few_calls(
    fresh_fake: SimulatedHealthOmics, tmp_path: Path
) -> None:
    built, _ = build_provider(make_settings(tmp_path))
    ids = [submit(built, spec(f"run-many-{index}")) for index in range(250)]
    for pid in ids[:100]:
        fresh_fake.set_status(pid, "RUNNING")
    for pid in ids[100:110]:
        fresh_fake.finish(pid, succeed=True)
    for pid in ids[110:115]:
        fresh_fake.finish(pid, succeed=False)
    before = fresh_fake.calls.copy()
    # the sync service asks in chunks; the listing is shared by all of them
    result: dict[str, Any] = {}
    for start in range(0, len(ids), 50):
        result.update(built.statuses(ids[start : start + 50]))
    calls = fresh_fake.calls - before
    assert calls["ListRuns"] == 3  # 250 runs, 100 per page, listed once
    assert calls["GetRun"] == 0  # failed runs get their failureReason from details()
    assert sum(calls.values()) <= len(ids) / 30
    assert [result[pid].state for pid in ids[98:102]] == [
        RunState.RUNNING,
        RunState.RUNNING,
        RunState.COMPLETE,
        RunState.COMPLETE,
    ]
    assert result[ids[112]].state == RunState.EXECUTOR_ERROR
    assert result[ids[200]].state == RunState.INITIALIZING
    refined = built.details(ids[112]).status
    assert refined is not None
    assert refined.state == RunState.EXECUTOR_ERROR
    assert refined.message is not None
    assert "RUN_TASK_FAILED" in refined.message
    built.close()


def test_details_refine_a_listed_failure_into_system_error(
    fresh_fake: SimulatedHealthOmics, tmp_path: Path
) -> None:
    built, _ = build_provider(make_settings(tmp_path))
    pid = submit(built, spec("run-service-error"))
    fresh_fake.finish(pid, succeed=False, failure_reason="SERVICE_ERROR", message="internal")
    refined = built.details(pid).status
    assert refined is not None
    assert refined.state == RunState.SYSTEM_ERROR
    built.close()


def test_the_listing_snapshot_expires(fresh_fake: SimulatedHealthOmics, tmp_path: Path) -> None:
    built, _ = build_provider(make_settings(tmp_path))
    clock = VirtualClock()
    provider = HealthOmicsProvider(built.settings, built.omics, built.s3, clock=clock)
    provider.limiter, provider.start_limiter = built.limiter, built.start_limiter
    ids = [submit(provider, spec(f"run-ttl-{index}")) for index in range(5)]
    provider.statuses(ids)
    fresh_fake.set_status(ids[0], "RUNNING")
    before = fresh_fake.calls["ListRuns"]
    assert provider.statuses(ids)[ids[0]].state == RunState.INITIALIZING  # type: ignore[union-attr]
    assert fresh_fake.calls["ListRuns"] == before  # served from the snapshot
    clock.now += LISTING_TTL + 1
    assert provider.statuses(ids)[ids[0]].state == RunState.RUNNING  # type: ignore[union-attr]
    assert fresh_fake.calls["ListRuns"] == before + 1
    provider.close()


def test_cancel_forgets_the_snapshot_entry(
    fake: SimulatedHealthOmics, env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    built, _ = build_provider(make_settings(tmp_path))
    ids = [submit(built, spec(f"run-cancel-batch-{index}")) for index in range(3)]
    built.statuses(ids)
    listed = fake.calls["ListRuns"]
    built.cancel(ids[0])
    status = built.statuses(ids)[ids[0]]
    assert fake.calls["ListRuns"] == listed  # the others still come from the snapshot
    assert status is not None
    assert status.state == RunState.CANCELED
    built.close()


def test_cancel_of_an_unknown_run_is_not_found(provider: HealthOmicsProvider) -> None:
    with pytest.raises(ProviderRunNotFound):
        provider.cancel("999999998")


def test_cancel_refused_for_a_running_run_is_raised(
    fake: SimulatedHealthOmics, provider: HealthOmicsProvider
) -> None:
    pid = submit(provider, spec("run-cancel-refused"))
    fake.set_status(pid, "RUNNING")
    fake.inject(ERROR, "cancel", code="ConflictException", message="run is being updated")
    with pytest.raises(ProviderRejected, match="run is being updated"):
        provider.cancel(pid)


def test_cancel_denied_is_the_installations_without_a_status_read(
    fake: SimulatedHealthOmics, provider: HealthOmicsProvider
) -> None:
    pid = submit(provider, spec("run-cancel-denied"))
    fake.set_status(pid, "RUNNING")
    fake.inject(
        ERROR, "cancel", code="AccessDeniedException", message="not allowed: omics:CancelRun"
    )
    before = fake.calls["GetRun"]
    with pytest.raises(ProviderMisconfigured, match="omics:CancelRun") as info:
        provider.cancel(pid)
    assert "omics:CancelRun" in info.value.fix
    assert fake.calls["GetRun"] == before


@pytest.mark.parametrize(
    ("workflow", "expected"),
    [
        (
            CWL,
            {"output_file": {"class": "File", "name": "result.txt", "size": 23}, "line_count": 1},
        ),
        (NEXTFLOW, {"output_file": 1}),
    ],
)
def test_outputs_by_engine(
    fake: SimulatedHealthOmics,
    provider: HealthOmicsProvider,
    workflow: str,
    expected: dict[str, Any],
) -> None:
    pid = submit(provider, replace(spec(f"run-outputs-{workflow}"), workflow_url=workflow))
    fake.finish(pid, succeed=True)
    outputs = dict(provider.details(pid).outputs)
    location = f"{OUTPUT_URI}/{pid}/out/output_file/result.txt"
    if workflow == CWL:
        assert outputs["output_file"].pop("location") == location
    else:
        assert outputs["output_file"] == [location]
        outputs["output_file"] = len(outputs["output_file"])
    assert outputs == expected


def test_task_logs_point_at_cloudwatch_streams(
    fake: SimulatedHealthOmics, provider: HealthOmicsProvider
) -> None:
    pid = submit(provider, spec("run-tasks"))
    fake.set_status(pid, "RUNNING")
    running = provider.details(pid)
    assert running.outputs == {}
    assert [log.status for log in running.task_logs] == ["RUNNING", "RUNNING"]
    fake.finish(pid, succeed=False)
    logs = provider.details(pid).task_logs
    assert [(log.name, log.status) for log in logs] == [
        ("align", "COMPLETED"),
        ("call_variants", "FAILED"),
    ]
    stream = (
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/omics/WorkflowLog:log-stream:"
        f"run/{pid}/task/{logs[0].task_id}"
    )
    assert logs[0].stdout == logs[0].stderr == stream
    assert list(logs[0].system_logs) == ["instanceType=omics.c.large", "cpus=2", "memoryGiB=4"]
    assert logs[0].start_time is not None
    assert logs[0].start_time.tzinfo is None


def test_no_log_streams_when_logging_is_off(
    fake: SimulatedHealthOmics, provider: HealthOmicsProvider
) -> None:
    pid = submit(provider, spec("run-quiet", log_level="OFF"))
    fake.finish(pid, succeed=True)
    assert all(log.stdout is None for log in provider.details(pid).task_logs)


def test_cancelled_run_reports_no_outputs(
    fake: SimulatedHealthOmics, provider: HealthOmicsProvider
) -> None:
    pid = submit(provider, spec("run-cancelled-outputs"))
    fake.set_status(pid, "RUNNING")
    provider.cancel(pid)
    details = provider.details(pid)
    assert details.outputs == {}
    assert {log.status for log in details.task_logs} == {"CANCELLED"}


# --- the fake speaks the wire protocol ---------------------------------------------------------


def test_fake_rejects_what_the_service_rejects(
    fake: SimulatedHealthOmics, provider: HealthOmicsProvider
) -> None:
    omics = provider.omics
    with pytest.raises(omics.exceptions.ValidationException, match="maxResults"):
        omics.list_runs(maxResults=1000)
    with pytest.raises(omics.exceptions.ValidationException, match="startingToken"):
        omics.list_runs(startingToken="bogus")
    base: dict[str, Any] = {"roleArn": ROLE_ARN, "outputUri": OUTPUT_URI, "requestId": "r-fake"}
    with pytest.raises(omics.exceptions.ValidationException, match="workflowId"):
        omics.start_run(workflowId="abc", **base)
    with pytest.raises(omics.exceptions.ValidationException, match="name"):
        omics.start_run(workflowId=WDL, name="x" * 129, **base)
    with pytest.raises(omics.exceptions.ValidationException, match="storageType"):
        omics.start_run(workflowId=WDL, storageType="FAST", **base)  # type: ignore[arg-type]
    with pytest.raises(omics.exceptions.ValidationException, match="tags"):
        omics.start_run(workflowId=WDL, tags={f"k{i}": "v" for i in range(51)}, **base)
    with pytest.raises(omics.exceptions.ResourceNotFoundException) as info:
        omics.get_run(id="999999997")
    assert info.value.response["ResponseMetadata"]["RequestId"]


def test_fake_pages_dedupes_and_refuses_to_cancel_finished_runs(
    fake: SimulatedHealthOmics, provider: HealthOmicsProvider
) -> None:
    omics = provider.omics
    body: Any = {
        "workflowId": WDL,
        "roleArn": ROLE_ARN,
        "outputUri": OUTPUT_URI,
        "requestId": "r-dedupe",
        "name": "wes-fake-page",
        "tags": {"wes_run_id": "fp"},
    }
    first = omics.start_run(**body)
    again = omics.start_run(**body)
    assert [again[k] for k in ("id", "uuid", "arn")] == [first[k] for k in ("id", "uuid", "arn")]
    omics.start_run(**{**body, "requestId": "r-dedupe-2"})
    pages = list(
        omics.get_paginator("list_runs").paginate(
            name="wes-fake-page", PaginationConfig={"PageSize": 1}
        )
    )
    assert [len(page["items"]) for page in pages] == [1, 1]
    fake.finish(first["id"], succeed=True)
    with pytest.raises(omics.exceptions.ConflictException):
        omics.cancel_run(id=first["id"])
    task = omics.list_run_tasks(id=first["id"])["items"][0]
    detail = omics.get_run_task(id=first["id"], taskId=task["taskId"])
    assert detail["logStream"].endswith(f":log-stream:run/{first['id']}/task/{task['taskId']}")
    assert omics.get_workflow(id=WDL)["engine"] == "WDL"
    assert [w["id"] for w in omics.list_workflows(type="READY2RUN")["items"]] == [READY2RUN]


def test_fake_script_moves_runs_by_its_clock(moto_url: str) -> None:
    clock = SimulatedClock()
    service = SimulatedHealthOmics(
        s3=s3_client(moto_url),
        clock=clock,
        script=[("PENDING", 0), ("STARTING", 1), ("RUNNING", 2), ("COMPLETED", 5)],
    )
    service.start()
    try:
        omics = boto3.client(  # test code may name the endpoint; the adapter never does
            "omics",
            region_name="us-east-1",
            endpoint_url=service.base_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(inject_host_prefix=False, retries={"total_max_attempts": 1}),
        )
        run_id = omics.start_run(
            workflowId=WDL, roleArn=ROLE_ARN, outputUri=OUTPUT_URI, requestId="r-script"
        )["id"]
        seen = []
        for _ in range(6):
            seen.append(omics.get_run(id=run_id)["status"])
            clock.advance(1)
        run = omics.get_run(id=run_id)
    finally:
        service.stop()
    assert seen == ["PENDING", "STARTING", "RUNNING", "RUNNING", "RUNNING", "COMPLETED"]
    assert (run["stopTime"] - run["creationTime"]).total_seconds() == 5
    summary = s3_client(moto_url).get_object(
        Bucket="wesctl-omics-test", Key=f"out/{run_id}/logs/outputs.json"
    )
    assert b"main.output_file" in summary["Body"].read()
