"""The Seven Bridges adapter's tables and translations, and its crash safety.

The tables (status, parameters, outputs, errors) are pure; the crash points run the real adapter
and sevenbridges-python against the fake, because exactly-once submission is only meaningful
against a server that keeps state.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from sevenbridges.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    MethodNotAllowed,
    NonJSONResponseError,
    NotFound,
    RequestTimeout,
    SbgError,
    ServerError,
    ServiceUnavailable,
    TaskValidationError,
    TooManyRequests,
    Unauthorized,
    ValidationError,
)
from sevenbridges.models.enums import TaskStatus

from tests.contract.test_sevenbridges import TOKEN, SevenBridgesHarness, make_harness
from wesctl.config import load_settings
from wesctl.domain.states import RunState
from wesctl.domain.types import Attempt, RunSpec
from wesctl.providers.base import (
    ProviderMisconfigured,
    ProviderRejected,
    ProviderRunNotFound,
    ProviderUnavailable,
)
from wesctl.providers.sevenbridges.adapter import (
    ENDPOINT_FIX,
    PROJECT_FIX,
    SevenBridgesProvider,
    build,
    classify_error,
    token_fix,
)
from wesctl.providers.sevenbridges.mapping import (
    STATUS_MAP,
    map_status,
    normalise_outputs,
    task_inputs,
    to_status,
)
from wesctl.providers.sevenbridges.settings import SPEC as SEVENBRIDGES
from wesctl.simulated.http import (
    DROP_AFTER_ACCEPT,
    SERVER_ERROR,
    THROTTLE,
    UNAVAILABLE,
    FaultRule,
    Response,
)
from wesctl.simulated.sevenbridges import DEFAULT_APP, FakeApp, FakeTask, SimulatedSevenBridges

STRICT_APP = "wes-user/wes/strict"  # its input 'reads' is required


@pytest.fixture(autouse=True)
def _no_proxy_for_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def fake() -> Iterator[SimulatedSevenBridges]:
    apps = (FakeApp(DEFAULT_APP), FakeApp(STRICT_APP, inputs={"reads": "File"}))
    with SimulatedSevenBridges(token=TOKEN, apps=apps) as fake:
        yield fake


@pytest.fixture
def harness(fake: SimulatedSevenBridges, tmp_path: Path) -> Iterator[SevenBridgesHarness]:
    harness = make_harness(fake, tmp_path)
    yield harness
    harness.provider.close()


def offline_provider(tmp_path: Path, **environ: str) -> SevenBridgesProvider:
    """An adapter for an unreachable endpoint: building it and validating make no requests."""
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    settings = load_settings(
        environ={
            "SEVENBRIDGES_API_TOKEN": TOKEN,
            "SEVENBRIDGES_API_ENDPOINT": "https://api.invalid/v2",
            **environ,
        },
        env_file=env_file,
        export_sdk=False,
    )
    return build(settings)


def spec(run_id: str = "run-1", **overrides: Any) -> RunSpec:
    base = RunSpec(
        run_id=run_id,
        workflow_url="alice/wes/hello/3",
        workflow_type="CWL",
        workflow_type_version="v1.0",
        workflow_params={"n": 1},
        tags={"project": "alice/wes"},
    )
    return dataclasses.replace(base, **overrides)


def submit(
    harness: SevenBridgesHarness,
    run_spec: RunSpec,
    *,
    may_exist: bool = False,
    known: str | None = None,
    recorded: list[str] | None = None,
) -> Any:
    return harness.provider.submit(
        Attempt(run_spec, f"key-{run_spec.run_id}", known, may_exist),
        (recorded if recorded is not None else []).append,
    )


def crash(task_id: str) -> None:
    raise RuntimeError("database went away")


def crash_after_draft(harness: SevenBridgesHarness, run: RunSpec) -> None:
    """A first attempt whose database write fails right after the draft was created (with the
    submission's key, which later attempts of the same submission share)."""
    with pytest.raises(RuntimeError, match="database went away"):
        harness.provider.submit(Attempt(run, f"key-{run.run_id}"), crash)


# --- status table ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("DRAFT", RunState.INITIALIZING),
        ("CREATING", RunState.INITIALIZING),
        ("QUEUED", RunState.INITIALIZING),
        ("RUNNING", RunState.RUNNING),
        ("ABORTING", RunState.CANCELING),
        ("ABORTED", RunState.CANCELED),
        ("COMPLETED", RunState.COMPLETE),
        ("FAILED", RunState.EXECUTOR_ERROR),
        ("PAUSED", None),
        ("running", None),
        ("", None),
    ],
)
def test_status_table(raw: str, expected: RunState | None) -> None:
    assert map_status(raw) == expected


