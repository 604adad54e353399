"""The few components the manifest cannot express; each class says why it exists."""

from __future__ import annotations

import email.utils
import io
import logging
import math
import re
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import InitVar, dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import ijson
import orjson
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.declarative.decoders.decoder import Decoder
from airbyte_cdk.sources.declarative.requesters.error_handlers import DefaultErrorHandler
from airbyte_cdk.sources.declarative.requesters.http_requester import HttpRequester
from airbyte_cdk.sources.declarative.transformations import RecordTransformation
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction
from airbyte_cdk.sources.types import Config, StreamSlice, StreamState
from airbyte_cdk.utils import AirbyteTracedException

from source_ultravox_usage.transport import UsageTransport, store_for

logger = logging.getLogger("airbyte")

_DURATION = re.compile(r"(\d+(?:\.\d+)?)s")
_COUNT_FIELDS = ("totalCount", "errorCount", "joinedCount")
USAGE_KINDS = {"allTime": dict, "daily": list, "hourly": list}
USAGE_KEYS = tuple(USAGE_KINDS)


def filter_parameters(config: Mapping[str, Any]) -> dict[str, str | list[str]]:
    """The endpoint's query filters for the configured ones; an unset filter sends nothing."""
    params: dict[str, str | list[str]] = {}
    if config.get("agent_ids"):
        params["agentIds"] = list(config["agent_ids"])
    if config.get("voice_id"):
        params["voiceId"] = config["voice_id"]
    for key, name in (("duration_min", "durationMin"), ("duration_max", "durationMax")):
        if config.get(key) is not None:
            params[name] = f"{_plain_number(config[key])}s"
    for pair in config.get("metadata") or []:
        params[f"metadata.{pair['key']}"] = pair["value"]
    if config.get("search"):
        params["search"] = config["search"]
    if config.get("time_of_day_start"):
        params["timeOfDayStart"] = config["time_of_day_start"]
    if config.get("time_of_day_end"):
        params["timeOfDayEnd"] = config["time_of_day_end"]
    return params


def _plain_number(value: float) -> str:
    """Seconds as the API writes them: no exponent, at most 9 decimals (1e-07 -> 0.0000001)."""
    return f"{float(value):.9f}".rstrip("0").rstrip(".")


def date_range_parameters(
    stream_slice: Mapping[str, Any] | None, config: Mapping[str, Any]
) -> dict[str, str]:
    """fromDate/toDate as whole UTC days: the slice's window, else the configured range (allTime)."""
    if stream_slice and stream_slice.get("start_time"):
        return {"fromDate": stream_slice["start_time"][:10], "toDate": stream_slice["end_time"][:10]}
    return {"fromDate": config["start_date"], "toDate": config["end_date"]}


@dataclass
class UsageRequester(HttpRequester):
    """HttpRequester plus what YAML cannot say: `metadata.<key>` parameter names built from config,
    date-only windows for the hourly cursor, and a transport that keeps the key on the API host
    and lets the streams in `share_responses_between` read one response per window."""

    share_responses_between: list[str] = field(default_factory=list)
    # Set by SourceUltravoxUsage: names the response store of this sync.
    responses_token: str = ""

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        super().__post_init__(parameters)
        api = urlsplit(str(self._url_base.eval(self.config)))
        sharing = frozenset(self.share_responses_between)
        transport = UsageTransport(
            api_origin=(api.scheme, api.netloc),
            reader=self.name,
            readers=sharing if self.name in sharing and len(sharing) > 1 else frozenset(),
            shared=store_for(self.responses_token),
        )
        session = self._http_client._session
        session.mount("https://", transport)
        session.mount("http://", transport)

    def get_request_params(
        self,
        *,
        stream_state: StreamState | None = None,
        stream_slice: StreamSlice | None = None,
        next_page_token: Mapping[str, Any] | None = None,
    ) -> MutableMapping[str, Any]:
        params = dict(
            super().get_request_params(
                stream_state=stream_state, stream_slice=stream_slice, next_page_token=next_page_token
            )
        )
        params.update(date_range_parameters(stream_slice, self.config))
        params.update(filter_parameters(self.config))
        return params


