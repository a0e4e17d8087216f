"""Seven Bridges (Velsera) adapter: one WES run is one platform task, driven through
sevenbridges-python.

The platform has no idempotency token, so a task carries a marker instead: its name is
`wes-<run_id>` and its description holds the line `wesctl-run-id=<run_id>` (plus the submission's
idempotency key). Submission creates a DRAFT (which costs nothing), records its id, and only then
runs it; an attempt that was interrupted is found again by a windowed task listing matched on the
marker. A draft canceled before it ran cannot be aborted; it is marked with the line
`wesctl-canceled=true` and from then on reported as CANCELED (raw status DRAFT) and never run.

Every request passes the `limiter` once. Transient failures are retried by the adapter base's
one retry policy; the client's own 300-second maintenance sleeper and urllib3's `Retry-After`
sleeps are switched off so a timer job cannot hang. Task JSON is read raw (`Resource.field`),
never through the client's lazy attributes, which would send unmetered GETs.

How the platform's answers map to the three error classes (`classify_error` decides; the call
site says whether the request was about the configured default project):

    answer                                                     class
    no HTTP answer, 408, 429, 5xx (even an HTML 5xx page)      unavailable, retried
    401, any request                                           misconfigured: the token
    not the API's answer: a non-JSON error body (an HTML 4xx   misconfigured:
      page, a wrong path on some web server), a non-JSON 2xx     SEVENBRIDGES_API_ENDPOINT
    403/404 on the default project itself (GET of it, or a     misconfigured:
      listing of its tasks)                                      SEVENBRIDGES_PROJECT
    403/404 creating, 403 running a task in the default        misconfigured if a GET of the
      project (the run names none)                               default project then answers
    403 on a task known by id (status, details, abort, edit)     403/404 too, else rejected
    403/404 in a project the run names itself (tag, engine     rejected: that run
      parameter)
    404 on a task known by id                                  not found
    any other 4xx, client-side validation                      rejected

The platform answers 404 ("does not exist or you do not have access") for a project, app or file
its user cannot see, and 403 for a permission missing on one it can see. A 403 on a task known
only by id cannot name the task's project, so the default project is asked: if the installation
can still use it, the task lies in a project a run named, or only that task is off limits, and the
run is blamed. Known limit: a token whose user may read the default project but lost its write or
execute permission is reported per run (each claimed run ends in SYSTEM_ERROR naming the 403);
`wesctl doctor` does not check permissions either. Misconfigured errors are never retried.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import sevenbridges
from sevenbridges.errors import NonJSONResponseError, SbgError
from sevenbridges.http.error_handlers import maintenance_sleeper

from wesctl.config import Settings
from wesctl.domain import types as domain
from wesctl.errors import ConfigError
from wesctl.providers import base
from wesctl.providers.adapter import NO_SCOPE, AdapterBase, GiveUp, Scope
from wesctl.providers.mapping import check_workflow, naive_utc, required_option
from wesctl.providers.ratelimit import TokenBucket
from wesctl.providers.sevenbridges.mapping import (
    APP_ID,
    CANCELED_MARKER,
    EPOCH,
    FINISHED,
    MAX_TASK_NAME,
    PROJECT_ID,
    PROVIDER,
    carries_marker,
    describe_errors,
    is_canceled_draft,
    is_uuid,
    normalise_outputs,
    task_description,
    task_inputs,
    task_logs,
    task_name,
    to_status,
)
from wesctl.providers.sevenbridges.settings import SPEC

logger = logging.getLogger(__name__)
T = TypeVar("T")

STATUS_BATCH_SIZE = 100  # platform limit of POST /bulk/tasks/get
LOOKUP_MARGIN = timedelta(hours=1)  # clock skew between the WES database and the platform
PAGE_SIZE = 100  # the platform's maximum
BACKOFF_FACTOR = 0.1  # urllib3's one transport retry; wesctl's retry policy does the rest
MAX_BODY_SHOWN = 200  # characters of a body that is not the API's, in messages
_PROBE_FIX = "check SEVENBRIDGES_API_ENDPOINT and the token; retry if the platform is unavailable"
PROJECT_FIX = (
    "check SEVENBRIDGES_PROJECT (owner/project) and that the token's user is a member of that "
    "project"
)
ENDPOINT_FIX = (
    "set SEVENBRIDGES_API_ENDPOINT to the platform's API URL, ending in /v2 "
    "(e.g. https://api.sbgenomics.com/v2)"
)
# Statuses after which the platform certainly did not store the request; only these make a
# repeated create safe without first looking for the task.
_REFUSED_STATUSES = frozenset({408, 429, 503})
_UNAVAILABLE_STATUSES = frozenset({408, 429})
INSTALLATION = Scope(installation=True)  # a request about the default project itself
_DENIED = frozenset({403, 404})  # how the platform refuses a project, app or task
_FORBIDDEN = frozenset({403})  # on a known task: 404 means the task is gone


def token_fix(endpoint: str | None) -> str:
    target = f" for {endpoint}" if endpoint else ""
    return (
        f"set a valid API token{target} in SEVENBRIDGES_API_TOKEN "
        "(or the systemd credential 'sevenbridges-api-token')"
    )


def classify_error(
    exc: Exception,
    operation: str,
    retry_after: float | None = None,
    secret: str | None = None,
    *,
    endpoint: str | None = None,
    about_default_project: bool = False,
) -> base.ProviderError:
    """Classify a client error by the table in the module docstring (the one place that decides).

    `about_default_project` says the request was about the configured default project itself.
    `exc` is an SbgError, or a ValueError: a 2xx body the client could not decode.
    `retry_after` is kept for a 429; `secret` (the token) is blanked out of the message.
    """
    if isinstance(exc, ValueError):
        return base.ProviderMisconfigured(
            PROVIDER,
            f"{operation} failed: {endpoint or 'the endpoint'} answered with a body that is not "
            "JSON, so it is not the Seven Bridges API",
            ENDPOINT_FIX,
        )
    raw_status = getattr(exc, "status", None)
    try:
        status = int(raw_status) if raw_status is not None else None
    except (TypeError, ValueError):
        status = None
    text = str(getattr(exc, "message", None) or type(exc).__name__)
    if isinstance(exc, NonJSONResponseError):
        text = " ".join(text.split())[:MAX_BODY_SHOWN]
    if secret:
        text = text.replace(secret, "********")
    message = f"{operation} failed: {text}"
    if status is not None and status > 0:  # the client's own validation errors have status -1
        message += f" (HTTP {status})"
    if status is None or status in _UNAVAILABLE_STATUSES or status >= 500:
        return base.ProviderUnavailable(
            PROVIDER, message, retry_after=retry_after if status == 429 else None
        )
    if isinstance(exc, NonJSONResponseError):
        return base.ProviderMisconfigured(
            PROVIDER,
            f"{operation} failed: {endpoint or 'the endpoint'} answered HTTP {status} with a body "
            f"that is not the Seven Bridges API's: {text}",
            ENDPOINT_FIX,
        )
    if status == 401:
        return base.ProviderMisconfigured(PROVIDER, message, token_fix(endpoint))
    if status in _DENIED and about_default_project:
        return base.ProviderMisconfigured(PROVIDER, message, PROJECT_FIX)
    if status == 404:
        return base.ProviderRunNotFound(PROVIDER, message)
    return base.ProviderRejected(PROVIDER, message)


@contextmanager
def _not_a_missing_run() -> Iterator[None]:
    """While creating or listing tasks a 404 names a missing project or app, not a missing run."""
    try:
        yield
    except base.ProviderRunNotFound as exc:
        raise base.ProviderRejected(PROVIDER, exc.detail) from exc.__cause__


class SevenBridgesProvider(AdapterBase):
    """The Provider for Seven Bridges; build it with `build(settings)`."""

    name = PROVIDER
    status_batch_size = STATUS_BATCH_SIZE
    sdk_errors = (SbgError, json.JSONDecodeError)  # the latter: a 2xx body that is not JSON

    def __init__(
        self, api: Any, settings: Settings, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        own = settings.provider(SPEC)
        super().__init__(settings, TokenBucket(own.rate), sleep=sleep)
        self._api = api
        self._endpoint = own.api_endpoint
        self._default_project = own.project
        self._quota_reset: float | None = None
        # Finished tasks as this pass's bulk get returned them, for details() (no second GET).
        self._finished: dict[str, Mapping[str, Any]] = {}
        api.session.hooks["response"].append(self._remember_quota_reset)

    # --- Provider -----------------------------------------------------------------------
    def validate(self, spec: domain.RunSpec) -> None:
        """Raise ProviderRejected naming the field when `spec` cannot become a task; no I/O."""
        check_workflow(
            spec,
            provider=PROVIDER,
            pattern=APP_ID,
            expected="a Seven Bridges app id (expected owner/project/app or "
            "owner/project/app/revision)",
        )
        self._project(spec)
        name = task_name(spec.run_id)
        if len(name) > MAX_TASK_NAME:
            raise base.ProviderRejected(
                PROVIDER,
                f"run id is too long: task name {name[:40]!r}... has {len(name)} characters, "
                f"the limit is {MAX_TASK_NAME}",
            )

    def submit(
        self, attempt: domain.Attempt, record_provider_id: base.RecordProviderId
    ) -> domain.Submission:
        """Start `spec` as exactly one task: adopt a known or marked task, else create a draft,
        record its id, then run it. Raise what `record_provider_id` raises without running."""
        spec, key, known = attempt.spec, attempt.key, attempt.known_provider_id
        self.validate(spec)
        project = self._project(spec)
        task: Any = None
        if known:
            task = self._get_task(known)
        elif attempt.may_exist:
            task = self._find_task(spec, project, key)
            if task is not None:
                record_provider_id(task.id)
        adopted = task is not None
        if task is None:
            task = self._create_draft(spec, project, key)
            record_provider_id(task.id)
        task = self._run_draft(task, project)
        logger.info(
            "submitted run=%s task=%s status=%s adopted=%s",
            spec.run_id,
            task.id,
            task.field("status"),
            adopted,
        )
        return domain.Submission(
            provider_id=task.id,
            status=to_status(task.field),
            adopted=adopted,
            metadata={
                "project": project,
                "app": task.field("app") or spec.workflow_url,  # with the revision used
                "task_name": task_name(spec.run_id),
            },
        )

    def lookup(self, attempt: domain.Attempt) -> str | None:
        """Return the id of the task this submission created (the recorded id if the platform
        has it, else the task carrying the run's and the key's marker), creating nothing. None
        means the platform answered that there is none."""
        spec, key, known = attempt.spec, attempt.key, attempt.known_provider_id
        self.validate(spec)
        if known:
            try:
                return str(self._get_task(known).id)
            except base.ProviderRunNotFound:
                logger.info("run=%s recorded task %s does not exist", spec.run_id, known)
        task = self._find_task(spec, self._project(spec), key)
        return str(task.id) if task is not None else None

    def statuses(self, provider_ids: Sequence[str]) -> dict[str, domain.ProviderStatus | None]:
        """Return every id's status (None where the platform has no such task), 100 per call."""
        result: dict[str, domain.ProviderStatus | None] = {}
        wanted: list[str] = []
        for provider_id in dict.fromkeys(provider_ids):
            if is_uuid(provider_id):
                wanted.append(provider_id)
            else:  # task ids are UUIDs; anything else cannot exist, so need not poison a batch
                result[provider_id] = None
        for start in range(0, len(wanted), STATUS_BATCH_SIZE):
            chunk = wanted[start : start + STATUS_BATCH_SIZE]
            records = self._call(
                "get task statuses",
                functools.partial(self._api.tasks.bulk_get, chunk, api=self._api),
            )
            if len(records) != len(chunk):
                raise base.ProviderUnavailable(
                    PROVIDER, f"bulk task get answered {len(records)} items for {len(chunk)} ids"
                )
            for provider_id, record in zip(chunk, records, strict=True):
                error = record.field("error")
                resource = record.field("resource")
                if isinstance(resource, Mapping):
                    result[provider_id] = to_status(resource.get)
                    if resource.get("status") in FINISHED:  # final: this record stays true
                        self._finished[provider_id] = resource
                    continue
                error = error if isinstance(error, Mapping) else {}
                if error.get("status") == 404:
                    result[provider_id] = None
                    continue
                refusal = SbgError(
                    message=error.get("message"), code=error.get("code"), status=error.get("status")
                )
                with self._access_checked(None):
                    raise classify_error(
                        refusal,
                        f"get task {provider_id}",
                        secret=self._api.token,
                        endpoint=self._endpoint,
                    ) from refusal
        return result

    def new_pass(self) -> None:
        """Forget the finished tasks of the last pass that details() was not asked about."""
        self._finished.clear()

    def details(self, provider_id: str) -> domain.RunDetails:
        """Return the task's outputs (File/Directory values with locations) and its jobs. A task
        this pass's bulk get saw finished is taken from that answer instead of fetched again."""
        record = self._finished.pop(provider_id, None)
        if record is not None:
            task = sevenbridges.Task(api=self._api, **record)
        else:
            task = self._get_task(provider_id)
        outputs = task.field("outputs")
        try:
            with self._access_checked(None):
                execution = self._call("get execution details", task.get_execution_details)
            jobs = execution.field("jobs")
        except base.ProviderRunNotFound:  # never ran, or details not kept: no logs, not an error
            jobs = []
        return domain.RunDetails(
            outputs=normalise_outputs(outputs, self._endpoint)
            if isinstance(outputs, Mapping)
            else {},
            task_logs=task_logs(jobs),
        )

    def cancel(self, provider_id: str) -> None:
        """Abort a queued or running task; a finished task is left alone, and a draft is marked
        canceled (drafts cannot be aborted, and a deleted task would read as vanished)."""
        task = self._get_task(provider_id)
        for last_pass in (False, True):
            status = task.field("status")
            if status in FINISHED or status == "ABORTING":
                logger.info("cancel task=%s: already %s", provider_id, status)
                return
            if is_canceled_draft(status, task.field("description")):
                return
            try:
                with self._access_checked(None):
                    if status == "DRAFT":
                        self._mark_canceled(task)
                    else:
                        self._call("abort task", task.abort)
                logger.info("cancel task=%s: was %s", provider_id, status)
                return
            except base.ProviderRunNotFound:
                raise
            except base.ProviderRejected:
                if last_pass:
                    raise
            # The task changed between our read and our request (it finished, or was run).
            task = self._get_task(provider_id)

    def probe(self) -> list[domain.ProbeResult]:
        """Check the token (GET /user), then the default project: one request each and no
        retries, so a broken setup is reported at once."""
        results = [self._probe_token()]
        if not self._default_project:
            results.append(
                domain.ProbeResult(
                    f"{PROVIDER} project",
                    False,
                    "SEVENBRIDGES_PROJECT is not set",
                    "set SEVENBRIDGES_PROJECT=<owner>/<project>, the project of runs whose tags "
                    "name none",
                )
            )
        elif results[0].ok:
            results.append(self._probe_project(self._default_project))
        return results

    def close(self) -> None:
        self._api.session.close()
        self._api.download_pool.shutdown(wait=False)
        self._api.upload_pool.shutdown(wait=False)

    # --- submission steps ---------------------------------------------------------------
    def _project(self, spec: domain.RunSpec) -> str:
        return required_option(
            spec,
            ("project", "sevenbridges_project"),
            self._default_project,
            provider=PROVIDER,
            missing="no project: give the run a 'project' tag or workflow engine parameter, "
            "or set SEVENBRIDGES_PROJECT",
            pattern=PROJECT_ID,
            invalid="project {} is not a Seven Bridges project id (owner/project)",
        )

    def _find_task(self, spec: domain.RunSpec, project: str, idempotency_key: str) -> Any | None:
        """Find the task an earlier attempt created for this run; keep one, delete extra drafts.

        A task that was run (or a canceled draft) wins over drafts; among equals the oldest.
        """
        with _not_a_missing_run():
            matches = self._marked_tasks(spec, project, idempotency_key)
        if not matches:
            return None
        matches.sort(key=lambda task: naive_utc(task.field("created_time")) or EPOCH)
        runnable = [
            task
            for task in matches
            if task.field("status") == "DRAFT"
            and not is_canceled_draft("DRAFT", task.field("description"))
        ]
        others = [task for task in matches if task not in runnable]
        keep = others[0] if others else runnable[0]
        if len(others) > 1:
            logger.warning(
                "run=%s has %d started tasks: %s; tracking %s",
                spec.run_id,
                len(others),
                ",".join(task.id for task in others),
                keep.id,
            )
        for extra in runnable:
            if extra is not keep:
                self._delete_duplicate(extra, spec.run_id)
        logger.info("found task=%s for run=%s", keep.id, spec.run_id)
        return keep

    def _marked_tasks(self, spec: domain.RunSpec, project: str, idempotency_key: str) -> list[Any]:
        """List the project's tasks created since the run was queued, less a margin (all of
        them when the queue time is unknown), newest first and every page, and return those
        carrying the run's marker; the API cannot filter by name or description."""
        created_from = None
        since = naive_utc(spec.queued_at)
        if since is not None:
            created_from = (since - LOOKUP_MARGIN).strftime("%Y-%m-%dT%H:%M:%S")
        scope = INSTALLATION if project == self._default_project else NO_SCOPE
        page = self._call(
            "list tasks",
            lambda: self._api.tasks.query(
                project=project,
                created_from=created_from,
                order_by="created_time",
                order="desc",
                limit=PAGE_SIZE,
                api=self._api,
            ),
            scope,
        )
        matches: list[Any] = []
        while True:
            matches.extend(
                task
                for task in page
                if carries_marker(
                    task.field("name"), task.field("description"), spec.run_id, idempotency_key
                )
            )
            if not any(str(link.field("rel")).lower() == "next" for link in page.links):
                break
            page = self._call("list tasks", page.next_page, scope)
        return matches

    def _delete_duplicate(self, task: Any, run_id: str) -> None:
        try:
            self._call("delete duplicate draft", task.delete)
        except base.ProviderError as exc:  # an extra draft costs nothing; the next lookup retries
            logger.warning(
                "could not delete duplicate draft task=%s run=%s: %s", task.id, run_id, exc
            )
        else:
            logger.info("deleted duplicate draft task=%s run=%s", task.id, run_id)

    def _create_draft(self, spec: domain.RunSpec, project: str, idempotency_key: str) -> Any:
        """Create the run's task as a DRAFT.

        A create is repeated only after an answer that proves the platform did not store it
        (408, 429, 503). After a transport failure or another 5xx the task may exist, so the
        error is raised at once (ProviderUnavailable, carried past the retries by GiveUp) and the
        caller's next attempt, with may_exist=True, finds the task by its marker instead of
        creating a twin.
        """

        def create() -> Any:
            try:
                with self._access_checked(project, _DENIED), _not_a_missing_run():
                    return self._attempt(
                        "create task",
                        lambda: self._api.tasks.create(
                            name=task_name(spec.run_id),
                            project=project,
                            app=spec.workflow_url,
                            inputs=task_inputs(spec.workflow_params),
                            description=task_description(spec.run_id, idempotency_key),
                            run=False,
                            api=self._api,
                        ),
                    )
            except base.ProviderUnavailable as exc:
                if getattr(exc.__cause__, "status", None) not in _REFUSED_STATUSES:
                    raise GiveUp(exc) from exc
                raise

        return self._retried(create)

    def _run_draft(self, task: Any, project: str) -> Any:
        """Run `task` if it is a runnable DRAFT; each retry re-reads it, so it runs once."""
        attempt = 0

        def reread() -> Any:
            return self._attempt("get task", lambda: self._api.tasks.get(task.id, api=self._api))

        def run() -> Any:
            nonlocal task, attempt
            attempt += 1
            if attempt > 1:
                task = reread()
            status = task.field("status")
            if status != "DRAFT" or is_canceled_draft(status, task.field("description")):
                return task
            with self._access_checked(project):
                try:
                    task = self._attempt("run task", task.run)
                except base.ProviderRejected:
                    # An earlier run request whose answer never came may have been processed
                    # after the re-read: the platform then refuses this one (only drafts run).
                    started = reread()
                    if started.field("status") == "DRAFT":
                        raise
                    return started
            errors = task.field("errors")
            if task.field("status") == "DRAFT" and errors:
                raise base.ProviderRejected(
                    PROVIDER, f"task {task.id} cannot run: {describe_errors(errors)}"
                )
            return task

        return self._retried(run)

    def _mark_canceled(self, task: Any) -> None:
        """Add the canceled marker to a draft's description (PATCH; drafts only)."""
        marked = "\n".join(filter(None, [task.field("description"), CANCELED_MARKER]))

        def save() -> Any:
            task.description = marked
            return task.save()

        self._call("cancel draft task", save)

    def _probe_token(self) -> domain.ProbeResult:
        name = f"{PROVIDER} token"
        try:
            user = self._attempt("get user", lambda: self._api.users.me(api=self._api))
        except base.ProviderMisconfigured as exc:
            if getattr(exc.__cause__, "status", None) == 401:
                detail = "SEVENBRIDGES_API_TOKEN was rejected (401)"
                return domain.ProbeResult(name, False, detail, exc.fix)
            return domain.ProbeResult(name, False, exc.detail, exc.fix)
        except base.ProviderError as exc:
            if getattr(exc.__cause__, "status", None) is None:  # no HTTP answer at all
                return domain.ProbeResult(
                    name,
                    False,
                    f"cannot reach {self._endpoint}: {exc.detail}",
                    "check SEVENBRIDGES_API_ENDPOINT and the network path to it (DNS, proxy, "
                    "firewall)",
                )
            return domain.ProbeResult(name, False, exc.detail, _PROBE_FIX)
        return domain.ProbeResult(
            name, True, f"accepted by {self._endpoint} (user {user.field('username')})"
        )

    def _probe_project(self, project: str) -> domain.ProbeResult:
        name = f"{PROVIDER} project"
        try:
            self._attempt(
                "get project",
                lambda: self._api.projects.get(id=project, api=self._api),
                INSTALLATION,
            )
        except base.ProviderMisconfigured as exc:
            if getattr(exc.__cause__, "status", None) in _DENIED:
                return domain.ProbeResult(
                    name, False, f"project {project} not found or not accessible", exc.fix
                )
            return domain.ProbeResult(name, False, exc.detail, exc.fix)
        except base.ProviderError as exc:
            return domain.ProbeResult(name, False, exc.detail, _PROBE_FIX)
        return domain.ProbeResult(name, True, f"project {project} is accessible")

    def _get_task(self, provider_id: str) -> Any:
        with self._access_checked(None):
            return self._call("get task", lambda: self._api.tasks.get(provider_id, api=self._api))

    # --- errors ------------------------------------------------------------------------
    def _classify(self, exc: Exception, operation: str, scope: Scope) -> base.ProviderError:
        """Classify by `classify_error`; back off the limiter until the quota resets on 429."""
        retry_after = None
        if isinstance(exc, SbgError) and exc.status == 429:
            retry_after = self._seconds_to_quota_reset()
            self.limiter.penalize(retry_after if retry_after is not None else 1.0)
        return classify_error(
            exc,
            operation,
            retry_after,
            secret=self._api.token,
            endpoint=self._endpoint,
            about_default_project=scope.installation,
        )

    @contextmanager
    def _access_checked(
        self, project: str | None, statuses: frozenset[int] = _FORBIDDEN
    ) -> Iterator[None]:
        """Blame the installation for a refusal (`statuses`) of a request in the default project
        (`project`; None for a task known only by id) when the default project itself is not
        accessible: one GET of it decides, on this error path only. Otherwise the run is
        blamed, as the refusal says."""
        try:
            yield
        except base.ProviderRejected as exc:
            default = self._default_project
            status = getattr(exc.__cause__, "status", None)
            if status not in statuses or not default or project not in (None, default):
                raise
            try:
                self._attempt(
                    "get project",
                    lambda: self._api.projects.get(id=default, api=self._api),
                    INSTALLATION,
                )
            except (base.ProviderMisconfigured, base.ProviderUnavailable):
                raise  # the installation's, or undecided for now
            except base.ProviderRejected:
                pass
            raise

    def _remember_quota_reset(self, response: Any, *args: Any, **kwargs: Any) -> None:
        """requests response hook: note when a throttled quota refills (X-RateLimit-Reset)."""
        if response.status_code == 429:
            try:
                self._quota_reset = float(response.headers["X-RateLimit-Reset"])
            except (KeyError, TypeError, ValueError):
                self._quota_reset = None

    def _seconds_to_quota_reset(self) -> float | None:
        if self._quota_reset is None:
            return None
        return min(max(0.0, self._quota_reset - time.time()), float(self._max_wait))


def build(
    settings: Settings, *, sleep: Callable[[float], None] = time.sleep
) -> SevenBridgesProvider:
    """Build the adapter from `settings`; raise ConfigError if the API token is missing."""
    own = settings.provider(SPEC)
    token = own.api_token
    if token is None:
        raise ConfigError(settings.provider_problems((PROVIDER,)))
    endpoint = own.api_endpoint
    api = sevenbridges.Api(
        url=endpoint,
        token=token.get(),
        timeout=settings.provider_timeout,
        retry_count=1,
        backoff_factor=BACKOFF_FACTOR,
        # the client refuses plain http unless debug; config allows http only for loopback hosts
        debug=urlsplit(endpoint).scheme == "http",
    )
    api.remove_error_handler(maintenance_sleeper)  # it sleeps 300 s per 503 with code 0
    for adapter in api.session.adapters.values():
        # urllib3 would honour a Retry-After of up to six hours on GETs
        adapter.max_retries.respect_retry_after_header = False
    return SevenBridgesProvider(api, settings, sleep=sleep)
