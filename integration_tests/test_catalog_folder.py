"""The catalog's road: scripts/manifest_only_folder.py writes the connector as a manifest-only
folder of airbytehq/airbyte, and Airbyte's own standard suite passes on that folder.

The folder is checked file by file against the package it is generated from. Then the suite runs
as the catalog's CI runs it: `airbyte-cdk connector test <folder>` (the CDK's CLI, from
`.venv-manifest-only`, which holds airbyte-cdk and pytest but not this package) writes its own
test module, whose suite class `create_connector_test_suite` picks from metadata.yaml's
`language:manifest-only` tag: the stock `DeclarativeSourceTestSuite`, which builds the source from
the folder's manifest.yaml and components.py. Its configs are the folder's, pointed at the local
sandbox: `secrets/config.json` (the catalog's CI writes it from the GSM secret) and
`integration_tests/invalid_config.json`, whose api_url is set to the sandbox too so that nothing
leaves loopback. Docker image tests are deselected (`-m "not image_tests"`): no Docker here.

About 10 s in all (the suite's pytest run about 4 s of it), once `.venv-manifest-only` exists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from integration_tests.manifest_only_env import manifest_only_python
from ultravox_sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "manifest_only_folder.py"
CONNECTOR = "airbyte-integrations/connectors/source-ultravox-usage"
DOCS_PAGE = "docs/integrations/sources/ultravox-usage.md"
# The page metadata.yaml's releases.migrationDocumentationUrl names.
MIGRATIONS_PAGE = "docs/integrations/sources/ultravox-usage-migrations.md"
SUITE_TIMEOUT = 300

# Every file the script writes, relative to the airbyte clone's root; the folder holds nothing else.
FOLDER_FILES = {
    f"{CONNECTOR}/{name}"
    for name in (
        "README.md",
        "acceptance-test-config.yml",
        "components.py",
        "icon.svg",
        "manifest.yaml",
        "metadata.yaml",
        "integration_tests/abnormal_state.json",
        "integration_tests/configured_catalog.json",
        "integration_tests/invalid_config.json",
        "integration_tests/sample_config.json",
    )
} | {DOCS_PAGE, MIGRATIONS_PAGE}
# The catalog folder's file (key) copied from the package's file (value), byte for byte.
COPIES = {
    "manifest.yaml": "source_ultravox_usage/manifest.yaml",
    "components.py": "source_ultravox_usage/components.py",
    "icon.svg": "icon.svg",
    "integration_tests/abnormal_state.json": "integration_tests/abnormal_state.json",
    "integration_tests/configured_catalog.json": "integration_tests/configured_catalog.json",
    "integration_tests/invalid_config.json": "integration_tests/invalid_config.json",
    "integration_tests/sample_config.json": "integration_tests/sample_config.json",
}
# What the suite runs for the configs of acceptance-test-config.yml: `config` (secrets/config.json)
# is listed in every section, `invalid_config` under `connection` only, so the rest of its tests
# are skipped (4). The 10 deselected are the Docker image tests.
SUITE_TEST = ".tmp/integration_tests/test_airbyte_standards.py::TestSuite::"
PASSED = sorted(
    SUITE_TEST + name
    for name in (
        "test_basic_read['config' Test Scenario]",
        "test_check['config' Test Scenario]",
        "test_check['invalid_config' Test Scenario]",
        "test_config_matches_spec['config' Test Scenario]",
        "test_discover['config' Test Scenario]",
        "test_fail_read_with_bad_catalog['config' Test Scenario]",
        "test_spec",
    )
)
# The one warning is the CDK's own: its pytest hooks mark scenarios `requires_creds` without
# registering the mark. A DiscoveredCatalogWarning (an advisory catalog check) would be a second one.
SUMMARY = "7 passed, 4 skipped, 10 deselected, 1 warning"
UNKNOWN_MARK_WARNING = "PytestUnknownMarkWarning: Unknown pytest.mark.requires_creds"
SANDBOX_ENDPOINTS = {
    "/api/accounts/me/usage/calls",
    "/api/agents/usage",
    "/api/accounts/me/usage/concurrency",
    "/api/accounts/me/billing/usage",
    "/api/calls",
    "/api/accounts/me/billing/invoices",
    "/api/accounts/me",
}


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _setup_py(name: str) -> str:
    """A literal of setup.py: the package's `version`, or the `airbyte-cdk` pin."""
    pattern = r'version="([^"]+)"' if name == "version" else r'"airbyte-cdk==([^"]+)"'
    [value] = re.findall(pattern, (ROOT / "setup.py").read_text())
    return value


def _paths(config: Any, key: str = "") -> set[str]:
    """Every `*_path` value of an acceptance-test-config.yml."""
    if isinstance(config, dict):
        return set().union(*(_paths(value, k) for k, value in config.items()))
    if isinstance(config, list):
        return set().union(*(_paths(item, key) for item in config))
    return {config} if key.endswith("_path") else set()


def _without_paths(config: Any, key: str = "") -> Any:
    if isinstance(config, dict):
        return {k: _without_paths(value, k) for k, value in config.items()}
    if isinstance(config, list):
        return [_without_paths(item, key) for item in config]
    return "<path>" if key.endswith("_path") else config


