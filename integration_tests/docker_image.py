"""Run the connector's Docker image as Airbyte runs it, and parse its output as `cli.run_cli` does.

The image is the one `scripts/test-image` builds, on a Docker engine of its own: it names them in
CONNECTOR_IMAGE and DOCKER_HOST (the `docker` CLI reads the latter). Every caller fails without them,
so a test needing the image cannot pass without one.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from integration_tests.cli import CliResult, parse_messages

IMAGE_ENV = "CONNECTOR_IMAGE"
DOCKER_TIMEOUT = 300
# Printed by the docker CLI itself (not the container) on every `docker run`, when the host does not
# forward IPv4: scripts/test-image starts its engine with --ip-forward=false, and the containers use
# the host's network, which needs no forwarding.
IP_FORWARD_WARNING = "WARNING: IPv4 forwarding is disabled. Networking will not work."


def image_under_test() -> str:
    """The image's tag; fails the calling test unless scripts/test-image has set the environment."""
    missing = [name for name in (IMAGE_ENV, "DOCKER_HOST") if not os.environ.get(name)]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not set: scripts/test-image builds the image on its own Docker "
            "engine and runs the image tests with both set"
        )
    return os.environ[IMAGE_ENV]


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    """The docker CLI; `docker run` never pulls: only the image built here may run, and CI reaches no
    registry but PyPI."""
    if args[:1] == ("run",):
        args = ("run", "--pull", "never", *args[1:])
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=DOCKER_TIMEOUT)


def run_image(
    image: str,
    command: str,
    config: Mapping[str, Any] | None = None,
    catalog: Mapping[str, Any] | None = None,
    state: list[dict[str, Any]] | None = None,
) -> CliResult:
    """`docker run` of the image's entrypoint with the command, its input files mounted at /data.

    The container shares the host's network, so `api_url` on 127.0.0.1 is the same sandbox the
    console script reaches. The files are readable by all: the image runs as uid 1000, not as the
    owner of the files. `stderr` is the container's, without the CLI's IP forwarding warning.
    """
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        data.chmod(0o755)
        args = [command]
        for name, content in (("config", config), ("catalog", catalog), ("state", state)):
            if content is not None:
                path = data / f"{name}.json"
                path.write_text(json.dumps(content))
                path.chmod(0o644)
                args += [f"--{name}", f"/data/{name}.json"]
        proc = docker("run", "--rm", "--network", "host", "-v", f"{data}:/data:ro", image, *args)
    stderr = "".join(
        line for line in proc.stderr.splitlines(keepends=True) if line.rstrip("\n") != IP_FORWARD_WARNING
    )
    return CliResult(proc.returncode, proc.stdout, stderr, parse_messages(proc.stdout))
