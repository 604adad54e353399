"""Fixtures for the PyAirbyte tests; they run in .venv-pyairbyte, never in the connector's .venv.

    scripts/setup-pyairbyte && .venv-pyairbyte/bin/python -m pytest integration_tests/pyairbyte

PyAirbyte reads AIRBYTE_OFFLINE_MODE and DO_NOT_TRACK when it is imported: without them it calls
Airbyte's connector registry and telemetry (and fails offline). This conftest is imported before
the test modules, so setting them here comes first.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["AIRBYTE_OFFLINE_MODE"] = "1"
os.environ["DO_NOT_TRACK"] = "1"
with warnings.catch_warnings():
    # Google client libraries that PyAirbyte imports warn about Python 3.11's end of life.
    warnings.filterwarnings("ignore", category=FutureWarning, message=".*Python version")
    import airbyte  # noqa: F401  - fails here, clearly, outside .venv-pyairbyte

ROOT = Path(__file__).resolve().parents[2]
CONNECTOR_NAME = "source-ultravox-usage"
# The connector as installed in its own venv (scripts/setup-pyairbyte makes it); override with
# SOURCE_ULTRAVOX_USAGE_EXECUTABLE to test another install.
CONNECTOR_EXECUTABLE = Path(
    os.environ.get("SOURCE_ULTRAVOX_USAGE_EXECUTABLE") or ROOT / ".venv" / "bin" / CONNECTOR_NAME
)


@pytest.fixture(scope="session")
def connector_executable() -> Path:
    if not CONNECTOR_EXECUTABLE.exists():
        pytest.fail(f"{CONNECTOR_EXECUTABLE} is missing: run scripts/setup-pyairbyte first")
    return CONNECTOR_EXECUTABLE


@pytest.fixture
def duckdb_cache(tmp_path: Path) -> Iterator[Any]:
    """A fresh DuckDB file for each test, with PyAirbyte's temporary files beside it."""
    from airbyte.caches import DuckDBCache

    cache = DuckDBCache(db_path=tmp_path / "usage.duckdb", cache_dir=tmp_path / "pyairbyte")
    yield cache
    cache.close()


@pytest.fixture(scope="session")
def busy_sync(connector_executable: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One sync shared by the tests of the README's SQL (DuckDB, and Snowflake loaded from it)."""
    from airbyte.caches import DuckDBCache

    from integration_tests.pyairbyte.expected import BUSY, BusySync, make_source, readme_answers, stream_truth
    from ultravox_sandbox import Sandbox

    folder = tmp_path_factory.mktemp("busy")
    cache = DuckDBCache(db_path=folder / "usage.duckdb", cache_dir=folder / "pyairbyte")
    with Sandbox(**BUSY) as box:
        make_source(connector_executable, box).read(cache=cache)
        synced = BusySync(cache=cache, answers=readme_answers(box), tables=stream_truth(box))
    yield synced
    cache.close()
