"""AWS HealthOmics adapter: WES runs as HealthOmics workflow runs, through boto3's `omics` client.

Endpoint, TLS trust, host-prefix injection, botocore's own retries, profile and credentials all
come from boto3's standard configuration (`AWS_ENDPOINT_URL_OMICS`, `AWS_CA_BUNDLE`,
`AWS_DISABLE_HOST_PREFIX_INJECTION`, `AWS_MAX_ATTEMPTS`, `AWS_PROFILE`, ...). wesctl sets only
timeouts and its user agent, so pointing it at a proxy, a VPC endpoint or a fake needs no wesctl
setting. A Config object that leaves `inject_host_prefix` unset still lets the environment decide
it (botocore keeps the option "UNSET" and reads its config store).

A submission is idempotent through StartRun's `requestId` (the caller's stored idempotency key).
Every run is also named `wes-<run_id>` and tagged with the WES run id and the key, so an
interrupted submission is found again by name and tags even if HealthOmics has forgotten the token.

How the service's answers map to the three error classes (`classify_error` decides; the call site
names the run's own options a request carries):

    answer                                                     class
    throttling, 5xx, 408, connection errors, quota (402)       unavailable (quota: retried later)
    UnrecognizedClientException, InvalidClientTokenId,         misconfigured: boto3's credential
      InvalidAccessKeyId, InvalidToken, Invalid-                 chain (AWS_PROFILE, keys, role)
      SignatureException, SignatureDoesNotMatch,
      IncompleteSignatureException; no or partial
      credentials, a failed credential process or SSO login
    ExpiredTokenException, ExpiredToken                        misconfigured: renew credentials
    RequestExpired, RequestTimeTooSkewed                       misconfigured: the host's clock
    AccessDenied(Exception) on StartRun, the run using the     misconfigured: IAM of the caller,
      installation's role and output URI                         the role, the output bucket
    AccessDenied(Exception) on StartRun, the run carrying      rejected: that run
      its own role_arn or output_uri (differing from
      AWS_HEALTHOMICS_WORKFLOW_ROLE_ARN /
      AWS_HEALTHOMICS_OUTPUT_URI) or workflow_owner_id
    AccessDenied(Exception) on any other omics call            misconfigured: the caller's IAM
    AccessDenied on S3 reads of the installation's bucket      misconfigured; another bucket
                                                                 (a run's own): rejected
    not the service: an omics error naming no error code       misconfigured:
      (botocore falls back to the HTTP status, e.g. '404'),      AWS_ENDPOINT_URL_OMICS / region
      UnknownOperationException, MissingAuthentication-
      TokenException; a 2xx StartRun or GetRun answer with
      neither the expected field nor an AWS request id
    ResourceNotFound on GetRun, CancelRun, ListRunTasks        not found
    anything else the service refuses, invalid parameters      rejected

The credential codes come from the services' own error documentation; botocore 1.44.8 neither
retries nor refreshes credentials on any of them (none occurs in its source or retry tables).
AccessDenied cannot say which part of a StartRun was refused (the caller's omics:StartRun, its
iam:PassRole on the role, the role's trust or the output bucket), so a run's own option, the one
thing that differs from every other run, is taken as the likely culprit. Misconfigured errors are
never retried in process.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    SSOError,
    TokenRetrievalError,
)
from botocore.utils import parse_timestamp

from wesctl.config import Settings
from wesctl.domain import types as domain
from wesctl.domain.states import TERMINAL_STATES
from wesctl.providers import base
from wesctl.providers.adapter import NO_SCOPE, AdapterBase, Scope
from wesctl.providers.healthomics.mapping import (
    ID,
    NAME,
    STATUS_MAP,
    TAG_REQUEST_ID,
    TAG_RUN_ID,
    is_printable,
    map_status,
    normalise_outputs,
    own_options,
    reject,
    run_request,
    split_s3_uri,
    task_stream,
    to_status,
)
from wesctl.providers.healthomics.settings import SPEC
from wesctl.providers.mapping import naive_utc, run_name
from wesctl.providers.ratelimit import TokenBucket

if TYPE_CHECKING:
    from mypy_boto3_omics import OmicsClient
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)
T = TypeVar("T")

PAGE_SIZE = 100  # the most ListRuns / ListRunTasks return per call
# The statuses a run can still leave (the service model's RunStatus without the final ones), in
# lifecycle order. ListRuns filters by one status, so statuses() lists each: a run absent from
# all of them has finished or is gone, and only such runs need GetRun. Listed in this order, a
# run that moves on while the listings run is seen again later or not at all, never missed
# while it still runs. Both follow the status table (STATUS_MAP is in lifecycle order).
FINAL_STATUSES = frozenset(
    status for status, state in STATUS_MAP.items() if state is None or state in TERMINAL_STATES
)
LISTED_STATUSES = tuple(status for status in STATUS_MAP if status not in FINAL_STATUSES)
# statuses() reads large batches from one listing shared by every call of a pass, so chunk size
# hardly changes the number of calls.
STATUS_BATCH_SIZE = 1000
LISTING_TTL = 60.0  # seconds a listing serves callers outside a sync pass (cancel, retry)
# GetRun reads of runs absent from the listing (finished since the last pass) per pass: 100 s at
# the default 10 calls/s. Runs beyond it are left out of statuses()' answer for the next pass.
UNLISTED_READS_PER_PASS = 1000
CONNECT_TIMEOUT = 10  # seconds; a reachable endpoint accepts a connection well within this
THROTTLE_RETRY_AFTER = 1.0  # seconds; botocore's own base delay for throttling errors
QUOTA_RETRY_AFTER = 600.0  # seconds; a resource quota (stored runs) does not clear sooner

# Operations whose ResourceNotFound means "no such run" rather than a missing workflow or bucket.
RUN_OPERATIONS = frozenset({"GetRun", "CancelRun", "ListRunTasks"})
S3_OPERATIONS = frozenset({"GetObject", "ListObjectsV2"})
_THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "SlowDown"}
)
_TRANSIENT_CODES = frozenset(
    {
        "InternalServerException",
        "RequestTimeoutException",
        "ServiceUnavailableException",
        "InternalError",
        "RequestTimeout",
    }
)
_NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "NoSuchKey", "NoSuchBucket"})
_QUOTA_CODE = "ServiceQuotaExceededException"
OMICS_OPERATIONS = frozenset(
    {"StartRun", "GetRun", "ListRuns", "CancelRun", "ListRunTasks", "GetRunTask", "ListWorkflows"}
)
CREDENTIALS_FIX = (
    "configure boto3's credential chain: AWS_PROFILE, AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or an instance or task role"
)
EXPIRED_FIX = (
    "renew the temporary credentials boto3's chain finds (AWS_SESSION_TOKEN, an SSO login, an "
    "assumed role) or configure lasting ones (AWS_PROFILE, AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, an instance or task role)"
)
CLOCK_FIX = "set this host's clock right (NTP): AWS refuses requests signed minutes off"
ENDPOINT_FIX = (
    "set AWS_ENDPOINT_URL_OMICS to the HealthOmics endpoint of AWS_REGION, or unset it; check "
    "AWS_REGION"
)
START_DENIED_FIX = (
    "allow the caller omics:StartRun and iam:PassRole on AWS_HEALTHOMICS_WORKFLOW_ROLE_ARN, and "
    "that role to write to AWS_HEALTHOMICS_OUTPUT_URI"
)
S3_DENIED_FIX = (
    "allow the caller s3:GetObject and s3:ListBucket on the bucket of AWS_HEALTHOMICS_OUTPUT_URI"
)
_FIXES = {
    **dict.fromkeys(
        (
            "UnrecognizedClientException",  # JSON services: unknown access key or token
            "InvalidClientTokenId",  # query services (STS): unknown access key
            "InvalidAccessKeyId",  # S3
            "InvalidToken",  # S3: a malformed session token
            "InvalidSignatureException",  # JSON services: wrong secret key
            "SignatureDoesNotMatch",  # S3 and query services: wrong secret key
            "IncompleteSignatureException",
        ),
        CREDENTIALS_FIX,
    ),
    "ExpiredTokenException": EXPIRED_FIX,  # JSON services
    "ExpiredToken": EXPIRED_FIX,  # S3 and query services
    "RequestExpired": CLOCK_FIX,  # signed too long ago
    "RequestTimeTooSkewed": CLOCK_FIX,  # S3
}
_ACCESS_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied"})
# What an endpoint answers that routes to no HealthOmics operation.
_NO_OPERATION_CODES = frozenset(
    {"UnknownOperationException", "MissingAuthenticationTokenException"}
)
_CREDENTIAL_ERRORS = (
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    TokenRetrievalError,
    SSOError,
)


def error_code(exc: ClientError) -> tuple[str, int]:
    """Return the error code and HTTP status botocore parsed from an error response."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return code, status


