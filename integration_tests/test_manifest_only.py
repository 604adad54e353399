"""The same two files, manifest.yaml and components.py, run unchanged under airbyte-cdk's own
`source-declarative-manifest` runner (the engine of Airbyte's manifest-only connectors and of the
Connector Builder) in an environment holding only airbyte-cdk, not this package: it answers
exactly as the package's console script does, message by message (`emitted_at` aside).

The runner's environment is `.venv-manifest-only` (created on first use with the airbyte-cdk
version this package runs on). Outside a connector image the runner's own `spec` command prints
its generic spec (the manifest comes with the config), so the spec is compared as the manifest
declares it; check, discover and read go through the runner."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from integration_tests.cli import (
    CliResult,
    comparable,
    configured_catalog,
    executable,
    run_cli,
    sandbox_config,
)
from integration_tests.manifest_only_env import manifest_only_python
from ultravox_sandbox import Faults, Sandbox

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "source_ultravox_usage"
CLI_TIMEOUT = 120


@pytest.fixture(scope="module")
def runner() -> list[str]:
    """`source-declarative-manifest` with this package's two files, from a venv of airbyte-cdk alone."""
    return [str(manifest_only_python().with_name("source-declarative-manifest"))]


@pytest.fixture
def runner_env() -> dict[str, str]:
    return {**os.environ, "AIRBYTE_ENABLE_UNSAFE_CODE": "true"}


RUNNER_FILES = [
    "--manifest-path",
    str(PACKAGE / "manifest.yaml"),
    "--components-path",
    str(PACKAGE / "components.py"),
]


def both(
    runner: list[str],
    env: dict[str, str],
    command: str,
    config: dict[str, Any],
    catalog: dict[str, Any] | None = None,
    state: list[dict[str, Any]] | None = None,
    box: Sandbox | None = None,
) -> tuple[CliResult, CliResult]:
    """Both runs; with `box`, also that both sent the same requests."""
    results, sent = [], []
    for program, extra_args, program_env in ((None, (), None), (runner, RUNNER_FILES, env)):
        if box is not None:
            box.clear_log()
        results.append(
            run_cli(
                command, config, catalog, state, CLI_TIMEOUT, extra_args, program=program, env=program_env
            )
        )
        if box is not None:
            sent.append(sorted(sorted(request.query.items()) for request in box.requests))
    assert not sent or sent[0] == sent[1], "the two runners sent different requests"
    return results[0], results[1]


def assert_same(package: CliResult, manifest_only: CliResult) -> None:
    assert package.stderr == "" and manifest_only.stderr == ""
    assert (package.returncode, comparable(package)) == (manifest_only.returncode, comparable(manifest_only))


def test_the_spec_is_the_manifests() -> None:
    result = run_cli("spec")
    [spec] = result.of_type("SPEC")
    manifest = yaml.safe_load((PACKAGE / "manifest.yaml").read_text())
    assert spec["spec"]["connectionSpecification"] == manifest["spec"]["connection_specification"]


def test_check_and_discover_are_the_same(
    runner: list[str], runner_env: dict[str, str], sandbox: Sandbox
) -> None:
    for command in ("check", "discover"):
        package, manifest_only = both(runner, runner_env, command, sandbox_config(sandbox))
        assert_same(package, manifest_only)
    assert manifest_only.of_type("CATALOG")[0]["catalog"]["streams"], "discover found no stream"
    package, manifest_only = both(
        runner, runner_env, "check", sandbox_config(sandbox, api_key="wrong-key-0123456789")
    )
    assert_same(package, manifest_only)
    assert manifest_only.connection_status["status"] == "FAILED"
    assert "Ultravox rejected the API key" in manifest_only.connection_status["message"]


@pytest.fixture
def incremental_state(sandbox: Sandbox) -> Iterator[list[dict[str, Any]]]:
    first = run_cli("read", sandbox_config(sandbox), configured_catalog(), timeout=CLI_TIMEOUT)
    assert first.returncode == 0, first.errors
    yield first.last_state()


