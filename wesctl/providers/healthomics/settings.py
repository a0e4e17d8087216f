"""HealthOmics settings: the role and output location of runs, the region, optional static
credentials, and wesctl's request rates. Everything else comes from boto3's own chain."""

from __future__ import annotations

import re
from dataclasses import dataclass

from wesctl.providers.spec import ProviderSpec
from wesctl.setting import (
    Secret,
    matching,
    optional,
    optional_text,
    positive_float,
    secret_setting,
    setting,
)

S3_URI = re.compile(r"s3://.+", re.DOTALL)
ROLE_ARN = re.compile(r"(?=arn:).*:role/.*", re.DOTALL)  # arn:..., with ":role/" in it


@dataclass(frozen=True)
class HealthOmicsSettings:
    access_key_id: str | None = setting(
        "AWS_ACCESS_KEY_ID",
        "",
        optional_text,
        "AWS access key id (or use any other source of boto3's credential chain)",
    )
    secret_access_key: Secret | None = secret_setting(  # noqa: RUF009 - a dataclasses.field
        "AWS_SECRET_ACCESS_KEY",
        "AWS secret access key (or any other source of boto3's credential chain)",
        credential="aws-secret-access-key",
    )
    region: str | None = setting(
        "AWS_REGION",
        "",
        optional_text,
        "AWS region of the HealthOmics workflows, e.g. us-east-1",
    )
    role_arn: str | None = setting(
        "AWS_HEALTHOMICS_WORKFLOW_ROLE_ARN",
        "",
        optional(
            matching(ROLE_ARN, "an IAM role ARN such as arn:aws:iam::123456789012:role/omics")
        ),
        "IAM service role HealthOmics runs assume",
        required_for="the IAM role its runs assume",
        example="arn:aws:iam::<account>:role/<name>",
    )
    output_uri: str | None = setting(
        "AWS_HEALTHOMICS_OUTPUT_URI",
        "",
        optional(matching(S3_URI, "an s3:// URI such as s3://bucket/wes-outputs")),
        "S3 URI under which HealthOmics writes run outputs",
        required_for="an s3:// URI for run outputs",
        example="s3://<bucket>/<prefix>",
    )
    start_rate: float = setting(
        "WESCTL_HEALTHOMICS_START_RATE",
        "0.1",
        positive_float,
        "StartRun calls per second per process (default is the documented account quota)",
    )
    api_rate: float = setting(
        "WESCTL_HEALTHOMICS_API_RATE",
        "10",
        positive_float,
        "Other HealthOmics calls per second per process (documented quota: 10)",
    )


SPEC = ProviderSpec(
    name="healthomics",
    settings=HealthOmicsSettings,
    adapter="wesctl.providers.healthomics.adapter:build",
    sdk_prefix="AWS_",
)
