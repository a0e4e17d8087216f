"""The provider contract for Seven Bridges: the real adapter and sevenbridges-python, over HTTP,
against SimulatedSevenBridges; plus the fake's own clock-driven script."""

from __future__ import annotations

import dataclasses
import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sevenbridges

from tests.contract.base import ProviderContract, VirtualClock
from wesctl.config import Settings, load_settings
from wesctl.domain.states import RunState
from wesctl.domain.types import Attempt, RunSpec
from wesctl.providers.base import ProviderMisconfigured, ProviderRejected, ProviderUnavailable
from wesctl.providers.ratelimit import TokenBucket
from wesctl.providers.sevenbridges.adapter import (
    ENDPOINT_FIX,
    PROJECT_FIX,
    SevenBridgesProvider,
    build,
)
from wesctl.providers.sevenbridges.settings import SPEC as SEVENBRIDGES
from wesctl.simulated.http import NOT_THE_API, SLOW
from wesctl.simulated.sevenbridges import (
    DEFAULT_APP,
    DEFAULT_PROJECT,
    DEFAULT_USER,
    SimulatedSevenBridges,
)

TOKEN = "contract-test-token"


class LimiterClock(VirtualClock):
    """A fake clock for the rate limiter. Every sleep advances it by at least a microsecond:
    TokenBucket computes its waits in floats, and a wait below the clock's resolution would
    otherwise leave a caller spinning forever."""

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 1e-6)


class SevenBridgesHarness:
    """The Harness of tests.contract.base for Seven Bridges, reusable by other test modules."""

    running_status = "RUNNING"
    credential_setting = "SEVENBRIDGES_API_TOKEN"

    def __init__(self, fake: SimulatedSevenBridges, settings: Settings) -> None:
        self.fake = fake
        self.settings = settings
        self.provider: SevenBridgesProvider = build(settings, sleep=lambda seconds: None)
        # The limiter runs on a fake clock, so throttling penalties never wait real seconds.
        self.clock = LimiterClock()
        self.provider.limiter = TokenBucket(
            settings.provider(SEVENBRIDGES).rate, clock=self.clock, sleep=self.clock.sleep
        )
        self.reads = fake.add_file("reads.fastq", b"@r1\nACGT\n+\nIIII\n")
        token = settings.provider(SEVENBRIDGES).api_token
        assert token is not None
        self.secret = token.get()

    def spec(self, run_id: str, **overrides: Any) -> RunSpec:
        spec = RunSpec(
            run_id=run_id,
            workflow_url=DEFAULT_APP,
            workflow_type="CWL",
            workflow_type_version="v1.0",
            workflow_params={
                "reads": {"class": "File", "path": self.reads},
                "message": "hello",
            },
            queued_at=datetime.now(UTC).replace(tzinfo=None),
        )
        return dataclasses.replace(spec, **overrides)

    def created_count(self, run_id: str) -> int:
        return len(self.fake.runs_for(run_id))

    def set_raw_status(self, provider_id: str, raw_status: str) -> None:
        self.fake.set_status(provider_id, raw_status)

    def finish(self, provider_id: str, *, succeed: bool) -> None:
        self.fake.finish(provider_id, succeed=succeed)

    def inject(self, kind: str, operation: str, *, count: int = 1, message: str = "") -> None:
        # The fake names its operations after the contract's: 'submit' is task create and run,
        # 'status' is task get and bulk get, 'cancel' is abort.
        self.fake.inject(kind, operation, count=count, message=message or "injected fault")

    def status_calls(self) -> int:
        return self.fake.calls["status"]

    def requests(self) -> int:
        return sum(self.fake.calls.values())

    def reject_credentials(self) -> None:
        self.fake.reject_token(self.secret)

    def accept_credentials(self) -> None:
        self.fake.accept_token(self.secret)


def make_harness(
    fake: SimulatedSevenBridges, tmp_path: Path, **environ: str
) -> SevenBridgesHarness:
    """Reset a started fake and return a harness with a fresh adapter wired to it; `environ`
    adds or overrides settings."""
    fake.reset()
    env_file = tmp_path / "empty.env"  # keeps a developer's ./.env out of the settings
    env_file.write_text("")
    settings = load_settings(
        environ={
            "SEVENBRIDGES_API_TOKEN": fake.token,
            "SEVENBRIDGES_API_ENDPOINT": fake.api_url,
            "SEVENBRIDGES_PROJECT": DEFAULT_PROJECT,
            "WESCTL_PROVIDER_TIMEOUT": "5",
            **environ,
        },
        env_file=env_file,
        export_sdk=False,
    )
    return SevenBridgesHarness(fake, settings)


