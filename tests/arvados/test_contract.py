"""The shared provider contract for Arvados: the real adapter and arvados-python-client, over
https, against the simulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.arvados.conftest import ArvadosHarness
from tests.contract.base import ProviderContract
from wesctl.providers.arvados.simulator import ArvadosSimulator


class TestArvadosContract(ProviderContract):
    @pytest.fixture
    def harness(self, sim: ArvadosSimulator) -> Iterator[ArvadosHarness]:
        harness = ArvadosHarness(sim)
        yield harness
        harness.provider.close()

    def missing_id(self) -> str:
        return "zzzzz-xvhdp-999999999999999"
