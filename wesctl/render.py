"""Rendering of command results on stdout: tables for people, lines for logs, JSON for scripts.

Each command's result is described once, as a few blocks (rows, fields, JSON, lines). On a
terminal the blocks become rich tables; anywhere else (journald, a pipe, a file) each item becomes
one `key=value` line, with nothing cut, wrapped or coloured, and the output ends with one summary
line that starts with `command=`. rich is imported only for a terminal.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from wesctl.db.engine import utcnow
from wesctl.db.runs import iso_time
from wesctl.domain.outcomes import Outcome, Report, RunOutcome

if TYPE_CHECKING:  # the result types, and rich only where a terminal needs it
    from rich.console import Console, RenderableType
    from rich.table import Table
    from rich.text import Text

    from wesctl.db.runs import RunSummary
    from wesctl.demo import DemoResult, DemoRun
    from wesctl.services.doctor import CheckResult
    from wesctl.services.runs import RunView
    from wesctl.services.status import Overview

Value = str | None
Pair = tuple[str, Value]

_STATE_STYLE = {
    "QUEUED": "cyan",
    "INITIALIZING": "blue",
    "RUNNING": "blue",
    "CANCELING": "yellow",
    "COMPLETE": "green",
    "EXECUTOR_ERROR": "red",
    "SYSTEM_ERROR": "bold red",
    "CANCELED": "magenta",
}
_OUTCOME_STYLE: dict[str, str] = {
    Outcome.SUBMITTED: "green",
    Outcome.ADOPTED: "green",
    Outcome.UPDATED: "blue",
    Outcome.CANCELED: "magenta",
    Outcome.CANCEL_SENT: "magenta",
    Outcome.STOPPED: "magenta",
    Outcome.REQUEUED: "yellow",
    Outcome.WAITING: "yellow",
    Outcome.BLOCKED: "bold red",
    Outcome.SKIPPED: "dim",
    Outcome.UNCHANGED: "dim",
    Outcome.FAILED: "bold red",
}
_CHECK_STYLE = {"ok": "green", "fail": "bold red", "skip": "dim", "warn": "yellow"}
REPORT_TABLE_ROWS = 200  # a terminal shows this many runs of a report; lines are never cut


# --- the plain line format --------------------------------------------------------------------

_BARE = re.compile(r'[^\s"=\\]+')  # a value needing no quotes


def plain_value(value: Value) -> str:
    """A value as it appears after `key=`: `-` for none, bare when it is one printable word
    (other than `-`), else a JSON string (quotes, backslashes, newlines and other non-printable
    characters escaped), so a value never spans lines or fools a parser."""
    if value is None:
        return "-"
    if value.isprintable():
        if _BARE.fullmatch(value) and value != "-":
            return value
        if '"' not in value and "\\" not in value:
            return f'"{value}"'
    escaped = (ch if ch.isprintable() and ch not in '"\\' else json.dumps(ch)[1:-1] for ch in value)
    return '"' + "".join(escaped) + '"'


def plain_line(pairs: Iterable[Pair]) -> str:
    return " ".join(f"{key}={plain_value(value)}" for key, value in pairs)


# --- blocks -----------------------------------------------------------------------------------


class Block(Protocol):
    def lines(self) -> Iterator[str]:
        """The block off a terminal: one line per item."""
        ...

    def renderable(self) -> RenderableType | None:
        """The block on a terminal (None: nothing to show there)."""
        ...


@dataclass(frozen=True)
class Column:
    """One field of an item: `key` in lines, `header` in tables."""

    key: str
    header: str
    styles: Mapping[str, str] = field(default_factory=dict)  # value -> style on a terminal
    shown: Callable[[str], str] | None = None  # how a table shows a value; lines show it all
    no_wrap: bool = False
    justify: Literal["left", "right"] = "left"

    def cell(self, value: Value) -> Text:
        """The value as table text: never parsed as rich markup, so `[x]` stays `[x]`."""
        from rich.text import Text

        if value is None:
            return Text("-")
        shown = self.shown(value) if self.shown is not None else value
        return Text(shown, style=self.styles.get(value, ""))


def first_line(width: int) -> Callable[[str], str]:
    """A table's view of long text: its first line, cut to `width` characters."""

    def cut(text: str) -> str:
        line = text.splitlines()[0] if text else ""
        return line if len(line) <= width else line[: width - 1] + "…"

    return cut