@pytest.fixture(scope="module")
def airbyte_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty directory standing for the root of an airbytehq/airbyte clone, after the script."""
    out = tmp_path_factory.mktemp("airbyte")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(out)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{out / CONNECTOR}\n"
    return out


def test_the_folder_is_generated_from_the_package(airbyte_clone: Path) -> None:
    written = {str(p.relative_to(airbyte_clone)) for p in airbyte_clone.rglob("*") if p.is_file()}
    assert written == FOLDER_FILES
    folder = airbyte_clone / CONNECTOR
    for theirs, ours in COPIES.items():
        assert (folder / theirs).read_bytes() == (ROOT / ours).read_bytes(), theirs
    assert (airbyte_clone / DOCS_PAGE).read_bytes() == (ROOT / "docs" / "ultravox-usage.md").read_bytes()
    migrations = (ROOT / "docs" / "ultravox-usage-migrations.md").read_bytes()
    assert (airbyte_clone / MIGRATIONS_PAGE).read_bytes() == migrations

    # metadata.yaml: ours, but built FROM the declarative-manifest image of the CDK release the
    # manifest is written for, tagged manifest-only, without our Python unit-test suite.
    ours, metadata = _yaml(ROOT / "metadata.yaml"), _yaml(folder / "metadata.yaml")
    cdk = _setup_py("airbyte-cdk")
    assert _yaml(folder / "manifest.yaml")["version"] == cdk
    data = metadata["data"]
    assert data["connectorBuildOptions"] == {
        "baseImage": f"docker.io/airbyte/source-declarative-manifest:{cdk}"
    }
    assert data["tags"] == ["language:manifest-only", "cdk:low-code"]
    assert [suite["suite"] for suite in data["connectorTestSuitesOptions"]] == ["acceptanceTests"]
    assert data["dockerImageTag"] == _setup_py("version")
    assert data["definitionId"] == ours["data"]["definitionId"]
    assert data["dockerRepository"] == "airbyte/source-ultravox-usage" == f"airbyte/{folder.name}"
    assert data["documentationUrl"].endswith("/integrations/sources/ultravox-usage")
    assert (folder / data["icon"]).is_file()
    changed = ("connectorBuildOptions", "tags", "connectorTestSuitesOptions")
    assert {k: v for k, v in data.items() if k not in changed} == {
        k: v for k, v in ours["data"].items() if k not in changed
    }
    assert metadata.keys() == ours.keys() and metadata["metadataSpecVersion"] == ours["metadataSpecVersion"]
    [secret] = data["connectorTestSuitesOptions"][0]["testSecrets"]
    assert secret["fileName"] == "config.json"  # the catalog's CI writes it as secrets/config.json

    # acceptance-test-config.yml: ours but for its paths, which resolve in the folder (the tested
    # config is secrets/config.json, which the catalog's CI writes from the secret above).
    acceptance = _yaml(folder / "acceptance-test-config.yml")
    ours_acceptance = _yaml(ROOT / "acceptance-test-config.yml")
    assert acceptance["connector_image"] == "airbyte/source-ultravox-usage:dev"
    assert _without_paths(acceptance) == _without_paths(ours_acceptance)
    assert _paths(acceptance) == {
        "manifest.yaml",
        "secrets/config.json",
        "integration_tests/invalid_config.json",
        "integration_tests/configured_catalog.json",
        "integration_tests/abnormal_state.json",
    }
    assert [p for p in _paths(acceptance) if not (folder / p).is_file()] == ["secrets/config.json"]

    readme = (folder / "README.md").read_text()
    assert f"](../../../{DOCS_PAGE})" in readme and (folder / "../../.." / DOCS_PAGE).is_file()


@pytest.fixture
def connector_folder(airbyte_clone: Path, tmp_path: Path, sandbox: Sandbox) -> Path:
    """A copy of the generated folder with its configs pointed at the sandbox."""
    folder = tmp_path / "source-ultravox-usage"  # the suite names the connector after its folder
    shutil.copytree(airbyte_clone / CONNECTOR, folder)
    config = json.loads((folder / "integration_tests/sample_config.json").read_text())
    (folder / "secrets").mkdir()
    (folder / "secrets/config.json").write_text(
        json.dumps({**config, "api_key": sandbox.api_key, "api_url": sandbox.url})
    )
    invalid = folder / "integration_tests/invalid_config.json"
    invalid.write_text(json.dumps({**json.loads(invalid.read_text()), "api_url": sandbox.url}))
    return folder


def test_airbytes_standard_suite_passes_on_the_folder(connector_folder: Path, sandbox: Sandbox) -> None:
    cli = manifest_only_python().with_name("airbyte-cdk")
    result = subprocess.run(
        # -rA lists every passed test by name in the summary.
        [str(cli), "connector", "test", str(connector_folder)]
        + ["--pytest-arg=-m", "--pytest-arg=not image_tests", "--pytest-arg=-rA"],
        cwd=connector_folder,
        env={**os.environ, "AIRBYTE_ENABLE_UNSAFE_CODE": "true"},
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT,
    )
    output = result.stdout + result.stderr
    assert sandbox.api_key not in output, "the suite's output shows the API key"
    summary = re.findall(r"^=+ (.*) in [\d.]+s =+$", result.stdout, re.MULTILINE)
    passed = sorted(re.findall(r"^PASSED (.*)$", result.stdout, re.MULTILINE))
    # The summary is exact: any failure or error would add its count to it.
    assert (result.returncode, summary, passed) == (0, [SUMMARY], PASSED), output
    assert result.stdout.count(UNKNOWN_MARK_WARNING) == 1, output

    # The suite's requests reached the sandbox: every endpoint with the tested config's key, and
    # `check` with invalid_config's key, which the sandbox refused.
    by_key: dict[str, set[tuple[str, int]]] = {}
    for request in sandbox.requests:
        by_key.setdefault(request.headers.get("X-API-Key", ""), set()).add((request.path, request.status))
    invalid_key = json.loads((ROOT / "integration_tests/invalid_config.json").read_text())["api_key"]
    assert by_key == {
        sandbox.api_key: {(path, 200) for path in SANDBOX_ENDPOINTS},
        invalid_key: {("/api/accounts/me/usage/calls", 401)},
    }
