"""An installation as operators have it: configured with nothing but the original design's
variable names, several hosts sharing one queue, runs the WES API wrote with odd states; none
of it may fail a run that is not itself at fault."""

from __future__ import annotations

import json
import os

import pytest
from sqlalchemy import text

from tests.cli_helpers import wesctl_process
from tests.e2e.conftest import Site
from tests.e2e.providers import SBG_TOKEN
from tests.wes_api import insert_api_run


def test_the_original_variable_names_alone_serve_every_configured_provider(site: Site) -> None:
    env = site.original_names_only()
    assert not [key for key in env if key.startswith("WESCTL_")]
    sbg_run, omics_run = site.add_sevenbridges_run(), site.add_healthomics_run()

    report = site.cli_json("submit-queued", env=env)
    assert report["counts"] == {"submitted": 2}, report
    assert len(site.sbg.runs_for(sbg_run)) == 1
    assert len(site.omics.runs_for(omics_run)) == 1

    site.sbg.finish(site.row(sbg_run).provider_id, succeed=True)
    site.omics.finish(site.row(omics_run).provider_id, succeed=True)
    site.cli_json("sync-status", env=env)
    assert site.row(sbg_run).state == "COMPLETE"
    assert site.row(omics_run).state == "COMPLETE"


def test_without_any_aws_region_the_original_fallback_region_is_used(site: Site) -> None:
    env = {
        key: value
        for key, value in site.original_names_only().items()
        if key not in ("AWS_REGION", "AWS_DEFAULT_REGION")
    }
    run_id = site.add_healthomics_run()
    result = site.cli("submit-queued", env=env)
    assert result.exit_code == 0, result.output
    assert "using us-east-1" in result.stderr
    assert len(site.omics.runs_for(run_id)) == 1


def test_two_hosts_each_submit_only_their_providers_runs(site: Site) -> None:
    sbg_runs = [site.add_sevenbridges_run() for _ in range(3)]
    omics_runs = [site.add_healthomics_run() for _ in range(3)]
    sbg_host = {**os.environ, **site.env, "WESCTL_PROVIDERS": "sevenbridges"}
    omics_host = {**os.environ, **site.env, "WESCTL_PROVIDERS": "healthomics"}
    first = wesctl_process("submit-queued", "--json", env=sbg_host, stdout=-1, text=True)
    second = wesctl_process("submit-queued", "--json", env=omics_host, stdout=-1, text=True)
    outputs = [process.communicate(timeout=60)[0] for process in (first, second)]
    assert [process.returncode for process in (first, second)] == [0, 0]
    reports = [json.loads(output) for output in outputs]
    for report in reports:
        assert "failed" not in report["counts"], report
    assert sum(report["counts"].get("submitted", 0) for report in reports) == 6
    for run_id in sbg_runs:
        assert len(site.sbg.runs_for(run_id)) == 1
        assert site.row(run_id).provider_type == "sevenbridges"
    for run_id in omics_runs:
        assert len(site.omics.runs_for(run_id)) == 1
        assert site.row(run_id).provider_type == "healthomics"


def test_a_run_for_a_provider_this_host_does_not_serve_waits_untouched(site: Site) -> None:
    waiting = site.add_healthomics_run()
    served = site.add_sevenbridges_run()
    sbg_only = {**site.env, "WESCTL_PROVIDERS": "sevenbridges"}

    report = site.cli_json("submit-queued", env=sbg_only)
    assert report["counts"] == {"submitted": 1, "waiting": 1}
    assert any("1 runs wait for provider healthomics" in note for note in report["notes"])
    row = site.row(waiting)
    assert (row.state, row.submit_attempts, row.claimed_by, row.last_error) == (
        "QUEUED",
        0,
        None,
        None,
    )
    assert len(site.omics.runs_for(waiting)) == 0
    assert site.row(served).state == "INITIALIZING"

    status = site.cli_json("status", env=sbg_only)
    assert any("1 runs wait for provider healthomics" in line for line in status["warnings"])
    doctor = {row["check"]: row for row in site.cli_json("doctor", expect=1, env=sbg_only)}
    assert doctor["runs"]["result"] == "warn"
    assert "provider healthomics" in doctor["runs"]["detail"]

    dry = site.cli_json("submit-queued", "--dry-run", env=sbg_only)
    assert {item["run_id"]: item["outcome"] for item in dry["runs"]} == {waiting: "waiting"}
    one = site.cli_json("submit-one", waiting, env=sbg_only)
    assert one["runs"][0]["outcome"] == "waiting"
    assert site.row(waiting).submit_attempts == 0

    # Once this host serves the provider too, the run is submitted as usual.
    assert site.cli_json("submit-queued")["counts"] == {"submitted": 1}
    assert len(site.omics.runs_for(waiting)) == 1