def time_of_day(iso: str) -> str:
    """HH:MM:SS of an ISO timestamp, for a table of the last hour."""
    return iso[11:19]


@dataclass(frozen=True)
class Rows:
    """Items with the same fields: a table on a terminal, one line each off it."""

    columns: Sequence[Column]
    rows: Sequence[Sequence[Value]]
    title: str | None = None
    empty: str | None = None  # shown on a terminal instead of an empty table
    limit: int | None = None  # most rows a terminal table shows
    more: int = 0  # items left out of `rows` before they got here (a bounded report)

    def lines(self) -> Iterator[str]:
        keys = [column.key for column in self.columns]
        for row in self.rows:
            yield plain_line(zip(keys, row, strict=True))

    def renderable(self) -> RenderableType | None:
        from rich import box
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        if not self.rows:
            return Text(self.empty) if self.empty is not None else None
        table = Table(title=self.title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for column in self.columns:
            table.add_column(column.header, no_wrap=column.no_wrap, justify=column.justify)
        shown = self.rows if self.limit is None else self.rows[: self.limit]
        for row in shown:
            table.add_row(
                *(column.cell(value) for column, value in zip(self.columns, row, strict=True))
            )
        hidden = len(self.rows) - len(shown) + self.more
        if hidden:
            return Group(table, Text(f"... and {hidden} more (use --json for all)"))
        return table


@dataclass(frozen=True)
class Fields:
    """One item: label and value per line on a terminal, one line off it."""

    columns: Sequence[Column]
    values: Sequence[Value]
    plain: bool = True  # False: terminal only (the summary line carries these values raw)

    def lines(self) -> Iterator[str]:
        if self.plain:
            yield plain_line(
                (column.key, value) for column, value in zip(self.columns, self.values, strict=True)
            )

    def renderable(self) -> RenderableType:
        from rich.table import Table
        from rich.text import Text

        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        for column, value in zip(self.columns, self.values, strict=True):
            grid.add_row(Text(column.header), column.cell(value))
        return grid


@dataclass(frozen=True)
class Json:
    """A JSON document: pretty-printed under a title on a terminal, one compact value off it."""

    key: str
    data: Any

    def lines(self) -> Iterator[str]:
        yield plain_line([(self.key, json.dumps(self.data, default=str, separators=(",", ":")))])

    def renderable(self) -> RenderableType:
        from rich.console import Group
        from rich.json import JSON
        from rich.text import Text

        return Group(Text(self.key, style="bold"), JSON(json.dumps(self.data, default=str)))


@dataclass(frozen=True)
class Line:
    """A note or a summary: `text` on a terminal, `pairs` off it (either may be absent)."""

    text: str | None
    pairs: Sequence[Pair] | None = None
    label: tuple[str, str] | None = None  # (word, style) before the text on a terminal

    def lines(self) -> Iterator[str]:
        if self.pairs is not None:
            yield plain_line(self.pairs)

    def renderable(self) -> RenderableType | None:
        from rich.text import Text

        if self.text is None:
            return None
        if self.label is None:
            return Text(self.text)
        word, style = self.label
        return Text.assemble((f"{word}: ", style), self.text)


@dataclass(frozen=True)
class Pivot:
    """Counts by (row, column) value: a crosstab with totals on a terminal, one line per count
    off it (`row.key=… column_key=… count_key=…`), so no data becomes a key."""

    row: Column
    column_key: str
    count_key: str
    counts: Mapping[tuple[str, str], int]
    title: str
    empty: str

    def lines(self) -> Iterator[str]:
        for (row, column), count in sorted(self.counts.items()):
            yield plain_line(
                [(self.row.key, row), (self.column_key, column), (self.count_key, str(count))]
            )

    def renderable(self) -> RenderableType:
        from rich import box
        from rich.table import Table
        from rich.text import Text

        rows = sorted({row for row, _ in self.counts})
        columns = sorted({column for _, column in self.counts})
        table = Table(title=self.title, box=box.SIMPLE_HEAD, title_justify="left")
        table.add_column(self.row.header)
        for column in columns:
            table.add_column(Text(column.upper()), justify="right")
        table.add_column("TOTAL", justify="right")
        for row in rows:
            numbers = [self.counts.get((row, column), 0) for column in columns]
            table.add_row(self.row.cell(row), *(str(n) for n in numbers), str(sum(numbers)))
        if not rows:
            table.add_row(self.empty, *("" for _ in columns), "0")
        return table


@dataclass(frozen=True)
class Frame:
    """Blocks in one titled panel on a terminal; off it, just their lines."""

    title: str
    blocks: Sequence[Block]

    def lines(self) -> Iterator[str]:
        for block in self.blocks:
            yield from block.lines()

    def renderable(self) -> RenderableType:
        from rich.console import Group
        from rich.panel import Panel

        return Panel(Group(*_renderables(self.blocks)), title=self.title, expand=False)


# --- output -----------------------------------------------------------------------------------


def console() -> Console:
    """The terminal console (rich honours NO_COLOR: no colour when it is set and not empty)."""
    from rich.console import Console

    return Console(file=sys.stdout, highlight=False, soft_wrap=False)


def on_terminal() -> bool:
    return sys.stdout.isatty()


def _renderables(blocks: Iterable[Block]) -> list[RenderableType]:
    return [shown for shown in (block.renderable() for block in blocks) if shown is not None]


def emit(blocks: Sequence[Block]) -> None:
    """Print blocks as tables on a terminal, else as lines."""
    if on_terminal():
        out = console()
        for shown in _renderables(blocks):
            out.print(shown)
    else:
        sys.stdout.write("".join(line + "\n" for block in blocks for line in block.lines()))
        sys.stdout.flush()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def _summary(command: str, total: int, counts: Mapping[str, int] | None = None) -> Line:
    """The last line off a terminal: the command, how many items, how many of each kind."""
    pairs: list[Pair] = [("command", command), ("total", str(total))]
    pairs += [(name, str(count)) for name, count in sorted((counts or {}).items())]
    return Line(None, pairs)


def age(since: datetime | None, now: datetime | None = None) -> str:
    """'3m', '2h', '4d' since `since` (naive UTC)."""
    if since is None:
        return "-"
    seconds = int(((now or utcnow()) - since).total_seconds())
    if seconds < 0:
        return "0s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# --- one function per command -----------------------------------------------------------------

_RUN = Column("run", "RUN ID", no_wrap=True)
_STATE = Column("state", "STATE", _STATE_STYLE, no_wrap=True)
_PROVIDER = Column("provider", "PROVIDER")
_PROVIDER_ID = Column("provider_id", "PROVIDER ID")


_OUTCOME_COLUMNS = (
    _RUN,
    Column("outcome", "OUTCOME", _OUTCOME_STYLE, no_wrap=True),
    _PROVIDER,
    _PROVIDER_ID,
    Column("reason", "DETAIL", shown=first_line(80)),
)


def _outcome_row(item: RunOutcome) -> tuple[Value, ...]:
    return (item.run_id, item.outcome, item.provider, item.provider_id, item.reason)


def report_blocks(result: Report) -> list[Block]:
    counts = result.counts()
    rows = [_outcome_row(item) for item in result.outcomes]
    outcomes = Rows(_OUTCOME_COLUMNS, rows, limit=REPORT_TABLE_ROWS, more=result.unlisted)
    shown = ", ".join(f"{count} {name}" for name, count in sorted(counts.items()))
    return [
        outcomes,
        *(Line(note, [("note", note)]) for note in result.notes),
        Line(f"{result.command}: {shown or 'nothing to do'}"),
        _summary(result.command, sum(counts.values()), counts),
    ]


def report(result: Report) -> None:
    """One row per run, the notes and a summary line."""
    emit(report_blocks(result))


def streamed_report(command: str, *, as_json: bool) -> Report:
    """An empty report for a pass over any number of runs, its memory bounded where the output
    allows: off a terminal each run's line is printed as its outcome is added and no run is kept
    (`report()` then prints the notes and the summary); on a terminal the table's rows are
    kept, failures and other notable outcomes before routine ones; `--json` prints one document
    at the end, so it keeps every run."""
    if as_json:
        return Report(command)
    if on_terminal():
        return Report(command, keep=REPORT_TABLE_ROWS)
    keys = [column.key for column in _OUTCOME_COLUMNS]

    def print_line(item: RunOutcome) -> None:
        sys.stdout.write(plain_line(zip(keys, _outcome_row(item), strict=True)) + "\n")
        sys.stdout.flush()

    return Report(command, keep=0, on_add=print_line)


def requeued(run_id: str, done: str) -> None:
    """What `wesctl retry` did, as a one-run report."""
    emit(
        [
            Line(
                f"{run_id} {done}",
                [("run", run_id), ("outcome", Outcome.REQUEUED.value), ("reason", done)],
            ),
            _summary("retry", 1, {Outcome.REQUEUED.value: 1}),
        ]
    )


def runs_table(summaries: Sequence[RunSummary]) -> None:
    now = utcnow()
    rows = [
        (
            item.run_id,
            item.state,
            item.provider,
            item.provider_id,
            age(item.queued_at, now),
            item.last_error,
        )
        for item in summaries
    ]
    columns = (
        _RUN,
        _STATE,
        _PROVIDER,
        _PROVIDER_ID,
        Column("age", "AGE"),
        Column("last_error", "LAST ERROR", shown=first_line(60)),
    )
    emit([Rows(columns, rows, empty="no runs match"), _summary("runs list", len(rows))])


def run_detail(view: RunView) -> None:
    summary = view.summary
    head = Fields(
        (
            Column("run", "run id"),
            Column("state", "state", _STATE_STYLE),
            Column("provider", "provider"),
            Column("provider_id", "provider id"),
            Column("provider_status", "provider status"),
            Column("queued_at", "queued at"),
            Column("ended_at", "ended at"),
            Column("submitted_at", "submitted at"),
            Column("submit_attempts", "submit attempts"),
            Column("submission_key", "submission key"),
            Column("last_error", "last error"),
        ),
        (
            summary.run_id,
            summary.state,
            summary.provider,
            summary.provider_id,
            summary.provider_status,
            iso_time(summary.queued_at),
            iso_time(summary.ended_at),
            iso_time(view.submitted_at),
            str(view.submit_attempts),
            view.submission_key,
            summary.last_error,
        ),
    )
    blocks: list[Block] = [head, Line(""), Json("request", view.request)]
    if view.outputs:
        blocks.append(Json("outputs", view.outputs))
    blocks.append(
        Rows(
            (
                Column("task", "NAME"),
                Column("start", "START"),
                Column("end", "END"),
                Column("exit_code", "EXIT"),
                Column("stdout", "STDOUT"),
            ),
            [
                (
                    log["name"],
                    log["start_time"],
                    log["end_time"],
                    None if log["exit_code"] is None else str(log["exit_code"]),
                    log["stdout"],
                )
                for log in view.task_logs
            ],
            title="task logs",
        )
    )
    blocks.append(
        Rows(
            (
                Column("at", "AT"),
                Column("from", "FROM"),
                Column("to", "TO", _STATE_STYLE),
                Column("reason", "REASON", shown=first_line(70)),
                Column("by", "BY"),
            ),
            [
                (item["at"], item["from"], item["to"], item["reason"], item["actor"])
                for item in view.history
            ],
            title="state history",
        )
    )
    end: list[Pair] = [
        ("command", "runs show"),
        ("run", summary.run_id),
        ("task_logs", str(len(view.task_logs))),
        ("history", str(len(view.history))),
    ]
    emit([*blocks, Line(None, end)])


def db_status(data: Mapping[str, object]) -> None:
    """The schema's state: a grid on a terminal, the summary line alone off it."""
    columns = [Column(key, key.replace("_", " ")) for key in data]
    values = [None if value is None else str(value) for value in data.values()]
    emit(
        [
            Fields(columns, values, plain=False),
            Line(None, [("command", "db status"), *zip(data, values, strict=True)]),
        ]
    )


def settings_table(rows: Sequence[tuple[str, str, str]]) -> None:
    """`config show`: one row per setting."""
    columns = (
        Column("setting", "SETTING", no_wrap=True),
        Column("value", "VALUE"),
        Column("source", "SOURCE"),
    )
    emit([Rows(columns, rows), _summary("config show", len(rows))])


def checks_table(results: Sequence[CheckResult]) -> None:
    """`doctor`: one row per check, with the fix for each failure."""
    columns = (
        Column("check", "CHECK", no_wrap=True),
        Column("result", "RESULT", _CHECK_STYLE, no_wrap=True),
        Column("detail", "DETAIL"),
        Column("fix", "FIX"),
    )
    rows = [(item.name, item.status.value, item.detail, item.fix) for item in results]
    counts = Counter(item.status.value for item in results)
    emit([Rows(columns, rows), _summary("doctor", len(rows), counts)])


@dataclass(frozen=True)
class _PlainOnly:
    """Lines that the terminal view already shows another way."""

    block: Block

    def lines(self) -> Iterator[str]:
        return self.block.lines()

    def renderable(self) -> None:
        return None


def overview(view: Overview) -> list[Block]:
    """The `wesctl status` screen: a panel on a terminal; off it, a line per count, per
    warning, per provider and per recent failure, then the summary line with the queue facts."""
    oldest_id, oldest_at = view.oldest_queued or (None, None)
    per_provider = ", ".join(f"{name} {count}" for name, count in view.in_flight.items())
    stuck_total = sum(view.stuck.values())
    stuck = f"{stuck_total} with no provider progress for {view.stuck_after}s"
    quiet = f"not in the last {view.history_window}"
    facts = Fields(
        (
            Column("queued", "queued"),
            Column("oldest_queued", "oldest queued"),
            Column("in_flight", "in flight"),
            Column("stuck", "stuck", {stuck: "bold red"}),
            Column("last_submit", "last submit"),
            Column("last_sync", "last sync"),
        ),
        (
            str(view.queued),
            f"{oldest_id} ({age(oldest_at, view.now)} old)" if oldest_id else "-",
            f"{view.in_flight_total} of {view.cap}"
            + (f" ({per_provider})" if per_provider else ""),
            stuck if stuck_total else "0",
            f"{age(view.last_submit, view.now)} ago" if view.last_submit else quiet,
            f"{age(view.last_sync, view.now)} ago" if view.last_sync else quiet,
        ),
        plain=False,
    )
    title = f"runs by state (finished: the last {view.history_window})"
    counts = Pivot(_STATE, "provider", "runs", view.counts, title, "no runs")
    providers = sorted(set(view.in_flight) | set(view.stuck))
    by_provider = Rows(
        (Column("provider", ""), Column("in_flight", ""), Column("stuck", "")),
        [
            (name, str(view.in_flight.get(name, 0)), str(view.stuck.get(name, 0)))
            for name in providers
        ],
    )
    failures = Rows(
        (
            Column("at", "AT", shown=time_of_day, no_wrap=True),
            _RUN,
            _STATE,
            Column("reason", "REASON", shown=first_line(160)),
        ),
        [(item["at"], item["run_id"], item["state"], item["reason"]) for item in view.failures],
        title="failures in the last hour",
    )
    summary = Line(
        None,
        [
            ("command", "status"),
            ("at", iso_time(view.now)),
            ("queued", str(view.queued)),
            ("oldest_queued", oldest_id),
            ("oldest_queued_at", iso_time(oldest_at)),
            ("in_flight", str(view.in_flight_total)),
            ("cap", str(view.cap)),
            ("stuck", str(stuck_total)),
            ("stuck_after", str(view.stuck_after)),
            ("last_submit", iso_time(view.last_submit)),
            ("last_sync", iso_time(view.last_sync)),
            ("failures", str(len(view.failures))),
            ("warnings", str(len(view.warnings))),
        ],
    )
    warnings = [Line(text, [("warning", text)], ("warning", "yellow")) for text in view.warnings]
    panel = Frame(f"wesctl status · {iso_time(view.now)}", [facts, counts, *warnings, failures])
    return [panel, _PlainOnly(by_provider), summary]


def status(view: Overview) -> None:
    emit(overview(view))


@contextmanager
def status_display(view: Overview) -> Iterator[Callable[[Overview], None]]:
    """`status --watch`: refreshed in place on a terminal; off it, the lines again each time."""
    if not on_terminal():
        status(view)
        yield status
        return
    from rich.console import Group
    from rich.live import Live

    with Live(Group(*_renderables(overview(view))), console=console(), auto_refresh=False) as live:

        def refresh(latest: Overview) -> None:
            live.update(Group(*_renderables(overview(latest))), refresh=True)

        yield refresh


# --- the demo (a terminal show) ---------------------------------------------------------------


def demo_progress(runs: Sequence[DemoRun], states: Mapping[str, str]) -> Table:
    from rich.table import Table

    grid = Table(box=None, pad_edge=False)
    grid.add_column("RUN")
    grid.add_column("STATE")
    for run in runs:
        grid.add_row(run.label, _STATE.cell(states.get(run.run_id, "QUEUED")))
    return grid


DEMO_TITLE = "wesctl demo · providers are {} on 127.0.0.1"


@contextmanager
def demo_display(
    runs: Sequence[DemoRun],
) -> Iterator[tuple[Callable[[str], None], Callable[[Mapping[str, str]], None]]]:
    """The demo's commentary (`say`) and progress (`tick`): on a terminal, a table of `runs`
    refreshed in place under the commentary; off it (a pipe, a file, a CI log), the commentary
    as whole lines and no progress table (the final states follow in `demo_summary`)."""
    if not on_terminal():

        def say(message: str) -> None:
            sys.stdout.write(f"  {message}\n")
            sys.stdout.flush()

        sys.stdout.write(DEMO_TITLE.format("SIMULATED") + "\n")
        yield say, lambda states: None
        return
    from rich.live import Live

    out = console()
    out.print(DEMO_TITLE.format("[bold yellow]SIMULATED[/]"))
    with Live(console=out, auto_refresh=False) as live:

        def tick(states: Mapping[str, str]) -> None:
            live.update(demo_progress(runs, states), refresh=True)

        yield (lambda message: live.console.print(f"  {message}")), tick


def demo_summary(result: DemoResult, view: Overview) -> None:
    uri = result.database_uri
    look_next = (
        f"finished in {result.seconds:.1f}s. Look next:",
        f"  wesctl --database-uri {uri} runs list",
        f"  wesctl --database-uri {uri} runs show {result.runs[0].run_id}",
        "  README.md, 'Running it for real', to point wesctl at your providers",
    )
    if not on_terminal():
        emit(overview(view))
        for run in result.runs:
            final = result.final_states.get(run.run_id, "?")
            verdict = "ok" if final == run.expect else f"expected {run.expect}"
            sys.stdout.write(f"  {run.label}: {final} {verdict}\n")
        sys.stdout.write("".join(line + "\n" for line in look_next))
        sys.stdout.flush()
        return
    from rich.console import Group
    from rich.text import Text

    out = console()
    out.print()
    out.print(Group(*_renderables(overview(view))))
    for run in result.runs:
        final = result.final_states.get(run.run_id, "?")
        mark = Text("ok", "green") if final == run.expect else Text(f"expected {run.expect}", "red")
        out.print(Text.assemble(f"  {run.label}: ", _STATE.cell(final), " ", mark))
    for line in look_next:
        out.print(line, soft_wrap=True, markup=False)
