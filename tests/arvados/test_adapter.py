"""The Arvados adapter through the real SDK over https against the simulator: exactly-once
submission across lost answers and crashes, batch status, details, cancel and the error
classes."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.contract.arvados_fixtures import make_provider, run_spec
from wesctl.domain.states import RunState
from wesctl.domain.types import Attempt
from wesctl.providers.arvados.adapter import ArvadosProvider
from wesctl.providers.base import ProviderMisconfigured, ProviderRejected, ProviderUnavailable
from wesctl.simulated.arvados import DEFAULT_PROJECT, SimulatedArvados


class Crash(Exception):
    """Stands in for kill -9 at a step of a submission."""


@pytest.fixture
def provider(sim: SimulatedArvados) -> Iterator[ArvadosProvider]:
    adapter = make_provider(sim)
    yield adapter
    adapter.close()


def submit(
    provider: ArvadosProvider,
    run_id: str,
    *,
    recorded: list[str] | None = None,
    known: str | None = None,
    may_exist: bool = False,
    record: Any = None,
) -> Any:
    recorded = recorded if recorded is not None else []
    return provider.submit(
        Attempt(run_spec(run_id), f"wesctl-{run_id}-1", known, may_exist), record or recorded.append
    )


def committed(sim: SimulatedArvados, run_id: str) -> list[dict[str, Any]]:
    return [r for r in sim.requests_for_run(run_id) if r["state"] != "Uncommitted"]


def live_drafts(sim: SimulatedArvados, run_id: str) -> list[dict[str, Any]]:
    return [
        r
        for r in sim.requests_for_run(run_id, state="Uncommitted")
        if not {"wesctl_duplicate_of", "wesctl_canceled"} & set(r["properties"])
    ]


def test_submit_creates_a_draft_records_it_then_commits_as_workbench_runs_a_workflow(
    sim: SimulatedArvados, provider: ArvadosProvider
) -> None:
    recorded: list[str] = []
    result = submit(provider, "run-1", recorded=recorded)
    assert recorded == [result.provider_id]
    assert result.status.state == RunState.INITIALIZING
    request = sim.request(result.provider_id)
    assert request["state"] == "Committed"
    assert request["priority"] == 500
    assert request["owner_uuid"] == DEFAULT_PROJECT
    assert request["properties"]["wes_run_id"] == "run-1"
    assert request["properties"]["wesctl_submission_key"] == "wesctl-run-1-1"
    assert request["properties"]["template_uuid"] == run_spec("x").workflow_url
    assert request["command"][0] == "arvados-cwl-runner"
    assert request["command"][-2:] == [
        "/var/lib/cwl/workflow.json#main",
        "/var/lib/cwl/cwl.input.json",
    ]
    mounts = request["mounts"]
    assert mounts["/var/lib/cwl/cwl.input.json"] == {
        "kind": "json",
        "content": {"message": "hello"},
    }
    assert mounts["/var/lib/cwl/workflow.json"]["content"]["cwlVersion"] == "v1.2"
    assert request["container_image"] == "arvados/jobs"
    assert request["runtime_constraints"]["API"] is True
    assert "run-1" in request["name"]
    assert sim.calls["container_requests.create"] == 1


def test_lost_create_answer_the_sdk_resends_gives_one_committed_request_and_no_live_draft(
    sim: SimulatedArvados, provider: ArvadosProvider
) -> None:
    sim.inject("drop_after_accept", "container_requests.create")  # httplib2 sends it again
    result = submit(provider, "run-lost")
    assert sim.calls["container_requests.create"] == 2  # the create was performed twice
    assert [r["uuid"] for r in committed(sim, "run-lost")] == [result.provider_id]
    assert live_drafts(sim, "run-lost") == []
    twin = sim.requests_for_run("run-lost", state="Uncommitted")
    assert [r["properties"]["wesctl_duplicate_of"] for r in twin] == [result.provider_id]


def test_both_create_answers_lost_raises_then_the_next_attempt_adopts(
    sim: SimulatedArvados, provider: ArvadosProvider
) -> None:
    sim.inject("drop_after_accept", "container_requests.create", count=2)
    with pytest.raises(ProviderUnavailable):
        submit(provider, "run-lost2")
    result = submit(provider, "run-lost2", may_exist=True)
    assert result.adopted
    assert [r["uuid"] for r in committed(sim, "run-lost2")] == [result.provider_id]
    assert live_drafts(sim, "run-lost2") == []


def test_crash_before_create_leaves_nothing(
    sim: SimulatedArvados, provider: ArvadosProvider
) -> None:
    assert provider.lookup(Attempt(run_spec("run-0"), "wesctl-run-0-1")) is None
    result = submit(provider, "run-0", may_exist=True)
    assert [r["uuid"] for r in committed(sim, "run-0")] == [result.provider_id]


def test_crash_after_create_before_the_uuid_is_stored_is_adopted(
    sim: SimulatedArvados, provider: ArvadosProvider
) -> None:
    def crash(uuid: str) -> None:
        raise Crash(uuid)

    with pytest.raises(Crash):
        submit(provider, "run-2", record=crash)
    assert committed(sim, "run-2") == []  # a draft never runs
    recorded: list[str] = []
    result = submit(provider, "run-2", may_exist=True, recorded=recorded)
    assert result.adopted
    assert recorded == [result.provider_id]
    assert [r["uuid"] for r in committed(sim, "run-2")] == [result.provider_id]
    assert live_drafts(sim, "run-2") == []


def submit_until_stored(provider: ArvadosProvider, run_id: str) -> str:
    """Submit `run_id` and crash right after its request's uuid is stored; return the uuid."""
    stored: list[str] = []

    def store_then_crash(uuid: str) -> None:
        stored.append(uuid)
        raise Crash(uuid)

    with pytest.raises(Crash):
        submit(provider, run_id, record=store_then_crash)
    return stored[0]