def test_only_a_provider_name_wesctl_does_not_know_ends_the_run(site: Site) -> None:
    unknown = insert_api_run(site.engine, tags={"provider_type": "arvadoz"})
    report = site.cli_json("submit-queued", expect=1)
    assert report["counts"] == {"failed": 1}
    row = site.row(unknown)
    assert row.state == "SYSTEM_ERROR"
    assert "unknown provider 'arvadoz'" in row.last_error
    assert "healthomics, sevenbridges" in row.last_error


@pytest.mark.parametrize("odd_state", ["queued", "QUEUED "])
def test_runs_whose_state_is_not_exactly_a_wes_state_are_reported(
    site: Site, odd_state: str
) -> None:
    run_id = site.add_sevenbridges_run(state=odd_state)
    report = site.cli_json("submit-queued")
    assert any(repr(odd_state) in note for note in report["notes"]), report
    status = site.cli_json("status")
    assert any(f"1 runs have state {odd_state!r}" in line for line in status["warnings"])
    doctor = {row["check"]: row for row in site.cli_json("doctor", expect=1)}
    assert doctor["runs"]["result"] == "warn"
    assert site.row(run_id).state == odd_state, "reported, never rewritten behind the API"


def test_a_run_the_wes_api_cancelled_gets_an_end_time_once_the_provider_stopped(
    site: Site,
) -> None:
    run_id = site.add_sevenbridges_run()
    site.cli_json("submit-queued")
    task = site.row(run_id).provider_id
    site.sbg.set_status(task, "RUNNING")
    site.set_state(run_id, "CANCELED")  # POST /runs/{id}/cancel: no end time
    assert site.row(run_id).end_time is None
    first = site.cli_json("sync-status")  # asks the provider to stop the task
    assert first["counts"] == {"cancel-sent": 1}, first
    site.sbg.set_status(task, "ABORTED")
    second = site.cli_json("sync-status")  # sees it stopped
    assert second["counts"] == {"stopped": 1}, second
    row = site.row(run_id)
    assert row.state == "CANCELED"
    assert row.end_time is not None
    assert site.cli_json("sync-status")["counts"] == {}, "nothing pending any more"


# --- rows that cannot be read, values that do not fit -----------------------------------------


def _write_raw(site: Site, run_id: str, column: str, raw: str) -> None:
    """What a buggy writer can leave in SQLite, which accepts any text in a JSON column."""
    with site.engine.begin() as connection:
        connection.execute(
            text(f"UPDATE workflow_runs SET {column} = :raw WHERE run_id = :id"),
            {"raw": raw, "id": run_id},
        )


def test_unreadable_rows_fail_alone_and_the_queue_goes_on(site: Site, db_url: str) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL and the API's MariaDB tables refuse text that is not JSON")
    good = [site.add_sevenbridges_run() for _ in range(50)]
    bad = [site.add_sevenbridges_run() for _ in range(5)]
    for index, run_id in enumerate(bad):
        _write_raw(site, run_id, "workflow_params" if index % 2 else "tags", "{not json")
    env = {**site.env, "DAEMON_MAX_CONCURRENT_WORKFLOWS": "100"}

    report = site.cli_json("submit-queued", expect=1, env=env)
    assert report["counts"] == {"submitted": 50, "failed": 5}, report
    assert {site.row(run_id).state for run_id in good} == {"INITIALIZING"}
    for run_id in bad:
        row = site.row(run_id)
        assert row.state == "SYSTEM_ERROR"
        assert "is not valid JSON" in row.last_error

    assert site.cli("status", "--json", env=env).exit_code == 0
    listed = site.cli_json("runs", "list", "--limit", "100", env=env)
    assert len(listed) == 55  # type: ignore[arg-type]
    shown = site.cli_json("runs", "show", bad[0], env=env)
    assert shown["unreadable"]
    assert shown["state"] == "SYSTEM_ERROR"