def is_throttling(exc: Exception) -> bool:
    if not isinstance(exc, ClientError):
        return False
    code, status = error_code(exc)
    return code in _THROTTLING_CODES or status == 429


def classify_error(
    exc: Exception, operation: str, own_options: Sequence[str] = ()
) -> base.ProviderError:
    """Translate a botocore error into the provider error family by the table in the module
    docstring (the one place that decides).

    `own_options` names the run's own options the request carries (StartRun: role_arn,
    output_uri, workflow_owner_id that differ from the installation's; an S3 read: output_uri when
    the bucket is not the installation's); an access denial then rejects that run.
    """
    if isinstance(exc, ClientError):
        code, status = error_code(exc)
        message = str(exc.response.get("Error", {}).get("Message") or code or status)
        detail = f"{operation} failed: {code or status}: {message}"
        if is_throttling(exc):
            return base.ProviderUnavailable(NAME, detail, retry_after=THROTTLE_RETRY_AFTER)
        if code == _QUOTA_CODE:
            return base.ProviderUnavailable(
                NAME,
                f"{operation} refused: service quota exceeded ({message}); the run stays "
                "queued until runs are deleted or the quota is raised",
                retry_after=QUOTA_RETRY_AFTER,
            )
        if code in _TRANSIENT_CODES or status == 408 or status >= 500:
            return base.ProviderUnavailable(NAME, detail)
        if code in _FIXES:
            return base.ProviderMisconfigured(NAME, detail, _FIXES[code])
        if operation in OMICS_OPERATIONS and (code.isdigit() or code in _NO_OPERATION_CODES):
            return not_the_service(detail)
        if code in _ACCESS_DENIED_CODES:
            return _access_denied(operation, detail, own_options)
        if (code in _NOT_FOUND_CODES or status == 404) and operation in RUN_OPERATIONS:
            return base.ProviderRunNotFound(NAME, detail)
        return base.ProviderRejected(NAME, detail)
    if isinstance(exc, _CREDENTIAL_ERRORS):
        return base.ProviderMisconfigured(
            NAME,
            f"{operation} failed: {exc}; configure boto3's credential chain (AWS_PROFILE, "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, an instance or task role)",
            CREDENTIALS_FIX,
        )
    if isinstance(exc, ParamValidationError):
        return base.ProviderRejected(NAME, f"{operation} request is invalid: {exc}")
    # Connection, timeout and any other client-side trouble: keep the run and try again later.
    return base.ProviderUnavailable(NAME, f"{operation} failed: {exc}")