def test_status_table_covers_every_status_the_client_knows() -> None:
    known = {value for name, value in vars(TaskStatus).items() if name.isupper()}
    assert set(STATUS_MAP) == known


def test_no_raw_status_maps_back_to_queued() -> None:
    assert RunState.QUEUED not in STATUS_MAP.values()


def test_unknown_status_keeps_the_run_tracked_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="wesctl.providers.sevenbridges"):
        status = to_status({"id": "t-1", "status": "HIBERNATING"}.get)
    assert status.state is None
    assert status.raw_status == "HIBERNATING"
    assert any("HIBERNATING" in record.getMessage() for record in caplog.records)


def test_status_carries_message_and_naive_utc_times() -> None:
    task = {
        "id": "t-1",
        "status": "FAILED",
        "execution_status": {"message": "Job hello failed."},
        "start_time": "2024-05-01T10:00:00Z",
        "end_time": "2024-05-01T12:30:00.250+02:00",
    }
    status = to_status(task.get)
    assert status.state == RunState.EXECUTOR_ERROR
    assert status.message == "Job hello failed."
    assert status.started_at == datetime(2024, 5, 1, 10, 0, 0)
    assert status.ended_at == datetime(2024, 5, 1, 10, 30, 0, 250000)


# --- parameters and outputs -----------------------------------------------------------------
def test_inputs_pass_file_objects_through_untouched() -> None:
    reads = {"class": "File", "path": "5f3a1c2b9e4d7a0012345678", "name": "r.fq"}
    params = MappingProxyType(
        {
            "reads": reads,
            "more": ({"class": "File", "path": "a"}, {"class": "Directory", "path": "d"}),
            "matrix": [[1, 2], [3]],
            "record": MappingProxyType({"files": [reads], "label": "x"}),
            "n": 3,
            "flag": True,
            "text": "hello",
            "nothing": None,
        }
    )
    assert task_inputs(params) == {
        "reads": reads,
        "more": [{"class": "File", "path": "a"}, {"class": "Directory", "path": "d"}],
        "matrix": [[1, 2], [3]],
        "record": {"files": [reads], "label": "x"},
        "n": 3,
        "flag": True,
        "text": "hello",
        "nothing": None,
    }


def test_outputs_become_wes_files_with_stable_locations() -> None:
    endpoint = "https://api.example.org/v2"
    outputs = {
        "out": {"class": "File", "path": "f1", "name": "out.txt", "size": 6, "metadata": {}},
        "dir": {"class": "Directory", "path": "d1", "basename": "results"},
        "many": [{"class": "file", "path": "f2"}, None],
        "record": {"inner": {"class": "File", "path": "f3", "name": "in.txt"}, "n": 1},
        "count": 3,
        "missing": None,
    }
    assert normalise_outputs(outputs, endpoint) == {
        "out": {"class": "File", "location": f"{endpoint}/files/f1", "name": "out.txt", "size": 6},
        "dir": {"class": "Directory", "location": f"{endpoint}/files/d1", "name": "results"},
        "many": [{"class": "File", "location": f"{endpoint}/files/f2"}, None],
        "record": {
            "inner": {"class": "File", "location": f"{endpoint}/files/f3", "name": "in.txt"},
            "n": 1,
        },
        "count": 3,
        "missing": None,
    }


# --- validation -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"workflow_params": ["not", "an", "object"]}, "workflow_params"),
        ({"workflow_params": "reads=x"}, "workflow_params"),
        ({"workflow_url": "::not a workflow::"}, "workflow_url"),
        ({"workflow_url": "alice/wes"}, "workflow_url"),
        ({"workflow_url": "alice/wes/hello/latest"}, "workflow_url"),
        ({"workflow_url": "https://igor.sbgenomics.com/u/alice/wes/apps/hello"}, "workflow_url"),
        ({"tags": {"project": "no-owner"}}, "project"),
        ({"tags": {"project": ["alice/wes"]}}, "project"),
        ({"run_id": "r" * 200}, "run id"),
    ],
)
def test_unusable_specs_are_rejected_naming_the_field(
    tmp_path: Path, overrides: dict[str, Any], field: str
) -> None:
    provider = offline_provider(tmp_path)
    with pytest.raises(ProviderRejected, match=field) as info:
        provider.validate(spec(**overrides))
    assert not isinstance(info.value, ProviderUnavailable)