def test_crash_after_the_uuid_is_stored_before_commit_commits_once(
    sim: SimulatedArvados, provider: ArvadosProvider
) -> None:
    stored = [submit_until_stored(provider, "run-3")]
    result = submit(provider, "run-3", known=stored[0], may_exist=True)
    assert result.provider_id == stored[0]
    assert [r["uuid"] for r in committed(sim, "run-3")] == stored
    assert sim.calls["container_requests.create"] == 1


def test_crash_after_commit_before_the_outcome_is_stored_adopts_without_a_second_commit(
    sim: SimulatedArvados, provider: ArvadosProvider
) -> None:
    first = submit(provider, "run-4")
    updates = sim.calls["container_requests.update"]
    again = submit(provider, "run-4", known=first.provider_id, may_exist=True)
    assert again.provider_id == first.provider_id
    assert again.adopted
    assert sim.calls["container_requests.update"] == updates
    assert len(committed(sim, "run-4")) == 1


def test_statuses_of_1000_runs_take_one_list_of_requests_and_one_of_containers(
    sim: SimulatedArvados, provider: ArvadosProvider
) -> None:
    ids = [sim.add_committed_request({"wes_run_id": f"r{i}"}) for i in range(1000)]
    provider.statuses(ids[:1])  # builds the client
    before = dict(sim.calls)
    result = provider.statuses(ids)
    assert len(result) == 1000
    assert all(s is not None and s.state == RunState.INITIALIZING for s in result.values())
    assert sim.calls["container_requests.list"] - before["container_requests.list"] == 1
    assert sim.calls["containers.list"] - before.get("containers.list", 0) == 1
    assert sum(sim.calls.values()) - sum(before.values()) == 2


