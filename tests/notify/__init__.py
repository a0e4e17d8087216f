"""Helpers shared by the notification tests: a migrated database, the Seven Bridges fake the runs
are submitted to, and a NotifyServer running in a thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from typer.testing import Result

from tests.cli_helpers import wesctl
from tests.wes_api import insert_api_run
from wesctl.config import Settings, load_settings
from wesctl.db.tables import WorkflowRun
from wesctl.notify import send_notification
from wesctl.notify.listeners import Listener
from wesctl.notify.server import NotifyServer
from wesctl.services.runtime import Runtime
from wesctl.simulated.sevenbridges import DEFAULT_APP, DEFAULT_PROJECT, SimulatedSevenBridges


def provider_environ(fake: SimulatedSevenBridges) -> dict[str, str]:
    """Settings that point the Seven Bridges adapter at `fake`, with no client-side pacing and
    room for every test run under the concurrency cap."""
    return {
        "SEVENBRIDGES_API_TOKEN": fake.token,
        "SEVENBRIDGES_API_ENDPOINT": fake.api_url,
        "SEVENBRIDGES_PROJECT": DEFAULT_PROJECT,
        "WESCTL_SEVENBRIDGES_RATE": "100000",
        "WESCTL_PROVIDER_TIMEOUT": "5",
        "DAEMON_MAX_CONCURRENT_WORKFLOWS": "1000",
    }


def run_wesctl(*args: str, env: dict[str, str] | None = None) -> Result:
    """`wesctl` in-process, keeping the test's logging: the command points the root logger at
    the CliRunner's stderr, which is closed once the command returns."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return wesctl(*args, env=env)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def migrate(db_url: str) -> None:
    result = run_wesctl("--database-uri", db_url, "db", "upgrade")
    assert result.exit_code == 0, result.output


def make_settings(
    tmp_path: Path, db_url: str, fake: SimulatedSevenBridges, **environ: str
) -> Settings:
    env_file = tmp_path / "empty.env"  # keeps a developer's ./.env out of the settings
    env_file.write_text("")
    return load_settings(
        environ={"DATABASE_URI": db_url, **provider_environ(fake), **environ},
        env_file=env_file,
        export_sdk=False,
    )


def add_run(engine: Engine) -> str:
    """Insert a QUEUED run exactly as the WES API does, for the fake's default app."""
    return insert_api_run(engine, workflow_url=DEFAULT_APP)


def wait_submitted(engine: Engine, run_ids: Sequence[str], deadline: float = 5.0) -> dict[str, str]:
    """Poll until every run has left QUEUED with a provider id; return run id -> provider id."""
    wanted = set(run_ids)
    end = time.monotonic() + deadline
    while True:
        with engine.connect() as connection:
            rows = connection.execute(
                select(WorkflowRun.run_id, WorkflowRun.state, WorkflowRun.provider_id).where(
                    WorkflowRun.run_id.in_(wanted)
                )
            ).all()
        done = {row.run_id: row.provider_id for row in rows if row.state != "QUEUED"}
        if set(done) == wanted:
            return done
        if time.monotonic() > end:
            missing = sorted(wanted - set(done))
            raise AssertionError(
                f"{len(missing)} runs not submitted in {deadline} s: {missing[:5]}"
            )
        time.sleep(0.01)


class RunningServer:
    """A NotifyServer serving in a thread; `code` is run()'s return value once it ended."""

    def __init__(
        self, server: NotifyServer, runtime: Runtime, fake: SimulatedSevenBridges | None
    ) -> None:
        self.server = server
        self.runtime = runtime
        self.fake = fake  # the provider it submits to, when the test wants to look at it
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, name="notify-test-server", daemon=True)

    def _run(self) -> None:
        self.code = self.server.run()

    @property
    def engine(self) -> Engine:
        return self.runtime.engine

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.listeners[0].sock.getsockname()[:2]
        return host, port


def assert_still_serving(running: RunningServer) -> None:
    """A fresh run's notification is answered 200."""
    run_id = add_run(running.engine)
    host, port = running.address
    result = send_notification(run_id, host=host, port=port)
    assert result.ok, result


@contextmanager
def running_server(
    settings: Settings,
    listener: Listener,
    *,
    idle_exit: float = 0,
    token: str | None = None,
    check_schema: bool = True,
    fake: SimulatedSevenBridges | None = None,
    **limits: Any,
) -> Iterator[RunningServer]:
    """`limits`: NotifyServer's request_timeout, idle_timeout, max_connections, max_idle."""
    runtime = Runtime.open(settings, command="notify-test", check_schema=check_schema)
    server = NotifyServer(
        runtime,
        [listener],
        idle_exit=idle_exit,
        token=token,
        workers=settings.submit_workers,
        **limits,
    )
    running = RunningServer(server, runtime, fake)
    running.thread.start()
    try:
        yield running
    finally:
        server.stop()
        running.thread.join(15)
        runtime.close()
        listener.close()
    assert not running.thread.is_alive(), "the server did not stop"
    assert running.code == 0