@dataclass
class UsageDecoder(Decoder):
    """Decodes the usage object or fails naming the endpoint: the CDK's JsonDecoder turns a body
    that is not JSON, or JSON of another shape, into zero records and a silent empty sync.
    With totals_only (allTime) it streams the body and keeps only allTime, so the whole range's
    hourly buckets are never built in memory."""

    parameters: InitVar[Mapping[str, Any]]
    totals_only: bool = False

    def is_stream_response(self) -> bool:
        return False

    def decode(self, response: requests.Response) -> Iterator[MutableMapping[str, Any]]:
        if self.totals_only:
            yield {"allTime": _totals(response)}
            return
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise _not_usage(response, "it is not JSON") from None
        if not isinstance(body, dict) or not all(key in body for key in USAGE_KEYS):
            raise _not_usage(response, _shape(body))
        for key, kind in USAGE_KINDS.items():
            if not isinstance(body[key], kind):
                raise _not_usage(response, f"its {key} is a JSON {type(body[key]).__name__}")
        yield body


def _totals(response: requests.Response) -> dict[str, Any]:
    keys: list[str] = []
    builder: ijson.ObjectBuilder | None = None
    totals = None
    try:
        for prefix, event, value in ijson.parse(io.BytesIO(response.content), use_float=True):
            if prefix == "" and event == "map_key":
                keys.append(value)
            elif prefix in ("daily", "hourly") and event not in ("start_array", "end_array"):
                raise _not_usage(response, f"its {prefix} is not a JSON array")
            elif prefix == "allTime" or prefix.startswith("allTime."):
                if builder is None:
                    builder = ijson.ObjectBuilder()
                builder.event(event, value)
                if prefix == "allTime" and event in (
                    "end_map",
                    "end_array",
                    "number",
                    "string",
                    "boolean",
                    "null",
                ):
                    totals = builder.value
    except ijson.JSONError:
        raise _not_usage(response, "it is not JSON") from None
    if not all(key in keys for key in USAGE_KEYS) or not isinstance(totals, dict):
        raise _not_usage(response, f"its top-level keys are {keys}")
    return totals


def _shape(body: Any) -> str:
    if isinstance(body, dict):
        return f"its top-level keys are {sorted(body)[:10]}"
    return f"it is a JSON {type(body).__name__}"


def _not_usage(response: requests.Response, why: str) -> AirbyteTracedException:
    endpoint = urlsplit(response.url or "")._replace(query="", fragment="").geturl()
    return _system_error(
        f"Ultravox answered {endpoint} with a body that is not the usage object the connector "
        f"expects (a JSON object with allTime, daily and hourly): {why}."
    )


@dataclass
class UsageErrorHandler(DefaultErrorHandler):
    """The manifest's response filters, plus what they cannot match: a timeout or a dropped
    connection (an exception, not a response) is retried as a transient error, and with
    split_windows a window of several days that times out (a read timeout or a 504) is split
    in two rather than retried whole; a single day is retried."""

    split_windows: bool = False

    def interpret_response(
        self, response_or_exception: requests.Response | Exception | None
    ) -> ErrorResolution:
        timed_out = isinstance(response_or_exception, requests.Timeout) or (
            isinstance(response_or_exception, requests.Response) and response_or_exception.status_code == 504
        )
        if timed_out and self.split_windows and _days_requested(response_or_exception) > 1:
            return ErrorResolution(
                response_action=ResponseAction.SPLIT_REQUEST_WINDOW,
                failure_type=FailureType.transient_error,
                error_message="Ultravox timed out on this date range; reading it in two halves.",
            )
        if isinstance(response_or_exception, requests.RequestException) and not isinstance(
            response_or_exception, requests.HTTPError
        ):
            return ErrorResolution(
                response_action=ResponseAction.RETRY,
                failure_type=FailureType.transient_error,
                error_message=(
                    "Ultravox did not answer "
                    f"({type(response_or_exception).__name__}: a timeout or a dropped connection). "
                    "The sync will pick up from its last state on the next run."
                ),
            )
        return super().interpret_response(response_or_exception)


