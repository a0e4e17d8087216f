"""Arvados adapter: one WES run is one container request, driven through arvados-python-client.

Arvados has no idempotency key and the SDK may send a create twice (httplib2 re-sends a request
whose answer was lost), so a submission creates the request `Uncommitted` (a draft never runs)
with the WES run id and the submission key in its `properties`, records its uuid, marks any twin
draft of the same submission `wesctl_duplicate_of` (never adopted, never committed), and only then
commits it (`state: Committed`, `priority`). An interrupted submission is found again by
`properties` filters. Cancel sets `priority: 0`; a draft that never ran is left Uncommitted and
marked `wesctl_canceled`.

The SDK is imported with this module (only when a command builds the adapter), and its client is
made on first use (that fetches the discovery document and the cluster config). Host and token are
wesctl's settings (which take them from the SDK's `settings.conf` when nothing else sets them);
the SDK's other settings are its own (`settings.conf`, `ARVADOS_API_HOST_INSECURE`,
`SSL_CERT_FILE`). Its retries are off (`num_retries=0`): transient
failures are retried by the adapter base's one policy, bounded in time. Every request passes the
`limiter` once. Errors are classified at the base's one entry (`_classify`) by `mapping.classify`
(table there).
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import arvados  # type: ignore[import-untyped]
import arvados.collection  # type: ignore[import-untyped]
import arvados.errors  # type: ignore[import-untyped]
from googleapiclient.errors import HttpError  # type: ignore[import-untyped]
from httplib2 import HttpLib2Error  # type: ignore[import-untyped]

from wesctl.config import Settings
from wesctl.domain import types as domain
from wesctl.errors import ConfigError
from wesctl.providers import base
from wesctl.providers.adapter import NO_SCOPE, AdapterBase, GiveUp, Scope
from wesctl.providers.arvados.mapping import (
    CANCELED_PROPERTY,
    CONTAINER_FIELDS,
    CWL_OUTPUT,
    DUPLICATE_PROPERTY,
    PROVIDER,
    REQUEST_FIELDS,
    REQUEST_UUID,
    RUN_ID_PROPERTY,
    check_spec,
    choose_adopted,
    classify,
    is_canceled_draft,
    is_duplicate,
    is_live_draft,
    manifest_files,
    marker_filters,
    outputs_from_cwl,
    outputs_from_files,
    properties_of,
    request_body,
    run_options,
    task_log,
    to_status,
)
from wesctl.providers.arvados.settings import SPEC
from wesctl.providers.ratelimit import TokenBucket

logger = logging.getLogger(__name__)

STATUS_BATCH_SIZE = 1000  # the API's largest page
# Statuses after which the server certainly did not store a create.
_REFUSED_STATUSES = frozenset({408, 429, 503})

# Requests on a container request known by uuid: there a 404 means the run is gone.
_KNOWN_REQUEST = frozenset(
    {
        "get container request",
        "commit container request",
        "mark container request",
        "cancel container request",
    }
)
INSTALLATION = Scope(installation=True)  # a request about the configured project itself

Call = Callable[[Any], Any]  # api client -> request object with .execute()


def http_status(exc: BaseException | None) -> int | None:
    """The HTTP status of an SDK error (None when no HTTP answer came)."""
    if not isinstance(exc, HttpError):
        return None
    status = int(exc.resp.status)
    if status == 545:  # the SDK's stand-in for a retryable 4xx
        status = int(exc.resp.get("status", status))
    return status


class ArvadosProvider(AdapterBase):
    """The Provider for Arvados; build it with `build(settings)`."""

    name = PROVIDER
    status_batch_size = STATUS_BATCH_SIZE
    # ssl's certificate error is an OSError and a ValueError: _classify looks at it first
    sdk_errors = (
        HttpError,
        arvados.errors.KeepRequestError,
        OSError,
        HttpLib2Error,
        TimeoutError,
        ValueError,
    )

    def __init__(
        self,
        settings: Settings,
        connect: Callable[[], Any],
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        own = settings.provider(SPEC)
        super().__init__(settings, TokenBucket(own.rate), sleep=sleep)
        self._connect = connect
        self._clients: list[Any] = []  # every client made, for close()
        self._idle: list[Any] = []  # clients no request is using now
        self._clients_lock = threading.Lock()
        self._keep_web_url: str | None = None
        self._project = own.project_uuid
        self._secret = own.api_token.get() if own.api_token else None
        # Final requests (with their containers) this pass's listing returned, for details().
        self._finished: dict[str, tuple[Mapping[str, Any], Mapping[str, Any] | None]] = {}

    # --- Provider -------------------------------------------------------------------------
    def validate(self, spec: domain.RunSpec) -> None:
        """Raise ProviderRejected naming the field when `spec` cannot be submitted; no I/O."""
        check_spec(spec)
        run_options(spec, self._project)

    def submit(
        self, attempt: domain.Attempt, record_provider_id: base.RecordProviderId
    ) -> domain.Submission:
        """Start `spec` as exactly one committed container request: adopt the recorded or a
        marked one, else create a draft, record its uuid, then commit it."""
        spec, key, known = attempt.spec, attempt.key, attempt.known_provider_id
        self.validate(spec)
        options = run_options(spec, self._project)
        scope = INSTALLATION if options.project == self._project else NO_SCOPE
        request: Mapping[str, Any] | None = None
        if known:
            request = self._get_request(known, missing_ok=True)
            if request is not None and not _ours(request, spec.run_id):
                logger.warning(
                    "run=%s recorded request %s is not this run's; looking for its own",
                    spec.run_id,
                    known,
                )
                request = None
        if request is None and (attempt.may_exist or known):
            request = self._find(spec.run_id, key)
            if request is not None:
                record_provider_id(str(request["uuid"]))
        adopted = request is not None
        if request is None:
            workflow = self._retry(
                "get workflow",
                lambda api: api.workflows().get(
                    uuid=spec.workflow_url, select=["uuid", "name", "definition"]
                ),
            )
            body = request_body(spec, key, workflow, options)
            request = self._create(body, scope)
            record_provider_id(str(request["uuid"]))
        if is_live_draft(request):
            self._discard_twins(request, spec.run_id, key)
            request = self._commit(request, options.priority, scope)
        container = None
        if adopted and request.get("container_uuid"):
            container = self._get_container(str(request["container_uuid"]))
        status = to_status(request, container)
        logger.info(
            "submitted run=%s request=%s status=%s adopted=%s",
            spec.run_id,
            request["uuid"],
            status.raw_status,
            adopted,
        )
        return domain.Submission(
            provider_id=str(request["uuid"]),
            status=status,
            adopted=adopted,
            metadata={
                "project": options.project,
                "workflow": spec.workflow_url,
                "request_name": request.get("name"),
            },
        )

    def lookup(self, attempt: domain.Attempt) -> str | None:
        """Return the uuid of the request this submission created (the recorded one if it
        exists, else the one its properties mark), creating nothing; None when there is none."""
        spec, key, known = attempt.spec, attempt.key, attempt.known_provider_id
        self.validate(spec)
        if known:
            request = self._get_request(known, missing_ok=True)
            if request is not None and not is_duplicate(request):
                return str(request["uuid"])
        found = self._find(spec.run_id, key)
        return str(found["uuid"]) if found is not None else None

    def statuses(self, provider_ids: Sequence[str]) -> dict[str, domain.ProviderStatus | None]:
        """Return each request's status: one list of requests and one of their containers per
        1000 uuids, only the fields the mapping reads."""
        result: dict[str, domain.ProviderStatus | None] = {}
        wanted: list[str] = []
        for provider_id in dict.fromkeys(provider_ids):
            if REQUEST_UUID.fullmatch(provider_id):
                wanted.append(provider_id)
            else:  # cannot exist, so it need not poison a batch
                result[provider_id] = None
        for start in range(0, len(wanted), STATUS_BATCH_SIZE):
            chunk = wanted[start : start + STATUS_BATCH_SIZE]
            requests = self._by_uuid("container_requests", chunk, REQUEST_FIELDS)
            container_uuids = sorted(
                {str(r["container_uuid"]) for r in requests.values() if r.get("container_uuid")}
            )
            containers: dict[str, Mapping[str, Any]] = {}
            if container_uuids:
                containers = self._by_uuid("containers", container_uuids, CONTAINER_FIELDS)
            for provider_id in chunk:
                request = requests.get(provider_id)
                if request is None:
                    result[provider_id] = None
                    continue
                container = containers.get(str(request.get("container_uuid")))
                result[provider_id] = to_status(request, container)
                if request.get("state") == "Final":
                    self._finished[provider_id] = (request, container)
        return result

    def new_pass(self) -> None:
        """Forget the finished requests of the last pass that details() was not asked about."""
        self._finished.clear()

    def details(self, provider_id: str) -> domain.RunDetails:
        """Return outputs (cwl.output.json of the output collection, else its files) and task
        logs (the runner's and each workflow step's, with log locations, exit codes, times)."""
        cached = self._finished.pop(provider_id, None)
        if cached is not None:
            request, container = cached
        else:
            found = self._get_request(provider_id)
            assert found is not None
            request = found
            container = (
                self._get_container(str(request["container_uuid"]))
                if request.get("container_uuid")
                else None
            )
        outputs: dict[str, Any] = {}
        output_uuid = request.get("output_uuid")
        if isinstance(output_uuid, str) and output_uuid:
            collection = self._get_collection(output_uuid)
            files = manifest_files(collection.get("manifest_text"))
            if any(path == CWL_OUTPUT for path, _ in files):
                cwl_output = self._read_json(collection, CWL_OUTPUT)
                outputs = outputs_from_cwl(cwl_output, output_uuid, self._keep_web_url)
            else:
                outputs = outputs_from_files(files, output_uuid, self._keep_web_url)
        logs = [self._task_log(request, container)]
        if container is not None:
            logs.extend(self._step_logs(str(container["uuid"])))
        return domain.RunDetails(
            outputs=outputs, task_logs=logs, status=to_status(request, container)
        )

    def cancel(self, provider_id: str) -> None:
        """Set the request's priority to 0; a Final request is left alone, and a draft is marked
        canceled (left Uncommitted, so it never runs and is never adopted as live)."""
        request = self._get_request(provider_id)
        assert request is not None
        state = request.get("state")
        if state == "Final" or is_canceled_draft(request) or is_duplicate(request):
            logger.info("cancel request=%s: already %s", provider_id, state)
            return
        if state == "Uncommitted":
            self._mark(request, {CANCELED_PROPERTY: True})
            logger.info("cancel request=%s: draft marked canceled", provider_id)
            return
        if request.get("priority") != 0:
            self._retry(
                "cancel container request",
                lambda api: api.container_requests().update(
                    uuid=provider_id,
                    body={"container_request": {"priority": 0}},
                    select=list(REQUEST_FIELDS),
                ),
            )
        logger.info("cancel request=%s: priority set to 0", provider_id)

    def probe(self) -> list[domain.ProbeResult]:
        """Check the token (users/current), then the project (groups get, can_write): one
        request each and no retries, so a broken setup is reported at once."""
        token = f"{PROVIDER} token"
        try:
            user = self._once("get current user", lambda api: api.users().current())
        except base.ProviderError as exc:
            fix = exc.fix if isinstance(exc, base.ProviderMisconfigured) else "retry later"
            detail = exc.detail
            if http_status(exc.__cause__) == 401:
                detail = "ARVADOS_API_TOKEN was rejected (401)"
            results = [domain.ProbeResult(token, False, detail, fix)]
        else:
            results = [domain.ProbeResult(token, True, f"accepted (user {user.get('uuid')})")]
        name = f"{PROVIDER} project"
        if not self._project:
            results.append(
                domain.ProbeResult(name, False, "ARVADOS_PROJECT_UUID is not set", "set it")
            )
            return results
        if not results[0].ok:
            return results
        project = self._project
        try:
            group = self._once(
                "get project", lambda api: api.groups().get(uuid=project), INSTALLATION
            )
        except base.ProviderError as exc:
            fix = exc.fix if isinstance(exc, base.ProviderMisconfigured) else "retry later"
            results.append(domain.ProbeResult(name, False, exc.detail, fix))
            return results
        if group.get("can_write") is False:
            results.append(
                domain.ProbeResult(
                    name,
                    False,
                    f"project {project} is readable but not writable by the token's user",
                    "give the user write permission on the project, or choose another one",
                )
            )
        else:
            results.append(domain.ProbeResult(name, True, f"project {project} is accessible"))
        return results

    def close(self) -> None:
        """Close every thread's connections (making no client to do so)."""
        with self._clients_lock:
            clients, self._clients, self._idle = self._clients, [], []
        for api in clients:
            api.close_connections()

    # --- submission steps -----------------------------------------------------------------
    def _create(self, body: Mapping[str, Any], scope: Scope) -> Mapping[str, Any]:
        """Create the draft. A create is repeated only after an answer proving the server did
        not store it (408, 429, 503); after any other failure the draft may exist, so the error
        is raised and the next attempt (may_exist) finds it by its properties."""

        def create() -> Mapping[str, Any]:
            try:
                created: Mapping[str, Any] = self._once(
                    "create container request",
                    lambda api: api.container_requests().create(
                        body={"container_request": dict(body)}, select=list(REQUEST_FIELDS)
                    ),
                    scope,
                )
            except base.ProviderUnavailable as exc:
                if http_status(exc.__cause__) not in _REFUSED_STATUSES:
                    raise GiveUp(exc) from exc
                raise
            return created

        return self._retried(create)

    def _commit(self, request: Mapping[str, Any], priority: int, scope: Scope) -> Mapping[str, Any]:
        """Commit a draft; a retry re-reads it first, so it is committed once."""
        uuid = str(request["uuid"])
        attempt = 0

        def commit() -> Mapping[str, Any]:
            nonlocal attempt
            attempt += 1
            current = request
            if attempt > 1:
                found = self._get_request(uuid)
                assert found is not None
                current = found
                if not is_live_draft(current):
                    return current
            committed: Mapping[str, Any] = self._once(
                "commit container request",
                lambda api: api.container_requests().update(
                    uuid=uuid,
                    body={"container_request": {"state": "Committed", "priority": priority}},
                    select=list(REQUEST_FIELDS),
                ),
                scope,
            )
            return committed

        return self._retried(commit)

    def _find(self, run_id: str, key: str) -> Mapping[str, Any] | None:
        """The request an earlier attempt of this submission created, found by properties;
        other live drafts of it are marked duplicates so nothing ever commits them."""
        matches = self._list(
            "find container requests",
            "container_requests",
            marker_filters(run_id, key),
            REQUEST_FIELDS,
            order=["created_at asc", "uuid asc"],
        )
        keep = choose_adopted(matches)
        if keep is None:
            return None
        for other in matches:
            if other["uuid"] != keep["uuid"] and is_live_draft(other):
                self._mark(other, {DUPLICATE_PROPERTY: keep["uuid"]})
        logger.info("found request=%s for run=%s", keep["uuid"], run_id)
        return keep

    def _discard_twins(self, request: Mapping[str, Any], run_id: str, key: str) -> None:
        """Mark every other live draft of this submission (a create the SDK re-sent) as a
        duplicate of `request` before it is committed."""
        drafts = self._list(
            "find duplicate drafts",
            "container_requests",
            [*marker_filters(run_id, key), ["state", "=", "Uncommitted"]],
            REQUEST_FIELDS,
        )
        for other in drafts:
            if other["uuid"] != request["uuid"] and is_live_draft(other):
                self._mark(other, {DUPLICATE_PROPERTY: request["uuid"]})

    def _mark(self, request: Mapping[str, Any], marks: Mapping[str, Any]) -> None:
        uuid = str(request["uuid"])
        properties = {**properties_of(request), **marks}
        self._retry(
            "mark container request",
            lambda api: api.container_requests().update(
                uuid=uuid, body={"container_request": {"properties": properties}}, select=["uuid"]
            ),
        )
        logger.info("marked request=%s %s", uuid, ",".join(marks))

    # --- reads ------------------------------------------------------------------------------
    def _get_request(self, uuid: str, *, missing_ok: bool = False) -> Mapping[str, Any] | None:
        try:
            found: Mapping[str, Any] = self._retry(
                "get container request",
                lambda api: api.container_requests().get(uuid=uuid, select=list(REQUEST_FIELDS)),
            )
        except base.ProviderRunNotFound:
            if missing_ok:
                return None
            raise
        return found

    def _get_container(self, uuid: str) -> Mapping[str, Any]:
        found: Mapping[str, Any] = self._retry(
            "get container",
            lambda api: api.containers().get(uuid=uuid, select=list(CONTAINER_FIELDS)),
        )
        return found

    def _get_collection(self, uuid: str) -> Mapping[str, Any]:
        """A collection; one that is gone (trashed after its output_ttl) reads as empty."""
        try:
            found: Mapping[str, Any] = self._retry(
                "get collection",
                lambda api: api.collections().get(
                    uuid=uuid, select=["uuid", "portable_data_hash", "manifest_text"]
                ),
            )
        except base.ProviderRejected as exc:
            if http_status(exc.__cause__) != 404:
                raise
            logger.warning("collection %s is gone; reading it as empty", uuid)
            return {"uuid": uuid, "manifest_text": ""}
        return found

    def _by_uuid(
        self, resource: str, uuids: Sequence[str], select: Sequence[str]
    ) -> dict[str, Mapping[str, Any]]:
        """The records of `resource` with these uuids, by uuid (in as few list calls as can)."""
        operation = f"list {resource.replace('_', ' ')}"
        found = self._list(
            operation, resource, [["uuid", "in", list(uuids)]], select, expected=len(uuids)
        )
        return {str(item["uuid"]): item for item in found}

    def _list(
        self,
        operation: str,
        resource: str,
        filters: list[list[Any]],
        select: Sequence[str],
        *,
        order: Sequence[str] | None = None,
        expected: int | None = None,
    ) -> list[Mapping[str, Any]]:
        """Every matching item, 1000 per call; a server that answers fewer per page than asked
        (its own limit) is paged with offsets."""
        items: list[Mapping[str, Any]] = []
        while True:

            def page_call(api: Any, offset: int = len(items)) -> Any:
                return getattr(api, resource)().list(
                    filters=filters,
                    select=list(select),
                    order=list(order or ["created_at asc", "uuid asc"]),
                    limit=STATUS_BATCH_SIZE,
                    offset=offset,
                    count="none",
                )

            page = self._retry(operation, page_call)
            batch = page.get("items") if isinstance(page, Mapping) else None
            if not isinstance(batch, list):
                raise base.ProviderUnavailable(PROVIDER, f"{operation}: answer without items")
            items.extend(batch)
            limit = page.get("limit")
            full = isinstance(limit, int) and len(batch) >= limit > 0
            if not batch or not full or (expected is not None and len(items) >= expected):
                return items

    def _read_json(self, collection: Mapping[str, Any], path: str) -> Mapping[str, Any]:
        """Read a small JSON file of a collection through Keep (the SDK's CollectionReader)."""
        text = collection.get("manifest_text")

        def read() -> str:
            with self._client() as api:
                reader = arvados.collection.CollectionReader(text, api_client=api)
                with reader.open(path, "r") as handle:
                    content: str = handle.read()
            return content

        content = self._attempt("read " + path, read)
        try:
            value = json.loads(content)
        except ValueError:
            value = None
        if not isinstance(value, Mapping):
            logger.warning("%s of collection %s is not a JSON object", path, collection["uuid"])
            return {}
        return value

    def _task_log(self, request: Mapping[str, Any], container: Mapping[str, Any] | None) -> Any:
        log_uuid = request.get("log_uuid") or (container.get("log") if container else None)
        files: list[tuple[str, int]] = []
        if isinstance(log_uuid, str) and log_uuid:
            files = manifest_files(self._get_collection(log_uuid).get("manifest_text"))
        return task_log(request, container, files, self._keep_web_url)

    def _step_logs(self, container_uuid: str) -> list[Any]:
        """Task logs of the workflow steps: the requests the runner's container made."""
        steps = self._list(
            "list workflow steps",
            "container_requests",
            [["requesting_container_uuid", "=", container_uuid]],
            REQUEST_FIELDS,
        )
        if not steps:
            return []
        container_uuids = sorted(
            {str(s["container_uuid"]) for s in steps if s.get("container_uuid")}
        )
        containers = {
            str(item["uuid"]): item
            for item in (
                self._list(
                    "list step containers",
                    "containers",
                    [["uuid", "in", container_uuids]],
                    CONTAINER_FIELDS,
                )
                if container_uuids
                else []
            )
        }
        log_uuids = sorted(
            {str(c["log"]) for c in containers.values() if c.get("log")}
            | {str(s["log_uuid"]) for s in steps if s.get("log_uuid")}
        )
        manifests = {
            str(item["uuid"]): item.get("manifest_text")
            for item in (
                self._list(
                    "list step logs",
                    "collections",
                    [["uuid", "in", log_uuids]],
                    ("uuid", "manifest_text"),
                )
                if log_uuids
                else []
            )
        }
        logs = []
        for step in steps:
            container = containers.get(str(step.get("container_uuid")))
            log_uuid = step.get("log_uuid") or (container.get("log") if container else None)
            files = manifest_files(manifests.get(str(log_uuid)))
            logs.append(task_log(step, container, files, self._keep_web_url))
        return logs

    # --- calls and errors ------------------------------------------------------------------
    @contextmanager
    def _client(self) -> Iterator[Any]:
        """An SDK client no other request is using: an SDK client's HTTP connection is not
        thread-safe. Clients are made on demand (discovery document and cluster config, so at
        most one per concurrent request) and reused by whichever thread asks next."""
        with self._clients_lock:
            api = self._idle.pop() if self._idle else None
        if api is None:

            def connect() -> tuple[Any, str | None]:
                made = self._connect()
                services = made.config().get("Services", {})
                download = services.get("WebDAVDownload", {}) if services else {}
                return made, (download or {}).get("ExternalURL") or None

            api, self._keep_web_url = self._attempt("connect", connect)
            with self._clients_lock:
                self._clients.append(api)
        try:
            yield api
        finally:
            with self._clients_lock:
                self._idle.append(api)

    def _execute(self, make: Call) -> Any:
        with self._client() as api:
            return make(api).execute()

    def _once(self, operation: str, make: Call, scope: Scope = NO_SCOPE) -> Any:
        """One API request (a client is made first if need be), never retried."""
        return self._attempt(operation, lambda: self._execute(make), scope)

    def _retry(self, operation: str, make: Call, scope: Scope = NO_SCOPE) -> Any:
        """One API request, retried while it fails transiently."""
        return self._call(operation, lambda: self._execute(make), scope)

    def _classify(self, exc: Exception, operation: str, scope: Scope) -> base.ProviderError:
        """Turn SDK, HTTP, Keep and socket errors into the ProviderError family."""
        if isinstance(exc, HttpError):
            status = http_status(exc)
            text = str(exc._get_reason() or "").strip() or type(exc).__name__
            return classify(
                status,
                operation,
                self._blank(text),
                about_project=scope.installation,
                known_request=operation in _KNOWN_REQUEST,
                not_the_api=operation == "connect" and status in (404, 200),
            )
        if isinstance(exc, ssl.SSLCertVerificationError):
            return classify(None, operation, self._blank(str(exc)), certificate=True)
        if isinstance(exc, arvados.errors.KeepRequestError):
            # Keep did not answer now; outputs are read again next pass
            return base.ProviderUnavailable(
                PROVIDER, f"{operation} failed: {self._blank(str(exc))}"
            )
        if isinstance(exc, (OSError, HttpLib2Error, TimeoutError)):
            text = self._blank(str(exc) or type(exc).__name__)
            return classify(None, operation, f"no answer: {text}")
        # a 2xx body that is not JSON: not the Arvados API
        return classify(200, operation, self._blank(str(exc)), not_the_api=True)

    def _blank(self, text: str) -> str:
        return text.replace(self._secret, "********") if self._secret else text


def _ours(request: Mapping[str, Any], run_id: str) -> bool:
    """True for a request of WES run `run_id` that is not a duplicate draft."""
    return properties_of(request).get(RUN_ID_PROPERTY) == run_id and not is_duplicate(request)


def build(settings: Settings, *, sleep: Callable[[float], None] = time.sleep) -> ArvadosProvider:
    """Build the adapter; raise ConfigError when the host or the token is missing."""
    own = settings.provider(SPEC)
    host, token = own.api_host, own.api_token
    if host is None or token is None:
        raise ConfigError(settings.provider_problems((PROVIDER,)))

    def connect() -> Any:
        """One plain client: api_from_config's thread-safe wrapper would make one per thread
        behind our back, and one more just to close its connections."""
        apiconfig = dict(arvados.config.settings())
        apiconfig["ARVADOS_API_HOST"] = host
        apiconfig["ARVADOS_API_TOKEN"] = token.get()
        return arvados.api.api_client(
            **arvados.api.api_kwargs_from_config(
                "v1", apiconfig, num_retries=0, timeout=settings.provider_timeout
            )
        )

    return ArvadosProvider(settings, connect, sleep=sleep)
