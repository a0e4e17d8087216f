"""Arvados fixtures: one https simulator per session, reset per test, with the SDK's settings
isolated from the developer's own (helpers in tests.contract.arvados_fixtures)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import arvados
import pytest

from tests.contract.arvados_fixtures import isolate_sdk
from wesctl.simulated.arvados import SimulatedArvados


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatedArvados]:
    with SimulatedArvados() as sim:
        yield sim


@pytest.fixture
def sim(
    simulator: SimulatedArvados, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[SimulatedArvados]:
    """The simulator, reset, with the SDK's settings isolated from the developer's own."""
    simulator.reset()
    isolate_sdk(simulator, monkeypatch, tmp_path)
    yield simulator
    arvados.config.initialize()
