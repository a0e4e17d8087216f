"""Claims are compare-and-swap leases: one winner per run, the cap holds across processes."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from sqlalchemy import select

from tests.cli_helpers import upgrade_database
from tests.wes_api import expire_claim, insert_api_run, queue_api_runs, write_state
from wesctl.config import Settings, load_settings
from wesctl.db import runs as run_queries
from wesctl.db.engine import make_engine, make_session_factory
from wesctl.db.tables import StateTransition, WorkflowRun
from wesctl.domain.outcomes import Report
from wesctl.errors import DatabaseUnavailable
from wesctl.services.runtime import Runtime
from wesctl.services.submit import SlotBound, Submitter


def _settings(db_url: str, **overrides: object) -> Settings:
    settings = load_settings(
        environ={"DATABASE_URI": db_url, "WESCTL_PROVIDERS": "sevenbridges"}, export_sdk=False
    )
    return dataclasses.replace(settings, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def queued(db_url: str) -> tuple[str, list[str]]:
    upgrade_database(db_url)
    return db_url, queue_api_runs(db_url, [f"run-{i:03d}" for i in range(40)])


def _claim_concurrently(
    settings: Settings, workers: int, limit: int, *, until_empty: bool = False
) -> list[list[str]]:
    """Each worker is one process's pass: one claim, or claims until one takes nothing."""
    barrier = threading.Barrier(workers)
    results: list[list[str]] = [[] for _ in range(workers)]

    def claim(index: int) -> None:
        runtime = Runtime.open(settings, command=f"claimer-{index}")
        try:
            submitter = Submitter(runtime, Report("test"))
            barrier.wait()
            while True:
                taken = [c.run_id for c in submitter.claim(limit=limit)]
                results[index] += taken
                if not (until_empty and taken):
                    break
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


def test_the_cap_holds_for_passes_that_claim_again_and_again(
    queued: tuple[str, list[str]],
) -> None:
    """A pass counts the runs holding a slot once, then bounds them by the claim ledger: the
    grants of other passes between its claims must keep it within the cap, and it still takes
    the last free slots."""
    db_url, _ = queued
    settings = _settings(db_url, max_concurrent_workflows=13)
    runtimes = [Runtime.open(settings, command=f"pass-{index}") for index in range(3)]
    try:
        passes = [Submitter(runtime, Report("t")) for runtime in runtimes]
        taken: list[list[int]] = []
        while not taken or any(taken[-1]):
            taken.append([len(submitter.claim(limit=3)) for submitter in passes])
    finally:
        for runtime in runtimes:
            runtime.close()
    assert taken[:3] == [[3, 3, 3], [3, 1, 0], [0, 0, 0]], taken


def test_the_cap_holds_when_passes_race_claim_after_claim(
    queued: tuple[str, list[str]],
) -> None:
    db_url, _ = queued
    settings = _settings(db_url, max_concurrent_workflows=7)
    results = _claim_concurrently(settings, workers=6, limit=2, until_empty=True)
    assert sum(len(batch) for batch in results) == 7, results


def test_a_pass_takes_the_slots_runs_free_after_it_counted(
    queued: tuple[str, list[str]],
) -> None:
    """The ledger only ever bounds from above: when the bound says the cap is reached, the pass
    counts again and takes the slots of runs that ended meanwhile."""
    db_url, _ = queued
    runtime = Runtime.open(_settings(db_url, max_concurrent_workflows=4), command="t")
    try:
        submitter = Submitter(runtime, Report("t"))
        first = [claim.run_id for claim in submitter.claim(limit=4)]
        assert len(first) == 4
        assert submitter.claim(limit=4) == []
        for run_id in first[:2]:
            write_state(runtime.engine, run_id, "CANCELED")  # the WES API cancels two
        assert len(submitter.claim(limit=4)) == 2
    finally:
        runtime.close()


def test_a_slot_bound_follows_the_ledger_and_gives_up_when_it_goes_back() -> None:
    bound = SlotBound(ledger=100, in_flight=5)
    assert bound.at_most(100) == 5
    assert bound.at_most(130) == 35, "every grant since may hold a slot"
    assert bound.at_most(99) is None, "a restored ledger row says nothing: count again"


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
    upgrade_database(sqlite_url)
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
