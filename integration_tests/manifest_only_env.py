"""The environment of airbyte-cdk alone (`.venv-manifest-only`), where Airbyte's own roads run the
manifest: `source-declarative-manifest`, the Connector Builder's `connector_builder.main` and the
catalog's `DeclarativeSourceTestSuite` (hence pytest beside the CDK). It never holds this package."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-manifest-only"
PYTHON = VENV / "bin" / "python"
# The CDK release the package runs on, and the test runner the CDK's standard suites need.
REQUIREMENTS = [f"airbyte-cdk=={version('airbyte-cdk')}", f"pytest=={version('pytest')}"]


def manifest_only_python() -> Path:
    """The environment's Python, created or brought to REQUIREMENTS on first use."""
    if not PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    frozen = subprocess.run(
        [str(PYTHON), "-m", "pip", "freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    if not {requirement.lower() for requirement in REQUIREMENTS} <= set(frozen.split()):
        subprocess.run(
            [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *REQUIREMENTS],
            check=True,
        )
    alone = subprocess.run([str(PYTHON), "-c", "import source_ultravox_usage"], capture_output=True, cwd="/")
    assert alone.returncode != 0, "the manifest-only environment must not hold the connector's package"
    return PYTHON
