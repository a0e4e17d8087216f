"""Rendering of command results on stdout: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wesctl.db.engine import utcnow

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


def console() -> Console:
    return Console(file=sys.stdout, highlight=False, soft_wrap=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def state_text(state: str) -> str:
    style = _STATE_STYLE.get(state)
    return f"[{style}]{state}[/]" if style else state


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


def _shorten(text: str | None, width: int = 60) -> str:
    if not text:
        return ""
    line = text.splitlines()[0]
    return line if len(line) <= width else line[: width - 1] + "…"


def runs_table(summaries: Sequence[Any]) -> None:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("RUN ID", "STATE", "PROVIDER", "PROVIDER ID", "AGE", "LAST ERROR"):
        table.add_column(column, no_wrap=column in ("RUN ID", "STATE"), overflow="ellipsis")
    for item in summaries:
        table.add_row(
            item.run_id,
            state_text(item.state),
            item.provider,
            item.provider_id or "-",
            age(item.queued_at),
            _shorten(item.last_error),
        )
    out = console()
    if not summaries:
        out.print("no runs match")
        return
    out.print(table)


def run_detail(view: Any) -> None:
    data = view.to_json()
    out = console()
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    for key in (
        "run_id",
        "state",
        "provider",
        "provider_id",
        "provider_status",
        "queued_at",
        "ended_at",
        "submitted_at",
        "submit_attempts",
        "submission_key",
        "last_error",
    ):
        value = data[key]
        shown = (
            state_text(value) if key == "state" else ("-" if value in (None, "") else str(value))
        )
        head.add_row(key.replace("_", " "), shown)
    out.print(head)
    out.print()
    out.print("[bold]request[/]")
    out.print_json(json.dumps(data["request"], default=str))
    if data["outputs"]:
        out.print("[bold]outputs[/]")
        out.print_json(json.dumps(data["outputs"], default=str))
    if data["task_logs"]:
        logs = Table(title="task logs", box=box.SIMPLE_HEAD, title_justify="left")
        for column in ("NAME", "START", "END", "EXIT", "STDOUT"):
            logs.add_column(column)
        for log in data["task_logs"]:
            logs.add_row(
                log["name"],
                log["start_time"] or "-",
                log["end_time"] or "-",
                "-" if log["exit_code"] is None else str(log["exit_code"]),
                log["stdout"] or "-",
            )
        out.print(logs)
    if data["history"]:
        history = Table(title="state history", box=box.SIMPLE_HEAD, title_justify="left")
        for column in ("AT", "FROM", "TO", "REASON", "BY"):
            history.add_column(column)
        for item in data["history"]:
            history.add_row(
                item["at"],
                item["from"] or "-",
                state_text(item["to"]),
                _shorten(item["reason"], 70),
                item["actor"],
            )
        out.print(history)


def key_value_table(rows: Sequence[tuple[str, ...]], headers: Sequence[str]) -> None:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*row)
    console().print(table)


_OUTCOME_STYLE = {
    "submitted": "green",
    "adopted": "green",
    "updated": "blue",
    "canceled": "magenta",
    "cancel-sent": "magenta",
    "requeued": "yellow",
    "skipped": "dim",
    "unchanged": "dim",
    "failed": "bold red",
}


def report(result: Any, *, show_unchanged: bool = False) -> None:
    """A summary line and, when anything happened, one row per run."""
    data = result.to_json()
    out = console()
    counts = data["counts"]
    summary = (
        ", ".join(f"{count} {name}" for name, count in sorted(counts.items())) or "nothing to do"
    )
    rows = [
        item for item in data["runs"] if show_unchanged or item["outcome"] not in ("unchanged",)
    ]
    if rows:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for column in ("RUN ID", "OUTCOME", "PROVIDER", "PROVIDER ID", "DETAIL"):
            table.add_column(column, no_wrap=column in ("RUN ID", "OUTCOME"), overflow="ellipsis")
        for item in rows[:200]:
            style = _OUTCOME_STYLE.get(item["outcome"])
            outcome = f"[{style}]{item['outcome']}[/]" if style else item["outcome"]
            table.add_row(
                item["run_id"],
                outcome,
                item["provider"] or "-",
                item["provider_id"] or "-",
                _shorten(item["reason"], 80),
            )
        out.print(table)
        if len(rows) > 200:
            out.print(f"... and {len(rows) - 200} more (use --json for all)")
    for note in data["notes"]:
        out.print(note)
    out.print(f"{data['command']}: {summary}")


def overview(view: Any) -> Any:
    """The `wesctl status` screen as one rich renderable (printed once, or refreshed by --watch)."""
    from rich.console import Group
    from rich.panel import Panel

    data = view.to_json()
    states = sorted({item["state"] for item in data["counts"]})
    providers = sorted({item["provider"] for item in data["counts"]})
    counts = {(item["state"], item["provider"]): item["runs"] for item in data["counts"]}
    table = Table(title="runs by state", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("STATE")
    for provider in providers:
        table.add_column(provider.upper(), justify="right")
    table.add_column("TOTAL", justify="right")
    for state in states:
        row = [counts.get((state, provider), 0) for provider in providers]
        table.add_row(state_text(state), *(str(n) for n in row), str(sum(row)))
    if not states:
        table.add_row("no runs", *("" for _ in providers), "0")

    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    oldest = data["oldest_queued"]
    facts.add_row("queued", f"{data['queued']}")
    facts.add_row(
        "oldest queued",
        f"{oldest['run_id']} ({age(view.oldest_queued[1])} old)" if oldest else "-",
    )
    flight = data["in_flight"]
    per_provider = ", ".join(
        f"{name} {count}" for name, count in flight.items() if name not in ("total", "cap")
    )
    facts.add_row(
        "in flight",
        f"{flight['total']} of {flight['cap']}" + (f" ({per_provider})" if per_provider else ""),
    )
    stuck_total = sum(data["stuck"].values())
    facts.add_row(
        "stuck",
        f"[bold red]{stuck_total}[/] with no provider progress for {data['stuck_after_seconds']}s"
        if stuck_total
        else "0",
    )
    for label, at in (("last submit", view.last_submit), ("last sync", view.last_sync)):
        facts.add_row(label, f"{age(at)} ago" if at is not None else "never")
    parts: list[Any] = [facts, table]
    parts.extend(f"[yellow]warning:[/] {escape(line)}" for line in data["warnings"])
    if data["failures_last_hour"]:
        failures = Table(
            title="failures in the last hour", box=box.SIMPLE_HEAD, title_justify="left"
        )
        failures.add_column("AT", no_wrap=True)
        failures.add_column("RUN ID / REASON")
        for item in data["failures_last_hour"]:
            at = (item["at"] or "")[11:19]  # HH:MM:SS of an ISO timestamp
            failures.add_row(
                at,
                f"{item['run_id']} {state_text(item['state'])}\n"
                f"[dim]{_shorten(item['reason'], 160)}[/]",
            )
        parts.append(failures)
    return Panel(Group(*parts), title=f"wesctl status · {data['at']}", expand=False)


def checks_table(rows: Sequence[dict[str, str]]) -> None:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("CHECK", "RESULT", "DETAIL", "FIX"):
        table.add_column(column, no_wrap=column in ("CHECK", "RESULT"))
    style = {"ok": "green", "fail": "bold red", "skip": "dim", "warn": "yellow"}
    for row in rows:
        result = row["result"]
        table.add_row(
            row["check"], f"[{style.get(result, '')}]{result}[/]", row["detail"], row["fix"]
        )
    console().print(table)


def demo_progress(runs: Sequence[Any], states: dict[str, str]) -> Table:
    grid = Table(box=None, pad_edge=False)
    grid.add_column("RUN")
    grid.add_column("STATE")
    for run in runs:
        grid.add_row(run.label, state_text(states.get(run.run_id, "QUEUED")))
    return grid


def demo_summary(result: Any, view: Any) -> None:
    out = console()
    out.print()
    out.print(overview(view))
    for run in result.runs:
        final = result.final_states.get(run.run_id, "?")
        mark = "[green]ok[/]" if final == run.expect else f"[red]expected {run.expect}[/]"
        out.print(f"  {run.label}: {state_text(final)} {mark}")
    out.print(f"finished in {result.seconds:.1f}s. Look next:")
    uri = result.database_uri
    for line in (
        f"  wesctl --database-uri {uri} runs list",
        f"  wesctl --database-uri {uri} runs show {result.runs[0].run_id}",
        "  README.md, 'Running it for real', to point wesctl at your providers",
    ):
        out.print(line, soft_wrap=True)
