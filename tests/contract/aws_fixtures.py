"""AWS plumbing for the HealthOmics tests: moto's server for S3 (moto has no omics backend), the
standard boto3 environment pointing at the fakes, and wesctl settings for the adapter.

The adapter is configured only through boto3's standard variables, exactly as an operator would
point it at another endpoint; test code (the fake's S3 writer, bucket setup) may pass endpoints
explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from tests.contract.base import VirtualClock
from wesctl.config import Settings, load_settings
from wesctl.providers.healthomics.adapter import HealthOmicsProvider, build
from wesctl.providers.healthomics.settings import SPEC as HEALTHOMICS
from wesctl.providers.ratelimit import TokenBucket

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REGION = "us-east-1"
BUCKET = "wesctl-omics-test"
OUTPUT_URI = f"s3://{BUCKET}/out"
ROLE_ARN = "arn:aws:iam::123456789012:role/omics-runs"
PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


def start_moto() -> tuple[ThreadedMotoServer, str]:
    """Start moto's server on a free loopback port; return it and its base URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    client = s3_client(url)
    try:
        client.create_bucket(Bucket=BUCKET)
    except ClientError as exc:  # moto's S3 state is per process, shared by every server
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    return server, url


def s3_client(url: str) -> S3Client:
    """An S3 client for test code, pointed explicitly at moto."""
    return boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def aws_environment(
    monkeypatch: pytest.MonkeyPatch, *, omics_url: str, moto_url: str, tmp_path: Path
) -> None:
    """Point boto3's standard configuration chain at the fakes, as an operator would."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", raising=False)
    values = {
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        # no developer's ~/.aws files may change what the tests see
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_OMICS": omics_url,
        "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
        "AWS_MAX_ATTEMPTS": "1",  # botocore must not sleep on its own retries; wesctl retries
        "AWS_RETRY_MODE": "standard",
        "AWS_ENDPOINT_URL_S3": moto_url,
        "AWS_ENDPOINT_URL_LOGS": moto_url,
        "AWS_ENDPOINT_URL_STS": moto_url,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def make_settings(tmp_path: Path, **environ: str) -> Settings:
    """Settings for the adapter: test role and bucket, a short socket timeout."""
    env_file = tmp_path / "empty.env"
    env_file.write_text("", encoding="utf-8")
    values = {
        "AWS_REGION": REGION,
        "AWS_HEALTHOMICS_WORKFLOW_ROLE_ARN": ROLE_ARN,
        "AWS_HEALTHOMICS_OUTPUT_URI": OUTPUT_URI,
        "WESCTL_PROVIDER_TIMEOUT": "5",
        **environ,
    }
    return load_settings(environ=values, env_file=env_file, export_sdk=False)


def build_provider(settings: Settings) -> tuple[HealthOmicsProvider, VirtualClock]:
    """The adapter as `build` makes it, with no-op retry sleeps and its token buckets (default
    rates) on a virtual clock: pacing and throttle penalties are counted, never slept."""
    provider = build(settings, sleep=lambda seconds: None)
    clock = VirtualClock()
    provider.limiter = TokenBucket(
        settings.provider(HEALTHOMICS).api_rate, clock=clock, sleep=clock.sleep
    )
    provider.start_limiter = TokenBucket(
        settings.provider(HEALTHOMICS).start_rate, burst=1.0, clock=clock, sleep=clock.sleep
    )
    return provider, clock
