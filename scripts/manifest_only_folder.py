"""Write this connector as a manifest-only connector, laid out as airbytehq/airbyte lays one out.

    .venv/bin/python scripts/manifest_only_folder.py OUT_DIR

OUT_DIR stands for the root of an airbytehq/airbyte clone. The script writes
`airbyte-integrations/connectors/source-ultravox-usage/` and the docs pages
`docs/integrations/sources/ultravox-usage.md` and `ultravox-usage-migrations.md` there, all
generated from this package's files, so nothing is kept twice:

- `manifest.yaml`, `components.py`, `icon.svg`, the docs pages and the integration_tests files
  that `acceptance-test-config.yml` names: copied byte for byte;
- `metadata.yaml`: ours, built FROM `airbyte/source-declarative-manifest` instead of the Python
  base image, tagged `language:manifest-only`, without the suite of our Python unit tests;
- `acceptance-test-config.yml`: ours, with its paths as the catalog writes them (the manifest at
  the folder's root, the tested config in `secrets/config.json`, where the catalog's CI puts the
  `testSecrets` of metadata.yaml);
- `README.md`: a few lines that point at the docs page.

Files already in OUT_DIR are overwritten, others are left alone (an airbyte clone's
`secrets/config.json` survives a re-run). `secrets/config.json` itself is never written here.
integration_tests/test_catalog_folder.py checks the folder and runs Airbyte's standard suite on it.
"""

from __future__ import annotations

import argparse
import shutil
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "source_ultravox_usage"

# The catalog's image of the CDK release the package runs on: Airbyte publishes one
# source-declarative-manifest image per airbyte-cdk release, with the same version. Older images
# refuse this manifest (7.27.0 knows no SPLIT_REQUEST_WINDOW action). No digest: none for this
# version could be looked up from here; pin it (`@sha256:...`) before submitting.
BASE_IMAGE = f"docker.io/airbyte/source-declarative-manifest:{version('airbyte-cdk')}"

# acceptance-test-config.yml's paths, from ours (at the package root) to the catalog folder's.
# A path ours gains must be added here: `catalog_acceptance_config` refuses any other.
ACCEPTANCE_PATHS = {
    "source_ultravox_usage/manifest.yaml": "manifest.yaml",
    "integration_tests/sample_config.json": "secrets/config.json",
    "integration_tests/invalid_config.json": "integration_tests/invalid_config.json",
    "integration_tests/configured_catalog.json": "integration_tests/configured_catalog.json",
    "integration_tests/abnormal_state.json": "integration_tests/abnormal_state.json",
}
# Shown in the catalog's folders beside the configs; the template of secrets/config.json.
SAMPLE_CONFIG = "integration_tests/sample_config.json"


def catalog_metadata(ours: dict[str, Any]) -> dict[str, Any]:
    """metadata.yaml of the catalog folder: ours, as a manifest-only connector."""
    data = dict(ours["data"])
    data["connectorBuildOptions"] = {"baseImage": BASE_IMAGE}
    data["tags"] = ["language:manifest-only", "cdk:low-code"]
    # The catalog folder has no unit tests of its own: ours test the Python package.
    data["connectorTestSuitesOptions"] = [
        suite for suite in data["connectorTestSuitesOptions"] if suite["suite"] != "unitTests"
    ]
    return {**ours, "data": data}


def catalog_acceptance_config(ours: dict[str, Any], docker_repository: str) -> dict[str, Any]:
    """acceptance-test-config.yml of the catalog folder: ours with the folder's paths."""

    def rewrite(node: Any, key: str = "") -> Any:
        if isinstance(node, dict):
            return {k: rewrite(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [rewrite(item, key) for item in node]
        if key.endswith("_path"):
            if node not in ACCEPTANCE_PATHS:
                raise SystemExit(f"acceptance-test-config.yml: no catalog path for {key}: {node}")
            return ACCEPTANCE_PATHS[node]
        return node

    config = rewrite(ours)
    config["connector_image"] = f"{docker_repository}:dev"
    return config


def readme(metadata: dict[str, Any], docs_page: str) -> str:
    name, repository = metadata["data"]["name"], metadata["data"]["dockerRepository"]
    connector = repository.split("/")[-1]
    return (
        f"# {name}\n\n"
        f"This directory contains the manifest-only connector for `{connector}`: `manifest.yaml`,\n"
        "with the custom components it names in `components.py`. It runs on the\n"
        "`source-declarative-manifest` image named in `metadata.yaml`.\n\n"
        f"Setup guide, streams and changelog: [{docs_page}](../../../{docs_page}).\n\n"
        "Test it with `airbyte-cdk connector test` from this directory, after putting a config in\n"
        "`secrets/config.json`.\n"
    )


def dump_yaml(content: dict[str, Any]) -> str:
    header = "# Generated from source-ultravox-usage by scripts/manifest_only_folder.py.\n"
    return header + yaml.safe_dump(content, sort_keys=False, allow_unicode=True)


def write_folder(out_dir: Path) -> Path:
    """Write the connector folder and its docs page under `out_dir`; return the connector folder."""
    metadata = catalog_metadata(yaml.safe_load((ROOT / "metadata.yaml").read_text()))
    repository = metadata["data"]["dockerRepository"]
    folder = out_dir / "airbyte-integrations" / "connectors" / repository.split("/")[-1]
    docs_page = f"docs/integrations/sources/{metadata['data']['documentationUrl'].rsplit('/', 1)[-1]}.md"
    acceptance = catalog_acceptance_config(
        yaml.safe_load((ROOT / "acceptance-test-config.yml").read_text()), repository
    )

    copies = {
        PACKAGE / "manifest.yaml": folder / "manifest.yaml",
        PACKAGE / "components.py": folder / "components.py",
        ROOT / "icon.svg": folder / metadata["data"]["icon"],
        ROOT / "docs" / "ultravox-usage.md": out_dir / docs_page,
        # metadata.yaml's releases.migrationDocumentationUrl: the page beside it, "-migrations".
        ROOT / "docs" / "ultravox-usage-migrations.md": out_dir / docs_page.replace(".md", "-migrations.md"),
        ROOT / SAMPLE_CONFIG: folder / SAMPLE_CONFIG,
    }
    for ours, theirs in ACCEPTANCE_PATHS.items():
        if theirs.startswith("integration_tests/"):
            copies[ROOT / ours] = folder / theirs
    for source, target in copies.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    (folder / "metadata.yaml").write_text(dump_yaml(metadata))
    (folder / "acceptance-test-config.yml").write_text(dump_yaml(acceptance))
    (folder / "README.md").write_text(readme(metadata, docs_page))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("out_dir", type=Path, help="the root of an airbytehq/airbyte clone, or any directory")
    folder = write_folder(parser.parse_args().out_dir)
    print(folder)


if __name__ == "__main__":
    main()