@pytest.fixture(scope="module")
def sevenbridges_fake() -> Iterator[SimulatedSevenBridges]:
    """One fake per module (stopping a server takes half a second); harnesses reset it."""
    with SimulatedSevenBridges(token=TOKEN) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _no_proxy_for_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests honours proxy variables even for 127.0.0.1; the fake must be reached directly."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def sevenbridges_harness(
    sevenbridges_fake: SimulatedSevenBridges, tmp_path: Path
) -> Iterator[SevenBridgesHarness]:
    harness = make_harness(sevenbridges_fake, tmp_path)
    yield harness
    harness.provider.close()


class TestSevenBridgesContract(ProviderContract):
    @pytest.fixture
    def harness(self, sevenbridges_harness: SevenBridgesHarness) -> SevenBridgesHarness:
        return sevenbridges_harness

    def missing_id(self) -> str:
        return str(uuid.uuid4())


def test_fake_script_drives_runs_by_its_clock(
    sevenbridges_harness: SevenBridgesHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness, fake = sevenbridges_harness, sevenbridges_harness.fake
    monkeypatch.setattr(fake, "script", (("QUEUED", 0), ("RUNNING", 2), ("COMPLETED", 5)))

    def submit(run_id: str, **params: Any) -> str:
        spec = harness.spec(run_id)
        spec = dataclasses.replace(spec, workflow_params={**spec.workflow_params, **params})
        return harness.provider.submit(
            Attempt(spec, f"key-{run_id}"), lambda task_id: None
        ).provider_id

    ok, failing = submit("run-scripted"), submit("run-scripted-fail", fake_fail=True)

    def states() -> list[RunState | None]:
        found = harness.provider.statuses([ok, failing])
        return [status.state for status in found.values() if status is not None]

    assert states() == [RunState.INITIALIZING, RunState.INITIALIZING]
    fake.clock.advance(2)
    assert states() == [RunState.RUNNING, RunState.RUNNING]
    fake.clock.advance(3)
    assert states() == [RunState.COMPLETE, RunState.EXECUTOR_ERROR]
    outputs = harness.provider.details(ok).outputs
    assert outputs["output_file"]["location"].startswith(f"{fake.api_url}/files/")


def test_fake_serves_the_real_client_everywhere(
    sevenbridges_fake: SimulatedSevenBridges, tmp_path: Path
) -> None:
    """The fake's other endpoints, through the client's own models (lazy fields, paging, files)."""
    fake = sevenbridges_fake
    fake.reset()
    api = sevenbridges.Api(url=fake.api_url, token=TOKEN, debug=True, timeout=5, retry_count=1)
    try:
        assert api.users.me().username == DEFAULT_USER
        assert api.projects.get(DEFAULT_PROJECT).type == "v2"
        assert api.apps.get(f"{DEFAULT_APP}/1").revision == 1
        with pytest.raises(sevenbridges.errors.NotFound, match="wes-user/wes/nope"):
            api.apps.get("wes-user/wes/nope")

        reads = fake.add_file("reads.fq", b"ACGT")
        tasks = [
            api.tasks.create(
                name=f"t{number}",
                project=DEFAULT_PROJECT,
                app=DEFAULT_APP,
                inputs={"reads": {"class": "File", "path": reads}},
                run=number > 0,
            )
            for number in range(3)
        ]
        draft, task = tasks[0], tasks[1]
        page = api.tasks.query(
            project=DEFAULT_PROJECT, order_by="created_time", order="asc", limit=2
        )
        assert page.total == 3
        assert [t.id for t in page.all()] == [t.id for t in tasks]

        fake.finish(task.id, succeed=True)
        task.reload()
        assert task.status == "COMPLETED"
        assert task.end_time is not None
        output = task.outputs["output_file"]
        assert output.name.endswith(".out.txt")
        download = tmp_path / "out.txt"
        output.download(str(download))
        assert download.read_bytes() == b"hello\n"
        job = task.get_execution_details().jobs[0]
        assert job.logs["job.err.log"].download_info().url.startswith(fake.base_url)

        draft.description = "edited"
        draft.save()
        assert api.tasks.get(draft.id).description == "edited"
        with pytest.raises(sevenbridges.errors.BadRequest, match="draft"):
            task.delete()
        draft.delete()
        with pytest.raises(sevenbridges.errors.NotFound):
            api.tasks.get(draft.id)
        with pytest.raises(sevenbridges.errors.BadRequest, match="100"):
            api.tasks.bulk_get([str(uuid.uuid4()) for _ in range(101)])
        assert api.remaining is not None
        stranger = sevenbridges.Api(url=fake.api_url, token="wrong", debug=True, timeout=5)
        with pytest.raises(sevenbridges.errors.Unauthorized):
            stranger.users.me()
    finally:
        api.session.close()


def test_proxy_variables_are_honoured(
    sevenbridges_harness: SevenBridgesHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client keeps requests' environment handling (proxies, REQUESTS_CA_BUNDLE): with a
    dead proxy configured and no NO_PROXY, the fake cannot be reached."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead_proxy = f"http://127.0.0.1:{unused.getsockname()[1]}"
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("HTTP_PROXY", dead_proxy)
    monkeypatch.setenv("http_proxy", dead_proxy)
    with pytest.raises(ProviderUnavailable):
        sevenbridges_harness.provider.statuses([str(uuid.uuid4())])
    assert sevenbridges_harness.fake.calls["status"] == 0


# --- installation errors ------------------------------------------------------------------------

OWN_PROJECT = "wes-user/team-b"  # a project a run names itself


def submit_run(harness: SevenBridgesHarness, run_id: str, **tags: str) -> str:
    return harness.provider.submit(
        Attempt(harness.spec(run_id, tags=tags), f"key-{run_id}"), lambda task_id: None
    ).provider_id


@pytest.fixture
def two_projects(sevenbridges_harness: SevenBridgesHarness) -> SevenBridgesHarness:
    sevenbridges_harness.fake.projects.add(OWN_PROJECT)
    return sevenbridges_harness


def test_a_forbidden_default_project_is_the_installations(
    two_projects: SevenBridgesHarness,
) -> None:
    harness = two_projects
    pid = submit_run(harness, "run-before")
    harness.fake.forbid_project(DEFAULT_PROJECT)
    calls: dict[str, Callable[[], object]] = {
        "submit": lambda: submit_run(harness, "run-after"),
        "statuses": lambda: harness.provider.statuses([pid]),
        "details": lambda: harness.provider.details(pid),
        "cancel": lambda: harness.provider.cancel(pid),
    }
    for name, call in calls.items():
        with pytest.raises(ProviderMisconfigured, match="Insufficient privileges") as info:
            call()
        assert info.value.fix == PROJECT_FIX, name
    assert submit_run(harness, "run-own", project=OWN_PROJECT)  # runs naming theirs go on


def test_a_default_project_that_is_gone_is_the_installations(
    sevenbridges_harness: SevenBridgesHarness,
) -> None:
    harness = sevenbridges_harness
    harness.fake.projects.discard(DEFAULT_PROJECT)
    with pytest.raises(ProviderMisconfigured, match="does not exist") as info:
        submit_run(harness, "run-no-project")
    assert "SEVENBRIDGES_PROJECT" in info.value.fix
    with pytest.raises(ProviderMisconfigured):  # an interrupted submission's lookup
        harness.provider.submit(
            Attempt(harness.spec("run-no-project"), "key-run-no-project", None, True),
            lambda task_id: None,
        )


def test_an_unknown_app_in_the_default_project_is_the_runs(
    sevenbridges_harness: SevenBridgesHarness,
) -> None:
    harness = sevenbridges_harness
    spec = harness.spec("run-bad-app", workflow_url="wes-user/wes/no-such-app")
    before = harness.requests()
    with pytest.raises(ProviderRejected, match="no-such-app") as info:
        harness.provider.submit(Attempt(spec, "key-bad-app"), lambda task_id: None)
    assert not isinstance(info.value, ProviderMisconfigured)
    assert harness.requests() - before == 2  # the create, then one look at the default project


@pytest.mark.parametrize("forbidden", [True, False])
def test_a_project_the_run_names_itself_is_that_runs(
    two_projects: SevenBridgesHarness, forbidden: bool
) -> None:
    harness = two_projects
    if forbidden:
        harness.fake.forbid_project(OWN_PROJECT)
    else:
        harness.fake.projects.discard(OWN_PROJECT)
    with pytest.raises(ProviderRejected, match=OWN_PROJECT) as info:
        submit_run(harness, "run-own-refused", project=OWN_PROJECT)
    assert not isinstance(info.value, ProviderMisconfigured)


def test_a_task_in_a_runs_own_forbidden_project_is_that_runs(
    two_projects: SevenBridgesHarness,
) -> None:
    harness = two_projects
    pid = submit_run(harness, "run-own-task", project=OWN_PROJECT)
    harness.fake.forbid_project(OWN_PROJECT)
    for call in (lambda: harness.provider.statuses([pid]), lambda: harness.provider.cancel(pid)):
        with pytest.raises(ProviderRejected, match="Insufficient privileges") as info:
            call()
        assert not isinstance(info.value, ProviderMisconfigured)


def test_an_undecided_forbidden_task_stays_transient(two_projects: SevenBridgesHarness) -> None:
    harness = two_projects
    pid = submit_run(harness, "run-undecided", project=OWN_PROJECT)
    harness.fake.forbid_project(OWN_PROJECT)
    harness.fake.inject("server_error", "project", count=100)  # the default project's check
    with pytest.raises(ProviderUnavailable):
        harness.provider.statuses([pid])


@pytest.mark.parametrize(
    ("operation", "status"), [("status", 200), ("status", 404), ("submit", 404)]
)
def test_an_endpoint_that_is_not_the_api_is_the_installations(
    sevenbridges_harness: SevenBridgesHarness, operation: str, status: int
) -> None:
    harness = sevenbridges_harness
    pid = submit_run(harness, f"run-not-the-api-{operation}-{status}")
    harness.fake.inject(NOT_THE_API, operation, count=100, status=status)
    calls = {
        "status": lambda: harness.provider.statuses([pid]),
        "submit": lambda: submit_run(harness, "run-not-the-api-new"),
    }
    before = harness.requests()
    with pytest.raises(ProviderMisconfigured, match="not") as info:
        calls[operation]()
    assert harness.requests() - before == 1
    assert info.value.fix == ENDPOINT_FIX
    if status != 200:  # a 2xx page is not shown: the client only says it is not JSON
        assert "It works!" in info.value.detail


def test_a_proxys_error_page_is_transient(sevenbridges_harness: SevenBridgesHarness) -> None:
    harness = sevenbridges_harness
    pid = submit_run(harness, "run-proxy-page")
    harness.fake.inject(NOT_THE_API, "status", count=100, status=502)
    with pytest.raises(ProviderUnavailable):
        harness.provider.statuses([pid])


def test_a_run_request_answered_late_is_not_a_rejection(
    sevenbridges_fake: SimulatedSevenBridges, tmp_path: Path
) -> None:
    """The first run request times out but is processed after the retry's re-read saw a draft;
    the platform then refuses the re-sent run (only drafts run): the task runs once and the
    submission succeeds."""
    harness = make_harness(
        sevenbridges_fake, tmp_path, WESCTL_PROVIDER_TIMEOUT="1", WESCTL_RETRY_INITIAL_WAIT="0.05"
    )
    fake = harness.fake
    # 'submit' is the create, then each run request: the first run is processed after 1.5 s
    # (its caller gave up at 1 s), the re-sent one at 0.7 s, after the first.
    fake.inject(SLOW, "submit", skip=1, delay=1.5)
    fake.inject(SLOW, "submit", skip=1, delay=0.7)
    try:
        submission = harness.provider.submit(
            Attempt(harness.spec("run-late-answer"), "key-late-answer"), lambda task_id: None
        )
        task = fake.tasks[submission.provider_id]
        assert task.status != "DRAFT"
        assert task.runs == 1
        assert fake.calls["submit"] == 3  # the create and two run requests
    finally:
        harness.provider.close()
