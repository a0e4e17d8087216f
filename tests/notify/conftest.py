"""Fixtures of the notification tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.providers import sevenbridges_fake
from wesctl.fakes.sevenbridges import SevenBridgesFake


@pytest.fixture
def fake() -> Iterator[SevenBridgesFake]:
    """The Seven Bridges fake the notified runs are submitted to."""
    with sevenbridges_fake() as started:
        yield started