def not_the_service(detail: str) -> base.ProviderMisconfigured:
    """The endpoint answered, but not as HealthOmics does."""
    return base.ProviderMisconfigured(
        NAME, f"{detail} (the omics endpoint does not answer as HealthOmics)", ENDPOINT_FIX
    )


def _access_denied(operation: str, detail: str, own_options: Sequence[str]) -> base.ProviderError:
    if own_options:
        return base.ProviderRejected(
            NAME, f"{detail}; the run's own {' / '.join(own_options)} is the likely cause"
        )
    if operation == "StartRun":
        return base.ProviderMisconfigured(NAME, detail, START_DENIED_FIX)
    if operation in S3_OPERATIONS:
        return base.ProviderMisconfigured(NAME, detail, S3_DENIED_FIX)
    return base.ProviderMisconfigured(
        NAME, detail, f"allow the caller omics:{operation} in AWS_REGION's HealthOmics"
    )


def answered_by_aws(response: Mapping[str, Any]) -> bool:
    """Whether a parsed answer carries an AWS request id (every AWS service sends one)."""
    return bool(response.get("ResponseMetadata", {}).get("RequestId"))


def retry_now(exc: Exception, operation: str) -> bool:
    """Whether an in-process retry can help.

    Not for a quota refusal (it lasts far longer than a retry window), nor for a StartRun whose
    request may have reached the service (connection closed or read timeout after sending): that
    outcome is settled by the caller's `may_exist` resubmission, which looks for the run first.
    """
    if isinstance(exc, ClientError):
        return error_code(exc)[0] != _QUOTA_CODE
    return not (operation == "StartRun" and isinstance(exc, HTTPClientError))


