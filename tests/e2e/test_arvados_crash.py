"""Arvados submissions interrupted through the real CLI, on every database engine.

`wesctl submit-one` runs in its own process against the https simulator; a held request
(`slow`: held before the simulator processes it, `slow_after`: processed, then the answer held)
pins it at one step of a submission while the test sends SIGKILL. The claim is then expired as a
crashed host's would be, and `submit-queued` and `sync-status` must leave exactly one Committed
container request per WES run, every draft left behind marked so it is never adopted, and the
run in the state its request is in. A lost create answer (the SDK sends the create again) must
end the same way.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.cli_helpers import wesctl, wesctl_json, wesctl_process
from tests.wes_api import expire_claim, insert_api_run, read_run
from wesctl.simulated.arvados import DEFAULT_PROJECT, DEFAULT_WORKFLOW, SimulatedArvados
from wesctl.simulated.http import DROP_AFTER_ACCEPT, SLOW, SLOW_AFTER

HOLD = 60.0  # seconds a held request waits: far longer than any test here takes


class Cluster:
    """One database, one simulated Arvados cluster and the environment of a host using both."""

    def __init__(self, db_url: str, sim: SimulatedArvados, tmp: Path) -> None:
        self.engine = create_engine(db_url)
        self.sim = sim
        self.env = {
            "DATABASE_URI": db_url,
            "ARVADOS_API_HOST": sim.host,
            "ARVADOS_API_TOKEN": sim.token,
            "ARVADOS_PROJECT_UUID": DEFAULT_PROJECT,
            "SSL_CERT_FILE": sim.ca_file,
            "XDG_CACHE_HOME": str(tmp / "cache"),
            "XDG_CONFIG_HOME": str(tmp / "config"),  # no developer's settings.conf
            "WESCTL_RETRY_INITIAL_WAIT": "0.05",
        }

    def process_env(self) -> dict[str, str]:
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("ARVADOS_", "WESCTL_")) and key != "JOURNAL_STREAM"
        }
        return {**inherited, **self.env}

    def cli_json(self, *args: str, expect: int = 0) -> Any:
        return wesctl_json(*args, env=self.env, expect=expect)

    def add_run(self) -> str:
        return insert_api_run(
            self.engine,
            workflow_url=DEFAULT_WORKFLOW,
            workflow_params={"message": "hello"},
            tags={"provider_type": "arvados"},
        )

    def row(self, run_id: str) -> Any:
        return read_run(self.engine, run_id)

    def requests(self, run_id: str, state: str | None = None) -> list[dict[str, Any]]:
        return self.sim.requests_for_run(run_id, state=state)

    def history(self, run_id: str) -> list[tuple[str, str]]:
        with self.engine.connect() as connection:
            return [
                (row.from_state, row.to_state)
                for row in connection.execute(
                    text(
                        "SELECT from_state, to_state FROM run_state_history "
                        "WHERE run_id = :id ORDER BY id"
                    ),
                    {"id": run_id},
                )
            ]


@pytest.fixture
def cluster(db_url: str, tmp_path: Path) -> Iterator[Cluster]:
    assert wesctl("--database-uri", db_url, "db", "upgrade").exit_code == 0
    with SimulatedArvados() as sim:
        world = Cluster(db_url, sim, tmp_path)
        yield world
        world.engine.dispose()


def _wait_for(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@dataclass(frozen=True)
class Step:
    """Where a submission is held: the fault, the API operation it holds, what must have
    happened at the provider before the kill, and what the kill leaves behind."""

    kind: str
    operation: str
    reached: Callable[[Cluster, str], bool]
    provider_state: str | None  # the one request's state after the kill; None: no request
    uuid_stored: bool


def _called(operation: str) -> Callable[[Cluster, str], bool]:
    return lambda cluster, run_id: cluster.sim.calls[operation] >= 1


def _request_in(state: str) -> Callable[[Cluster, str], bool]:
    return lambda cluster, run_id: len(cluster.requests(run_id, state)) == 1


STEPS = {
    # the workflow is read before the create: held there, nothing exists yet
    "before the create": Step(SLOW, "workflows.get", _called("workflows.get"), None, False),
    "after the create, before its uuid is stored": Step(
        SLOW_AFTER, "container_requests.create", _request_in("Uncommitted"), "Uncommitted", False
    ),
    # the commit is the first update of a fresh submission: held before it is processed
    "after the uuid is stored, before the commit": Step(
        SLOW,
        "container_requests.update",
        _called("container_requests.update"),
        "Uncommitted",
        True,
    ),
    "after the commit, before the outcome is stored": Step(
        SLOW_AFTER, "container_requests.update", _request_in("Committed"), "Committed", True
    ),
}


def _assert_one_committed_request(cluster: Cluster, run_id: str) -> str:
    """Exactly one Committed request for the run, stored as its provider id, and every other
    request a draft marked so that nothing ever adopts or commits it."""
    committed = cluster.requests(run_id, "Committed")
    assert len(committed) == 1, f"one committed request, not {len(committed)}"
    for draft in cluster.requests(run_id, "Uncommitted"):
        assert draft["properties"].get("wesctl_duplicate_of") == committed[0]["uuid"], draft
    assert cluster.requests(run_id, "Final") == []
    row = cluster.row(run_id)
    assert row.provider_id == committed[0]["uuid"]
    assert row.claimed_by is None, "no claim is left behind"
    return str(committed[0]["uuid"])


def _run_to_completion(cluster: Cluster, run_id: str, uuid: str) -> None:
    """The adopted request is the one the run follows, to the end, and nothing is sent twice."""
    cluster.sim.set_container_state(uuid, "Running")
    cluster.cli_json("sync-status")
    assert cluster.row(run_id).state == "RUNNING"
    cluster.sim.finish(uuid, succeed=True)
    cluster.cli_json("sync-status")
    row = cluster.row(run_id)
    assert row.state == "COMPLETE"
    assert row.end_time is not None
    assert cluster.cli_json("submit-queued")["counts"] == {}
    assert cluster.sim.runs_for(run_id) == [uuid], "no second request was ever created"
    assert cluster.history(run_id)[-3:] == [
        ("QUEUED", "INITIALIZING"),
        ("INITIALIZING", "RUNNING"),
        ("RUNNING", "COMPLETE"),
    ]


@pytest.mark.parametrize("where", list(STEPS))
def test_kill_9_of_submit_one_at_each_step_leaves_one_committed_request(
    cluster: Cluster, where: str
) -> None:
    step = STEPS[where]
    run_id = cluster.add_run()
    cluster.sim.inject(step.kind, step.operation, delay=HOLD)
    process = wesctl_process("-q", "submit-one", run_id, env=cluster.process_env())
    try:
        _wait_for(lambda: step.reached(cluster, run_id), f"{where}: {step.operation}")
        if step.uuid_stored:
            _wait_for(lambda: cluster.row(run_id).provider_id is not None, "the stored uuid")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    cluster.sim.clear_faults()

    requests = cluster.requests(run_id)
    assert [r["state"] for r in requests] == ([step.provider_state] if step.provider_state else [])
    row = cluster.row(run_id)
    assert row.state == "QUEUED", "the outcome never reached the database"
    assert row.claimed_by is not None, "the dead process still holds its claim"
    assert row.provider_id == (requests[0]["uuid"] if step.uuid_stored else None)

    # While the claim holds nobody touches the run; once it expires the next pass adopts.
    assert cluster.cli_json("submit-queued")["counts"] == {}
    assert cluster.requests(run_id) == requests
    expire_claim(cluster.engine, run_id)
    counts = cluster.cli_json("submit-queued")["counts"]
    assert counts == ({"adopted": 1} if step.provider_state else {"submitted": 1}), counts
    assert cluster.row(run_id).state == "INITIALIZING", "committed, waiting for a node"
    uuid = _assert_one_committed_request(cluster, run_id)
    if step.provider_state:
        assert uuid == requests[0]["uuid"], "the interrupted submission's request is adopted"
    _run_to_completion(cluster, run_id, uuid)


@pytest.mark.parametrize(
    ("lost", "first_pass"),
    [
        (1, {"submitted": 1}),  # the SDK's own re-send gets an answer
        (2, {"requeued": 1}),  # the re-send's answer is lost too: the next pass finds both
    ],
)
def test_a_lost_create_answer_leaves_one_committed_request(
    cluster: Cluster, lost: int, first_pass: dict[str, int]
) -> None:
    run_id = cluster.add_run()
    cluster.sim.inject(DROP_AFTER_ACCEPT, "container_requests.create", count=lost)
    expect = 0 if lost == 1 else 75
    assert cluster.cli_json("submit-one", run_id, expect=expect)["counts"] == first_pass
    assert cluster.sim.calls["container_requests.create"] == 2, "the SDK sent the create again"
    if lost == 2:
        assert cluster.requests(run_id, "Committed") == []
        assert cluster.row(run_id).state == "QUEUED"
        assert cluster.cli_json("submit-queued")["counts"] == {"adopted": 1}
    assert len(cluster.requests(run_id)) == 2, "both creates were performed"
    assert cluster.row(run_id).state == "INITIALIZING"
    uuid = _assert_one_committed_request(cluster, run_id)
    _run_to_completion(cluster, run_id, uuid)


def test_a_create_the_cluster_performs_after_the_submitter_died_is_adopted(
    cluster: Cluster,
) -> None:
    """The create is held at the cluster when the submitter is killed and performed a moment
    later, as a server finishes a request whose client went away: the draft nobody recorded is
    found by its properties and committed, not created again."""
    run_id = cluster.add_run()
    cluster.sim.inject(SLOW, "container_requests.create", delay=2.0)
    process = wesctl_process("-q", "submit-one", run_id, env=cluster.process_env())
    try:
        _wait_for(lambda: cluster.sim.calls["container_requests.create"] >= 1, "the create")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    assert cluster.requests(run_id) == [], "killed before the create was performed"
    _wait_for(lambda: cluster.requests(run_id, "Uncommitted"), "the late create")
    draft = cluster.requests(run_id)[0]["uuid"]
    assert cluster.row(run_id).provider_id is None
    expire_claim(cluster.engine, run_id)
    assert cluster.cli_json("submit-queued")["counts"] == {"adopted": 1}
    assert _assert_one_committed_request(cluster, run_id) == draft
    _run_to_completion(cluster, run_id, draft)
