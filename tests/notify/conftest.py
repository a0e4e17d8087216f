"""Fixtures of the notification tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.providers import sevenbridges_fake
from wesctl.simulated.sevenbridges import SimulatedSevenBridges


@pytest.fixture
def fake() -> Iterator[SimulatedSevenBridges]:
    """The Seven Bridges fake the notified runs are submitted to."""
    with sevenbridges_fake() as started:
        yield started
