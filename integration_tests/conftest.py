"""Shared fixtures of the end-to-end tests: sandboxes in other modes or at other clocks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ultravox_sandbox import Sandbox
from ultravox_sandbox.pytest_plugin import SANDBOX_HISTORY_START, SANDBOX_NOW, SANDBOX_SEED


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """A factory of started sandboxes with the fixture's seed, history and clock unless overridden
    (`empty_buckets`, `all_time_scope`, `now`, `faults`, ...); all are stopped after the test."""
    started: list[Sandbox] = []

    def make(**overrides: Any) -> Sandbox:
        options: dict[str, Any] = {"seed": SANDBOX_SEED, "history_start": SANDBOX_HISTORY_START}
        options["now"] = SANDBOX_NOW
        options.update(overrides)
        box = Sandbox(**options).start()
        started.append(box)
        return box

    yield make
    for box in started:
        box.stop()