@dataclass
class _Pass:
    """What statuses() learnt in one sync pass (outside one: for LISTING_TTL seconds)."""

    started: float
    lifetime: float
    direct_reads: int = 0  # GetRun reads made instead of starting a listing
    unlisted_reads: int = 0  # GetRun reads of runs absent from the listing
    # The listing of the runs still going, once started: id -> (status, startTime).
    listing: dict[str, tuple[str, Any]] | None = None
    remaining: list[str] = field(default_factory=lambda: list(LISTED_STATUSES))
    token: str | None = None  # where the listing of remaining[0] resumes
    pages: int = 0
    finished: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # GetRun, for details()
    changed: set[str] = field(default_factory=set)  # runs wesctl changed: their entry is stale


class HealthOmicsProvider(AdapterBase):
    """The HealthOmics adapter; build it with `build(settings)`."""

    name = NAME
    status_batch_size = STATUS_BATCH_SIZE
    sdk_errors = (ClientError, BotoCoreError)

    def __init__(
        self,
        settings: Settings,
        omics: OmicsClient,
        s3: S3Client,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.own = settings.provider(SPEC)
        super().__init__(settings, TokenBucket(self.own.api_rate), sleep=sleep)
        self.settings = settings
        self.omics = omics
        self.s3 = s3
        self.start_limiter = TokenBucket(self.own.start_rate, burst=1.0)
        self._clock = clock
        self._pass: _Pass | None = None
        self._listing_lock = threading.Lock()
        # ListRuns pages the last listing took: a pass reads up to this many ids by GetRun.
        self._listing_pages = len(LISTED_STATUSES)

    # --- Provider -----------------------------------------------------------------------
    def validate(self, spec: domain.RunSpec) -> None:
        run_request(spec, self.own, self.omics.meta.region_name)

    def submit(
        self, attempt: domain.Attempt, record_provider_id: base.RecordProviderId
    ) -> domain.Submission:
        spec, key, known = attempt.spec, attempt.key, attempt.known_provider_id
        if known is not None:  # adopted as it is, whatever the settings say now
            run = self._get_run(known)
            return self._adopted(known, run, key)
        request = run_request(spec, self.own, self.omics.meta.region_name)
        if len(key) > 128 or not is_printable(key):
            raise reject("the idempotency key must be 1-128 printable characters")
        request["requestId"] = key
        request["tags"][TAG_REQUEST_ID] = key
        if attempt.may_exist:
            found = self._find_run(request["name"], spec.run_id, key)
            if found is not None:
                provider_id, run = found
                return self._adopted(provider_id, run, key)
        response = self._call(
            "StartRun",
            partial(self.omics.start_run, **request),
            Scope(own_options=own_options(spec, self.own)),
        )
        provider_id = response.get("id")
        if not provider_id:
            detail = "StartRun answered without a run id"
            if not answered_by_aws(response):
                raise not_the_service(detail)
            # An unparseable 2xx body reaches us as {}: the run may exist, so recover by key.
            raise base.ProviderUnavailable(NAME, detail)
        raw = response.get("status", "PENDING")
        logger.info("healthomics run started run=%s provider_id=%s", spec.run_id, provider_id)
        return domain.Submission(
            provider_id=provider_id,
            status=domain.ProviderStatus(provider_id, raw, map_status(raw)),
            metadata={
                "arn": response.get("arn"),
                "uuid": response.get("uuid"),
                "runOutputUri": response.get("runOutputUri"),
                "requestId": key,
            },
        )

    def lookup(self, attempt: domain.Attempt) -> str | None:
        """Return the id of the run this submission started (the recorded id if HealthOmics has
        it, else the run named wes-<run_id> carrying the key's tag), starting nothing. None
        means HealthOmics answered that there is none."""
        spec, key, known = attempt.spec, attempt.key, attempt.known_provider_id
        if known is not None:
            try:
                self._get_run(known)
                return known
            except base.ProviderRunNotFound:
                logger.info("run=%s recorded run %s does not exist", spec.run_id, known)
        found = self._find_run(run_name(spec.run_id), spec.run_id, key)
        return found[0] if found is not None else None

    def statuses(self, provider_ids: Sequence[str]) -> Mapping[str, domain.ProviderStatus | None]:
        """Read statuses from the pass's listing of the runs still going, and GetRun only the
        runs absent from it (finished or gone), at most UNLISTED_READS_PER_PASS per pass; ids
        beyond that are left out of the answer. While a pass's GetRun reads stay within what
        the last listing cost, ids are read by GetRun instead of starting a listing. A final
        run's GetRun answer is kept for details(), which needs it anyway."""
        result: dict[str, domain.ProviderStatus | None] = {}
        wanted: list[str] = []
        for provider_id in dict.fromkeys(provider_ids):
            if ID.fullmatch(provider_id):
                wanted.append(provider_id)
            else:  # run ids are digits; anything else cannot exist
                result[provider_id] = None
        with self._listing_lock:
            current = self._current_pass()
            if current.listing is None and (
                current.direct_reads + len(wanted) <= self._listing_pages
            ):
                current.direct_reads += len(wanted)
                unlisted = wanted
            else:
                listing = self._listed(current, [p for p in wanted if p not in current.changed])
                unlisted = []
                for provider_id in wanted:
                    item = None if provider_id in current.changed else listing.get(provider_id)
                    if item is None:
                        unlisted.append(provider_id)
                    else:
                        status, started = item
                        result[provider_id] = to_status(
                            provider_id, {"status": status, "startTime": started}
                        )
                allowed = max(0, UNLISTED_READS_PER_PASS - current.unlisted_reads)
                unlisted = unlisted[:allowed]
                current.unlisted_reads += len(unlisted)
        for provider_id in unlisted:
            try:
                run = self._get_run(provider_id)
            except base.ProviderRunNotFound:
                result[provider_id] = None
                continue
            result[provider_id] = to_status(provider_id, run)
            if run.get("status") in FINAL_STATUSES:
                with self._listing_lock:
                    current.finished[provider_id] = run
        return result

    def new_pass(self) -> None:
        """A new sync pass must see fresh statuses, even in a long-lived process; its listing
        serves the whole pass (at most WESCTL_PASS_TIMEOUT)."""
        with self._listing_lock:
            self._pass = _Pass(started=self._clock(), lifetime=self.settings.pass_timeout)

    def details(self, provider_id: str) -> domain.RunDetails:
        with self._listing_lock:
            kept = self._pass.finished.pop(provider_id, None) if self._pass else None
        run = kept if kept is not None else self._get_run(provider_id)
        # Only a completed run has final outputs: a cancelled run saves none.
        outputs = self._outputs(run) if run.get("status") == "COMPLETED" else {}
        return domain.RunDetails(
            outputs=outputs,
            task_logs=self._task_logs(provider_id, run),
            status=to_status(provider_id, run),
        )

    def cancel(self, provider_id: str) -> None:
        try:
            self._call("CancelRun", partial(self.omics.cancel_run, id=provider_id))
        except base.ProviderRunNotFound:
            raise
        except base.ProviderRejected:
            # The error for cancelling a finished run is undocumented (the fake says Conflict).
            status = self._get_status(provider_id)
            if status is None or status.state not in TERMINAL_STATES:
                raise
            logger.info(
                "healthomics cancel skipped provider_id=%s status=%s",
                provider_id,
                status.raw_status,
            )
            return
        self._forget(provider_id)
        logger.info("healthomics run cancel requested provider_id=%s", provider_id)

    def close(self) -> None:
        self.omics.close()
        self.s3.close()

    # --- probe ----------------------------------------------------------------------------
    def probe(self) -> list[domain.ProbeResult]:
        """Check the run settings, the caller's identity (STS GetCallerIdentity) and omics access
        (ListWorkflows): one request each and no wesctl retries, so a broken setup is reported
        at once."""
        results = [self._probe_settings(), self._probe_identity()]
        if results[-1].ok:
            results.append(self._probe_omics())
        return results

    def _probe_settings(self) -> domain.ProbeResult:
        """The required settings, by the rule that decides whether the provider is configured."""
        name = f"{NAME} settings"
        missing = self.settings.missing(SPEC)
        if missing:
            variables = [field_.env for field_ in missing]
            return domain.ProbeResult(
                name,
                False,
                f"{' and '.join(variables)} {'is' if len(variables) == 1 else 'are'} not set",
                "; ".join(f"set {field_.env}={field_.example}" for field_ in missing),
            )
        return domain.ProbeResult(
            name, True, f"runs assume {self.own.role_arn} and write under {self.own.output_uri}"
        )

    def _probe_identity(self) -> domain.ProbeResult:
        name = f"{NAME} credentials"
        session = boto3.session.Session(region_name=self.omics.meta.region_name)
        sts = session.client("sts", config=client_config(self.settings))
        try:
            identity = self._attempt("GetCallerIdentity", sts.get_caller_identity)
        except base.ProviderUnavailable as exc:
            return domain.ProbeResult(
                name,
                False,
                exc.detail,
                "check the network path to AWS STS (AWS_ENDPOINT_URL_STS, proxy, firewall)",
            )
        except base.ProviderMisconfigured as exc:
            return domain.ProbeResult(name, False, exc.detail, exc.fix)
        except base.ProviderError as exc:
            return domain.ProbeResult(name, False, exc.detail, CREDENTIALS_FIX)
        finally:
            sts.close()
        return domain.ProbeResult(
            name, True, f"caller {identity.get('Arn')} (account {identity.get('Account')})"
        )

    def _probe_omics(self) -> domain.ProbeResult:
        name = f"{NAME} access"
        region = self.omics.meta.region_name
        try:
            self._attempt("ListWorkflows", partial(self.omics.list_workflows, maxResults=1))
        except base.ProviderError as exc:
            return domain.ProbeResult(
                name,
                False,
                exc.detail,
                "allow the caller the omics actions wesctl uses (omics:ListWorkflows, "
                f"omics:StartRun, ...) in {region}; check AWS_REGION and AWS_ENDPOINT_URL_OMICS",
            )
        return domain.ProbeResult(name, True, f"omics:ListWorkflows allowed in {region}")

    # --- runs -----------------------------------------------------------------------------
    def _get_run(self, provider_id: str) -> Mapping[str, Any]:
        run = self._call("GetRun", partial(self.omics.get_run, id=provider_id))
        if "status" not in run and not answered_by_aws(run):
            raise not_the_service("GetRun answered without a run status")
        return run

    def _get_status(self, provider_id: str) -> domain.ProviderStatus | None:
        try:
            return to_status(provider_id, self._get_run(provider_id))
        except base.ProviderRunNotFound:
            return None

    def _adopted(self, provider_id: str, run: Mapping[str, Any], key: str) -> domain.Submission:
        logger.info("healthomics run adopted provider_id=%s", provider_id)
        return domain.Submission(
            provider_id=provider_id,
            status=to_status(provider_id, run),
            adopted=True,
            metadata={
                "arn": run.get("arn"),
                "uuid": run.get("uuid"),
                "runOutputUri": run.get("runOutputUri"),
                "requestId": key,
            },
        )

    def _find_run(self, name: str, run_id: str, key: str) -> tuple[str, Mapping[str, Any]] | None:
        """Find the run an interrupted submission created: same name, same wesctl tags.

        Cheaper than resending StartRun (0.1 calls per second by default) and safe even if
        HealthOmics no longer remembers the requestId.
        """
        token: str | None = None
        while True:
            page = self._call(
                "ListRuns", partial(self.omics.list_runs, **_page(name=name, token=token))
            )
            for item in page.get("items", []):
                provider_id = item.get("id")
                if provider_id is None or item.get("name") != name:  # the filter may be a prefix
                    continue
                try:
                    run = self._get_run(provider_id)
                except base.ProviderRunNotFound:
                    continue
                tags = run.get("tags") or {}
                if tags.get(TAG_RUN_ID) == run_id and tags.get(TAG_REQUEST_ID) == key:
                    return provider_id, run
            token = page.get("nextToken")
            if not token:
                return None

    def _current_pass(self) -> _Pass:
        """The pass in progress, or a new one when it has outlived its lifetime (call it with
        the listing lock held)."""
        now = self._clock()
        if self._pass is None or now - self._pass.started > self._pass.lifetime:
            self._pass = _Pass(started=now, lifetime=LISTING_TTL)
        return self._pass

    def _listed(self, current: _Pass, wanted: Sequence[str]) -> Mapping[str, tuple[str, Any]]:
        """The pass's listing of the runs still going, paged on (status by status) only until
        every wanted id has been seen, and resumed by later calls: a pass pages through the
        account's running runs once. Call it with the listing lock held."""
        if current.listing is None:
            current.listing = {}
        listing = current.listing
        missing = {pid for pid in wanted if pid not in listing}
        while missing and current.remaining:
            status = current.remaining[0]
            arguments = _page(token=current.token, status=status)
            page = self._call("ListRuns", partial(self.omics.list_runs, **arguments))
            current.pages += 1
            for item in page.get("items", []):
                provider_id = item.get("id")
                if provider_id is not None:
                    # Only what to_status reads of a running run: the listing may hold many.
                    listed = sys.intern(str(item.get("status", status)))
                    listing[provider_id] = (listed, item.get("startTime"))
                    missing.discard(provider_id)
            current.token = page.get("nextToken")
            if not current.token:
                current.remaining.pop(0)
        done = not current.remaining  # a partial listing cost at least this much
        floor = len(LISTED_STATUSES) if done else self._listing_pages
        self._listing_pages = max(floor, current.pages)
        return listing

    def _forget(self, provider_id: str) -> None:
        """Read a run by GetRun for the rest of the pass once wesctl itself changed it."""
        with self._listing_lock:
            if self._pass is not None:
                self._pass.changed.add(provider_id)

    # --- outputs and task logs -------------------------------------------------------------
    def _outputs(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """Read the run's output summary (WDL, CWL); without one, list the `out/` prefix."""
        location = run.get("runOutputUri")
        if not location:
            return {}
        bucket, prefix = split_s3_uri(location)
        installation = self.own.output_uri
        ours = installation is not None and split_s3_uri(installation)[0] == bucket
        scope = NO_SCOPE if ours else Scope(own_options=("output_uri",))
        root = f"{prefix}/" if prefix else ""
        candidates = [f"{root}logs/outputs.json", f"{root}logs/output.json"]
        if run.get("uuid"):
            candidates.append(f"{root}{run['uuid']}/logs/outputs.json")
        for key in candidates:
            summary = self._read_summary(bucket, key, scope)
            if summary is not None:
                return normalise_outputs(summary)
        return self._list_outputs(bucket, f"{root}out/", scope)

    def _read_summary(self, bucket: str, key: str, scope: Scope) -> dict[str, Any] | None:
        def read() -> bytes | None:
            try:
                return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except ClientError as exc:
                if error_code(exc)[0] in ("NoSuchKey", "404"):
                    return None
                raise

        body = self._call("GetObject", read, scope)
        if body is None:
            return None
        try:
            summary = json.loads(body)
        except ValueError:
            summary = None
        if not isinstance(summary, dict):
            logger.warning(
                "healthomics output summary s3://%s/%s is not a JSON object", bucket, key
            )
            return None
        return summary

    def _list_outputs(self, bucket: str, prefix: str, scope: Scope) -> dict[str, Any]:
        """Group `out/<name>/...` objects into {name: [s3 URIs]}."""
        outputs: dict[str, list[str]] = {}
        token: str | None = None
        while True:
            arguments: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
            if token:
                arguments["ContinuationToken"] = token
            page = self._call("ListObjectsV2", partial(self.s3.list_objects_v2, **arguments), scope)
            for item in page.get("Contents", []):
                key = item.get("Key", "")
                name = key[len(prefix) :].split("/", 1)[0]
                if name and not key.endswith("/"):
                    outputs.setdefault(name, []).append(f"s3://{bucket}/{key}")
            token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
            if not token:
                return dict(outputs)

    def _task_logs(self, provider_id: str, run: Mapping[str, Any]) -> list[domain.TaskLog]:
        logs: list[domain.TaskLog] = []
        token: str | None = None
        while True:
            page = self._call(
                "ListRunTasks",
                partial(self.omics.list_run_tasks, id=provider_id, **_page(token=token)),
            )
            for item in page.get("items", []):
                task_id = str(item.get("taskId", ""))
                stream = (
                    None if run.get("logLevel") == "OFF" else task_stream(run, provider_id, task_id)
                )
                facts = (
                    ("instanceType", item.get("instanceType")),
                    ("cpus", item.get("cpus")),
                    ("memoryGiB", item.get("memory")),
                    ("gpus", item.get("gpus")),
                )
                logs.append(
                    domain.TaskLog(
                        name=str(item.get("name") or task_id),
                        task_id=task_id or None,
                        status=item.get("status"),
                        start_time=naive_utc(item.get("startTime")),
                        end_time=naive_utc(item.get("stopTime")),
                        stdout=stream,
                        stderr=stream,  # HealthOmics writes stdout and stderr to one stream
                        system_logs=[f"{key}={value}" for key, value in facts if value is not None],
                    )
                )
            token = page.get("nextToken")
            if not token:
                return logs

    # --- errors ---------------------------------------------------------------------------
    def _pace(self, operation: str) -> None:
        """StartRun passes its own (account quota) limiter too; S3 reads pass none."""
        if operation == "StartRun":
            self.start_limiter.acquire()
        if operation not in S3_OPERATIONS:
            self.limiter.acquire()

    def _classify(self, exc: Exception, operation: str, scope: Scope) -> base.ProviderError:
        """Classify by `classify_error`; back the throttled operation's limiter off."""
        if is_throttling(exc) and operation not in S3_OPERATIONS:
            limiter = self.start_limiter if operation == "StartRun" else self.limiter
            limiter.penalize(THROTTLE_RETRY_AFTER)
        return classify_error(exc, operation, scope.own_options)

    def _retry_now(self, exc: Exception, operation: str) -> bool:
        return retry_now(exc, operation)


def _page(*, token: str | None, **filters: str) -> dict[str, Any]:
    arguments: dict[str, Any] = {**filters, "maxResults": PAGE_SIZE}
    if token:
        arguments["startingToken"] = token
    return arguments


def client_config(settings: Settings) -> Config:
    """wesctl's only additions to boto3's standard client configuration: timeouts, user agent,
    and a connection pool as large as the worker pool (botocore keeps 10 and would open and
    drop a connection per call for the rest)."""
    return Config(
        connect_timeout=min(CONNECT_TIMEOUT, settings.provider_timeout),
        read_timeout=settings.provider_timeout,
        user_agent_extra="wesctl",
        max_pool_connections=max(10, settings.submit_workers),
    )


def build(
    settings: Settings, *, sleep: Callable[[float], None] = time.sleep
) -> HealthOmicsProvider:
    """Build the adapter from boto3's standard configuration plus wesctl's timeouts.

    With no region anywhere in boto3's chain (AWS_REGION, AWS_DEFAULT_REGION, the profile),
    `us-east-1` is used and said once in the log: the fallback of the WES API's own daemon,
    which wesctl replaces, so an installation configured for that daemon keeps working.
    `sleep` is the retry back-off's sleep (tests pass a no-op).
    """
    session = _session(settings.provider(SPEC).region or None)
    if session.region_name is None:
        logger.info(
            "no AWS region configured; using %s, as the original daemon did", FALLBACK_REGION
        )
        session = _session(FALLBACK_REGION)
    config = client_config(settings)
    omics = session.client("omics", config=config)
    s3 = session.client("s3", config=config)
    return HealthOmicsProvider(settings, omics, s3, sleep=sleep)


FALLBACK_REGION = "us-east-1"


def _session(region: str | None) -> boto3.session.Session:
    """A boto3 session whose clients parse timestamps with `parse_time`."""
    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_time)
    return boto3.session.Session(botocore_session=core, region_name=region)


def parse_time(value: Any) -> datetime:
    """botocore's timestamp parser, made fast for the ISO 8601 times the services send:
    botocore's own (dateutil's general parser) took most of the CPU of listing 100,000 runs."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    parsed: datetime = parse_timestamp(value)
    return parsed
