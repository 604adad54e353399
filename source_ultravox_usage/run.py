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


# How long a thread keeps the GIL before another may take it (CPython's default: 5 ms). The CDK's
# workers put every record on one queue of at most 10,000 that the main thread drains, and at short
# intervals the threads traded the GIL about twice a record: a year of minute buckets took 66 s of
# CPU at 5 ms, 48 s at 0.1 s, 19 s at 0.2 s and at 0.5 s (1.4 million context switches, then
# 7,000). The trading stopped once an interval outlasted the main thread's drain of a full queue
# (about 0.15 s here); 0.5 s leaves room for a slower machine (README, Performance).
GIL_SWITCH_INTERVAL_S = 0.5


def run(args: list[str] | None = None) -> None:
    args = sys.argv[1:] if args is None else args
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    source = _source(args)
    if source is None:
        sys.exit(1)
    launch(source, args)
