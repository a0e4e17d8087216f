"""Claims are compare-and-swap leases: one winner per run, the cap holds across processes."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from sqlalchemy import create_engine, select

from tests.cli_helpers import wesctl
from tests.wes_api import expire_claim, insert_api_run
from wesctl.config import Settings, load_settings
from wesctl.db import runs as run_queries
from wesctl.db.engine import make_engine, make_session_factory
from wesctl.db.tables import StateTransition, WorkflowRun
from wesctl.domain.outcomes import Report
from wesctl.errors import DatabaseUnavailable
from wesctl.services.runtime import Runtime
from wesctl.services.submit import Submitter


def _settings(db_url: str, **overrides: object) -> Settings:
    settings = load_settings(
        environ={"DATABASE_URI": db_url, "WESCTL_PROVIDERS": "sevenbridges"}, export_sdk=False
    )
    return dataclasses.replace(settings, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def queued(db_url: str) -> tuple[str, list[str]]:
    assert wesctl("--database-uri", db_url, "db", "upgrade").exit_code == 0
    engine = create_engine(db_url)
    ids = [insert_api_run(engine, run_id=f"run-{i:03d}") for i in range(40)]
    engine.dispose()
    return db_url, ids


def _claim_concurrently(settings: Settings, workers: int, limit: int) -> list[list[str]]:
    barrier = threading.Barrier(workers)
    results: list[list[str]] = [[] for _ in range(workers)]

    def claim(index: int) -> None:
        runtime = Runtime.open(settings, command=f"claimer-{index}")
        try:
            submitter = Submitter(runtime, Report("test"))
            barrier.wait()
            results[index] = [c.run_id for c in submitter.claim(limit=limit)]
        finally:
            runtime.close()

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_each_run_is_claimed_by_exactly_one_process(queued: tuple[str, list[str]]) -> None:
    db_url, ids = queued
    settings = _settings(db_url, max_concurrent_workflows=1000)
    results = _claim_concurrently(settings, workers=6, limit=40)
    claimed = [run_id for batch in results for run_id in batch]
    assert sorted(claimed) == sorted(ids), "every run claimed once, none twice"


def test_concurrency_cap_holds_when_claims_race(queued: tuple[str, list[str]]) -> None:
    db_url, _ = queued
    settings = _settings(db_url, max_concurrent_workflows=7)
    results = _claim_concurrently(settings, workers=6, limit=40)
    assert sum(len(batch) for batch in results) == 7


def test_claim_fixes_the_submission_key_before_any_provider_call(
    queued: tuple[str, list[str]],
) -> None:
    db_url, ids = queued
    runtime = Runtime.open(_settings(db_url, max_concurrent_workflows=1), command="t")
    try:
        claims = Submitter(runtime, Report("t")).claim(limit=5)
        assert [c.run_id for c in claims] == [ids[0]]  # oldest first, within the cap of 1
        assert claims[0].submission_key == f"wesctl-{ids[0]}"
        assert claims[0].attempts == 1
        assert not claims[0].may_exist
        with runtime.writers() as session:
            row = session.get(WorkflowRun, ids[0])
            assert row is not None
            assert row.submission_key == f"wesctl-{ids[0]}"
            assert row.claimed_by == runtime.actor
    finally:
        runtime.close()


def test_expired_claim_is_taken_over_and_flags_a_possible_existing_run(
    queued: tuple[str, list[str]],
) -> None:
    db_url, ids = queued
    settings = _settings(db_url, max_concurrent_workflows=1)
    first = Runtime.open(settings, command="crashed")
    second = Runtime.open(settings, command="survivor")
    try:
        assert [c.run_id for c in Submitter(first, Report("t")).claim(limit=1)] == [ids[0]]
        # While the lease holds, nobody else gets the run (and the cap is used up).
        assert Submitter(second, Report("t")).claim(limit=1) == []
        expire_claim(second.engine, ids[0])
        retaken = Submitter(second, Report("t")).claim(limit=1)
        assert [c.run_id for c in retaken] == [ids[0]]
        assert retaken[0].may_exist, "a second attempt must look for what the first created"
        assert retaken[0].submission_key == f"wesctl-{ids[0]}", "the key never changes"
        # The crashed process lost its claim: it can no longer record a provider id.
        with first.writers.begin() as session:
            assert not run_queries.record_provider_id(
                session, ids[0], owner=first.actor, provider_id="x", provider_type="sevenbridges"
            )
        with second.writers() as session:
            row = session.scalars(select(WorkflowRun).where(WorkflowRun.run_id == ids[0])).one()
            assert row.provider_id is None
            assert row.submit_attempts == 2
    finally:
        first.close()
        second.close()


def test_readers_are_not_blocked_by_a_writer_of_the_same_process(
    queued: tuple[str, list[str]],
) -> None:
    db_url, ids = queued
    runtime = Runtime.open(_settings(db_url), command="reader-test")
    writer_holds, reader_done, writer_done = threading.Event(), threading.Event(), threading.Event()
    seen: list[str] = []
    read_while_writer_held: list[bool] = []

    def write() -> None:
        with runtime.writers.begin() as session:
            session.get(WorkflowRun, ids[0])
            writer_holds.set()
            reader_done.wait(10)  # keeps the write transaction (and its lock) open
        writer_done.set()

    def read() -> None:
        writer_holds.wait(10)
        with runtime.readers() as session:
            seen.extend(session.scalars(select(WorkflowRun.run_id).order_by(WorkflowRun.run_id)))
        read_while_writer_held.append(not writer_done.is_set())
        reader_done.set()

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert read_while_writer_held == [True], "the reader waited for the writer's transaction"
        assert seen == sorted(ids)
    finally:
        runtime.close()


def test_threads_of_one_process_take_turns_writing(queued: tuple[str, list[str]]) -> None:
    """SQLite allows one writer: threads queue for it (on a lock in this process) instead of
    failing with "database is locked"; on PostgreSQL they write side by side."""
    db_url, ids = queued
    runtime = Runtime.open(_settings(db_url, submit_workers=8), command="writer-test")
    errors: list[BaseException] = []

    def write(run_ids: list[str]) -> None:
        try:
            for run_id in run_ids:
                with runtime.writers.begin() as session:
                    run_queries.add_transition(session, run_id, "QUEUED", "QUEUED", "t", "test")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(ids[n::8],)) for n in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        with runtime.readers() as session:
            count = len(list(session.scalars(select(StateTransition.id))))
        assert count == len(ids)
    finally:
        runtime.close()


def test_a_writer_waiting_too_long_for_sqlite_s_lock_gets_a_clear_error(sqlite_url: str) -> None:
    assert wesctl("--database-uri", sqlite_url, "db", "upgrade").exit_code == 0
    engine = make_engine(sqlite_url, busy_timeout=0.3)
    ids = [insert_api_run(engine) for _ in range(2)]
    sessions = make_session_factory(engine)
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with sessions.begin() as session:
            session.get(WorkflowRun, ids[0])
            holding.set()
            done.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        expected = r"held SQLite's write lock for 0\.3 s"
        with pytest.raises(DatabaseUnavailable, match=expected), sessions.begin() as session:
            session.get(WorkflowRun, ids[1])
    finally:
        done.set()
        holder.join(10)
    with sessions.begin() as session:  # the lock is free again, and was never leaked
        assert session.get(WorkflowRun, ids[1]) is not None
    engine.dispose()
