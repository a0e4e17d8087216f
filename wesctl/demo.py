"""`wesctl demo`: the whole lifecycle on a laptop, against simulated providers.

It starts the Seven Bridges, HealthOmics and Arvados simulators (and moto's S3 for HealthOmics
outputs) in-process on 127.0.0.1 (Arvados over https, its private CA trusted through
`SSL_CERT_FILE` as an operator trusts a cluster's), creates a fresh SQLite database, enqueues
runs as the WES API would, notifies the real notification handler, and drives the real submit /
sync / cancel code until every run is finished. Everything it starts is stopped before it returns.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wesctl.config import Settings, load_settings
from wesctl.domain.states import TERMINAL_STATES
from wesctl.errors import ConfigError

if TYPE_CHECKING:
    from wesctl.services.runtime import Runtime
    from wesctl.services.status import Overview
    from wesctl.simulated.healthomics import SimulatedHealthOmics

logger = logging.getLogger(__name__)

DEMO_TOKEN = "demo-token-not-a-secret"
DEMO_BUCKET = "wesctl-demo"
DEMO_ROLE = "arn:aws:iam::123456789012:role/wesctl-demo"
# The simulators are stopped when the status screen is shown; nothing is called then.
SIMULATOR_GONE = "http://127.0.0.1:9/v2"
SIMULATOR_GONE_HOST = "127.0.0.1:9"
TIME_LIMIT = 50.0  # seconds; the demo promises to finish within a minute


@dataclass(frozen=True)
class DemoRun:
    label: str
    provider: str
    run_id: str
    expect: str


@dataclass
class DemoResult:
    database_uri: str
    runs: list[DemoRun]
    final_states: dict[str, str]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(self.final_states.get(run.run_id) == run.expect for run in self.runs)


@contextlib.contextmanager
def _moto_s3() -> Iterator[str]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise ConfigError(
            "the demo simulates S3 with moto, which is not installed; "
            "install it with: pip install 'wesctl[demo]'"
        ) from exc
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Point this process's boto3 chain at the simulated AWS, and restore it afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _aws_environment(omics_url: str, s3_url: str, directory: Path) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo-not-a-secret",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(directory / "aws-config-unused"),
        "AWS_SHARED_CREDENTIALS_FILE": str(directory / "aws-credentials-unused"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_OMICS": omics_url,
        "AWS_ENDPOINT_URL_S3": s3_url,
        "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
        "AWS_MAX_ATTEMPTS": "2",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def _arvados_environment(ca_file: str, cache: str) -> dict[str, str]:
    """Trust the simulator's CA as an operator trusts a cluster's; the SDK caches the
    simulator's discovery document in `cache`, not in the operator's home."""
    return {"SSL_CERT_FILE": ca_file, "XDG_CACHE_HOME": cache}


def demo_settings(
    database_uri: str, sbg_url: str, arvados_host: str = SIMULATOR_GONE_HOST
) -> Settings:
    """Settings for the simulators only: the operator's environment and .env do not apply."""
    with tempfile.NamedTemporaryFile("w", suffix=".env") as empty:
        return _demo_settings(database_uri, sbg_url, arvados_host, Path(empty.name))


def _demo_settings(
    database_uri: str, sbg_url: str, arvados_host: str, empty_env_file: Path
) -> Settings:
    from wesctl.simulated.arvados import DEFAULT_PROJECT, DEFAULT_TOKEN

    return load_settings(
        environ={
            "DATABASE_URI": database_uri,
            "SEVENBRIDGES_API_TOKEN": DEMO_TOKEN,
            "SEVENBRIDGES_API_ENDPOINT": sbg_url,
            "SEVENBRIDGES_PROJECT": "wes-user/wes",
            "AWS_REGION": "us-east-1",
            "AWS_HEALTHOMICS_WORKFLOW_ROLE_ARN": DEMO_ROLE,
            "AWS_HEALTHOMICS_OUTPUT_URI": f"s3://{DEMO_BUCKET}/runs",
            "ARVADOS_API_HOST": arvados_host,
            "ARVADOS_API_TOKEN": DEFAULT_TOKEN,
            "ARVADOS_PROJECT_UUID": DEFAULT_PROJECT,
            "WESCTL_PROVIDERS": "sevenbridges,healthomics,arvados",
            "WESCTL_HEALTHOMICS_START_RATE": "50",
            "WESCTL_SEVENBRIDGES_RATE": "50",
            "WESCTL_ARVADOS_RATE": "50",
            "WESCTL_RETRY_INITIAL_WAIT": "0.1",
            "WESCTL_PROVIDER_TIMEOUT": "5",
            "DAEMON_MAX_CONCURRENT_WORKFLOWS": "10",
        },
        env_file=empty_env_file,
        export_sdk=False,
    )


