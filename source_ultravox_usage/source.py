"""SourceUltravoxUsage: airbyte-cdk's declarative source with this package's manifest.yaml."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from airbyte_cdk.sources.declarative.yaml_declarative_source import YamlDeclarativeSource

from source_ultravox_usage import components

# The manifest names its classes as a manifest-only connector does; make that name this module,
# as airbyte-cdk's source-declarative-manifest does for the components.py it is given.
sys.modules.setdefault("source_declarative_manifest.components", components)

MANIFEST = Path(__file__).with_name("manifest.yaml")


class SourceUltravoxUsage(YamlDeclarativeSource):
    def __init__(self, catalog: Any = None, config: Any = None, state: Any = None, **kwargs: Any) -> None:
        # An absolute path: the CDK reads a relative one from the working directory first.
        super().__init__(path_to_yaml=str(MANIFEST), catalog=catalog, config=config, state=state, **kwargs)