def test_a_run_without_any_project_is_rejected(tmp_path: Path) -> None:
    provider = offline_provider(tmp_path)  # no SEVENBRIDGES_PROJECT
    with pytest.raises(ProviderRejected, match="project"):
        provider.validate(spec(tags={}))


@pytest.mark.parametrize(
    "overrides",
    [
        {"tags": {}},
        {"tags": {"project": "alice/wes"}},
        {"tags": {"workflow_engine_parameters": {"sevenbridges_project": "bob/x"}}},
        {"workflow_url": "alice/wes/hello", "tags": {}},
        {"workflow_url": "alice/wes/hello.v2/12"},
    ],
)
def test_valid_specs_pass(tmp_path: Path, overrides: dict[str, Any]) -> None:
    provider = offline_provider(tmp_path, SEVENBRIDGES_PROJECT="team/default")
    provider.validate(spec(**overrides))


# --- error classification -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (BadRequest(message="Input 'reads' is invalid."), ProviderRejected),
        (Unauthorized(message="Bad token."), ProviderMisconfigured),
        (Forbidden(message="No execute permission."), ProviderRejected),
        (NotFound(message="Task not found."), ProviderRunNotFound),
        (MethodNotAllowed(message="Not allowed."), ProviderRejected),
        (Conflict(message="Task is not a draft."), ProviderRejected),
        (SbgError(message="Unprocessable.", status=422), ProviderRejected),
        (ValidationError("name: max length exceeded."), ProviderRejected),
        (TaskValidationError("Unable to run task! Task contains errors."), ProviderRejected),
        (RequestTimeout(message="Request timeout."), ProviderUnavailable),
        (TooManyRequests(code=1000, message="Rate limit exceeded."), ProviderUnavailable),
        (ServerError(message="Internal server error."), ProviderUnavailable),
        (ServiceUnavailable(code=1, message="Service unavailable."), ProviderUnavailable),
        (SbgError(message="Bad gateway.", status=502), ProviderUnavailable),
        (SbgError(message="Gateway timeout.", status=504), ProviderUnavailable),
        (NonJSONResponseError(status=502, message="<html>bad gateway</html>"), ProviderUnavailable),
        (
            NonJSONResponseError(status=400, message="<html>bad request</html>"),
            ProviderMisconfigured,
        ),
        (NonJSONResponseError(status=404, message="<html>not found</html>"), ProviderMisconfigured),
        (NonJSONResponseError(status=503, message="<html>upstream</html>"), ProviderUnavailable),
        (SbgError(message="Max retries exceeded (Read timed out.)"), ProviderUnavailable),
    ],
)
def test_error_classification(error: SbgError, expected: type[Exception]) -> None:
    translated = classify_error(error, "get task")
    assert type(translated) is expected
    assert str(error.message) in str(translated)
    assert "get task" in str(translated)


ENDPOINT = "https://api.sbgenomics.com/v2"


@pytest.mark.parametrize(
    ("error", "about_default_project", "expected", "fix"),
    [
        (Unauthorized(message="Unauthorized", code=0), False, ProviderMisconfigured, "token"),
        (Unauthorized(message="Unauthorized", code=0), True, ProviderMisconfigured, "token"),
        (Forbidden(message="Insufficient privileges."), True, ProviderMisconfigured, "project"),
        (NotFound(message="Project does not exist."), True, ProviderMisconfigured, "project"),
        (Forbidden(message="Insufficient privileges."), False, ProviderRejected, None),
        (NotFound(message="Task not found."), False, ProviderRunNotFound, None),
        (BadRequest(message="Bad query."), True, ProviderRejected, None),
        (ServerError(message="Internal server error."), True, ProviderUnavailable, None),
        (
            NonJSONResponseError(status=200, message="<p>hi</p>"),
            False,
            ProviderMisconfigured,
            "url",
        ),
        (
            NonJSONResponseError(status=401, message="<p>log in</p>"),
            True,
            ProviderMisconfigured,
            "url",
        ),
    ],
)
def test_installation_errors(
    error: SbgError, about_default_project: bool, expected: type, fix: str | None
) -> None:
    translated = classify_error(
        error, "list tasks", endpoint=ENDPOINT, about_default_project=about_default_project
    )
    assert type(translated) is expected
    fixes = {"token": token_fix(ENDPOINT), "project": PROJECT_FIX, "url": ENDPOINT_FIX}
    assert getattr(translated, "fix", None) == (fixes[fix] if fix else None)


