"""The lifecycle on HealthOmics: the real CLI and boto3 over HTTP against the HealthOmics fake,
moto serving S3 for outputs, configured only through boto3's standard environment."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from tests.cli_helpers import upgrade_database, wesctl_json, wesctl_process
from tests.contract.aws_fixtures import s3_client
from tests.e2e.providers import HO_WORKFLOW, healthomics_env
from tests.wes_api import expire_claim, insert_api_run, read_run
from wesctl.simulated.healthomics import SimulatedHealthOmics


class OmicsWorld:
    def __init__(self, db_url: str, fake: SimulatedHealthOmics, moto: str, tmp: Path) -> None:
        self.engine = create_engine(db_url)
        self.fake = fake
        self.env = {
            "DATABASE_URI": db_url,
            "WESCTL_PROVIDERS": "healthomics",
            "WESCTL_DEFAULT_PROVIDER": "healthomics",
            **healthomics_env(fake.base_url, moto, str(tmp)),
        }

    def cli_json(self, *args: str, expect: int = 0) -> Any:
        return wesctl_json(*args, env=self.env, expect=expect)

    def add_run(self) -> str:
        return insert_api_run(
            self.engine,
            workflow_url=HO_WORKFLOW,
            workflow_type="WDL",
            workflow_params={"sample": "s3://inputs/sample.bam", "threads": 4},
            tags={"provider_type": "healthomics", "project": "p1"},
        )

    def row(self, run_id: str) -> Any:
        return read_run(self.engine, run_id)


@pytest.fixture
def omics(db_url: str, moto_url: str, tmp_path: Path) -> Iterator[OmicsWorld]:
    upgrade_database(db_url)
    with SimulatedHealthOmics(s3=s3_client(moto_url)) as fake:
        world = OmicsWorld(db_url, fake, moto_url, tmp_path)
        yield world
        world.engine.dispose()


def test_healthomics_run_from_queue_to_complete_with_s3_outputs(omics: OmicsWorld) -> None:
    run_id = omics.add_run()
    assert omics.cli_json("submit-queued")["counts"] == {"submitted": 1}
    row = omics.row(run_id)
    assert row.state == "INITIALIZING", "PENDING at HealthOmics is never WES QUEUED"
    assert len(omics.fake.runs_for(run_id)) == 1
    metadata = row.provider_metadata
    metadata = json.loads(metadata) if isinstance(metadata, str) else metadata  # SQLite: text
    assert metadata["requestId"] == row.submission_key == f"wesctl-{run_id}"
    assert omics.cli_json("submit-queued")["counts"] == {}
    omics.fake.set_status(row.provider_id, "RUNNING")
    omics.cli_json("sync-status")
    assert omics.row(run_id).state == "RUNNING"
    omics.fake.finish(row.provider_id, succeed=True)
    omics.cli_json("sync-status")
    shown = omics.cli_json("runs", "show", run_id)
    assert shown["state"] == "COMPLETE"
    assert shown["outputs"], "outputs read from the outputs JSON in S3"
    assert any("s3://" in json.dumps(value) for value in shown["outputs"].values())
    assert shown["task_logs"]
    assert all(":log-stream:run/" in log["stdout"] for log in shown["task_logs"])


def test_healthomics_failure_and_cancel(omics: OmicsWorld) -> None:
    failing, cancelled = omics.add_run(), omics.add_run()
    omics.cli_json("submit-queued")
    omics.fake.finish(omics.row(failing).provider_id, succeed=False)
    omics.fake.set_status(omics.row(cancelled).provider_id, "RUNNING")
    omics.cli_json("cancel", cancelled)
    omics.cli_json("sync-status")
    failed = omics.row(failing)
    assert failed.state == "EXECUTOR_ERROR"
    assert "RUN_TASK_FAILED" in failed.last_error
    assert omics.row(cancelled).state == "CANCELED"
    assert omics.fake.run(omics.row(cancelled).provider_id)["status"] == "CANCELLED"


def test_healthomics_kill_after_start_run_never_starts_a_second_run(
    omics: OmicsWorld,
) -> None:
    run_id = omics.add_run()
    omics.fake.inject("slow_after", "submit", delay=30.0)
    env = {**os.environ, **omics.env}
    process = wesctl_process("-q", "submit-one", run_id, env=env)
    try:
        deadline = time.monotonic() + 20
        while len(omics.fake.runs_for(run_id)) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    omics.fake.faults.clear()
    assert len(omics.fake.runs_for(run_id)) == 1, "StartRun was accepted"
    assert omics.row(run_id).provider_id is None, "but its answer never reached the database"
    expire_claim(omics.engine, run_id)
    report = omics.cli_json("submit-queued")
    assert report["counts"] in ({"adopted": 1}, {"submitted": 1})
    assert len(omics.fake.runs_for(run_id)) == 1, "the same requestId never starts a second run"
    assert omics.row(run_id).state == "INITIALIZING"
