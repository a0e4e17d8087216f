"""Rendering a 1000-run submit-queued report, off a terminal and on one.

Measured (median of N, each into a real file, so nothing is a terminal):
- before: the rendering wesctl had before it printed lines off a terminal (`before_report`, a
  copy of it: a rich table squeezed into 80 columns, the first 200 runs);
- after: the key=value lines wesctl prints off a terminal now (all 1000 runs, nothing cut);
- the rich table a 200-column terminal gets now (the first 200 runs);
- importing rich in a fresh interpreter, which the plain lines no longer need.
The report has 950 submitted runs and 50 failed ones with 300-character reasons (`--failed`).

Run: .venv/bin/python bench/render_report.py [--runs 1000] [--repeat 7] [--json]
Prints numbers; nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable

import common

from wesctl.domain.outcomes import Outcome, Report, RunOutcome
from wesctl.render import emit, report_blocks

REASON = ("the provider rejected the run: " + "input 'reads' is not a readable file; " * 9)[:300]


def build_report(runs: int, failed: int) -> Report:
    result = Report("submit-queued")
    for index in range(runs):
        run_id = str(uuid.uuid4())
        if index < failed:
            result.add(RunOutcome(run_id, Outcome.FAILED, "sevenbridges", None, REASON))
        else:
            result.add(
                RunOutcome(run_id, Outcome.SUBMITTED, "sevenbridges", uuid.uuid4().hex, None)
            )
    return result


def before_report(result: Report) -> None:
    """The baseline: wesctl's report rendering before plain lines, unchanged."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    def shorten(text: str | None, width: int) -> str:
        if not text:
            return ""
        line = text.splitlines()[0]
        return line if len(line) <= width else line[: width - 1] + "…"

    style_of = {"submitted": "green", "failed": "bold red"}
    data = result.to_json()
    out = Console(file=sys.stdout, highlight=False, soft_wrap=False)
    counts = data["counts"]
    summary = ", ".join(f"{count} {name}" for name, count in sorted(counts.items()))
    rows = data["runs"]
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("RUN ID", "OUTCOME", "PROVIDER", "PROVIDER ID", "DETAIL"):
        table.add_column(column, no_wrap=column in ("RUN ID", "OUTCOME"), overflow="ellipsis")
    for item in rows[:200]:
        style = style_of.get(item["outcome"])
        outcome = f"[{style}]{item['outcome']}[/]" if style else item["outcome"]
        table.add_row(
            item["run_id"],
            outcome,
            item["provider"] or "-",
            item["provider_id"] or "-",
            shorten(item["reason"], 80),
        )
    out.print(table)
    if len(rows) > 200:
        out.print(f"... and {len(rows) - 200} more (use --json for all)")
    out.print(f"{data['command']}: {summary}")


def previous(result: Report) -> Callable[[], None]:
    def draw() -> None:
        with (
            tempfile.TemporaryFile("w", encoding="utf-8") as out,
            contextlib.redirect_stdout(out),
        ):
            before_report(result)

    return draw


def table(result: Report, width: int) -> Callable[[], None]:
    """Print the report's rich table into a file as a terminal of `width` columns gets it."""

    def draw() -> None:
        from rich.console import Console

        with tempfile.TemporaryFile("w", encoding="utf-8") as out:
            console = Console(file=out, width=width, highlight=False, soft_wrap=False)
            for block in report_blocks(result):
                shown = block.renderable()
                if shown is not None:
                    console.print(shown)

    return draw


def plain(result: Report) -> Callable[[], None]:
    """Print the report as wesctl does off a terminal."""

    def draw() -> None:
        with (
            tempfile.TemporaryFile("w", encoding="utf-8") as out,
            contextlib.redirect_stdout(out),
        ):
            emit(report_blocks(result))

    return draw


def timed(work: Callable[[], None], repeat: int) -> list[float]:
    work()  # warm: imports and caches are not what is measured
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        timings.append(time.perf_counter() - start)
    return timings


def rich_import(repeat: int) -> list[float]:
    """Seconds a fresh interpreter spends importing the rich modules a table needs."""
    code = (
        "import time; s = time.perf_counter(); "
        "import rich.console, rich.table, rich.text, rich.box; "
        "print(time.perf_counter() - s)"
    )
    return [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout)
        for _ in range(repeat)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--failed", type=int, default=50, help="runs with a 300-char reason")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print result rows as JSON")
    options = parser.parse_args()
    result = build_report(options.runs, options.failed)
    measured = [
        (
            "before: rich table off a terminal (80 columns, first 200 runs)",
            timed(previous(result), options.repeat),
        ),
        ("after: key=value lines (every run)", timed(plain(result), options.repeat)),
        (
            "terminal: rich table, 200 columns (first 200 runs)",
            timed(table(result, 200), options.repeat),
        ),
        ("importing rich (fresh interpreter)", rich_import(options.repeat)),
    ]
    if not options.json:
        print(f"{'rendering a ' + str(options.runs) + '-run report':64} {'median':>9} {'min':>9}")
        for label, timings in measured:
            print(
                f"{label:64} {common.ms(statistics.median(timings)):>9} "
                f"{common.ms(min(timings)):>9}"
            )
        return
    rows = common.Result()
    name = f"render a {options.runs}-run submit-queued report (median of {options.repeat})"
    before = statistics.median(measured[0][1])
    after = statistics.median(measured[1][1])
    for label, timings in measured:
        ratio = f"{before / after:.0f}x faster than before" if label.startswith("after") else ""
        median = statistics.median(timings)
        rows.add(name, label, f"{common.ms(median)} (min {common.ms(min(timings))})", "", ratio)
    rows.emit(as_json=True)


if __name__ == "__main__":
    main()
