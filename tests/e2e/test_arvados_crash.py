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
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.cli_helpers import wesctl_process
from tests.e2e.arvados_cluster import ArvadosCluster
from tests.wes_api import expire_claim
from wesctl.simulated.http import DROP_AFTER_ACCEPT, SLOW, SLOW_AFTER

HOLD = 60.0  # seconds a held request waits: far longer than any test here takes


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
    reached: Callable[[ArvadosCluster, str], bool]
    provider_state: str | None  # the one request's state after the kill; None: no request
    uuid_stored: bool


def _called(operation: str) -> Callable[[ArvadosCluster, str], bool]:
    return lambda arvados, run_id: arvados.sim.calls[operation] >= 1


def _request_in(state: str) -> Callable[[ArvadosCluster, str], bool]:
    return lambda arvados, run_id: len(arvados.requests(run_id, state)) == 1


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


def _assert_one_committed_request(arvados: ArvadosCluster, run_id: str) -> str:
    """Exactly one Committed request for the run, stored as its provider id, and every other
    request a draft marked so that nothing ever adopts or commits it."""
    committed = arvados.requests(run_id, "Committed")
    assert len(committed) == 1, f"one committed request, not {len(committed)}"
    for draft in arvados.requests(run_id, "Uncommitted"):
        assert draft["properties"].get("wesctl_duplicate_of") == committed[0]["uuid"], draft
    assert arvados.requests(run_id, "Final") == []
    row = arvados.row(run_id)
    assert row.provider_id == committed[0]["uuid"]
    assert row.claimed_by is None, "no claim is left behind"
    return str(committed[0]["uuid"])


def _run_to_completion(arvados: ArvadosCluster, run_id: str, uuid: str) -> None:
    """The adopted request is the one the run follows, to the end, and nothing is sent twice."""
    arvados.sim.set_container_state(uuid, "Running")
    arvados.cli_json("sync-status")
    assert arvados.row(run_id).state == "RUNNING"
    arvados.sim.finish(uuid, succeed=True)
    arvados.cli_json("sync-status")
    row = arvados.row(run_id)
    assert row.state == "COMPLETE"
    assert row.end_time is not None
    assert arvados.cli_json("submit-queued")["counts"] == {}
    assert arvados.sim.runs_for(run_id) == [uuid], "no second request was ever created"
    assert arvados.history(run_id)[-3:] == [
        ("QUEUED", "INITIALIZING"),
        ("INITIALIZING", "RUNNING"),
        ("RUNNING", "COMPLETE"),
    ]


@pytest.mark.parametrize("where", list(STEPS))
def test_kill_9_of_submit_one_at_each_step_leaves_one_committed_request(
    arvados: ArvadosCluster, where: str
) -> None:
    step = STEPS[where]
    run_id = arvados.add_run()
    arvados.sim.inject(step.kind, step.operation, delay=HOLD)
    process = wesctl_process("-q", "submit-one", run_id, env=arvados.process_env())
    try:
        _wait_for(lambda: step.reached(arvados, run_id), f"{where}: {step.operation}")
        if step.uuid_stored:
            _wait_for(lambda: arvados.row(run_id).provider_id is not None, "the stored uuid")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    arvados.sim.clear_faults()

    requests = arvados.requests(run_id)
    assert [r["state"] for r in requests] == ([step.provider_state] if step.provider_state else [])
    row = arvados.row(run_id)
    assert row.state == "QUEUED", "the outcome never reached the database"
    assert row.claimed_by is not None, "the dead process still holds its claim"
    assert row.provider_id == (requests[0]["uuid"] if step.uuid_stored else None)

    # While the claim holds nobody touches the run; once it expires the next pass adopts.
    assert arvados.cli_json("submit-queued")["counts"] == {}
    assert arvados.requests(run_id) == requests
    expire_claim(arvados.engine, run_id)
    counts = arvados.cli_json("submit-queued")["counts"]
    assert counts == ({"adopted": 1} if step.provider_state else {"submitted": 1}), counts
    assert arvados.row(run_id).state == "INITIALIZING", "committed, waiting for a node"
    uuid = _assert_one_committed_request(arvados, run_id)
    if step.provider_state:
        assert uuid == requests[0]["uuid"], "the interrupted submission's request is adopted"
    _run_to_completion(arvados, run_id, uuid)


@pytest.mark.parametrize(
    ("lost", "first_pass"),
    [
        (1, {"submitted": 1}),  # the SDK's own re-send gets an answer
        (2, {"requeued": 1}),  # the re-send's answer is lost too: the next pass finds both
    ],
)
def test_a_lost_create_answer_leaves_one_committed_request(
    arvados: ArvadosCluster, lost: int, first_pass: dict[str, int]
) -> None:
    run_id = arvados.add_run()
    arvados.sim.inject(DROP_AFTER_ACCEPT, "container_requests.create", count=lost)
    expect = 0 if lost == 1 else 75
    assert arvados.cli_json("submit-one", run_id, expect=expect)["counts"] == first_pass
    assert arvados.sim.calls["container_requests.create"] == 2, "the SDK sent the create again"
    if lost == 2:
        assert arvados.requests(run_id, "Committed") == []
        assert arvados.row(run_id).state == "QUEUED"
        assert arvados.cli_json("submit-queued")["counts"] == {"adopted": 1}
    assert len(arvados.requests(run_id)) == 2, "both creates were performed"
    assert arvados.row(run_id).state == "INITIALIZING"
    uuid = _assert_one_committed_request(arvados, run_id)
    _run_to_completion(arvados, run_id, uuid)


def test_a_create_the_cluster_performs_after_the_submitter_died_is_adopted(
    arvados: ArvadosCluster,
) -> None:
    """The create is held at the cluster when the submitter is killed and performed a moment
    later, as a server finishes a request whose client went away: the draft nobody recorded is
    found by its properties and committed, not created again."""
    run_id = arvados.add_run()
    arvados.sim.inject(SLOW, "container_requests.create", delay=2.0)
    process = wesctl_process("-q", "submit-one", run_id, env=arvados.process_env())
    try:
        _wait_for(lambda: arvados.sim.calls["container_requests.create"] >= 1, "the create")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    assert arvados.requests(run_id) == [], "killed before the create was performed"
    _wait_for(lambda: arvados.requests(run_id, "Uncommitted"), "the late create")
    draft = arvados.requests(run_id)[0]["uuid"]
    assert arvados.row(run_id).provider_id is None
    expire_claim(arvados.engine, run_id)
    assert arvados.cli_json("submit-queued")["counts"] == {"adopted": 1}
    assert _assert_one_committed_request(arvados, run_id) == draft
    _run_to_completion(arvados, run_id, draft)
