"""Pytest fixture `sandbox`; load with `pytest_plugins = ["ultravox_sandbox.pytest_plugin"]`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest

from .server import Sandbox

SANDBOX_SEED = 7
# A default sync from history start to now crosses a month and a year boundary, and at
# this instant a call is in progress (15:52:36-16:00:15), so partial figures are the default.
SANDBOX_NOW = datetime(2025, 3, 4, 15, 55, tzinfo=UTC)
SANDBOX_HISTORY_START = date(2024, 11, 20)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A started sandbox with a fixed seed and clock; tests may move the clock or set faults."""
    with Sandbox(seed=SANDBOX_SEED, history_start=SANDBOX_HISTORY_START, now=SANDBOX_NOW) as box:
        yield box
