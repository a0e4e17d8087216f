"""Provider fakes for end-to-end tests and the environment that points wesctl at them.

wesctl is configured exactly as an operator would configure it: through its own variables and
each library's standard ones, never by patching code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from wesctl.simulated.sevenbridges import DEFAULT_APP, DEFAULT_PROJECT, SimulatedSevenBridges

SBG_TOKEN = "e2e-sevenbridges-token"
SBG_APP = DEFAULT_APP


@contextmanager
def sevenbridges_fake(**kwargs: object) -> Iterator[SimulatedSevenBridges]:
    with SimulatedSevenBridges(token=SBG_TOKEN, **kwargs) as fake:  # type: ignore[arg-type]
        yield fake


def sevenbridges_env(fake: SimulatedSevenBridges) -> dict[str, str]:
    return {
        "SEVENBRIDGES_API_TOKEN": SBG_TOKEN,
        "SEVENBRIDGES_API_ENDPOINT": fake.api_url,
        "SEVENBRIDGES_PROJECT": DEFAULT_PROJECT,
        "WESCTL_PROVIDER_TIMEOUT": "5",
        "WESCTL_RETRY_INITIAL_WAIT": "0.01",
        "WESCTL_RETRY_MAX_WAIT": "2",
        "WESCTL_SEVENBRIDGES_RATE": "1000",
    }


# --- HealthOmics -------------------------------------------------------------------------------

HO_WORKFLOW = "1234567"
HO_ROLE_ARN = "arn:aws:iam::123456789012:role/omics-runs"
HO_BUCKET = "wesctl-omics-test"  # created by the moto_url fixture


def healthomics_env(omics_url: str, moto_url: str, config_dir: str) -> dict[str, str]:
    """boto3's standard variables pointing at the fakes, plus the design's HealthOmics ones."""
    return {
        "AWS_CONFIG_FILE": f"{config_dir}/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": f"{config_dir}/aws-credentials",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_OMICS": omics_url,
        "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_ENDPOINT_URL_S3": moto_url,
        "AWS_ENDPOINT_URL_LOGS": moto_url,
        "AWS_ENDPOINT_URL_STS": moto_url,
        "AWS_HEALTHOMICS_WORKFLOW_ROLE_ARN": HO_ROLE_ARN,
        "AWS_HEALTHOMICS_OUTPUT_URI": f"s3://{HO_BUCKET}/out",
        "WESCTL_HEALTHOMICS_START_RATE": "1000",
        "WESCTL_HEALTHOMICS_API_RATE": "1000",
        "WESCTL_PROVIDER_TIMEOUT": "5",
        "WESCTL_RETRY_INITIAL_WAIT": "0.01",
        "WESCTL_RETRY_MAX_WAIT": "2",
    }
