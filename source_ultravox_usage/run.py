"""The console script: builds the source with its config, catalog and state (the CDK 7 pattern)
and reports a bad config or input file as a clean Airbyte message, never a traceback."""

from __future__ import annotations

import logging
import sys

from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.logger import PRINT_BUFFER
from airbyte_cdk.models import AirbyteConnectionStatus, AirbyteMessage, Status, Type
from airbyte_cdk.utils import AirbyteTracedException
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets

from source_ultravox_usage.config import ConfigError
from source_ultravox_usage.source import SourceUltravoxUsage


class _TypedErrorsWithoutTraceback(logging.Filter):
    """A typed error (AirbyteTracedException) reaches the user as a TRACE message with an
    actionable message and its stack trace; the CDK also logs it at ERROR with the raw traceback
    folded into the log text, which reads as a crash. Keep the log line, drop the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], AirbyteTracedException):
            record.exc_info = None
            record.exc_text = None
        return True


def _print(message: AirbyteMessage) -> None:
    print(AirbyteEntrypoint.airbyte_message_to_string(message), flush=True)


def _build_source(args: list[str]) -> SourceUltravoxUsage:
    config_path = AirbyteEntrypoint.extract_config(args)
    catalog_path = AirbyteEntrypoint.extract_catalog(args)
    state_path = AirbyteEntrypoint.extract_state(args)
    try:
        config = SourceUltravoxUsage.read_config(config_path) if config_path else None
    except (OSError, ValueError) as error:
        raise ConfigError(f"Cannot read the config file {config_path}: {error}") from None
    try:
        catalog = SourceUltravoxUsage.read_catalog(catalog_path) if catalog_path else None
        state = SourceUltravoxUsage.read_state(state_path) if state_path else None
    except (OSError, ValueError) as error:
        raise ConfigError(f"Cannot read the catalog or state file: {error}") from None
    return SourceUltravoxUsage(catalog=catalog, config=config, state=state)


def run(args: list[str] | None = None) -> None:
    args = sys.argv[1:] if args is None else args
    command = args[0] if args else ""
    try:
        source = _build_source(args)
    except AirbyteTracedException as error:
        source, failure = None, error
    else:
        failure = source.config_error if command in ("check", "discover", "read") else None
        if failure is None and command == "read":
            failure = source.state_error
    if failure is not None:
        if command == "check":
            _print(
                AirbyteMessage(
                    type=Type.CONNECTION_STATUS,
                    connectionStatus=AirbyteConnectionStatus(status=Status.FAILED, message=failure.message),
                )
            )
            return
        _print(failure.as_airbyte_message())
        sys.exit(1)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_TypedErrorsWithoutTraceback())
    _launch(source, args)


def _launch(source: SourceUltravoxUsage, args: list[str]) -> None:
    """The CDK's launch(), with every output line passed through the secret filter: the CDK masks
    the key in logs but not in error traces, which can quote an API answer that echoes it."""
    entrypoint = AirbyteEntrypoint(source)
    with PRINT_BUFFER:
        for message in entrypoint.run(entrypoint.parse_args(args)):
            print(f"{filter_secrets(message)}\n", end="")