def test_the_fixes_name_the_setting() -> None:
    assert "SEVENBRIDGES_API_TOKEN" in token_fix(ENDPOINT)
    assert "sevenbridges-api-token" in token_fix(None)
    assert "SEVENBRIDGES_PROJECT" in PROJECT_FIX
    assert "SEVENBRIDGES_API_ENDPOINT" in ENDPOINT_FIX


def test_a_2xx_body_that_is_not_json_is_the_endpoints() -> None:
    try:
        json.loads("<!DOCTYPE html>")
    except json.JSONDecodeError as exc:
        translated = classify_error(exc, "get task", endpoint=ENDPOINT)
    assert isinstance(translated, ProviderMisconfigured)
    assert translated.fix == ENDPOINT_FIX
    assert ENDPOINT in translated.detail


def test_a_page_that_is_not_the_api_is_shown_short() -> None:
    page = "<html>\n  <body>" + "x" * 5000 + "</body>\n</html>"
    translated = classify_error(NonJSONResponseError(status=404, message=page), "get task")
    assert len(translated.detail) < 400
    assert "<html> <body>x" in translated.detail


def test_only_a_throttle_carries_retry_after() -> None:
    throttled = classify_error(TooManyRequests(code=1000, message="slow"), "x", retry_after=12.0)
    failed = classify_error(ServerError(message="boom"), "x", retry_after=12.0)
    assert isinstance(throttled, ProviderUnavailable)
    assert isinstance(failed, ProviderUnavailable)
    assert throttled.retry_after == 12.0
    assert failed.retry_after is None


def test_the_token_never_appears_in_messages() -> None:
    error = SbgError(message=f"request with X-SBG-Auth-Token: {TOKEN} failed")
    assert TOKEN not in str(classify_error(error, "get task", secret=TOKEN))


def test_wrong_token_is_the_installations_without_echoing_it(
    harness: SevenBridgesHarness, tmp_path: Path
) -> None:
    other = make_harness(harness.fake, tmp_path, SEVENBRIDGES_API_TOKEN="not-the-token")
    try:
        with pytest.raises(ProviderMisconfigured, match="Unauthorized") as info:
            other.provider.statuses([str(uuid.uuid4())])
    finally:
        other.provider.close()
    assert "not-the-token" not in str(info.value)
    assert "not-the-token" not in info.value.fix
    assert info.value.fix == token_fix(harness.fake.api_url)


def test_a_throttle_slows_the_limiter_down(harness: SevenBridgesHarness) -> None:
    pid = submit(harness, harness.spec("run-throttle")).provider_id
    before = harness.clock.now
    harness.fake.inject(THROTTLE, "status")
    assert harness.provider.statuses([pid])[pid] is not None
    # the fake's quota resets at most five minutes later; the penalty is capped at retry_max_wait
    assert 1.0 <= harness.clock.now - before <= harness.settings.retry_max_wait + 1.0


# --- crash points ---------------------------------------------------------------------------
def test_record_failure_leaves_a_draft_that_is_adopted_and_run_once(
    harness: SevenBridgesHarness,
) -> None:
    run = harness.spec("run-crash")
    crash_after_draft(harness, run)
    (draft,) = harness.fake.runs_for("run-crash")
    assert harness.fake.task(draft).status == "DRAFT"
    assert harness.fake.task(draft).runs == 0

    recorded: list[str] = []
    result = submit(harness, run, may_exist=True, recorded=recorded)
    assert result.provider_id == draft
    assert result.adopted
    assert recorded == [draft]
    assert result.status.state == RunState.INITIALIZING
    assert harness.fake.task(draft).runs == 1
    assert harness.fake.runs_for("run-crash") == [draft]

    again = submit(harness, run, known=draft, may_exist=True)
    assert again.provider_id == draft
    assert harness.fake.task(draft).runs == 1


