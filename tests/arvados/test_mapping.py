"""Pure Arvados mapping: the state table, the container request body and per-run options,
outputs, manifests and the error classes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.arvados_fixtures import run_spec
from wesctl.domain.states import RunState
from wesctl.providers.arvados.mapping import (
    RunOptions,
    choose_adopted,
    classify,
    manifest_files,
    outputs_from_cwl,
    parse_time,
    request_body,
    run_options,
    to_status,
)
from wesctl.providers.base import (
    ProviderMisconfigured,
    ProviderRejected,
    ProviderRunNotFound,
    ProviderUnavailable,
)

PROJECT = "zzzzz-j7d0g-000000000000001"


@pytest.mark.parametrize(
    ("request_fields", "container", "expected"),
    [
        ({"state": "Uncommitted", "priority": 500}, None, RunState.INITIALIZING),
        (
            {"state": "Uncommitted", "properties": {"wesctl_canceled": True}},
            None,
            RunState.CANCELED,
        ),
        (
            {"state": "Uncommitted", "properties": {"wesctl_duplicate_of": "x"}},
            None,
            RunState.SYSTEM_ERROR,
        ),
        ({"state": "Committed", "priority": 500}, None, RunState.INITIALIZING),
        ({"state": "Committed", "priority": 500}, {"state": "Queued"}, RunState.INITIALIZING),
        ({"state": "Committed", "priority": 500}, {"state": "Locked"}, RunState.INITIALIZING),
        ({"state": "Committed", "priority": 0}, {"state": "Queued"}, RunState.CANCELED),
        ({"state": "Committed", "priority": 500}, {"state": "Running"}, RunState.RUNNING),
        ({"state": "Committed", "priority": 0}, {"state": "Running"}, RunState.CANCELING),
        (
            {"state": "Final", "priority": 500},
            {"state": "Complete", "exit_code": 0},
            RunState.COMPLETE,
        ),
        (
            {"state": "Final", "priority": 500},
            {"state": "Complete", "exit_code": 2},
            RunState.EXECUTOR_ERROR,
        ),
        ({"state": "Final", "priority": 0}, {"state": "Cancelled"}, RunState.CANCELED),
        ({"state": "Final", "priority": 500}, {"state": "Cancelled"}, RunState.SYSTEM_ERROR),
        ({"state": "Final", "priority": 500}, None, RunState.SYSTEM_ERROR),
        ({"state": "Bogus", "priority": 500}, None, None),
    ],
)
def test_state_table_never_maps_to_queued(
    request_fields: dict[str, Any], container: dict[str, Any] | None, expected: RunState | None
) -> None:
    status = to_status({"uuid": "zzzzz-xvhdp-000000000000001", **request_fields}, container)
    assert status.state == expected
    assert status.state != RunState.QUEUED


def test_system_cancel_carries_the_reason() -> None:
    status = to_status(
        {"uuid": "u", "state": "Final", "priority": 1},
        {"state": "Cancelled", "runtime_status": {"error": "node failure"}},
    )
    assert status.message == "node failure"
    assert status.raw_status == "Final/Cancelled"


def test_request_body_is_an_uncommitted_workbench_style_request() -> None:
    spec = run_spec("run-1")
    workflow = {"name": "hello", "definition": '{"cwlVersion": "v1.2"}'}
    body = request_body(spec, "key-1", workflow, RunOptions(project=PROJECT, ram_mib=2048))
    assert body["state"] == "Uncommitted"
    assert body["owner_uuid"] == PROJECT
    assert body["properties"]["wes_run_id"] == "run-1"
    assert body["properties"]["wesctl_submission_key"] == "key-1"
    assert body["mounts"]["/var/lib/cwl/workflow.json"]["content"] == {"cwlVersion": "v1.2"}
    assert body["runtime_constraints"]["ram"] == (2048 + 256) * 1024 * 1024
    assert f"--project-uuid={PROJECT}" in body["command"]


def test_a_definition_that_is_not_json_is_rejected() -> None:
    with pytest.raises(ProviderRejected, match="not JSON"):
        request_body(
            run_spec("r"), "k", {"definition": "cwlVersion: [v1"}, RunOptions(project=PROJECT)
        )


def test_options_from_engine_parameters_win_over_tags() -> None:
    spec = run_spec(
        "r",
        tags={"priority": "7", "workflow_engine_parameters": {"priority": 9, "vcpus": 4}},
    )
    options = run_options(spec, PROJECT)
    assert options.priority == 9
    assert options.vcpus == 4


def test_no_project_anywhere_is_rejected() -> None:
    with pytest.raises(ProviderRejected, match="no project"):
        run_options(run_spec("r"), None)


def test_adoption_prefers_committed_then_oldest_and_never_a_duplicate() -> None:
    draft = {"uuid": "a", "state": "Uncommitted", "created_at": "1"}
    committed = {"uuid": "b", "state": "Committed", "created_at": "2"}
    twin = {"uuid": "c", "state": "Uncommitted", "created_at": "0", "properties": {}}
    duplicate = {"uuid": "d", "state": "Committed", "properties": {"wesctl_duplicate_of": "b"}}
    assert choose_adopted([draft, committed, duplicate]) == committed
    assert choose_adopted([draft, twin]) == twin
    assert choose_adopted([duplicate]) is None


def test_manifest_files_and_outputs_locations() -> None:
    text = ". abc+10 0:4:cwl.output.json 4:6:a\\040b.txt\n./sub abc+3 0:3:c.txt\n"
    assert manifest_files(text) == [("cwl.output.json", 4), ("a b.txt", 6), ("sub/c.txt", 3)]
    outputs = outputs_from_cwl(
        {"o": {"class": "File", "location": "sub/c.txt"}, "n": 1, "k": {"location": "x"}},
        "zzzzz-4zz18-000000000000001",
        "https://download.example/",
    )
    assert outputs["o"]["location"] == (
        "https://download.example/c=zzzzz-4zz18-000000000000001/sub/c.txt"
    )
    assert outputs["k"] == {"location": "x"}


def test_timestamps_with_nanoseconds_are_naive_utc() -> None:
    parsed = parse_time("2026-12-03T11:00:00.123456789Z")
    assert parsed is not None
    assert parsed.isoformat() == "2026-12-03T11:00:00.123456"


@pytest.mark.parametrize(
    ("status", "flags", "expected"),
    [
        (None, {}, ProviderUnavailable),
        (429, {}, ProviderUnavailable),
        (503, {}, ProviderUnavailable),
        (401, {}, ProviderMisconfigured),
        (403, {"about_project": True}, ProviderMisconfigured),
        (404, {"about_project": True}, ProviderMisconfigured),
        (403, {}, ProviderRejected),
        (404, {"known_request": True}, ProviderRunNotFound),
        (404, {}, ProviderRejected),
        (422, {}, ProviderRejected),
        (None, {"certificate": True}, ProviderMisconfigured),
    ],
)
def test_error_classes(status: int | None, flags: dict[str, bool], expected: type) -> None:
    assert type(classify(status, "op", "text", **flags)) is expected