def test_states_map_without_going_back_to_queued(
    sim: SimulatedArvados, provider: ArvadosProvider
) -> None:
    ok, failed, lost = (submit(provider, f"run-s{i}").provider_id for i in range(3))
    sim.set_container_state(ok, "Running")
    sim.finish(failed, succeed=False, exit_code=3)
    sim.cancel_by_system(lost, "node lost")
    result = provider.statuses([ok, failed, lost])
    assert result[ok] is not None
    assert result[ok].state == RunState.RUNNING
    assert result[failed] is not None
    assert result[failed].state == RunState.EXECUTOR_ERROR
    assert result[lost] is not None
    assert result[lost].state == RunState.SYSTEM_ERROR
    assert result[lost].message == "node lost"


def test_details_outputs_from_cwl_output_json_and_logs_of_runner_and_steps(
    sim: SimulatedArvados, provider: ArvadosProvider
) -> None:
    pid = submit(provider, "run-d").provider_id
    sim.finish(pid, succeed=True)
    request = sim.request(pid)
    status = provider.statuses([pid])[pid]
    assert status is not None
    assert status.state == RunState.COMPLETE
    details = provider.details(pid)
    out = details.outputs["out"]
    assert out["class"] == "File"
    assert out["location"] == f"{request['output_uuid']}/out.txt"
    assert details.outputs["line_count"] == 1
    runner, step = details.task_logs
    assert runner.task_id == pid
    assert runner.exit_code == 0
    assert runner.stderr == f"{request['log_uuid']}/stderr.txt"
    assert any(line.startswith("crunch-run.txt: ") for line in runner.system_logs)
    assert step.name == "step1"
    assert step.stdout
    assert step.stdout.endswith("/stdout.txt")
    assert step.start_time is not None
    assert step.end_time is not None


def test_cancel_running_is_canceling_until_a_later_sync_confirms(
    sim: SimulatedArvados, provider: ArvadosProvider
) -> None:
    pid = submit(provider, "run-c").provider_id
    sim.set_container_state(pid, "Running")
    provider.cancel(pid)
    assert sim.request(pid)["priority"] == 0
    status = provider.statuses([pid])[pid]
    assert status is not None
    assert status.state == RunState.CANCELED
    provider.cancel(pid)  # already final: no request changes
    assert sim.request(pid)["state"] == "Final"


def test_cancel_of_a_queued_request_puts_it_on_hold_which_is_canceled(
    sim: SimulatedArvados, provider: ArvadosProvider
) -> None:
    pid = submit(provider, "run-hold").provider_id
    provider.cancel(pid)
    assert sim.request(pid)["state"] == "Committed"
    assert sim.container_of(pid)["state"] == "Queued"
    status = provider.statuses([pid])[pid]
    assert status is not None
    assert status.state == RunState.CANCELED


def test_canceled_draft_stays_uncommitted_and_is_never_committed(
    sim: SimulatedArvados, provider: ArvadosProvider
) -> None:
    stored = [submit_until_stored(provider, "run-cd")]
    provider.cancel(stored[0])
    status = provider.statuses(stored)[stored[0]]
    assert status is not None
    assert status.state == RunState.CANCELED
    again = submit(provider, "run-cd", known=stored[0], may_exist=True)
    assert again.status.state == RunState.CANCELED
    assert committed(sim, "run-cd") == []
    assert live_drafts(sim, "run-cd") == []


def test_refused_token_is_misconfigured_naming_the_setting(
    sim: SimulatedArvados, provider: ArvadosProvider
) -> None:
    submit(provider, "run-t")
    sim.reject_token(sim.token)
    with pytest.raises(ProviderMisconfigured) as info:
        submit(provider, "run-t2")
    assert "ARVADOS_API_TOKEN" in info.value.fix
    assert sim.token not in str(info.value)
    probe = provider.probe()
    assert not probe[0].ok
    assert "401" in probe[0].detail


