"""The connector's Docker image, built from the repository's Dockerfile, answers exactly as the console
script does: `spec`, `check`, `discover` and `read` of all six streams (full, then incremental),
message for message (`emitted_at` aside), against the same sandbox, sending the same requests. It
runs as the unprivileged uid 1000, with the entrypoint, environment and labels Airbyte reads.

Marked `image_tests`: scripts/test deselects these; scripts/test-image builds the image on a Docker
engine of its own (on a stand-in for Airbyte's base image, which CI cannot pull) and runs them with
CONNECTOR_IMAGE and DOCKER_HOST set. Without those every test here fails.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from integration_tests.cli import STREAMS, CliResult, comparable, configured_catalog, run_cli, sandbox_config
from integration_tests.docker_image import docker, image_under_test, run_image
from ultravox_sandbox import Sandbox

pytestmark = pytest.mark.image_tests

ROOT = Path(__file__).resolve().parents[1]
CLI_TIMEOUT = 120
CONSOLE_SCRIPT = "source-ultravox-usage"


@pytest.fixture(scope="module")
def image() -> str:
    return image_under_test()


def image_and_script(
    image: str,
    box: Sandbox | None,
    command: str,
    config: dict[str, Any] | None = None,
    catalog: dict[str, Any] | None = None,
    state: list[dict[str, Any]] | None = None,
) -> CliResult:
    """The command in the image and from the console script: the same exit code, the same messages,
    nothing on stderr, the config's key nowhere in the output, and (with `box`) the same requests
    to the sandbox. Returns the image's run."""
    results, sent = [], []
    for runner in ("image", "script"):
        if box is not None:
            box.clear_log()
        if runner == "image":
            results.append(run_image(image, command, config, catalog, state))
        else:
            results.append(run_cli(command, config, catalog, state, CLI_TIMEOUT))
        if box is not None:
            sent.append(sorted((r.path, sorted(r.query.items())) for r in box.requests))
    in_image, script = results
    if config and config.get("api_key"):
        assert config["api_key"] not in in_image.stdout + script.stdout, "the API key was shown"
    assert (in_image.stderr, script.stderr) == ("", "")
    assert (in_image.returncode, comparable(in_image)) == (script.returncode, comparable(script))
    if box is not None:
        assert sent[0] == sent[1], "the image and the console script sent different requests"
    return in_image


def test_runs_as_uid_1000(image: str) -> None:
    """USER 1000 is the base image's `airbyte` user, and the connector runs as it."""
    inspected = docker("image", "inspect", "--format", "{{.Config.User}}", image)
    assert (inspected.returncode, inspected.stdout) == (0, "1000\n"), inspected.stderr
    ran = docker("run", "--rm", "--entrypoint", "id", image, "-u")
    assert (ran.returncode, ran.stdout) == (0, "1000\n"), ran.stderr
    ran = docker("run", "--rm", "--entrypoint", "id", image, "-un")
    assert (ran.returncode, ran.stdout) == (0, "airbyte\n"), ran.stderr


def test_entrypoint_environment_and_labels(image: str) -> None:
    """What Airbyte reads from the image: the console script as entrypoint (also in
    AIRBYTE_ENTRYPOINT), and the name and version labels of metadata.yaml."""
    metadata = yaml.safe_load((ROOT / "metadata.yaml").read_text())["data"]
    inspected = docker("image", "inspect", "--format", "{{json .Config}}", image)
    assert inspected.returncode == 0, inspected.stderr
    config = json.loads(inspected.stdout)
    assert config["Entrypoint"] == [CONSOLE_SCRIPT]
    assert config["Cmd"] is None
    assert f"AIRBYTE_ENTRYPOINT={CONSOLE_SCRIPT}" in config["Env"]
    labels = {name: config["Labels"].get(name) for name in ("io.airbyte.name", "io.airbyte.version")}
    assert labels == {
        "io.airbyte.name": metadata["dockerRepository"],
        "io.airbyte.version": metadata["dockerImageTag"],
    }


def test_spec(image: str) -> None:
    [spec] = image_and_script(image, None, "spec").of_type("SPEC")
    assert spec["spec"]["connectionSpecification"]["required"] == ["api_key"]


def test_check_and_discover(image: str, sandbox: Sandbox) -> None:
    checked = image_and_script(image, sandbox, "check", sandbox_config(sandbox))
    assert checked.connection_status == {"status": "SUCCEEDED"}
    rejected = image_and_script(
        image, sandbox, "check", sandbox_config(sandbox, api_key="wrong-key-0123456789")
    )
    assert rejected.connection_status["status"] == "FAILED"
    assert "Ultravox rejected the API key" in rejected.connection_status["message"]
    discovered = image_and_script(image, sandbox, "discover", sandbox_config(sandbox))
    [catalog] = discovered.of_type("CATALOG")
    assert sorted(stream["name"] for stream in catalog["catalog"]["streams"]) == sorted(STREAMS)


def test_read_all_streams_full_then_incremental(image: str, sandbox: Sandbox) -> None:
    config, catalog = sandbox_config(sandbox), configured_catalog(STREAMS)
    full = image_and_script(image, sandbox, "read", config, catalog)
    assert full.returncode == 0 and full.errors == []
    for stream in STREAMS:
        assert full.records(stream), f"the image read no {stream} record"
    incremental = image_and_script(image, sandbox, "read", config, catalog, full.last_state())
    assert incremental.returncode == 0 and incremental.errors == []
    assert incremental.records("daily") and incremental.states


def test_failed_read(image: str, sandbox: Sandbox) -> None:
    """A rejected key ends the image's read as the script's: exit code 1 and a config error."""
    config = sandbox_config(sandbox, api_key="wrong-key-0123456789")
    failed = image_and_script(image, sandbox, "read", config, configured_catalog(["daily"]))
    assert failed.returncode == 1
    assert {e["failure_type"] for e in failed.errors} == {"config_error"}
