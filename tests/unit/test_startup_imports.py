"""A command imports what its database and providers need, nothing more: start-up is part of
every timer tick's cost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_a_sqlite_command_never_loads_the_mysql_dialect(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from wesctl.cli import app\n"
        "for args in (['runs', 'list'], ['submit-queued'], ['status']):\n"
        "    try:\n"
        "        app(args, standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('sqlalchemy.dialects.mysql'))\n"
        "assert not loaded, loaded\n"
        "print('not loaded')\n"
    )
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "DATABASE_URI": f"sqlite:///{tmp_path / 'wes.db'}",
    }
    # `db upgrade` is left out: Alembic loads every dialect's DDL support.
    upgrade = [sys.executable, "-m", "wesctl", "db", "upgrade"]
    subprocess.run(upgrade, env=environment, capture_output=True, check=True, timeout=120)
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("not loaded")