def test_unwritable_project_is_misconfigured_naming_the_project_setting(
    sim: SimulatedArvados, provider: ArvadosProvider
) -> None:
    sim.forbid_project(DEFAULT_PROJECT)
    with pytest.raises(ProviderMisconfigured) as info:
        submit(provider, "run-p")
    assert "ARVADOS_PROJECT_UUID" in info.value.fix
    token, project = provider.probe()
    assert token.ok
    assert not project.ok
    assert "not writable" in project.detail


def test_probe_accepts_a_good_setup(sim: SimulatedArvados, provider: ArvadosProvider) -> None:
    assert [result.ok for result in provider.probe()] == [True, True]


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({"priority": 0}, "priority=0 must be between 1 and 1000"),
        ({"priority": "high"}, "whole number"),
        ({"project": "alice/project"}, "not an Arvados project uuid"),
        ({"workflow_engine_parameters": {"vcpus": -1}}, "vcpus=-1"),
        ({"container_image": "two words"}, "not an image name"),
    ],
)
def test_invalid_per_run_options_are_rejected_before_any_call(
    sim: SimulatedArvados, provider: ArvadosProvider, tags: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProviderRejected, match=message):
        provider.validate(run_spec("run-o", tags=tags))
    assert sum(sim.calls.values()) == 0


def test_unknown_workflow_is_rejected(sim: SimulatedArvados, provider: ArvadosProvider) -> None:
    spec = run_spec("run-w", workflow_url="zzzzz-7fd4e-000000000000999")
    with pytest.raises(ProviderRejected, match="get workflow failed"):
        provider.submit(Attempt(spec, "k"), lambda uuid: None)


def test_503_is_unavailable(sim: SimulatedArvados, provider: ArvadosProvider) -> None:
    sim.inject("unavailable", "container_requests.create", count=None)
    with pytest.raises(ProviderUnavailable):
        submit(provider, "run-503")
    assert sim.calls["container_requests.create"] == 3  # WESCTL_RETRY_ATTEMPTS, then it gives up
    assert committed(sim, "run-503") == []


def test_untrusted_certificate_is_misconfigured_naming_ssl_cert_file(
    sim: SimulatedArvados, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")
    provider = make_provider(sim)
    with pytest.raises(ProviderMisconfigured) as info:
        provider.statuses(["zzzzz-xvhdp-000000000000001"])
    assert "SSL_CERT_FILE" in info.value.fix


def test_a_recorded_uuid_of_another_run_is_not_adopted(
    sim: SimulatedArvados, provider: ArvadosProvider
) -> None:
    other = submit(provider, "run-other").provider_id
    result = submit(provider, "run-mine", known=other, may_exist=True)
    assert result.provider_id != other
    assert [r["uuid"] for r in committed(sim, "run-mine")] == [result.provider_id]


def test_concurrent_requests_use_their_own_clients_and_close_closes_them_all(
    sim: SimulatedArvados,
) -> None:
    """The SDK's HTTP connection is not thread-safe: requests in flight at once (submit and
    sync worker threads) each get a client, later ones reuse them, and close() closes every
    one without making another (no discovery request; no socket left to the garbage
    collector: pytest turns that ResourceWarning into a failure)."""
    adapter = make_provider(sim)
    sim.inject("slow", "container_requests.list", count=3, delay=0.3)  # three overlap
    barrier = threading.Barrier(3)

    def status(number: int) -> None:
        barrier.wait()
        adapter.statuses([f"zzzzz-xvhdp-00000000000000{number}"])

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(status, range(3)))
    assert sim.calls["discovery"] == 3
    with ThreadPoolExecutor(max_workers=3) as pool:  # new threads, no request in flight
        list(pool.map(lambda n: adapter.statuses([f"zzzzz-xvhdp-00000000000001{n}"]), range(3)))
    assert sim.calls["discovery"] == 3, "idle clients are reused by other threads"
    adapter.close()
    gc.collect()
    assert sim.calls["discovery"] == 3, "close() made no client"