def _days_requested(response_or_exception: requests.Response | Exception) -> int:
    request = getattr(response_or_exception, "request", None)
    query = parse_qs(urlsplit(getattr(request, "url", "") or "").query)
    try:
        start, end = date.fromisoformat(query["fromDate"][0]), date.fromisoformat(query["toDate"][0])
    except (KeyError, ValueError):
        return 0
    return (end - start).days + 1


def _bad_record(stream: str, field_name: str, value: Any, expected: str) -> AirbyteTracedException:
    return _system_error(
        f"Ultravox sent a {stream} record whose {field_name} is {value!r}, not {expected}. "
        "The connector stops rather than guess; please report this response shape."
    )


def _system_error(message: str) -> AirbyteTracedException:
    # internal_message too: the CDK's closing "streams did not sync" summary quotes only that one.
    return AirbyteTracedException(
        message=message, internal_message=message, failure_type=FailureType.system_error
    )


def parse_duration_seconds(value: Any, stream: str = "usage") -> float:
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _bad_record(stream, "duration", value, "a seconds string such as '1234.5s'")
    return float(match.group(1))


@dataclass
class UsageRecordFields(RecordTransformation):
    """Adds durationSeconds (and hourStart for hourly buckets) and refuses values that break the
    schema: jinja cannot raise an error that quotes the bad value, and a silent guess would land
    wrong figures in the warehouse."""

    stream: str = "daily"
    parameters: InitVar[Mapping[str, Any] | None] = None

    def transform(
        self,
        record: dict[str, Any],
        config: Config | None = None,
        stream_state: StreamState | None = None,
        stream_slice: StreamSlice | None = None,
    ) -> None:
        for name in _COUNT_FIELDS:
            value = record.get(name)
            if not (type(value) is int and value >= 0):
                raise _bad_record(self.stream, name, value, "a count (an integer >= 0)")
        minutes = record.get("billedMinutes")
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not (0 <= minutes < math.inf):
            raise _bad_record(self.stream, "billedMinutes", minutes, "a number >= 0")
        record["durationSeconds"] = parse_duration_seconds(record.get("duration"), self.stream)
        if self.stream == "allTime":
            return
        day = record.get("date")
        if not (isinstance(day, str) and _is_iso_date(day)):
            raise _bad_record(self.stream, "date", day, "a YYYY-MM-DD date")
        if self.stream == "hourly":
            hour = record.get("hour")
            if not (type(hour) is int and 0 <= hour <= 23):
                raise _bad_record(self.stream, "hour", hour, "an hour from 0 to 23")
            record["hourStart"] = f"{day}T{hour:02d}:00:00Z"


def _is_iso_date(value: str) -> bool:
    try:
        return date.fromisoformat(value).isoformat() == value
    except ValueError:
        return False


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait per Retry-After (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


@dataclass
class RetryAfterOrExponentialBackoff(BackoffStrategy):
    """Honours Retry-After in both of its forms (the CDK's header strategy reads numbers only),
    falls back to exponential backoff, and refuses waits longer than max_wait_seconds."""

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    max_wait_seconds: float = 600.0
    base_seconds: float = 1.0
    # Shortest wait, also for Retry-After: 0 or a date already past.
    min_seconds: float = 0.5

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        self.max_wait_seconds = float(self.max_wait_seconds)

    def backoff_time(
        self,
        response_or_exception: requests.Response | requests.RequestException | None,
        attempt_count: int,
    ) -> float | None:
        wait = None
        if isinstance(response_or_exception, requests.Response):
            wait = retry_after_seconds(response_or_exception.headers.get("Retry-After"))
        if wait is None:
            wait = self.base_seconds * 2 ** max(attempt_count - 1, 0)
        if wait > self.max_wait_seconds:
            raise AirbyteTracedException(
                message=(
                    f"Ultravox asked the connector to wait {wait:.0f} s before retrying, longer than "
                    f"its limit of {self.max_wait_seconds:.0f} s. The sync will pick up from its last "
                    "state on the next run."
                ),
                failure_type=FailureType.transient_error,
            )
        wait = max(wait, self.min_seconds)
        if wait >= 5:
            logger.info("Ultravox asked to slow down; waiting %.1f s before retrying.", wait)
        return wait
