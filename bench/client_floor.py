"""The client libraries' own CPU per submission: the floor under wesctl's CPU per submitted run.

A child process makes, through the client library alone and nothing of wesctl, the calls one
submission needs (Seven Bridges: create the draft task, run it; HealthOmics: StartRun), over https
to the simulator in its own process, from 16 threads as wesctl's pool does, with the operator's
environment (the CA through the client's standard variable). Measured twice, for N submissions and
for none, so start-up (imports, client construction) is told apart from the per-call cost:
CPU (user+sys from wait4) and, with --callgrind, the instructions the child executed, which are
repeatable whatever the machine's load. Compare the per-submission figures with
`submit_throughput.py`'s CPU per submitted run (and its --callgrind instructions): what wesctl
adds on top of them is its own cost.

Run: .venv/bin/python bench/client_floor.py [--runs 300] [--providers sevenbridges,healthomics]
     [--callgrind DIR]
Prints numbers; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING or __name__ != "__main__" or sys.argv[1:2] != ["child"]:
    # The measuring side only: the child imports its client library and nothing else.
    import common

    from wesctl.simulated.serve import CA_VARIABLE

PROVIDERS = ("sevenbridges", "healthomics")
THREADS = 16
# The simulator's default app and workflow (wesctl.simulated), written out so the child imports
# nothing of wesctl.


def child(provider: str, count: int) -> None:
    """The calls of `count` submissions, through the library alone."""
    submit: Any
    if provider == "sevenbridges":
        import sevenbridges

        api = sevenbridges.Api(
            url=os.environ["SEVENBRIDGES_API_ENDPOINT"],
            token=os.environ["SEVENBRIDGES_API_TOKEN"],
            advance_access=True,
            max_parallel_requests=THREADS * 2,
        )
        project = os.environ["SEVENBRIDGES_PROJECT"]

        def submit(index: int) -> None:
            task = api.tasks.create(
                name=f"floor-{index}",
                project=project,
                app="wes-user/wes/hello",
                inputs={},
                run=False,
            )
            task.run()

    else:
        import boto3

        omics = boto3.client("omics")

        def submit(index: int) -> None:
            omics.start_run(
                workflowId="1234567",
                roleArn=os.environ["AWS_HEALTHOMICS_WORKFLOW_ROLE_ARN"],
                outputUri=os.environ["AWS_HEALTHOMICS_OUTPUT_URI"],
                requestId=f"floor-{index}",
                name=f"floor-{index}",
                parameters={},
            )

    if count:
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(submit, range(count)))


def measure(
    provider: str, count: int, options: argparse.Namespace, directory: Path
) -> tuple[float, int | None]:
    """(CPU seconds, instructions or None) of one child making `count` submissions."""
    fake = common.FakeHandle(provider, options.latency, tls=True)
    try:
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(directory),
            **common.provider_environ(provider, fake.base_url, directory),
        }
        assert fake.ca_file is not None
        environment[CA_VARIABLE[provider]] = fake.ca_file
        command = [sys.executable, __file__, "child", provider, str(count)]
        if options.callgrind is not None:
            counts = Path(options.callgrind) / f"floor-{provider}-{count}.callgrind"
            counts.parent.mkdir(parents=True, exist_ok=True)
            command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={counts}", *command]
        process = subprocess.Popen(
            command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        assert process.stderr is not None
        errors = process.stderr.read()
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{provider} child failed: {errors[-2000:]}")
        found = re.search(r"==\d+== Collected : (\d+)", errors)
        return usage.ru_utime + usage.ru_stime, int(found.group(1)) if found else None
    finally:
        fake.stop()


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--runs", type=int, default=300, help="submissions (default 300)")
    parser.add_argument("--providers", default=",".join(PROVIDERS))
    parser.add_argument(
        "--callgrind",
        default=None,
        help="directory for callgrind output: also count instructions (~50x slower)",
    )
    options = parser.parse_args()
    result = common.Result()
    with common.workspace() as directory:
        for provider in options.providers.split(","):
            started = time.perf_counter()
            idle_cpu, idle_instructions = measure(provider, 0, options, directory)
            cpu, instructions = measure(provider, options.runs, options, directory)
            common.log(f"{provider}: {time.perf_counter() - started:.1f} s")
            name = f"client library alone ({provider}, https, {THREADS} threads)"
            per_run = (cpu - idle_cpu) / options.runs
            result.add(name, "start-up CPU (imports, client)", common.ms(idle_cpu))
            result.add(name, "CPU per submission", common.ms(per_run))
            if instructions is not None and idle_instructions is not None:
                result.add(name, "start-up instructions", f"{idle_instructions / 1e6:.0f} M")
                per_call = (instructions - idle_instructions) / options.runs
                result.add(name, "instructions per submission", f"{per_call / 1e6:.2f} M")
    result.notes.append(
        f"{options.runs} submissions and none, each in a fresh child process with a fresh "
        "simulator; per submission = (N - 0) / N."
    )
    result.emit(options.json)


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child(sys.argv[2], int(sys.argv[3]))
    else:
        main()
