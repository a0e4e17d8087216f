"""Results where they go: every command run with stdout in a file (as under journald or in a
pipe) prints one full key=value line per item and a summary line, with nothing cut or wrapped;
on a terminal (a pseudo-terminal here) it prints rich tables."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import tempfile
import termios
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.cli_helpers import (
    parse_plain_line,
    upgrade_database,
    wesctl,
    wesctl_json,
    wesctl_process,
)
from tests.e2e.providers import SBG_APP, sevenbridges_env, sevenbridges_fake
from tests.wes_api import create_api_schema, insert_api_run
from wesctl.simulated.sevenbridges import SimulatedSevenBridges

# A provider message longer than any terminal, with the characters that need escaping.
LONG = 'app "alice/wes/hello" rejected \\ because:\n' + " ".join(
    f"reason{i:03d}" for i in range(40)
)
COLOUR = re.compile(r"\x1b\[[0-9;]*(3[0-9]|9[0-7])[0-9;]*m")  # an SGR sequence setting a colour


class World:
    """A migrated SQLite database and the Seven Bridges fake, as an operator configures them."""

    def __init__(self, db_url: str, fake: SimulatedSevenBridges) -> None:
        self.db_url = db_url
        self.fake = fake
        self.env = {"DATABASE_URI": db_url, **sevenbridges_env(fake)}
        self.engine = create_engine(db_url)
        self.reads = fake.add_file("reads.fastq", b"ACGT\n")

    def add_run(self, **kwargs: Any) -> str:
        kwargs.setdefault("workflow_url", SBG_APP)
        kwargs.setdefault("workflow_params", {"reads": {"class": "File", "path": self.reads}})
        kwargs.setdefault("tags", {"provider_type": "sevenbridges"})
        return insert_api_run(self.engine, **kwargs)

    def cli(self, *args: str, expect: int = 0) -> None:
        """Set the scene through the CLI (in-process: its output is not what is checked)."""
        result = wesctl(*args, env=self.env)
        assert result.exit_code == expect, result.output

    def failed_run(self, message: str = LONG) -> str:
        """A run the provider rejected with `message` (its last error and history reason)."""
        run_id = self.add_run()
        self.fake.inject("permanent", "submit", count=None, message=message)
        self.cli("submit-one", run_id, "--json", expect=1)
        self.fake.faults.rules.clear()
        return run_id

    def plain(self, *args: str, expect: int = 0, **env: str) -> list[dict[str, str | None]]:
        """Run `wesctl ARGS` with stdout in a file; return its lines, parsed."""
        with tempfile.TemporaryFile("w+", encoding="utf-8") as out:
            process = wesctl_process(
                *args,
                env=_environment(self.env, env),
                stdout=out,
                stderr=subprocess.PIPE,
                text=True,
            )
            _, err = process.communicate(timeout=120)
            out.seek(0)
            written = out.read()
        assert process.returncode == expect, err
        assert "Traceback" not in err
        assert "…" not in written, written
        assert "\x1b" not in written, "no colour or cursor codes off a terminal"
        return [parse_plain_line(line) for line in written.splitlines()]

    def terminal(self, *args: str, **env: str) -> str:
        """Run `wesctl ARGS` on a 200-column pseudo-terminal; return what it drew."""
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
        process = wesctl_process(
            *args,
            env=_environment(self.env, env),
            stdout=follower,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(follower)
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
        os.close(leader)
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        assert "Traceback" not in err
        return drawn.decode()


def _environment(base: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    environ = {**os.environ, **base, **extra}
    for name in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE"):
        if name not in extra:
            environ.pop(name, None)
    return environ


@pytest.fixture
def world(sqlite_url: str) -> Iterator[World]:
    upgrade_database(sqlite_url)
    with sevenbridges_fake() as fake:
        created = World(sqlite_url, fake)
        yield created
        created.engine.dispose()


def _only(lines: list[dict[str, str | None]], **match: str) -> dict[str, str | None]:
    found = [line for line in lines if all(line.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, lines)
    return found[0]


# --- the run reports ----------------------------------------------------------------------------


def test_submit_queued_prints_each_run_in_full_on_one_line(world: World) -> None:
    run_ids = [world.add_run() for _ in range(3)]
    world.fake.inject("permanent", "submit", count=None, message=LONG)

    lines = world.plain("submit-queued", expect=1)

    assert len(lines) == 4
    for run_id in run_ids:
        line = _only(lines, run=run_id)
        assert (line["outcome"], line["provider"], line["provider_id"]) == (
            "failed",
            "sevenbridges",
            None,
        )
        assert LONG in (line["reason"] or "")
    assert lines[-1] == {"command": "submit-queued", "total": "3", "failed": "3"}


def test_dry_run_prints_each_planned_run_and_the_slots_note(world: World) -> None:
    provider = "p" * 300  # a provider the WES API's tags name; the plan calls nothing
    planned = world.add_run(tags={"provider_type": provider})
    malformed = world.add_run(workflow_params=[1, 2])

    lines = world.plain("submit-queued", "--dry-run")

    assert _only(lines, run=planned) == {
        "run": planned,
        "outcome": "would-submit",
        "provider": provider,
        "provider_id": None,
        "reason": "oldest first",
    }
    assert _only(lines, run=malformed)["reason"] == (
        "workflow_params must be a JSON object, not list"
    )
    assert lines[-2] == {"note": "0 of 10 concurrency slots in use"}
    assert lines[-1] == {
        "command": "submit-queued --dry-run",
        "total": "2",
        "would-fail": "1",
        "would-submit": "1",
    }


def test_submit_one_prints_the_run_in_full(world: World) -> None:
    run_id = world.add_run()
    world.fake.inject("permanent", "submit", count=None, message=LONG)

    lines = world.plain("submit-one", run_id, expect=1)

    assert len(lines) == 2
    assert lines[0]["run"] == run_id
    assert LONG in (lines[0]["reason"] or "")
    assert lines[1] == {"command": "submit-one", "total": "1", "failed": "1"}


def test_a_provider_message_with_brackets_is_printed_as_written(world: World) -> None:
    run_id = world.add_run()
    world.fake.inject("permanent", "submit", count=None, message="[ERROR] [b]x[/b] [/]")

    lines = world.plain("submit-one", run_id, expect=1)

    assert "[ERROR] [b]x[/b] [/]" in (_only(lines, run=run_id)["reason"] or "")


def test_sync_status_prints_each_run_with_its_provider_id(world: World) -> None:
    run_id = world.add_run()
    world.cli("submit-queued")
    [task_id] = world.fake.runs_for(run_id)
    world.fake.inject("permanent", "status", count=None, message=LONG)

    lines = world.plain("sync-status", expect=1)

    line = _only(lines, run=run_id)
    assert (line["outcome"], line["provider_id"]) == ("failed", task_id)
    assert LONG in (line["reason"] or "")
    assert lines[-1] == {"command": "sync-status", "total": "1", "failed": "1"}


def test_cancel_prints_each_run_even_with_a_long_unknown_id(world: World) -> None:
    queued = world.add_run()
    unknown = "no-such-run-" + "x" * 300

    lines = world.plain("cancel", queued, unknown, expect=1)

    assert _only(lines, run=queued)["outcome"] == "canceled"
    assert _only(lines, run=unknown)["reason"] == f"no run with id {unknown!r}"
    assert lines[-1] == {"command": "cancel", "total": "2", "canceled": "1", "failed": "1"}


def test_retry_prints_the_run_and_a_summary(world: World) -> None:
    run_id = world.failed_run()

    lines = world.plain("retry", run_id)

    assert lines == [
        {
            "run": run_id,
            "outcome": "requeued",
            "reason": "re-queued with a new submission key (no provider run of it is going)",
        },
        {"command": "retry", "total": "1", "requeued": "1"},
    ]


# --- runs, status, doctor, configuration, schema ----------------------------------------------


def test_runs_list_prints_the_full_last_error(world: World) -> None:
    failed = world.failed_run()
    queued = world.add_run(run_id=f"test-{uuid.uuid4()}")  # 41 characters, as the API's scripts

    lines = world.plain("runs", "list")

    line = _only(lines, run=failed)
    assert (line["state"], line["provider"]) == ("SYSTEM_ERROR", "sevenbridges")
    assert LONG in (line["last_error"] or "")
    assert _only(lines, run=queued)["last_error"] is None
    assert lines[-1] == {"command": "runs list", "total": "2"}


def test_runs_show_prints_the_run_request_and_history_in_full(world: World) -> None:
    run_id = world.failed_run()
    shown = wesctl_json("--database-uri", world.db_url, "runs", "show", run_id)

    lines = world.plain("runs", "show", run_id)

    head = _only(lines, run=run_id, state="SYSTEM_ERROR")
    assert LONG in (head["last_error"] or "")
    assert head["submission_key"] == f"wesctl-{run_id}"
    [request] = [line["request"] for line in lines if "request" in line]
    assert json.loads(request or "") == shown["request"]
    failure = _only(lines, to="SYSTEM_ERROR")
    assert failure["from"] == "QUEUED"
    assert LONG in (failure["reason"] or "")
    assert lines[-1] == {"command": "runs show", "run": run_id, "task_logs": "0", "history": "1"}


def test_status_prints_counts_failures_and_the_queue_facts(world: World) -> None:
    failed = world.failed_run()
    queued = world.add_run()
    world.add_run(state="QUEUED ")  # not exactly a WES state: a warning, never rewritten

    lines = world.plain("status")

    assert _only(lines, state="QUEUED") == {
        "state": "QUEUED",
        "provider": "sevenbridges",
        "runs": "1",
    }
    failure = _only(lines, run=failed)
    assert failure["state"] == "SYSTEM_ERROR"
    assert LONG in (failure["reason"] or "")
    [warning] = [line["warning"] or "" for line in lines if "warning" in line]
    assert "1 runs have state 'QUEUED '" in warning
    summary = lines[-1]
    assert summary["command"] == "status"
    assert (summary["queued"], summary["oldest_queued"]) == ("1", queued)
    assert (summary["failures"], summary["warnings"]) == ("1", "1")
    assert (summary["in_flight"], summary["cap"]) == ("0", "10")


def test_doctor_prints_each_check_with_its_full_detail(world: World) -> None:
    project = "someone/" + "p" * 300

    lines = world.plain("doctor", expect=1, SEVENBRIDGES_PROJECT=project)

    check = _only(lines, check="sevenbridges project")
    assert check["result"] == "fail"
    assert check["detail"] == f"project {project} not found or not accessible"
    assert "token's user is a member" in (check["fix"] or "")
    assert _only(lines, check="database")["result"] == "ok"
    summary = lines[-1]
    assert (summary["command"], summary["total"]) == ("doctor", str(len(lines) - 1))


def test_config_show_prints_each_setting_in_full(world: World) -> None:
    project = "someone/" + "p" * 300

    lines = world.plain("config", "show", SEVENBRIDGES_PROJECT=project)

    assert _only(lines, setting="SEVENBRIDGES_PROJECT") == {
        "setting": "SEVENBRIDGES_PROJECT",
        "value": project,
        "source": "environment",
    }
    token = _only(lines, setting="SEVENBRIDGES_API_TOKEN")["value"] or ""
    assert world.env["SEVENBRIDGES_API_TOKEN"] not in token
    assert lines[-1] == {"command": "config show", "total": str(len(lines) - 1)}


def test_db_status_prints_one_line_with_the_full_revisions(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    engine = create_engine(url)
    create_api_schema(engine)
    revision = "r" * 300  # SQLite keeps what the WES API wrote, whatever its length
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": revision})
    engine.dispose()
    upgrade_database(url)
    head = wesctl_json("--database-uri", url, "db", "status")["head"]

    with tempfile.TemporaryFile("w+", encoding="utf-8") as out:
        environ = _environment({"DATABASE_URI": url}, {})
        process = wesctl_process("db", "status", env=environ, stdout=out)
        assert process.wait(timeout=60) == 0
        out.seek(0)
        written = out.read()

    assert [parse_plain_line(line) for line in written.splitlines()] == [
        {
            "command": "db status",
            "current": head,
            "head": head,
            "upgrade_pending": "False",
            "wes_api_tables": "True",
            "wes_api_revision": revision,
        }
    ]


# --- on a terminal ------------------------------------------------------------------------------


def test_a_terminal_gets_a_coloured_table_that_shows_brackets_as_written(world: World) -> None:
    bracketed = "[ERROR] [b]x[/b] [/]"
    run_id = world.failed_run(bracketed)

    drawn = world.terminal("runs", "list")

    assert "RUN ID" in drawn
    assert "LAST ERROR" in drawn
    assert run_id in drawn
    assert bracketed in drawn
    assert COLOUR.search(drawn)


def test_no_color_takes_the_colour_off_a_terminal(world: World) -> None:
    world.failed_run()

    drawn = world.terminal("runs", "list", NO_COLOR="1")

    assert "SYSTEM_ERROR" in drawn
    assert not COLOUR.search(drawn), drawn