def test_of_several_drafts_the_oldest_is_kept_and_the_rest_deleted(
    harness: SevenBridgesHarness,
) -> None:
    run = harness.spec("run-twins")
    for _ in range(3):
        crash_after_draft(harness, run)
    drafts = harness.fake.runs_for("run-twins")
    assert len(drafts) == 3

    result = submit(harness, run, may_exist=True)
    assert result.provider_id == drafts[0]
    assert harness.fake.runs_for("run-twins") == [drafts[0]]
    assert all(harness.fake.tasks[extra].deleted for extra in drafts[1:])
    assert harness.fake.task(drafts[0]).runs == 1


def test_a_started_task_wins_over_a_later_draft(harness: SevenBridgesHarness) -> None:
    run = harness.spec("run-started")
    started = submit(harness, run).provider_id
    crash_after_draft(harness, run)
    assert len(harness.fake.runs_for("run-started")) == 2

    result = submit(harness, run, may_exist=True)
    assert result.provider_id == started
    assert harness.fake.runs_for("run-started") == [started]
    assert harness.fake.task(started).runs == 1


def test_a_create_that_may_have_been_stored_is_not_repeated(
    harness: SevenBridgesHarness,
) -> None:
    harness.fake.inject(SERVER_ERROR, "submit")
    with pytest.raises(ProviderUnavailable):
        submit(harness, harness.spec("run-500"))
    assert harness.fake.calls["submit"] == 1
    assert submit(harness, harness.spec("run-500"), may_exist=True).provider_id
    assert len(harness.fake.runs_for("run-500")) == 1


def test_the_lookup_window_starts_before_the_run_was_queued(
    harness: SevenBridgesHarness,
) -> None:
    run = harness.spec("run-window")
    crash_after_draft(harness, run)
    # A task created long before the run was queued is not this submission's.
    later = dataclasses.replace(
        run, queued_at=datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=2)
    )
    submit(harness, later, may_exist=True)
    assert len(harness.fake.runs_for("run-window")) == 2


def test_the_lookup_reads_every_page(harness: SevenBridgesHarness) -> None:
    run = harness.spec("run-paged")
    crash_after_draft(harness, run)
    (draft,) = harness.fake.runs_for("run-paged")
    newer = harness.fake.tasks[draft].created + timedelta(seconds=1)
    for number in range(150):  # 150 newer tasks push the draft onto the second page
        other = FakeTask(
            id=str(uuid.uuid4()),
            name=f"other-{number}",
            description=None,
            project=harness.settings.provider(SEVENBRIDGES).project or "",
            app=f"{DEFAULT_APP}/1",
            inputs={},
            created=newer,
            created_by="someone",
        )
        harness.fake.tasks[other.id] = other

    assert submit(harness, run, may_exist=True).provider_id == draft
    assert harness.fake.calls["list"] == 2


def test_a_batch_with_transient_faults_gives_one_task_per_run(
    harness: SevenBridgesHarness,
) -> None:
    """About 30% of all requests fail transiently; submitting like the service does (the next
    attempt passes may_exist=True) still yields exactly one task, run once, per run."""
    for kind, rate in (
        (THROTTLE, 0.1),
        (SERVER_ERROR, 0.1),
        (UNAVAILABLE, 0.07),
        (DROP_AFTER_ACCEPT, 0.05),
    ):
        harness.fake.inject(kind, count=None, rate=rate)
    results = {}
    second_attempts = 0
    for number in range(20):
        run = harness.spec(f"run-batch-{number}")
        for attempt in range(6):
            try:
                results[run.run_id] = submit(harness, run, may_exist=attempt > 0)
                break
            except ProviderUnavailable:
                second_attempts += 1
    harness.fake.faults.clear()

    assert len(results) == 20
    assert second_attempts > 0  # some creates failed in a way only a later lookup can resolve
    for run_id, result in results.items():
        assert harness.fake.runs_for(run_id) == [result.provider_id]
        assert harness.fake.task(result.provider_id).runs == 1


