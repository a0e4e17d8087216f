"""Running the real `wesctl`, as a user would from a shell: the Typer app in-process, or the
command in its own process (for tests that kill or signal it)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from typer.testing import CliRunner, Result

from wesctl.cli import app


def wesctl(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def upgrade_database(url: str) -> None:
    """`wesctl db upgrade`, as an operator runs it before anything else: it must succeed."""
    result = wesctl("--database-uri", url, "db", "upgrade")
    assert result.exit_code == 0, result.output


def wesctl_json(*args: str, env: dict[str, str] | None = None, expect: int = 0) -> Any:
    """Run `wesctl ARGS --json`, check its exit code and return what it printed, parsed."""
    result = wesctl(*args, "--json", env=env)
    assert result.exit_code == expect, result.output
    return json.loads(result.stdout)


def wesctl_process(*args: str, env: Mapping[str, str], **popen: Any) -> subprocess.Popen[Any]:
    """Start `python -m wesctl ARGS` in its own process (output discarded unless `popen` says
    otherwise)."""
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen([sys.executable, "-m", "wesctl", *args], env=dict(env), **popen)


_PLAIN_PAIR = r'[^\s="]+=(?:"(?:[^"\\]|\\.)*"|[^\s"]+)'
_PLAIN_LINE = re.compile(rf"{_PLAIN_PAIR}(?: {_PLAIN_PAIR})*")


def parse_plain_line(line: str) -> dict[str, str | None]:
    """Read one line of wesctl's output off a terminal: `key=value` pairs, a value bare, `-`
    (none) or a JSON string. Fails on anything else, so a test also checks the format."""
    assert _PLAIN_LINE.fullmatch(line), f"not a key=value line: {line!r}"
    parsed: dict[str, str | None] = {}
    for pair in re.findall(_PLAIN_PAIR, line):
        key, _, value = pair.partition("=")
        assert key not in parsed, f"{key} twice in {line!r}"
        parsed[key] = None if value == "-" else json.loads(value) if value[0] == '"' else value
    return parsed
