"""A state change's log line is written once its transaction commits, never for a rollback."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from tests.cli_helpers import upgrade_database
from tests.wes_api import queue_api_runs
from wesctl.db import runs as run_queries
from wesctl.db.engine import make_engine, make_session_factory
from wesctl.db.tables import WorkflowRun

CHANGE = run_queries.Change("tester", "sevenbridges", "test move")


@pytest.fixture
def two_runs(db_url: str) -> tuple[str, list[str]]:
    upgrade_database(db_url)
    return db_url, queue_api_runs(db_url, ["run-0", "run-1"])


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "wesctl.transition"]


def test_a_line_per_committed_change_and_none_for_a_rollback(
    two_runs: tuple[str, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    db_url, (first, second) = two_runs
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    caplog.set_level(logging.INFO, logger="wesctl.transition")
    try:
        with sessions() as session:
            moved = run_queries.move(
                session, first, from_state="QUEUED", to_state="CANCELED", change=CHANGE
            )
            assert moved
            assert _lines(caplog) == []  # not committed yet
            session.rollback()
            assert _lines(caplog) == []
            # The same session commits another change: only that one is logged.
            assert run_queries.move(
                session, second, from_state="QUEUED", to_state="CANCELED", change=CHANGE
            )
            session.commit()
        with sessions() as session:
            states = dict(session.execute(select(WorkflowRun.run_id, WorkflowRun.state)).all())
    finally:
        engine.dispose()
    assert states == {first: "QUEUED", second: "CANCELED"}
    assert _lines(caplog) == [
        f"run={second} provider=sevenbridges from=QUEUED to=CANCELED reason=test move"
    ]
