"""SourceUltravoxUsage: the manifest, plus config defaults and checks that run before any request."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from typing import Any

from airbyte_cdk.models import (
    AirbyteConnectionStatus,
    AirbyteMessage,
    AirbyteStateMessage,
    ConfiguredAirbyteCatalog,
    Status,
)
from airbyte_cdk.models import Type as MessageType
from airbyte_cdk.sources.declarative.yaml_declarative_source import YamlDeclarativeSource
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets, update_secrets

from source_ultravox_usage.config import ConfigError, today_utc, validate, with_defaults
from source_ultravox_usage.transport import new_store

# Streams reading the same windows, and so the same responses; allTime reads one range of its own.
WINDOW_STREAMS = ("daily", "hourly")
CURSOR_FORMATS = {"daily": ("date", "%Y-%m-%d"), "hourly": ("hourStart", "%Y-%m-%dT%H:%M:%SZ")}


class SourceUltravoxUsage(YamlDeclarativeSource):
    def __init__(
        self,
        catalog: ConfiguredAirbyteCatalog | None = None,
        config: Mapping[str, Any] | None = None,
        state: list[AirbyteStateMessage] | None = None,
        **kwargs: Any,
    ) -> None:
        self._today = today_utc()
        self._selected = {s.stream.name for s in catalog.streams} if catalog and catalog.streams else None
        self.config_error: ConfigError | None = None
        self.state_error = _state_error(state or [])
        if self.state_error is None:
            state = _align_window_cursors(state or [])
        super().__init__(path_to_yaml="manifest.yaml", catalog=catalog, config=config, state=state, **kwargs)
        if self.config_error is None and self._config.get("api_key"):
            # Masked in every output line from now on, in-process too; only a valid key, since a
            # short invalid one ("0") would be masked inside unrelated text.
            update_secrets([self._config["api_key"]])

    def _read_and_parse_yaml_file(self, path_to_yaml_file: str) -> dict[str, Any]:
        manifest = super()._read_and_parse_yaml_file(path_to_yaml_file)
        self._spec_schema = manifest["spec"]["connection_specification"]
        sharing = [s for s in WINDOW_STREAMS if self._selected is None or s in self._selected]
        requester = manifest["definitions"]["requester"]
        requester["share_responses_between"] = sharing
        requester["responses_token"], self._responses = new_store()
        return manifest

    def _migrate_and_transform_config(self, config_path: str | None, config: Any) -> Any:
        config = super()._migrate_and_transform_config(config_path, config) or {}
        filled = with_defaults(config, self._spec_schema, self._today)
        try:
            validate(filled, self._spec_schema, self._today)
        except ConfigError as error:
            self.config_error = error
            # Components are still built (discover, spec lint); give them values that evaluate.
            defaults = with_defaults({}, self._spec_schema, self._today)
            filled = {**filled, **{k: defaults[k] for k in ("num_workers", "window_days", "lookback_days")}}
        return filled

    def configure(self, config: Mapping[str, Any], temp_dir: str) -> Mapping[str, Any]:
        configured = super().configure(config, temp_dir)
        if self.config_error is None:
            return configured
        # Run in-process, the CDK checks the config against the spec before check, discover or
        # read reach this source, with a message that does not name the field. This source's own
        # message, which does, is already waiting there: give the CDK a stand-in config it
        # accepts, so that message is the one the user sees. Nothing is requested with it.
        return with_defaults({"api_key": "stand-in-for-an-invalid-config"}, self._spec_schema, self._today)

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        if self.config_error:
            return AirbyteConnectionStatus(status=Status.FAILED, message=self.config_error.message)
        status = super().check(logger, config)
        if status.message:
            # CheckStream reports repr(error): drop the quotes it adds around the message.
            status.message = status.message.strip("'\"")
        return status

    def discover(self, logger: logging.Logger, config: Mapping[str, Any]):  # type: ignore[no-untyped-def]
        if self.config_error:
            raise self.config_error
        return super().discover(logger, config)

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: list[AirbyteStateMessage] | None = None,
    ) -> Iterator[AirbyteMessage]:
        if self.config_error:
            raise self.config_error
        if self.state_error:
            raise self.state_error
        for message in super().read(logger, config, catalog, state):
            if message.type == MessageType.TRACE and message.trace.error is not None:
                _mask_secrets(message.trace.error)
            yield message


def _mask_secrets(error: Any) -> None:
    """The CDK masks the key in logs but not in error traces, which can quote an API answer
    that echoes it."""
    for name in ("message", "internal_message", "stack_trace"):
        if getattr(error, name, None):
            setattr(error, name, filter_secrets(getattr(error, name)))


def _align_window_cursors(state: list[AirbyteStateMessage]) -> list[AirbyteStateMessage]:
    """Moves the later of the daily and hourly cursors back to the other's day.

    Each stream restarts at its cursor's day minus lookback_days; only when both restart on the
    same day do they send the same requests and share the answers. They drift apart only when a
    sync stops half-way; re-reading a few more days then costs far less than reading every
    remaining window twice. Moving a cursor back is always safe: it re-reads, never skips."""
    cursors = {}
    for message in state:
        stream = getattr(message, "stream", None)
        if stream is not None and stream.stream_descriptor.name in CURSOR_FORMATS and stream.stream_state:
            field_name = CURSOR_FORMATS[stream.stream_descriptor.name][0]
            value = stream.stream_state.__dict__.get(field_name)
            if isinstance(value, str):
                cursors[stream.stream_descriptor.name] = (stream.stream_state, field_name, value)
    if len(cursors) < 2:
        return state
    day = min(value[:10] for _, _, value in cursors.values())
    for blob, field_name, value in cursors.values():
        if value[:10] > day:
            setattr(blob, field_name, day if field_name == "date" else f"{day}T00:00:00Z")
    return state


def _state_error(state: list[AirbyteStateMessage]) -> ConfigError | None:
    """A saved cursor the connector cannot read, as a config error naming the stream and value."""
    for message in state:
        stream = getattr(message, "stream", None)
        if stream is None or stream.stream_descriptor.name not in CURSOR_FORMATS:
            continue
        name = stream.stream_descriptor.name
        blob = stream.stream_state
        values = blob.__dict__ if blob is not None and hasattr(blob, "__dict__") else dict(blob or {})
        if not values or "state_type" in values:
            continue
        field_name, fmt = CURSOR_FORMATS[name]
        value = values.get(field_name)
        try:
            datetime.strptime(value, fmt)  # noqa: DTZ007 (a format check, not a time)
        except (TypeError, ValueError):
            example = date(2025, 3, 4).strftime(fmt)
            return ConfigError(
                f"The saved state of stream {name} has {field_name}={value!r}, which is not a cursor "
                f"this connector wrote (expected {field_name} like {example!r}). Reset the {name} "
                "stream, or fix the state, and sync again."
            )
    return None