# The scenario: one request per case the demo shows, and the state each must end in. A
# Seven Bridges file input names READS, replaced by the id of the file the demo uploads.
READS = "<reads>"
ARVADOS_WORKFLOW = "zzzzz-7fd4e-000000000000001"  # the simulator's registered workflow
SCENARIO: tuple[tuple[str, str, str, dict[str, Any], str], ...] = (
    (
        "Seven Bridges run that completes",
        "sevenbridges",
        "wes-user/wes/hello",
        {"reads": {"class": "File", "path": READS}, "greeting": "hello"},
        "COMPLETE",
    ),
    (
        "Seven Bridges run whose workflow fails",
        "sevenbridges",
        "wes-user/wes/hello",
        {"reads": {"class": "File", "path": READS}, "fake_fail": True},
        "EXECUTOR_ERROR",
    ),
    (
        "HealthOmics run that completes",
        "healthomics",
        "1234567",
        {"sample": "s3://inputs/sample.bam"},
        "COMPLETE",
    ),
    (
        "HealthOmics run that fails",
        "healthomics",
        "2345678",
        {"sample": "s3://inputs/broken.bam"},
        "EXECUTOR_ERROR",
    ),
    (
        "HealthOmics run that is cancelled",
        "healthomics",
        "3456789",
        {"sample": "s3://inputs/long.bam"},
        "CANCELED",
    ),
    (
        "Arvados run that completes",
        "arvados",
        ARVADOS_WORKFLOW,
        {"message": "hello"},
        "COMPLETE",
    ),
)
FAILING = "HealthOmics run that fails"
CANCELLED = "HealthOmics run that is cancelled"
WORKFLOW_VERSIONS = {"sevenbridges": "v1.0", "healthomics": "1.0", "arvados": "v1.2"}
# How the simulated providers move each run along (status, seconds after it started).
SEVENBRIDGES_SCRIPT = (("QUEUED", 0.0), ("RUNNING", 1.5), ("COMPLETED", 4.0))
HEALTHOMICS_SCRIPT = (("STARTING", 0.5), ("RUNNING", 1.5), ("STOPPING", 3.5), ("COMPLETED", 4.5))
ARVADOS_SCRIPT = (("Locked", 0.5), ("Running", 1.5), ("Complete", 4.0))


@dataclass
class _Site:
    """What the demo started: the simulators, one runtime per command, the notify endpoint."""

    runtime: Runtime  # the operator's (runs add, runs list)
    submit: Runtime
    sync: Runtime
    omics: SimulatedHealthOmics
    reads: str
    notify_host: str
    notify_port: int


def run_demo(
    database_path: Path,
    *,
    say: Callable[[str], None],
    on_queued: Callable[[DemoRun], None],
    tick: Callable[[dict[str, str]], None],
) -> DemoResult:
    """Run the demo on a fresh SQLite database at `database_path`; return what happened.

    `say` narrates, `on_queued` announces each run, `tick` gets every run's state once a pass.
    """
    started = time.monotonic()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database_path}{suffix}").unlink(missing_ok=True)
    database_uri = f"sqlite:///{database_path.resolve()}"
    with contextlib.ExitStack() as stack:
        site = _start(stack, database_path, database_uri, say)
        runs = [_enqueue(site, *request, say=say) for request in SCENARIO]
        for run in runs:
            on_queued(run)
        states = _drive(site, runs, started, say=say, tick=tick)
        return DemoResult(database_uri, runs, states, time.monotonic() - started)


def _start(
    stack: contextlib.ExitStack, database_path: Path, database_uri: str, say: Callable[[str], None]
) -> _Site:
    """Start simulated S3, Seven Bridges and HealthOmics, the database and serve-notify; `stack`
    stops each of them."""
    from wesctl.db import schema
    from wesctl.notify.listeners import bind_tcp
    from wesctl.notify.server import NotifyServer
    from wesctl.services.runtime import Runtime
    from wesctl.simulated.arvados import SimulatedArvados
    from wesctl.simulated.healthomics import SimulatedHealthOmics, simulated_s3
    from wesctl.simulated.http import SimulatedClock
    from wesctl.simulated.sevenbridges import SimulatedSevenBridges

    clock = SimulatedClock(real=True)
    s3_url = stack.enter_context(_moto_s3())
    say(f"simulated S3 (moto) on {s3_url}")
    sbg = SimulatedSevenBridges(token=DEMO_TOKEN, script=list(SEVENBRIDGES_SCRIPT), clock=clock)
    sbg.start()
    stack.callback(sbg.stop)
    say(f"simulated Seven Bridges API on {sbg.api_url}")
    s3 = simulated_s3(s3_url, bucket=DEMO_BUCKET)
    omics = SimulatedHealthOmics(s3=s3, script=list(HEALTHOMICS_SCRIPT), clock=clock)
    omics.start()
    stack.callback(omics.stop)
    say(f"simulated HealthOmics API on {omics.base_url}")
    stack.enter_context(
        _environment(_aws_environment(omics.base_url, s3_url, database_path.parent))
    )
    arvados = SimulatedArvados(script=list(ARVADOS_SCRIPT), clock=clock)
    arvados.start()
    stack.callback(arvados.stop)
    say(f"simulated Arvados API on {arvados.base_url}")
    cache = stack.enter_context(tempfile.TemporaryDirectory())
    stack.enter_context(_environment(_arvados_environment(arvados.ca_file, cache)))

    settings = demo_settings(database_uri, sbg.api_url, arvados.host)
    runtime = Runtime.open(settings, command="demo", check_schema=False)
    stack.callback(runtime.close)
    schema.upgrade(runtime.engine)
    # One runtime per command, so the history names who did what, as on a real host.
    notify_runtime, submit_runtime, sync_runtime = (
        Runtime.open(settings, command=command)
        for command in ("serve-notify", "submit-queued", "sync-status")
    )
    for opened in (notify_runtime, submit_runtime, sync_runtime):
        stack.callback(opened.close)
    say(f"database {database_path} created (wesctl db upgrade)")

    listener = bind_tcp("127.0.0.1", 0)
    server = NotifyServer(notify_runtime, [listener], idle_exit=0, token=None, workers=4)
    thread = threading.Thread(target=server.run, name="demo-notify", daemon=True)
    thread.start()
    stack.callback(thread.join, 10)
    stack.callback(server.stop, "demo finished")
    stack.callback(listener.close)
    host, port = listener.sock.getsockname()[:2]
    say(f"notification handler (serve-notify) on {host}:{port}")
    reads = sbg.add_file("sample.fastq", b"@r1\nACGT\n+\nIIII\n")
    return _Site(runtime, submit_runtime, sync_runtime, omics, reads, host, port)