def test_run_errors_reported_by_the_platform_reject_the_run(harness: SevenBridgesHarness) -> None:
    run = harness.spec("run-invalid", workflow_url=STRICT_APP, workflow_params={"message": "hi"})
    with pytest.raises(ProviderRejected, match="reads"):
        submit(harness, run)
    (draft,) = harness.fake.runs_for("run-invalid")
    assert harness.fake.task(draft).status == "DRAFT"


def test_an_unknown_app_is_rejected_not_reported_as_a_missing_run(
    harness: SevenBridgesHarness,
) -> None:
    with pytest.raises(ProviderRejected, match="wes-user/wes/nope") as info:
        submit(harness, harness.spec("run-no-app", workflow_url="wes-user/wes/nope"))
    assert not isinstance(info.value, ProviderRunNotFound)


# --- cancel, statuses, details --------------------------------------------------------------
def test_a_canceled_draft_reads_canceled_and_never_runs(harness: SevenBridgesHarness) -> None:
    run = harness.spec("run-cancel-draft")
    crash_after_draft(harness, run)
    (draft,) = harness.fake.runs_for("run-cancel-draft")
    harness.provider.cancel(draft)
    harness.provider.cancel(draft)  # twice is fine

    status = harness.provider.statuses([draft])[draft]
    assert status is not None
    assert (status.raw_status, status.state) == ("DRAFT", RunState.CANCELED)
    for known in (draft, None):
        assert submit(harness, run, known=known, may_exist=True).status.state == RunState.CANCELED
    assert harness.fake.task(draft).runs == 0


def test_statuses_chunk_by_100_and_skip_ids_that_cannot_exist(
    harness: SevenBridgesHarness,
) -> None:
    pid = submit(harness, harness.spec("run-many")).provider_id
    ids = [pid, "not-a-task-id", *(str(uuid.uuid4()) for _ in range(149))]
    before = harness.fake.calls["status"]
    result = harness.provider.statuses(ids)
    assert harness.fake.calls["status"] - before == 2
    assert set(result) == set(ids)
    assert result[pid] is not None
    assert sum(status is None for status in result.values()) == 150


def test_details_of_a_failed_run(harness: SevenBridgesHarness) -> None:
    pid = submit(harness, harness.spec("run-failed-details")).provider_id
    harness.fake.finish(pid, succeed=False)
    details = harness.provider.details(pid)
    (log,) = details.task_logs
    assert log.name == "hello"
    assert log.status == "FAILED"
    assert log.cmd == ["echo hello > out.txt"]
    assert str(log.stderr).endswith("/download_info")
    assert any(line.startswith("instance id=") for line in log.system_logs)
    assert log.end_time is not None
    assert details.outputs["output_file"] is None


def test_details_of_a_run_that_never_started(harness: SevenBridgesHarness) -> None:
    crash_after_draft(harness, harness.spec("run-no-details"))
    (draft,) = harness.fake.runs_for("run-no-details")
    assert harness.provider.details(draft).task_logs == []


# --- no hangs -------------------------------------------------------------------------------
class HostileFake(SimulatedSevenBridges):
    """Answers the way that made the client sleep: 503 with code 0 (maintenance), and 429 with a
    one-hour Retry-After."""

    def fault_response(self, rule: FaultRule, operation: str) -> Response:
        response = super().fault_response(rule, operation)
        if rule.kind == UNAVAILABLE:
            response.body = {**response.body, "code": 0}
        if rule.kind == THROTTLE:
            response.headers["Retry-After"] = "3600"
        return response


@pytest.fixture(scope="module")
def hostile_fake() -> Iterator[SimulatedSevenBridges]:
    with HostileFake(token=TOKEN) as fake:
        yield fake


@pytest.mark.timeout(10)
@pytest.mark.parametrize("kind", [UNAVAILABLE, THROTTLE])
def test_maintenance_and_retry_after_answers_do_not_sleep(
    hostile_fake: SimulatedSevenBridges, tmp_path: Path, kind: str
) -> None:
    harness = make_harness(hostile_fake, tmp_path)
    try:
        pid = submit(harness, harness.spec("run-hostile")).provider_id
        hostile_fake.inject(kind, "status")
        assert harness.provider.details(pid).outputs == {}  # GET /tasks/{id}, then retried
        assert hostile_fake.calls["status"] == 2
    finally:
        harness.provider.close()
