"""Running the real `wesctl` Typer app in-process, as a user would from a shell."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner, Result

from wesctl.cli import app


def wesctl(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def wesctl_json(*args: str, env: dict[str, str] | None = None) -> Any:
    result = wesctl(*args, "--json", env=env)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)
