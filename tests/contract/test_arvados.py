"""The shared provider contract for Arvados: the real adapter and arvados-python-client, over
https, against SimulatedArvados."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.arvados_fixtures import ArvadosHarness, isolate_sdk
from tests.contract.base import ProviderContract
from wesctl.simulated.arvados import SimulatedArvados


@pytest.fixture(scope="module")
def arvados_sim() -> Iterator[SimulatedArvados]:
    """One simulator per module (each makes its own CA); harnesses reset it."""
    with SimulatedArvados() as sim:
        yield sim


class TestArvadosContract(ProviderContract):
    @pytest.fixture
    def harness(
        self, arvados_sim: SimulatedArvados, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> Iterator[ArvadosHarness]:
        arvados_sim.reset()
        isolate_sdk(arvados_sim, monkeypatch, tmp_path)
        harness = ArvadosHarness(arvados_sim)
        yield harness
        harness.provider.close()

    def missing_id(self) -> str:
        return "zzzzz-xvhdp-999999999999999"
