"""The console script: airbyte-cdk's launch() with the source built from the config, catalog and
state files, as CDK 7 declarative sources need (the template airbyte-cdk connectors use)."""

from __future__ import annotations

import sys
import traceback

from airbyte_cdk.entrypoint import AirbyteEntrypoint, launch
from airbyte_cdk.models import (
    AirbyteErrorTraceMessage,
    AirbyteMessage,
    AirbyteTraceMessage,
    FailureType,
    TraceType,
    Type,
)
from airbyte_cdk.utils.datetime_helpers import ab_datetime_now

from source_ultravox_usage.source import SourceUltravoxUsage


def _source(args: list[str]) -> SourceUltravoxUsage | None:
    config_path = AirbyteEntrypoint.extract_config(args)
    catalog_path = AirbyteEntrypoint.extract_catalog(args)
    state_path = AirbyteEntrypoint.extract_state(args)
    try:
        return SourceUltravoxUsage(
            catalog=SourceUltravoxUsage.read_catalog(catalog_path) if catalog_path else None,
            config=SourceUltravoxUsage.read_config(config_path) if config_path else None,
            state=SourceUltravoxUsage.read_state(state_path) if state_path else None,
        )
    except Exception as error:  # noqa: BLE001 (reported as the Airbyte protocol asks, not as a traceback)
        trace = AirbyteTraceMessage(
            type=TraceType.ERROR,
            emitted_at=ab_datetime_now().to_epoch_millis(),
            error=AirbyteErrorTraceMessage(
                message=f"Error starting the sync; check the config, catalog and state files: {error}",
                stack_trace=traceback.format_exc(),
                failure_type=FailureType.config_error,
            ),
        )
        print(AirbyteEntrypoint.airbyte_message_to_string(AirbyteMessage(type=Type.TRACE, trace=trace)))
        return None


def run(args: list[str] | None = None) -> None:
    args = sys.argv[1:] if args is None else args
    source = _source(args)
    if source is None:
        sys.exit(1)
    launch(source, args)