def _enqueue(
    site: _Site,
    label: str,
    provider: str,
    url: str,
    params: dict[str, Any],
    expect: str,
    *,
    say: Callable[[str], None],
) -> DemoRun:
    """Enqueue one request as the WES API does, then notify as it does."""
    from wesctl.notify import send_notification
    from wesctl.services.runs import NewRun, add_run

    inputs = {
        key: {**value, "path": site.reads}
        if isinstance(value, dict) and value.get("path") == READS
        else value
        for key, value in params.items()
    }
    run_id = add_run(
        site.runtime,
        NewRun(
            workflow_url=url,
            workflow_type="WDL" if provider == "healthomics" else "CWL",
            workflow_type_version=WORKFLOW_VERSIONS[provider],
            workflow_params=inputs,
            provider=provider,
        ),
    )
    answer = send_notification(run_id, host=site.notify_host, port=site.notify_port, timeout=2.0)
    say(f"queued {label}: {run_id} (notification answered HTTP {answer.status})")
    return DemoRun(label, provider, run_id, expect)


def _with_reads(value: Any, reads: str) -> Any:
    if isinstance(value, dict) and value.get("path") == READS:
        return {**value, "path": reads}
    return value


def _drive(
    site: _Site,
    runs: list[DemoRun],
    started: float,
    *,
    say: Callable[[str], None],
    tick: Callable[[dict[str, str]], None],
) -> dict[str, str]:
    """Run the timers' passes until every run is finished (or TIME_LIMIT): break the failing
    run's workflow and cancel the cancelled one once they run; return the final states."""
    from wesctl.services import cancel, submit, sync
    from wesctl.services.runs import list_runs

    by_label = {run.label: run for run in runs}
    pending = {run.run_id for run in runs}
    canceled = fail_sent = False
    states: dict[str, str] = {}
    while pending and time.monotonic() - started < TIME_LIMIT:
        time.sleep(0.5)
        submit.submit_queued(site.submit)  # the timer's backstop for missed notifications
        sync.sync_status(site.sync)
        states = {item.run_id: item.state for item in list_runs(site.runtime, limit=100)}
        failing = by_label[FAILING]
        failing_id = _provider_id(site.runtime, failing.run_id)
        if not fail_sent and failing_id and states.get(failing.run_id) == "RUNNING":
            site.omics.finish(failing_id, succeed=False)  # the simulated workflow breaks
            fail_sent = True
        victim = by_label[CANCELLED]
        if not canceled and states.get(victim.run_id) == "RUNNING":
            cancel.cancel(site.sync, [victim.run_id])
            say(f"cancel requested for {victim.run_id}")
            canceled = True
        pending = {r for r in pending if states.get(r) not in TERMINAL_STATES}
        tick(states)
    return states


def _provider_id(runtime: Any, run_id: str) -> str | None:
    from wesctl.services.runs import show_run

    return show_run(runtime, run_id).summary.provider_id


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """The demo narrates itself; keep library logs to warnings while it runs."""
    loggers = [logging.getLogger(), logging.getLogger("werkzeug")]
    levels = [item.level for item in loggers]
    for item in loggers:
        item.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for item, level in zip(loggers, levels, strict=True):
            item.setLevel(level)


def final_overview(result: DemoResult) -> Overview:
    """The `wesctl status` view of the demo's database, read after the simulators stopped."""
    from wesctl.services.runtime import Runtime
    from wesctl.services.status import overview

    runtime = Runtime.open(demo_settings(result.database_uri, SIMULATOR_GONE), command="demo")
    try:
        return overview(runtime)
    finally:
        runtime.close()
