"""What each durable write of a submission costs wesctl's process, on its own.

A submitted run costs wesctl, beyond the provider client's calls, a share of a claim and one or
two committed transactions: the provider's id stored before the run call (Seven Bridges' draft,
Arvados' container request) and the outcome (the run's new state, its claim released, its
history row). This times those transactions as the submission path makes them (`Submitter`'s
own methods on claimed runs of a scratch database), one after the other in one thread, with no
provider call and no other thread: CPU (this process's user + sys) and wall time per
transaction, the floor under `submit_throughput.py`'s CPU per run that no change to the
provider clients can remove while every commit stays durable.

Run: .venv/bin/python bench/write_cost.py --database-uri postgresql://postgres@127.0.0.1:5432/test
     [--runs 2000]
Prints numbers; nothing is asserted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import common

from wesctl.db.engine import make_engine
from wesctl.domain.outcomes import Outcome, Report
from wesctl.domain.states import RunState
from wesctl.domain.types import ProviderStatus, Submission
from wesctl.services.runtime import Runtime
from wesctl.services.submit import Claim, Submitter

BATCH = 16


def timed(claims: list[Claim], write: Callable[[Claim], None]) -> tuple[float, float]:
    """(CPU, wall) seconds per call of `write` over `claims`."""
    cpu, wall = time.process_time(), time.perf_counter()
    for claim in claims:
        write(claim)
    count = max(1, len(claims))
    return (time.process_time() - cpu) / count, (time.perf_counter() - wall) / count


def measure(url: str, runs: int, directory: Any) -> dict[str, tuple[float, float]]:
    engine = make_engine(url)
    try:
        common.insert_rows(engine, common.queued_rows(runs, "sevenbridges"))
    finally:
        engine.dispose()
    settings = common.settings_for(
        url,
        {"WESCTL_PROVIDERS": "sevenbridges", "DAEMON_MAX_CONCURRENT_WORKFLOWS": "1000000"},
        directory,
    )
    runtime = Runtime.open(settings, command="write-cost")
    try:
        submitter = Submitter(runtime, Report("write-cost"))
        claims: list[Claim] = []
        cpu, wall = time.process_time(), time.perf_counter()
        while len(claims) < runs and (batch := submitter.claim(limit=BATCH)):
            claims.extend(batch)
        claim_cost = (
            (time.process_time() - cpu) / len(claims),
            (time.perf_counter() - wall) / len(claims),
        )

        def store_id(claim: Claim) -> None:
            submitter._record_id(claim, f"draft-{claim.run_id}")

        def store_outcome(claim: Claim) -> None:
            status = ProviderStatus(f"draft-{claim.run_id}", "QUEUED", RunState.QUEUED)
            outcome = submitter._submitted(claim, Submission(f"draft-{claim.run_id}", status))
            if outcome.outcome != Outcome.SUBMITTED:
                raise SystemExit(f"{claim.run_id}: {outcome}")

        return {
            f"claim, per run ({BATCH} runs per claim)": claim_cost,
            "the provider id stored (one UPDATE, committed)": timed(claims, store_id),
            "the outcome stored (UPDATE, history INSERT, committed)": timed(claims, store_outcome),
        }
    finally:
        runtime.close()


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--runs", type=int, default=2000)
    options = parser.parse_args()
    result = common.Result()
    name = f"submission writes ({common.database_name(options.database_uri)}, one thread)"
    with (
        common.workspace() as directory,
        common.scratch_database(options.database_uri, directory) as url,
    ):
        figures = measure(url, options.runs, directory)
    for write, (cpu, wall) in figures.items():
        common.log(f"{write}: CPU {cpu * 1000:.3f} ms, wall {wall * 1000:.3f} ms")
        result.add(name, f"{write}: CPU / wall", f"{cpu * 1000:.2f} / {wall * 1000:.2f} ms")
    result.notes.append(
        f"{options.runs} runs claimed {BATCH} at a time, then each write made once per run by "
        "the submission path's own code, one after the other; no provider call."
    )
    result.emit(options.json)


if __name__ == "__main__":
    main()
