"""A host's view of one database and one simulated Arvados cluster, for end-to-end tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from tests.cli_helpers import wesctl_json
from tests.wes_api import insert_api_run, read_run
from wesctl.simulated.arvados import DEFAULT_PROJECT, DEFAULT_WORKFLOW, SimulatedArvados


class ArvadosCluster:
    """One database, one simulated Arvados cluster and the environment of a host using both."""

    def __init__(self, db_url: str, sim: SimulatedArvados, tmp: Path) -> None:
        self.engine = create_engine(db_url)
        self.sim = sim
        self.env = {
            "DATABASE_URI": db_url,
            "ARVADOS_API_HOST": sim.host,
            "ARVADOS_API_TOKEN": sim.token,
            "ARVADOS_PROJECT_UUID": DEFAULT_PROJECT,
            "SSL_CERT_FILE": sim.ca_file,
            "XDG_CACHE_HOME": str(tmp / "cache"),
            "XDG_CONFIG_HOME": str(tmp / "config"),  # no developer's settings.conf
            "WESCTL_RETRY_INITIAL_WAIT": "0.05",
        }

    def process_env(self) -> dict[str, str]:
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("ARVADOS_", "WESCTL_")) and key != "JOURNAL_STREAM"
        }
        return {**inherited, **self.env}

    def cli_json(self, *args: str, expect: int = 0) -> Any:
        return wesctl_json(*args, env=self.env, expect=expect)

    def add_run(self) -> str:
        return insert_api_run(
            self.engine,
            workflow_url=DEFAULT_WORKFLOW,
            workflow_params={"message": "hello"},
            tags={"provider_type": "arvados"},
        )

    def row(self, run_id: str) -> Any:
        return read_run(self.engine, run_id)

    def requests(self, run_id: str, state: str | None = None) -> list[dict[str, Any]]:
        return self.sim.requests_for_run(run_id, state=state)

    def history(self, run_id: str) -> list[tuple[str, str]]:
        with self.engine.connect() as connection:
            return [
                (row.from_state, row.to_state)
                for row in connection.execute(
                    text(
                        "SELECT from_state, to_state FROM run_state_history "
                        "WHERE run_id = :id ORDER BY id"
                    ),
                    {"id": run_id},
                )
            ]
