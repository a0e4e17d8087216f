"""The e2e `site` fixture: one database, both provider fakes, and an operator host's environment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine

from tests.cli_helpers import upgrade_database, wesctl
from tests.contract.aws_fixtures import s3_client
from tests.e2e.arvados_cluster import ArvadosCluster
from tests.e2e.providers import (
    HO_WORKFLOW,
    SBG_APP,
    healthomics_env,
    sevenbridges_env,
    sevenbridges_fake,
)
from tests.wes_api import insert_api_run, read_run, write_state
from wesctl.simulated.arvados import SimulatedArvados
from wesctl.simulated.healthomics import SimulatedHealthOmics
from wesctl.simulated.sevenbridges import SimulatedSevenBridges


class Site:
    """One database, both provider fakes, and the environment of an operator's host."""

    def __init__(
        self,
        db_url: str,
        sbg: SimulatedSevenBridges,
        omics: SimulatedHealthOmics,
        moto: str,
        tmp: Path,
    ) -> None:
        self.engine: Engine = create_engine(db_url)
        self.sbg = sbg
        self.omics = omics
        self.reads = sbg.add_file("reads.fastq", b"ACGT\n")
        self.env = {
            "DATABASE_URI": db_url,
            **sevenbridges_env(sbg),
            **healthomics_env(omics.base_url, moto, str(tmp)),
        }

    def original_names_only(self) -> dict[str, str]:
        """The host configured as the original daemon's .env was: no WESCTL_* at all (plus the
        libraries' own standard settings that point boto3 at the simulators)."""
        return {key: value for key, value in self.env.items() if not key.startswith("WESCTL_")}

    def cli(self, *args: str, env: dict[str, str] | None = None) -> Any:
        return wesctl(*args, env=env if env is not None else self.env)

    def cli_json(
        self, *args: str, expect: int = 0, env: dict[str, str] | None = None
    ) -> dict[str, Any]:
        result = self.cli(*args, "--json", env=env)
        assert result.exit_code == expect, result.output
        parsed: dict[str, Any] = json.loads(result.stdout)
        return parsed

    def add_sevenbridges_run(self, **kwargs: Any) -> str:
        return insert_api_run(
            self.engine,
            workflow_url=SBG_APP,
            workflow_params={"reads": {"class": "File", "path": self.reads}, "n": 2},
            tags={"provider_type": "sevenbridges"},
            **kwargs,
        )

    def add_healthomics_run(self, **kwargs: Any) -> str:
        return insert_api_run(
            self.engine,
            workflow_url=HO_WORKFLOW,
            workflow_type="WDL",
            workflow_params={"sample": "s3://inputs/sample.bam"},
            tags={"provider_type": "healthomics"},
            **kwargs,
        )

    def row(self, run_id: str) -> Any:
        return read_run(self.engine, run_id)

    def set_state(self, run_id: str, state: str) -> None:
        write_state(self.engine, run_id, state)


@pytest.fixture
def site(db_url: str, moto_url: str, tmp_path: Path) -> Iterator[Site]:
    upgrade_database(db_url)
    with sevenbridges_fake() as sbg, SimulatedHealthOmics(s3=s3_client(moto_url)) as omics:
        created = Site(db_url, sbg, omics, moto_url, tmp_path)
        yield created
        created.engine.dispose()


@pytest.fixture
def arvados(db_url: str, tmp_path: Path) -> Iterator[ArvadosCluster]:
    """An upgraded database and a simulated Arvados cluster a host is configured for."""
    upgrade_database(db_url)
    with SimulatedArvados() as sim:
        cluster = ArvadosCluster(db_url, sim, tmp_path)
        yield cluster
        cluster.engine.dispose()
