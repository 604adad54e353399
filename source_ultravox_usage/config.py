"""Config defaults and the checks a JSON schema cannot make, with errors that name the field."""

from __future__ import annotations

import ipaddress
import math
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils import AirbyteTracedException


class ConfigError(AirbyteTracedException):
    def __init__(self, message: str) -> None:
        super().__init__(message=message, internal_message=message, failure_type=FailureType.config_error)


def with_defaults(config: Mapping[str, Any], spec: Mapping[str, Any], today: date) -> dict[str, Any]:
    """The config with the spec's defaults for unset fields, and end_date today (UTC) when unset.

    Filled once per run, so every stream and request of a sync agrees on the same range."""
    filled = dict(config)
    for name, prop in spec.get("properties", {}).items():
        value = filled.get(name)
        if "default" in prop and value in (None, ""):
            filled[name] = prop["default"]
        elif prop.get("type") == "integer" and isinstance(value, float) and value.is_integer():
            # JSON Schema counts 2.0 as an integer; the components need the int.
            filled[name] = int(value)
    if filled.get("end_date") in (None, ""):
        filled["end_date"] = today.isoformat()
    return filled


def validate(config: Mapping[str, Any], spec: Mapping[str, Any], today: date) -> None:
    """Raise ConfigError naming the first field that is wrong, before any request is sent."""
    _validate_schema(config, spec)
    if any(char.isspace() for char in config["api_key"]):
        # The spec's pattern says so too, but Python's `$` lets a trailing newline through.
        raise ConfigError("api_key contains a space or a line break; paste the key alone.")
    start = _date(config, "start_date")
    end = _date(config, "end_date")
    if start > today:
        raise ConfigError(f"start_date {start} is in the future (today is {today} UTC).")
    if end < start:
        raise ConfigError(f"end_date {end} is before start_date {start}.")
    uuids = [("voice_id", config.get("voice_id"))]
    uuids += [(f"agent_ids[{i}]", value) for i, value in enumerate(config.get("agent_ids") or [])]
    for name, value in uuids:
        if value is not None and not _is_uuid(value):
            raise ConfigError(f"{name} {value!r} is not a UUID.")
    low, high = config.get("duration_min"), config.get("duration_max")
    for name, value in (("duration_min", low), ("duration_max", high)):
        if value is not None and not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number of seconds, not {value!r}.")
    if low is not None and high is not None and low > high:
        raise ConfigError(f"duration_min ({low} s) is greater than duration_max ({high} s).")
    tod_start, tod_end = config.get("time_of_day_start"), config.get("time_of_day_end")
    for name, value in (("time_of_day_start", tod_start), ("time_of_day_end", tod_end)):
        if value is not None:
            _time(name, value)
    if tod_start and tod_end and _time("time_of_day_end", tod_end) < _time("time_of_day_start", tod_start):
        raise ConfigError(f"time_of_day_end {tod_end} is before time_of_day_start {tod_start}.")
    _validate_api_url(config.get("api_url", ""))


def _validate_schema(config: Mapping[str, Any], spec: Mapping[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(spec)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
    name = path.lstrip(".") or "config"
    if error.validator == "required":
        missing = error.message.split(" ")[0]
        where = f"{name} is" if error.absolute_path else "Config is"
        raise ConfigError(f"{where} missing a required field: {missing}.")
    prop = spec.get("properties", {}).get(str(error.absolute_path[0]) if error.absolute_path else "", {})
    if prop.get("airbyte_secret"):
        # Never echo a secret's value, not even a malformed one.
        raise ConfigError(
            f"{name} is not valid: it must be your Ultravox API key, a string of at least 16 "
            "characters without spaces."
        )
    raise ConfigError(f"{name} is not valid: {error.message}.")


def _date(config: Mapping[str, Any], name: str) -> date:
    value = config[name]
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} {value!r} is not a YYYY-MM-DD date.") from None


def _time(name: str, value: str) -> time:
    try:
        return time.fromisoformat(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} {value!r} is not a HH:MM:SS time.") from None


def _is_uuid(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def _validate_api_url(value: str) -> None:
    url = urlsplit(value)
    try:
        url.port  # noqa: B018 (raises ValueError for a port out of range)
        requests.Request("GET", value).prepare()
    except (ValueError, requests.RequestException):
        raise ConfigError(f"api_url {value!r} is not a valid URL.") from None
    if url.scheme not in ("https", "http") or not url.hostname:
        raise ConfigError(f"api_url {value!r} is not an http(s) URL.")
    if url.scheme == "http" and not _is_loopback(url.hostname):
        raise ConfigError(
            f"api_url {value!r} uses plain http; https is required except for loopback hosts "
            "(localhost, 127.0.0.1, ::1), so the API key never crosses a network unencrypted."
        )
    if url.username or url.password or url.query or url.fragment:
        raise ConfigError("api_url must be a plain base URL, without credentials, query or fragment.")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def today_utc() -> date:
    return datetime.now(UTC).date()
