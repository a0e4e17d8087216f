"""The query plan of every statement `status`, `sync-status`, `submit-queued` (no-op and
`--dry-run`) and `runs show/list` issue, on a database with many finished runs.

The database is the one bench/history_scale.py builds (1,000 queued, 1,000 running at a
simulated Seven Bridges, `--finished` finished runs with task logs and history). The commands
run for real, in this process, while a `before_cursor_execute` listener records each statement
and its parameters; each distinct statement on workflow_runs, task_logs or run_state_history is
then explained with the same parameters: EXPLAIN (COSTS OFF) on PostgreSQL, EXPLAIN QUERY PLAN
on SQLite, EXPLAIN on MariaDB. One block per statement: the commands that issued it, the
statement cut to one line, its plan.

    .venv/bin/python bench/query_plans.py --finished 100000
    .venv/bin/python bench/query_plans.py --database-uri postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import common
import history_scale
from sqlalchemy import Engine, create_engine, event
from typer.testing import CliRunner

from wesctl.cli import app
from wesctl.db.engine import database_url, is_mysql

TABLES = ("workflow_runs", "task_logs", "run_state_history")
_PLACEHOLDER_LIST = re.compile(r"\((?:%\(\w+\)s|%s|\?)(?:, (?:%\(\w+\)s|%s|\?))+\)")
_LONG_ARRAY = re.compile(r"'\{[^}]{120,}\}'")  # a list of run ids in a PostgreSQL plan


@dataclass
class Statement:
    text: str
    parameters: Any
    commands: list[str] = field(default_factory=list)


def shape(statement: str) -> str:
    """The statement on one line, a list of placeholders (run ids) as `(...)`."""
    return _PLACEHOLDER_LIST.sub("(...)", " ".join(statement.split()))


def capture(commands: Sequence[Sequence[str]], environ: dict[str, str]) -> list[Statement]:
    """Run each command in this process; return the distinct statements on the run tables,
    in the order first seen."""
    seen: dict[str, Statement] = {}
    current = ""

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        key = shape(statement)
        verb = key.split(" ", 1)[0].upper()
        if verb not in ("SELECT", "UPDATE", "DELETE") or not any(t in key for t in TABLES):
            return
        found = seen.setdefault(key, Statement(statement, parameters))
        if current not in found.commands:
            found.commands.append(current)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        for command in commands:
            current = " ".join(command)
            result = CliRunner().invoke(app, list(command), env=environ, catch_exceptions=False)
            if result.exit_code != 0:
                raise SystemExit(f"wesctl {current} exited {result.exit_code}: {result.output}")
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    return list(seen.values())


def explain(engine: Engine, statement: Statement) -> list[str]:
    """The plan of `statement` with the parameters it ran with, one line per plan row."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            cursor.execute("EXPLAIN (COSTS OFF) " + statement.text, statement.parameters)
            return [str(row[0]) for row in cursor.fetchall()]
        if engine.dialect.name == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + statement.text, statement.parameters)
            return [str(row[3]) for row in cursor.fetchall()]
        assert is_mysql(engine.dialect)
        cursor.execute("EXPLAIN " + statement.text, statement.parameters)
        names = [column[0] for column in cursor.description]
        lines = []
        for row in cursor.fetchall():
            values = dict(zip(names, row, strict=True))
            lines.append(
                " ".join(
                    f"{name}={values[name]}"
                    for name in ("table", "type", "key", "rows", "Extra")
                    if values.get(name) is not None
                )
            )
        return lines
    finally:
        raw.rollback()
        raw.close()


def blocks(url: str, statements: Sequence[Statement]) -> Iterator[str]:
    engine = create_engine(database_url(url))
    try:
        for statement in statements:
            one_line = shape(statement.text)
            cut = one_line if len(one_line) <= 300 else one_line[:297] + "..."
            lines = (_LONG_ARRAY.sub("'{...}'", line) for line in explain(engine, statement))
            plan = "\n".join(f"    {line}" for line in lines)
            yield f"-- {', '.join(statement.commands)}\n   {cut}\n{plan}"
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-uri", default=None, help="PostgreSQL or MariaDB server URL")
    parser.add_argument("--finished", type=int, default=100_000, help="finished runs")
    args = parser.parse_args()
    with common.workspace() as directory:
        fake = common.start_fake("sevenbridges", 0.0)
        try:
            with history_scale.database_with_history(
                args.database_uri, directory, args.finished, fake
            ) as (url, run):
                environ = history_scale.command_environ(url, fake, directory)
                commands = [
                    [part.format(run=run) for part in command] for command in history_scale.COMMANDS
                ]
                statements = capture(commands, environ)
                name = common.database_name(args.database_uri)
                print(f"# {name}, {args.finished:,} finished runs: {len(statements)} statements")
                for block in blocks(url, statements):
                    print(block)
        finally:
            fake.stop()


if __name__ == "__main__":
    main()