def test_read_full_and_incremental_are_the_same(
    runner: list[str], runner_env: dict[str, str], sandbox: Sandbox, incremental_state: list[dict[str, Any]]
) -> None:
    config = sandbox_config(
        sandbox, agent_ids=[sandbox.calls[0].agent_id], metadata=[{"key": "tier", "value": "gold"}]
    )
    for state in (None, incremental_state):
        package, manifest_only = both(
            runner, runner_env, "read", config, configured_catalog(), state, sandbox
        )
        assert_same(package, manifest_only)
        assert manifest_only.records("daily") and manifest_only.records("hourly") and manifest_only.states


@pytest.mark.parametrize(
    ("faults", "overrides", "failure_type"),
    [
        (Faults(), {"api_key": "wrong-key-0123456789"}, "config_error"),
        (Faults(wrong_shape=True), {}, "system_error"),
        (Faults(rate_limit_first=1, retry_after="3600"), {}, "transient_error"),
        (Faults(), {"end_date": "2025-01-01"}, "config_error"),
    ],
    ids=["rejected-key", "wrong-body", "retry-after-too-long", "end-before-start"],
)
def test_typed_errors_are_the_same(
    runner: list[str], runner_env: dict[str, str], sandbox: Sandbox, faults: Faults, overrides, failure_type
) -> None:
    config = sandbox_config(sandbox, **overrides)
    catalog = configured_catalog(["allTime"])
    sandbox.faults = faults
    package = run_cli("read", config, catalog, timeout=CLI_TIMEOUT)
    sandbox.faults = faults
    manifest_only = run_cli(
        "read", config, catalog, timeout=CLI_TIMEOUT, extra_args=RUNNER_FILES, program=runner, env=runner_env
    )
    assert_same(package, manifest_only)
    assert manifest_only.returncode == 1
    # The CDK closes a failed read with a config_error summary of the streams that failed.
    stream_errors = [
        e for e in manifest_only.errors if e.get("internal_message") != "Concurrent read failure"
    ]
    assert stream_errors and {e["failure_type"] for e in stream_errors} == {failure_type}


@pytest.mark.parametrize("unreadable", ["config", "catalog", "state"])
def test_unreadable_files_are_where_the_two_runners_differ(
    runner: list[str], runner_env: dict[str, str], tmp_path: Path, unreadable: str
) -> None:
    """The one documented difference: a config, catalog or state file that is not JSON. The console
    script reads the files itself (run.py) and answers with one config_error TRACE; the CDK's runner
    answers with a TRACE of no failure type and prints a Python traceback on stderr."""
    files = {
        "config": {"api_key": "sandbox-not-a-secret-0000"},
        "catalog": configured_catalog(["allTime"]),
        "state": [],
    }
    args = ["read"]
    for name, content in files.items():
        path = tmp_path / f"{name}.json"
        path.write_text("{not json" if name == unreadable else json.dumps(content))
        args += [f"--{name}", str(path)]
    package = subprocess.run([executable(), *args], capture_output=True, text=True, timeout=CLI_TIMEOUT)
    manifest_only = subprocess.run(
        [*runner, *args, *RUNNER_FILES], capture_output=True, text=True, timeout=CLI_TIMEOUT, env=runner_env
    )
    reason = (
        f"Could not read json file {tmp_path / unreadable}.json: "
        "Expecting property name enclosed in double quotes"
    )
    for result in (package, manifest_only):
        assert result.returncode == 1
        [trace] = [json.loads(line) for line in result.stdout.splitlines()]  # stdout: one JSON message
        assert reason in trace["trace"]["error"]["message"]
    package_error = json.loads(package.stdout)["trace"]["error"]
    runner_error = json.loads(manifest_only.stdout)["trace"]["error"]
    assert package_error["failure_type"] == "config_error"
    assert package_error["message"].startswith(
        "Error starting the sync; check the config, catalog and state files: "
    )
    assert package.stderr == ""
    assert runner_error.get("failure_type") is None
    assert runner_error["message"].startswith(
        "Error starting the sync. This could be due to an invalid configuration or catalog."
    )
    assert manifest_only.stderr.startswith("Traceback (most recent call last):")