def test_a_provider_status_longer_than_its_column_is_stored_cut(site: Site) -> None:
    run_id = site.add_healthomics_run()
    site.cli_json("submit-queued")
    long_status = "STATUS_" + "X" * 80
    site.omics.set_status(site.row(run_id).provider_id, long_status)
    other = site.add_healthomics_run()
    site.cli_json("submit-queued")
    site.omics.set_status(site.row(other).provider_id, "RUNNING")

    site.cli_json("sync-status")
    assert site.row(run_id).provider_status == long_status[:50]
    assert site.row(other).state == "RUNNING", "the rest of the batch is synced"


# --- credentials the provider refuses ---------------------------------------------------------


def _untouched(site: Site, run_ids: list[str], state: str = "QUEUED") -> None:
    for run_id in run_ids:
        row = site.row(run_id)
        assert (row.state, row.claimed_by) == (state, None), run_id
        if state == "QUEUED":
            assert (row.submit_attempts, row.provider_id) == (0, None), run_id


def _history_rows(site: Site) -> int:
    with site.engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM run_state_history")).scalar_one())


def _one_line_naming(stderr: str, *words: str) -> None:
    lines = [line for line in stderr.splitlines() if all(word in line for word in words)]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr


def test_a_rejected_seven_bridges_token_changes_no_run(site: Site) -> None:
    runs = [site.add_sevenbridges_run() for _ in range(5)]
    site.sbg.reject_token(SBG_TOKEN)
    history = _history_rows(site)

    result = site.cli("submit-queued")
    assert result.exit_code == 78, result.output
    _one_line_naming(result.stderr, "sevenbridges", "SEVENBRIDGES_API_TOKEN")
    _untouched(site, runs)
    assert _history_rows(site) == history
    assert "SEVENBRIDGES_API_TOKEN" in site.row(runs[0]).last_error
    assert all(not site.sbg.runs_for(run_id) for run_id in runs)
    status = site.cli_json("status")
    assert any("sevenbridges" in line and "token" in line.lower() for line in status["warnings"])

    site.sbg.accept_token(SBG_TOKEN)  # the operator installs a valid token
    assert site.cli_json("submit-queued")["counts"] == {"submitted": 5}
    assert [len(site.sbg.runs_for(run_id)) for run_id in runs] == [1] * 5


@pytest.mark.parametrize("code", ["UnrecognizedClientException", "ExpiredTokenException"])
def test_rejected_aws_credentials_change_no_run(site: Site, code: str) -> None:
    runs = [site.add_healthomics_run() for _ in range(5)]
    site.omics.reject_credentials(site.env["AWS_ACCESS_KEY_ID"], code)

    result = site.cli("submit-queued")
    assert result.exit_code == 78, result.output
    _one_line_naming(result.stderr, "healthomics", "credential")
    _untouched(site, runs)
    assert all(len(site.omics.runs_for(run_id)) == 0 for run_id in runs)

    site.omics.accept_credentials(site.env["AWS_ACCESS_KEY_ID"])
    assert site.cli_json("submit-queued")["counts"] == {"submitted": 5}
    assert [len(site.omics.runs_for(run_id)) for run_id in runs] == [1] * 5


def test_credentials_rejected_during_sync_and_cancel_change_no_run(site: Site) -> None:
    sbg_runs = [site.add_sevenbridges_run() for _ in range(3)]
    omics_runs = [site.add_healthomics_run() for _ in range(3)]
    site.cli_json("submit-queued")
    for run_id in sbg_runs:
        site.sbg.set_status(site.row(run_id).provider_id, "RUNNING")
    site.set_state(sbg_runs[0], "CANCELED")  # the WES API's cancel: wesctl must stop the task
    site.sbg.reject_token(SBG_TOKEN)
    history = _history_rows(site)

    result = site.cli("sync-status")
    assert result.exit_code == 78, result.output
    _one_line_naming(result.stderr, "sevenbridges", "SEVENBRIDGES_API_TOKEN")
    _untouched(site, sbg_runs[1:], "INITIALIZING")
    assert site.row(sbg_runs[0]).cancel_sent_at is None, "the stop stays pending"
    assert {site.row(run_id).state for run_id in omics_runs} == {"INITIALIZING"}
    assert _history_rows(site) == history

    result = site.cli("cancel")
    assert result.exit_code == 78, result.output
    assert site.row(sbg_runs[0]).cancel_sent_at is None
    assert _history_rows(site) == history

    site.sbg.accept_token(SBG_TOKEN)
    site.cli_json("sync-status")
    assert site.sbg.task(site.row(sbg_runs[0]).provider_id).status == "ABORTED"
    assert {site.row(run_id).state for run_id in sbg_runs[1:]} == {"RUNNING"}
