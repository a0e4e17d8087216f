"""A pass over any number of runs holds a bounded report: lines printed as outcomes arrive off a
terminal, a bounded table (notable runs first) on one, every outcome counted either way."""

from __future__ import annotations

import io

import pytest

from tests.cli_helpers import parse_plain_line
from wesctl import render
from wesctl.domain.outcomes import Outcome, Report, RunOutcome


def _submitted(index: int) -> RunOutcome:
    return RunOutcome(f"run-{index}", Outcome.SUBMITTED, "sevenbridges", f"task-{index}", "ok")


def test_off_a_terminal_each_line_is_printed_when_its_outcome_arrives_and_none_is_kept(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = render.streamed_report("submit-queued", as_json=False)

    report.add(_submitted(1))
    first = capsys.readouterr().out
    for index in range(2, 1001):
        report.add(_submitted(index))
    report.add(RunOutcome("run-x", Outcome.FAILED, "sevenbridges", None, "refused"))
    rest = capsys.readouterr().out

    assert [parse_plain_line(line) for line in first.splitlines()] == [
        {
            "run": "run-1",
            "outcome": "submitted",
            "provider": "sevenbridges",
            "provider_id": "task-1",
            "reason": "ok",
        }
    ]
    assert len(rest.splitlines()) == 1000
    assert report.outcomes == []
    assert report.counts() == {"submitted": 1000, "failed": 1}
    assert report.exit_code == 1

    render.report(report)
    tail = [parse_plain_line(line) for line in capsys.readouterr().out.splitlines()]
    assert tail == [
        {"command": "submit-queued", "total": "1001", "failed": "1", "submitted": "1000"}
    ]


def test_a_bounded_report_keeps_notable_outcomes_over_routine_ones() -> None:
    report = Report("submit-queued", keep=3)
    for index in range(5):
        report.add(_submitted(index))
    report.add(RunOutcome("bad-1", Outcome.FAILED, "sevenbridges", None, "refused"))
    report.add(RunOutcome("later", Outcome.REQUEUED, "sevenbridges", None, "503"))
    report.add(_submitted(9))

    assert [item.run_id for item in report.outcomes] == ["run-2", "bad-1", "later"]
    assert report.unlisted == 5
    assert report.counts() == {"submitted": 6, "failed": 1, "requeued": 1}
    assert report.added[("sevenbridges", Outcome.FAILED)] == 1


def test_a_terminal_table_says_how_many_runs_it_left_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = io.StringIO()
    monkeypatch.setattr(render, "on_terminal", lambda: True)
    report = render.streamed_report("submit-queued", as_json=False)
    for index in range(render.REPORT_TABLE_ROWS + 50):
        report.add(_submitted(index))

    console = render.console()
    console.file = out
    monkeypatch.setattr(render, "console", lambda: console)
    render.report(report)

    assert len(report.outcomes) == render.REPORT_TABLE_ROWS
    assert "... and 50 more (use --json for all)" in out.getvalue()
    assert "250 submitted" in out.getvalue()


def test_json_keeps_every_run_for_its_one_document() -> None:
    report = render.streamed_report("submit-queued", as_json=True)
    for index in range(500):
        report.add(_submitted(index))

    document = report.to_json()
    assert len(document["runs"]) == 500
    assert document["counts"] == {"submitted": 500}
