"""What manifest.yaml cannot say, through the CDK's public extension points; each class says why.

The manifest names these classes `source_declarative_manifest.components.<Class>`, the
manifest-only convention: airbyte-cdk's `source-declarative-manifest` registers this file under
that name, and the package registers it too (source.py). The file imports nothing but
airbyte-cdk and its dependencies, so it runs in either place unchanged. No `from __future__ import
annotations`: the Connector Builder execs this file before registering its module, and dataclasses
cannot then resolve annotations written as strings.
"""

import email.utils
import io
import ipaddress
import logging
import math
import re
import weakref
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import InitVar, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import ijson
import orjson
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.declarative.auth.declarative_authenticator import DeclarativeAuthenticator
from airbyte_cdk.sources.declarative.decoders import JsonDecoder
from airbyte_cdk.sources.declarative.decoders.decoder import Decoder
from airbyte_cdk.sources.declarative.extractors.record_extractor import RecordExtractor
from airbyte_cdk.sources.declarative.interpolation import InterpolatedString
from airbyte_cdk.sources.declarative.migrations.state_migration import StateMigration
from airbyte_cdk.sources.declarative.models.declarative_component_schema import (
    DeclarativeStream as DeclarativeStreamModel,
)
from airbyte_cdk.sources.declarative.requesters.error_handlers import HttpResponseFilter
from airbyte_cdk.sources.declarative.requesters.paginators.strategies.pagination_strategy import (
    PaginationStrategy,
)
from airbyte_cdk.sources.declarative.retrievers import Retriever, SimpleRetriever
from airbyte_cdk.sources.declarative.transformations import RecordTransformation
from airbyte_cdk.sources.declarative.transformations.config_transformations.config_transformation import (
    ConfigTransformation,
)
from airbyte_cdk.sources.declarative.validators.validation_strategy import ValidationStrategy
from airbyte_cdk.sources.streams import NO_CURSOR_STATE_KEY
from airbyte_cdk.sources.streams.core import StreamData
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy, ErrorHandler
from airbyte_cdk.sources.streams.http.error_handlers.response_models import (
    SUCCESS_RESOLUTION,
    ErrorResolution,
    ResponseAction,
)
from airbyte_cdk.sources.types import Config, Record, StreamSlice, StreamState
from airbyte_cdk.utils import AirbyteTracedException
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets

logger = logging.getLogger("airbyte")

API_KEY_HEADER = "X-API-Key"
# The seconds string the server writes (protobuf's JSON form of a Duration), a sign included: the
# published schema says only "string" and sets no minimum on any figure.
DURATION = re.compile(r"(-?\d+(?:\.\d+)?)s")
# From the year 1000 on: strftime writes an earlier year without its leading zeros (see utc_timestamp).
UTC_SECOND = re.compile(r"[1-9]\d{3}-\d\d-\d\dT\d\d:\d\d:\d\dZ", re.ASCII)
DEFAULT_PORTS = {"https": 443, "http": 80}


def config_error(message: str) -> AirbyteTracedException:
    # internal_message too: the CDK's closing "streams did not sync" summary quotes only that one.
    message = filter_secrets(message)
    return AirbyteTracedException(
        message=message, internal_message=message, failure_type=FailureType.config_error
    )


def system_error(message: str) -> AirbyteTracedException:
    message = filter_secrets(message)
    return AirbyteTracedException(
        message=message, internal_message=message, failure_type=FailureType.system_error
    )


# --------------------------------------------------------------------------- config


# Stands in for an api_key that cannot be one; ApiKeyValidationStrategy refuses it naming the field.
UNUSABLE_KEY = "unusable-api-key-set-aside"


@dataclass
class UnusableKeyConfigTransformation(ConfigTransformation):
    """Replaces an api_key that is not a string of 16 or more characters with UNUSABLE_KEY before
    anything reads the config. The CDK masks the key as a secret before it validates the config:
    a short key ("1") masked inside every timestamp breaks the JSON lines on stdout, and a key
    that is not a string is quoted escaped in the schema's error, past the masking."""

    def transform(self, config: MutableMapping[str, Any]) -> None:
        key = config.get("api_key")
        if key is not None and not (isinstance(key, str) and len(key) >= 16):
            config["api_key"] = UNUSABLE_KEY


@dataclass
class ApiKeyValidationStrategy(ValidationStrategy):
    """api_key is one token of 16 or more characters (real keys are 41), refused without ever
    quoting it: whitespace is a paste slip that requests would quote in an error."""

    def validate(self, value: Any) -> None:
        if value == UNUSABLE_KEY:
            raise config_error(
                "api_key is not valid: it must be your Ultravox API key, a string of at least 16 "
                "characters without spaces."
            )
        if isinstance(value, str) and any(char.isspace() for char in value):
            raise config_error("api_key contains a space or a line break; paste the key alone.")


@dataclass
class ApiUrlValidationStrategy(ValidationStrategy):
    """api_url must be a URL requests can use, https except on loopback, so the key never
    crosses a network unencrypted; JSON schema cannot parse a URL or tell a loopback host."""

    def validate(self, value: Any) -> None:
        url = urlsplit(value)
        try:
            url.port  # noqa: B018 (raises ValueError for a port out of range)
            requests.Request("GET", value).prepare()
        except (ValueError, requests.RequestException):
            raise config_error(f"api_url {value!r} is not a valid URL.") from None
        if url.scheme not in DEFAULT_PORTS or not url.hostname:
            raise config_error(f"api_url {value!r} is not an http(s) URL.")
        if url.scheme == "http" and not is_loopback(url.hostname):
            raise config_error(
                f"api_url {value!r} uses plain http; https is required except for loopback hosts "
                "(localhost, 127.0.0.1, ::1), so the API key never crosses a network unencrypted."
            )
        if url.username or url.password or url.query or url.fragment:
            raise config_error("api_url must be a plain base URL, without credentials, query or fragment.")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class CalendarDateValidationStrategy(ValidationStrategy):
    """A real calendar day (the spec's pattern takes 2025-13-45), not after today unless
    future_allowed: a start in the future would sync nothing and say nothing."""

    field: str = "start_date"
    future_allowed: bool = False

    def validate(self, value: Any) -> None:
        day = parse_date(self.field, value)
        today = datetime.now(UTC).date()
        if day > today and not self.future_allowed:
            raise config_error(f"{self.field} {day} is in the future (today is {today} UTC).")


def parse_date(field_name: str, value: Any) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise config_error(f"{field_name} {value!r} is not a YYYY-MM-DD date.") from None


# --------------------------------------------------------------------------- requests


def refuse_unaskable(config: Mapping[str, Any]) -> None:
    """Settings the query cannot carry: pairs that together ask for nothing (the spec's schema
    sees one field at a time) and durations that are not finite."""
    start, end = parse_date("start_date", config["start_date"]), parse_date("end_date", config["end_date"])
    if end < start:
        raise config_error(f"end_date {end} is before start_date {start}.")
    low, high = config.get("duration_min"), config.get("duration_max")
    for name, value in (("duration_min", low), ("duration_max", high)):
        # JSON schema's `minimum: 0` lets NaN and infinity through (a config file may hold them).
        if value is not None and not math.isfinite(value):
            raise config_error(f"{name} must be a finite number of seconds, not {value!r}.")
    if low is not None and high is not None and low > high:
        raise config_error(f"duration_min ({low} s) is greater than duration_max ({high} s).")
    first, last = config.get("time_of_day_start"), config.get("time_of_day_end")
    if first and last and time.fromisoformat(last) < time.fromisoformat(first):
        raise config_error(f"time_of_day_end {last} is before time_of_day_start {first}.")


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port as requests connects to them: the host case-insensitive, the
    default port explicit."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme)


@dataclass
class SameOriginApiKeyAuthenticator(DeclarativeAuthenticator):
    """X-API-Key only on requests to the api_url origin, and not again once Ultravox rejected it.
    The stock ApiKeyAuthenticator cannot do either: requests keeps custom headers on a redirect to
    another host (it drops only Authorization), so the key is taken off a request whose redirect
    leaves the origin before it is followed; and the CDK reads every window of a stream even after
    one failed, so a rejected key (401/403) would otherwise be sent once per window.

    It also refuses a config whose fields together ask for nothing (refuse_unaskable): the CDK
    hands a validation strategy one field and no config, and this is the component built with the
    config, inside check, discover and read, before any request."""

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    api_key: str
    api_url: str

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        refuse_unaskable(self.config)
        self.key = InterpolatedString.create(self.api_key, parameters=parameters).eval(self.config)
        self.api_origin = origin(
            InterpolatedString.create(self.api_url, parameters=parameters).eval(self.config)
        )
        self.rejected_with: int | None = None

    @property
    def auth_header(self) -> str:
        return API_KEY_HEADER

    @property
    def token(self) -> str:
        return self.key

    def get_auth_header(self) -> Mapping[str, Any]:
        # Set in __call__, which sees the request's URL, instead of on every request's headers.
        return {}

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if origin(request.url or "") != self.api_origin:
            request.headers.pop(API_KEY_HEADER, None)
            return request
        if self.rejected_with is not None:
            raise config_error(
                f"Ultravox rejected the API key earlier in this sync (HTTP {self.rejected_with}); "
                "the connector does not send it again. Check that api_key is a current API key of "
                "your Ultravox account."
            )
        request.headers[API_KEY_HEADER] = self.key
        if self.watch_response not in request.hooks["response"]:
            request.register_hook("response", self.watch_response)
        return request

    def watch_response(self, response: requests.Response, **kwargs: Any) -> None:
        if response.status_code in (401, 403) and origin(response.url) == self.api_origin:
            self.rejected_with = response.status_code
        # requests copies response.request to follow a redirect after this hook has run.
        location = response.headers.get("location") if response.is_redirect else None
        if location and origin(urljoin(response.url, location)) != self.api_origin:
            response.request.headers.pop(API_KEY_HEADER, None)


@dataclass
class SameOriginNextPageStrategy(PaginationStrategy):
    """The page after this one is the body's `next`, an absolute URL, followed as given but with each
    query parameter of the page just read that it leaves out added once (a `next` that drops the
    window's filters must not widen the listing; every page of a window carries them, so the page
    just read holds them all), and only on the api_url origin: the stock CursorPagination follows a
    `next` to any host, and the requester would add the window's parameters to it a second time
    (the manifest sends them on a window's first page only). A `next` elsewhere is refused before
    any request to it; the authenticator would keep the key off it anyway."""

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    # The retriever's decoder, handed over by the CDK: the page's records were read through it.
    decoder: Decoder
    api_url: str = "{{ config['api_url'] }}"

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        self.api_origin = origin(
            InterpolatedString.create(self.api_url, parameters=parameters).eval(self.config)
        )

    @property
    def initial_token(self) -> Any:
        return None

    def get_page_size(self) -> int | None:
        return None

    def next_page_token(
        self,
        response: requests.Response,
        last_page_size: int,
        last_record: Record | None,
        last_page_token_value: Any | None = None,
        page_size_override: int | None = None,
    ) -> str | None:
        body = next(iter(self.decoder.decode(response)), {})
        link = body.get("next")
        if link is None:
            return None
        if not isinstance(link, str) or not link:
            raise not_expected(response, "a next page URL or null", f"its next is {link!r}")
        if origin(link) != self.api_origin:
            raise system_error(
                f"Ultravox's answer from {endpoint_of(response.url)} links its next page on "
                f"{origin_text(origin(link))}, not on {origin_text(self.api_origin)}, the origin of "
                "api_url. The connector does not follow it (nor send the API key there); please report "
                "this response."
            )
        page = with_missing_parameters(link, response.request.url or "")
        if same_request(page, response.request.url or ""):
            raise system_error(
                f"Ultravox's answer from {endpoint_of(response.url)} names the page just read as its "
                "next page; the connector stops rather than read it again. Please report this response."
            )
        return page


def with_missing_parameters(link: str, page: str) -> str:
    """`link` as given, plus each query parameter of `page` whose name it lacks (every value, in order)."""
    parts = urlsplit(link)
    names = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    missing = [
        (name, value)
        for name, value in parse_qsl(urlsplit(page).query, keep_blank_values=True)
        if name not in names
    ]
    if not missing:
        return link
    return urlunsplit(parts._replace(query="&".join(filter(None, (parts.query, urlencode(missing))))))


def same_request(a: str, b: str) -> bool:
    """Whether two URLs ask for the same thing: origin, path and query parameters, in any order."""
    parts_a, parts_b = urlsplit(a), urlsplit(b)
    return (origin(a), parts_a.path, sorted(parse_qsl(parts_a.query, keep_blank_values=True))) == (
        origin(b),
        parts_b.path,
        sorted(parse_qsl(parts_b.query, keep_blank_values=True)),
    )


def origin_text(where: tuple[str, str, int | None]) -> str:
    scheme, host, port = where
    return f"{scheme}://{host}:{port}" if scheme and host else "a URL without a scheme and host"


def endpoint_of(url: str | None) -> str:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


# --------------------------------------------------------------------------- responses


JSON_KINDS: dict[str, type | tuple[type, ...]] = {"object": dict, "array": list, "number": (int, float)}


@dataclass
class StrictJsonDecoder(JsonDecoder):
    """Decodes the answer or fails naming the endpoint: the CDK's JsonDecoder turns a body that is
    not JSON, or JSON of another shape, into zero records and a silent empty sync. `expect` is the
    shape: "array", "object", or each top-level key with its JSON kind. With totals_only (allTime) it
    streams the body and keeps only allTime, so the whole range's hourly buckets are never built in
    memory. A JsonDecoder only by type, every method its own: the CDK's DefaultPaginator takes no
    decoder but a JSON or XML one, and the paginated streams (calls, invoices) decode with this one."""

    parameters: InitVar[Mapping[str, Any]]
    expect: str | dict[str, str] = "array"
    totals_only: bool = False

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        # Each list page's body, for as long as its response lives and until a second decode of it
        # (the paginator's) takes it: see parse.
        self.list_pages: weakref.WeakKeyDictionary[requests.Response, Any] = weakref.WeakKeyDictionary()

    def is_stream_response(self) -> bool:
        return False

    def decode(self, response: requests.Response) -> Iterator[MutableMapping[str, Any]]:
        if self.totals_only:
            yield {"allTime": totals(response, self.expect, self.described())}
            return
        body = self.parse(response)
        if self.expect == "array":
            if not isinstance(body, list):
                raise self.unexpected(response, shape(body))
            yield {"items": body}
            return
        if self.expect == "object":
            if not isinstance(body, dict):
                raise self.unexpected(response, shape(body))
            yield body
            return
        if not isinstance(body, dict) or not all(key in body for key in self.expect):
            raise self.unexpected(response, shape(body))
        for key, kind in self.expect.items():
            value = body[key]
            if isinstance(value, bool) or not isinstance(value, JSON_KINDS[kind]):
                raise self.unexpected(response, f"its {key} is a JSON {type(value).__name__}")
        yield body

    def parse(self, response: requests.Response) -> Any:
        """The body, parsed once per list page: the CDK decodes a page for its records, then again in
        the paginator, which reads its `next` (and 1000 calls took 25 ms to parse). A body with a
        `next` is kept beside its response, never longer, and the second decode of it takes it."""
        body = self.list_pages.pop(response, None)
        if body is not None:
            return body
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise self.unexpected(response, "it is not JSON") from None
        if isinstance(body, dict) and "next" in body:
            self.list_pages[response] = body
        return body

    def described(self) -> str:
        if self.expect in ("array", "object"):
            return f"a JSON {self.expect}"
        *others, last = self.expect
        return (
            f"a JSON object with {', '.join(others)} and {last}" if others else f"a JSON object with {last}"
        )

    def unexpected(self, response: requests.Response, why: str) -> AirbyteTracedException:
        return not_expected(response, self.described(), why)


def totals(response: requests.Response, expect: Mapping[str, str], described: str) -> dict[str, Any]:
    arrays = [key for key, kind in expect.items() if kind == "array"]
    keys: list[str] = []
    builder: ijson.ObjectBuilder | None = None
    found = None
    try:
        for prefix, event, value in ijson.parse(io.BytesIO(response.content)):
            if prefix == "" and event == "map_key":
                keys.append(value)
            elif prefix in arrays and event not in ("start_array", "end_array"):
                raise not_expected(response, described, f"its {prefix} is not a JSON array")
            elif prefix == "allTime" or prefix.startswith("allTime."):
                if builder is None:
                    builder = ijson.ObjectBuilder()
                builder.event(event, as_orjson_reads(value) if event == "number" else value)
                if prefix == "allTime" and event in ALL_TIME_ENDS:
                    found = builder.value
    except (ijson.JSONError, ValueError, OverflowError):
        raise not_expected(response, described, "it is not JSON") from None
    if not all(key in keys for key in expect) or not isinstance(found, dict):
        raise not_expected(response, described, f"its top-level keys are {keys}")
    return found


def as_orjson_reads(number: int | Decimal) -> int | float:
    """A number as orjson, the other streams' decoder, reads it, so that allTime's fields are typed
    as theirs are: a float, or an integer within 64 bits; a float that overflows is not JSON.
    (ijson's use_float would do it in C, but refuses valid integers outside its signed 64 bits.)"""
    if isinstance(number, Decimal) or not -(2**63) <= number < 2**64:
        as_float = float(number)
        if not math.isfinite(as_float):
            raise ValueError(f"{number} overflows a double")
        return as_float
    return number


ALL_TIME_ENDS = ("end_map", "end_array", "number", "string", "boolean", "null")


def shape(body: Any) -> str:
    if isinstance(body, dict):
        return f"its top-level keys are {sorted(body)[:10]}"
    return f"it is a JSON {type(body).__name__}"


def not_expected(response: requests.Response, described: str, why: str) -> AirbyteTracedException:
    return system_error(
        f"Ultravox answered {endpoint_of(response.url)} with a body the connector does not expect "
        f"(it expects {described}): {why}."
    )


@dataclass
class AgentDaysExtractor(RecordExtractor):
    """One record per agent and day from /agents/usage, which nests each agent's days under the
    agent: [{agent: {agentId, name}, usage: [{date, calls, billedMinutes}]}]. The agent becomes
    agentId and agentName on each of its days; a body of another shape fails naming the endpoint."""

    decoder: Decoder
    parameters: InitVar[Mapping[str, Any]]

    def extract_records(self, response: requests.Response) -> Iterable[MutableMapping[str, Any]]:
        for body in self.decoder.decode(response):
            for entry in body["items"]:
                agent = entry.get("agent") if isinstance(entry, dict) else None
                days = entry.get("usage") if isinstance(entry, dict) else None
                if not isinstance(agent, dict) or not isinstance(days, list):
                    raise not_expected(
                        response, "a JSON array of {agent, usage}", f"an item is {str(entry)[:200]}"
                    )
                for day in days:
                    if not isinstance(day, dict):
                        raise not_expected(response, "usage rows as JSON objects", f"a row is {day!r}")
                    yield {**day, "agentId": agent.get("agentId"), "agentName": agent.get("name")}


@dataclass
class FieldPathExtractor(RecordExtractor):
    """The rows of the array at field_path in the decoded body (which StrictJsonDecoder checked is
    an array), read key by key: the stock DpathExtractor folds over every value of the body to find
    it, a fifth of the ledger's CPU, more than all of its record checks."""

    decoder: Decoder
    parameters: InitVar[Mapping[str, Any]]
    field_path: list[str] = field(default_factory=list)

    def extract_records(self, response: requests.Response) -> Iterable[MutableMapping[str, Any]]:
        for body in self.decoder.decode(response):
            yield from self.rows(body)

    def rows(self, body: Any) -> Any:
        for key in self.field_path:
            body = body[key]
        return body


@dataclass
class ZeroFilledBucketsExtractor(FieldPathExtractor):
    """The API's rows at field_path, then a row of zero_row's figures for each bucket (a day, or
    an hour of a day) of the request's days up to now that the API left out, as the API's zero
    mode lists it: an API that leaves out empty buckets also leaves out one whose calls were
    deleted, and only a row for it overwrites what an earlier sync wrote. A DpathExtractor can
    only yield what the body holds. The zero rows come last, so a row the stream's checks refuse
    stops it before any is emitted."""

    bucket: str = "day"
    zero_row: Mapping[str, Any] = field(default_factory=dict)
    # billing's toDate is the day after its window.
    end_exclusive: bool = False

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        if self.bucket not in ("day", "hour"):
            raise ValueError(f"bucket must be 'day' or 'hour', not {self.bucket!r}")

    def extract_records(self, response: requests.Response) -> Iterable[MutableMapping[str, Any]]:
        for body in self.decoder.decode(response):
            rows = self.rows(body)
            yield from rows
            listed = {self.key_of(row) for row in rows}
            for key in self.buckets(request_days(response, self.end_exclusive), api_now(response)):
                if key not in listed:
                    yield self.zero(key)

    def buckets(self, days: tuple[date, date] | None, now: datetime) -> Iterator[tuple[Any, ...]]:
        """Each (date,) or (date, hour) of the days asked for, none after now."""
        if days is None:
            return
        day, last = days[0], min(days[1], now.date())
        while day <= last:
            if self.bucket == "day":
                yield (day.isoformat(),)
            else:
                for hour in range(24 if day < now.date() else now.hour + 1):
                    yield (day.isoformat(), hour)
            day += timedelta(days=1)

    def key_of(self, row: Any) -> tuple[Any, ...] | None:
        """The bucket the row names, as buckets() gives it (None if it names none)."""
        if not isinstance(row, dict):
            return None
        key = (row.get("date"),) if self.bucket == "day" else (row.get("date"), row.get("hour"))
        return key if all(isinstance(part, str | int) for part in key) else None

    def zero(self, key: tuple[Any, ...]) -> dict[str, Any]:
        return {**self.zero_row, "date": key[0], **({"hour": key[1]} if self.bucket == "hour" else {})}


def api_now(response: requests.Response) -> datetime:
    """Now on the connector's UTC clock, or the API's (its Date header) when that is earlier: a
    bucket the API has not reached yet is not one it left out."""
    now = datetime.now(UTC)
    said = http_date(response.headers.get("Date"))
    return now if said is None else min(now, said.astimezone(UTC))


def http_date(value: str | None) -> datetime | None:
    """An HTTP date (RFC 9110) as an aware datetime, read as UTC without a zone; None if unreadable."""
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# What each kind of CheckedRecordTransformation field must hold, in the order they are checked:
# the type and format the published OpenAPI schema states, nothing more. It sets no minimum on any
# figure (a refund or credit makes minutes negative) and no minLength on any string (an agent's
# name may be ""). An hour is "Hour of day (0-23)" there, and hourStart cannot be built from another.
FIELD_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "counts": (lambda v: type(v) is int, "an integer"),
    "amounts": (lambda v: not isinstance(v, bool) and isinstance(v, int | float), "a number"),
    "dates": (lambda v: isinstance(v, str) and is_iso_date(v), "a YYYY-MM-DD date"),
    "hours": (lambda v: type(v) is int and 0 <= v <= 23, "an hour from 0 to 23"),
    "texts": (lambda v: isinstance(v, str), "a string"),
    "flags": (lambda v: type(v) is bool, "true or false"),
    "string_maps": (
        lambda v: isinstance(v, dict) and all(isinstance(item, str) for item in v.values()),
        "an object of strings",
    ),
}


@dataclass
class CheckedRecordTransformation(RecordTransformation):
    """Refuses a record whose fields break the endpoint's published schema, quoting the field and
    value (jinja cannot raise such an error, and a silent guess would land wrong figures in the
    warehouse), and derives what only parsing can: durationSeconds from a `duration` such as
    "1234.5s", and each timestamp in one RFC 3339 UTC form, so cursors and primary keys compare as
    written. Every field listed is required by the schema; null is no value it allows, but for the
    fields listed in `nullable`, which may also be null or absent (null in the record, their
    Seconds too).

    With `fields`, the record is those fields, in that order, and no other: an allow-list, which
    RemoveFields (a deny-list) cannot be, so that a field the API adds later never reaches the
    warehouse (a call also carries its prompt and summaries). `paths` and `only_key_of` first flatten
    nested objects into fields of their own, since an allow-list keeps top-level fields only: AddFields
    cannot refuse an object of the wrong shape, and renders "None" and numbers through Python literals.

    `renamed`, `hour_starts` and `constants` add what AddFields and RemoveFields could, without their
    cost per record (a Jinja template rendered and parsed back, a dpath walk): on a year of minute
    buckets they were two fifths of the connector's CPU."""

    parameters: InitVar[Mapping[str, Any]]
    counts: list[str] = field(default_factory=list)
    amounts: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    hours: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    string_maps: list[str] = field(default_factory=list)
    timestamps: list[str] = field(default_factory=list)
    durations: list[str] = field(default_factory=list)
    nullable: list[str] = field(default_factory=list)
    # A field taken from inside an object of the API's record: {sipBilledDuration: [sipDetails,
    # billedDuration]}; null where that object is null or absent, refused where it is no object.
    paths: Mapping[str, list[str]] = field(default_factory=dict)
    # A field holding the one key of an object of the API's record, such as the kind of a call's
    # medium ({"sip": {...}} is "sip"); null where the object is null, absent or empty.
    only_key_of: Mapping[str, str] = field(default_factory=dict)
    fields: list[str] = field(default_factory=list)
    # A field the API names otherwise, emitted under its own name once checked: {bucketStart: timestamp}.
    renamed: Mapping[str, str] = field(default_factory=dict)
    # An hour's start, YYYY-MM-DDTHH:00:00Z, from its checked date and hour: {hourStart: [date, hour]}.
    hour_starts: Mapping[str, list[str]] = field(default_factory=dict)
    # A field of the same value on every record: its template is rendered once, from the config.
    constants: Mapping[str, str] = field(default_factory=dict)
    config: Config = field(default_factory=dict)

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        self.stream = parameters["name"]
        # Each check as (field, test, what the schema expects), in FIELD_CHECKS' order.
        self.checks = [
            (name, holds, expected)
            for kind, (holds, expected) in FIELD_CHECKS.items()
            for name in getattr(self, kind)
        ]
        self.constant_values = {
            name: InterpolatedString.create(template, parameters=parameters).eval(self.config)
            for name, template in self.constants.items()
        }
        checked = {name for name, _, _ in self.checks} | set(self.timestamps) | set(self.durations)
        required = checked - set(self.nullable)
        if unchecked := [source for source in self.renamed.values() if source not in required]:
            raise ValueError(f"{self.stream}: renamed {unchecked}, which no kind checks as required")
        parts = self.hour_starts.values()
        if unchecked := [[d, h] for d, h in parts if d not in self.dates or h not in self.hours]:
            raise ValueError(f"{self.stream}: hour_starts from {unchecked}, not a checked date and hour")
        checked |= {f"{name}Seconds" for name in self.durations} | set(self.only_key_of)
        checked |= set(self.renamed) | set(self.hour_starts) | set(self.constants)
        if unchecked := [name for name in self.fields if name not in checked]:
            raise ValueError(f"{self.stream}: the fields {unchecked} are kept but checked by no kind")

    def transform(
        self,
        record: dict[str, Any],
        config: Config | None = None,
        stream_state: StreamState | None = None,
        stream_slice: StreamSlice | None = None,
    ) -> None:
        for name, path in self.paths.items():
            record[name] = self.value_at(record, path)
        for name, source in self.only_key_of.items():
            record[name] = self.only_key(record.get(source), source)
        for name, holds, expected in self.checks:
            value = record.get(name)
            if not holds(value) and not self.null(name, value):
                raise bad_record(self.stream, name, value, expected)
        for name in self.timestamps:
            value = record.get(name)
            record[name] = None if self.null(name, value) else utc_timestamp(self.stream, name, value)
        for name in self.durations:
            value = record.get(name)
            seconds = None if self.null(name, value) else parse_duration_seconds(value, self.stream, name)
            record[f"{name}Seconds"] = seconds
        for name, source in self.renamed.items():
            record[name] = record.pop(source)
        for name, (day, hour) in self.hour_starts.items():
            record[name] = f"{record[day]}T{record[hour]:02d}:00:00Z"
        record.update(self.constant_values)
        if self.fields:
            kept = {name: record.get(name) for name in self.fields}
            record.clear()
            record.update(kept)

    def null(self, name: str, value: Any) -> bool:
        return value is None and name in self.nullable

    def value_at(self, record: Mapping[str, Any], path: list[str]) -> Any:
        value: Any = record
        for depth, key in enumerate(path):
            if value is None:
                return None
            if not isinstance(value, dict):
                raise bad_record(self.stream, ".".join(path[:depth]), Outline(value), "an object")
            value = value.get(key)
        return value

    def only_key(self, value: Any, source: str) -> str | None:
        if value is None or value == {}:
            return None
        if not isinstance(value, dict) or len(value) != 1:
            raise bad_record(self.stream, source, Outline(value), "null or an object with one key")
        return next(iter(value))


class Outline:
    """A nested object of the API's record as an error quotes it: its type and keys, never its
    values (a call's SIP medium holds a username and password)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        if isinstance(self.value, dict):
            return f"an object with the keys {sorted(map(str, self.value))[:10]}"
        return f"a JSON {type(self.value).__name__}"


def utc_timestamp(stream: str, name: str, value: Any) -> str:
    """An RFC 3339 date-time with an offset, as YYYY-MM-DDTHH:MM:SSZ in UTC, and its fraction of a
    second, to the microsecond, where it has one (YYYY-MM-DDTHH:MM:SS.ffffffZ)."""
    if isinstance(value, str) and UTC_SECOND.fullmatch(value):
        # Already in that form, as the API writes a bucket's start: checked, not rewritten.
        try:
            datetime.fromisoformat(value[:-1])
            return value
        except ValueError:
            pass
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None or "T" not in value:
        raise bad_record(stream, name, value, "an RFC 3339 date-time with a UTC offset")
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if when.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def parse_duration_seconds(value: Any, stream: str = "usage", name: str = "duration") -> float:
    """Seconds from a duration the API writes as a seconds string: "1234.5s"."""
    match = DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise bad_record(stream, name, value, "a seconds string such as '1234.5s'")
    return float(match.group(1))


def is_iso_date(value: str) -> bool:
    try:
        return date.fromisoformat(value).isoformat() == value
    except ValueError:
        return False


def bad_record(stream: str, field_name: str, value: Any, expected: str) -> AirbyteTracedException:
    return system_error(
        f"Ultravox sent a {stream} record whose {field_name} is {value!r}, not {expected}. "
        "The connector stops rather than guess; please report this response shape."
    )


# --------------------------------------------------------------------------- errors and retries


@dataclass
class UsageErrorHandler(ErrorHandler):
    """What the stock DefaultErrorHandler, placed after this one in a CompositeErrorHandler, cannot
    do. It reads the API's own words from an error answer in any shape Django REST Framework gives
    them (api_message) and shows its `filters` the answer as {"detail": <those words>, "status":
    <HTTP status>} (as_drf_detail), so their messages quote it plainly and their predicates match
    it whatever the shape. It raises every
    FAIL itself, with the message as the internal message too: on a FAIL the CDK puts the raw
    answer, unmasked, in the trace's internal_message, and an answer can echo the API key.
    `filters` are stock response filters in order of priority, the first match wins: a FAIL is
    raised, any other action (window_too_large's split) returned, or raised as RangeTooLargeError
    where split_windows is not set (allTime has no windows); an error answer none matches is
    the stock handler's (None), a success never is. It also takes what no filter sees, exceptions,
    and what no filter can tell, a 504's dates: a window of several days the API is too slow to
    answer (a read timeout, or a 504) is split in two when split_windows is set (a single day is
    retried), and raised as RangeTooLargeError when it is not (allTime then sums the range from
    windows); an unreachable host or a dropped connection is retried; a TLS failure or an unusable
    URL fails at once as a config error, since retrying cannot mend it.
    It must not be the composite's last handler: None means "the next handler's"."""

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    filters: list[HttpResponseFilter] = field(default_factory=list)
    split_windows: bool = False
    # billing's toDate is the day after its window.
    end_exclusive: bool = False
    # The composite's retries and wait are its first handler's: these.
    max_retries: int | None = 6
    max_time: int | None = 600

    def interpret_response(
        self, response_or_exception: requests.Response | Exception | None
    ) -> ErrorResolution | None:
        error = response_or_exception
        too_slow = isinstance(error, requests.ReadTimeout) or (
            isinstance(error, requests.Response) and error.status_code == 504
        )
        if too_slow and days_requested(error, self.end_exclusive) > 1:
            if not self.split_windows:
                raise RangeTooLargeError(error)
            return ErrorResolution(
                response_action=ResponseAction.SPLIT_REQUEST_WINDOW,
                failure_type=FailureType.transient_error,
                error_message="Ultravox timed out on this date range; reading it in two halves.",
            )
        if isinstance(error, requests.Response):
            # A success ends here: the stock handler's filters, which read the body, never see one
            # (a listed agent named "Too long calls" is no window refused as too long).
            return SUCCESS_RESOLUTION if error.ok else self.resolve_answer(error)
        # Raised, not resolved as FAIL: the composite would hand a FAIL on to the stock handler,
        # whose default for an exception it does not list is to retry.
        if isinstance(error, requests.exceptions.SSLError):
            raise config_error(
                f"The TLS connection to {host_of(error)} failed ({first_line(error)}). Check "
                "api_url: it must be an https URL whose certificate is valid for its host."
            )
        unusable = (
            requests.exceptions.InvalidURL,
            requests.exceptions.InvalidSchema,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidHeader,
        )
        if isinstance(error, unusable):
            raise config_error(
                f"The connector cannot send a request to {host_of(error)} "
                f"({type(error).__name__}: {first_line(error)}). Check api_url."
            )
        unanswered = (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError)
        if isinstance(error, unanswered):
            return ErrorResolution(
                response_action=ResponseAction.RETRY,
                failure_type=FailureType.transient_error,
                error_message=(
                    f"Ultravox did not answer ({type(error).__name__}: the host could not be reached, "
                    "timed out or dropped the connection). The sync will pick up from its last state "
                    "on the next run."
                ),
            )
        return None

    def resolve_answer(self, response: requests.Response) -> ErrorResolution | None:
        """Raises the FAIL of the first filter that matches, returns any other action of it; a split
        the stream cannot make (allTime has no windows) is raised as RangeTooLargeError."""
        answer = as_drf_detail(response, api_message(response, self.config.get("api_key")))
        resolution = next(filter(None, (each.matches(answer) for each in self.filters)), None)
        split = resolution is not None and resolution.response_action == ResponseAction.SPLIT_REQUEST_WINDOW
        if split and not self.split_windows:
            raise RangeTooLargeError(response)
        if resolution is not None and resolution.response_action == ResponseAction.FAIL:
            message = filter_secrets(resolution.error_message or f"Ultravox answered {response.status_code}.")
            raise AirbyteTracedException(
                message=message,
                internal_message=f"{response.status_code}: {message}",
                failure_type=resolution.failure_type or FailureType.system_error,
            )
        return resolution


# The API's words are cut to this many characters in an error message.
MAX_QUOTED = 500
MAX_NESTING = 32


def api_message(response: requests.Response, api_key: str | None) -> str:
    """The API's own words in an error answer, as one plain line: Django REST Framework's
    {"detail": "..."}, a list (`raise ValidationError("...")`), field errors ({"fromDate": ["..."]},
    nested, non_field_errors), or a body that is not JSON as it is. The key masked, cut to
    MAX_QUOTED characters; "" for an empty body."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = response.text
    text = "; ".join(drf_messages(body))
    # Masked before anything is cut, so no part of the key survives at a cut.
    text = filter_secrets(text.replace(api_key, "****") if api_key else text)[: 4 * MAX_QUOTED]
    text = " ".join("".join(char if char.isprintable() else " " for char in text).split())
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 1].rstrip() + "\u2026"


def drf_messages(value: Any, field_name: str = "", depth: int = 0) -> Iterator[str]:
    """Each message of a DRF error body, after the name of its field, nested names joined by dots.
    An object with a "detail" is that detail (an APIException, whatever else it carries); list
    items and non_field_errors add no name. No deeper than DRF nests (JSON allows 1024 levels)."""
    if depth > MAX_NESTING:
        yield "(an error body nested too deeply to quote)"
    elif isinstance(value, dict):
        if "detail" in value:
            yield from drf_messages(value["detail"], field_name, depth + 1)
            return
        for key, inner in value.items():
            inner_name = (
                field_name if key == "non_field_errors" else ".".join(filter(None, (field_name, key)))
            )
            yield from drf_messages(inner, inner_name, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from drf_messages(item, field_name, depth + 1)
    elif value is not None and value != "":
        yield f"{field_name}: {value}" if field_name else str(value)


def as_drf_detail(response: requests.Response, text: str) -> requests.Response:
    """The answer as the filters read it, {"detail": text, "status": <HTTP status>}: a filter's
    predicate sees no status otherwise. Headers and URL are the answer's."""
    answer = requests.Response()
    answer.status_code, answer.reason, answer.url = response.status_code, response.reason, response.url
    answer.headers, answer.request = response.headers, response.request
    answer.encoding = "utf-8"
    answer.raw = io.BytesIO(orjson.dumps({"detail": text, "status": response.status_code}))
    return answer


class RangeTooLargeError(AirbyteTracedException):
    """Ultravox refused a request's date range as too large, or timed out on a range of several days,
    on a stream without windows to split (allTime): RangeTotalsRetriever reads it in windows instead."""

    def __init__(self, error: requests.Response | requests.RequestException) -> None:
        first, last = request_days(error) or ("?", "?")
        span = f"{first}..{last}"
        if not isinstance(error, requests.Response):
            message = f"Ultravox did not answer for the date range {span} in time."
        elif error.status_code == 504:
            message = f"Ultravox timed out on the date range {span} (HTTP 504)."
        else:
            message = f"Ultravox refused the date range {span} as too large (HTTP {error.status_code})."
        super().__init__(message=message, internal_message=message, failure_type=FailureType.config_error)


def days_requested(response_or_exception: requests.Response | Exception, end_exclusive: bool = False) -> int:
    """UTC days of the request's window, from fromDate/toDate or start/end."""
    days = request_days(response_or_exception, end_exclusive)
    return 0 if days is None else (days[1] - days[0]).days + 1


def request_days(
    response_or_exception: requests.Response | Exception, end_exclusive: bool = False
) -> tuple[date, date] | None:
    """The first and last UTC day the request asked for, from fromDate/toDate or start/end (an
    exclusive end is the day after the last); None when the URL names no such dates."""
    request = getattr(response_or_exception, "request", None)
    query = parse_qs(urlsplit(getattr(request, "url", "") or "").query)
    first, last = query.get("fromDate", query.get("start")), query.get("toDate", query.get("end"))
    try:
        start, end = date.fromisoformat(first[0][:10]), date.fromisoformat(last[0][:10])
    except (TypeError, ValueError):
        return None
    return start, end - timedelta(days=1) if end_exclusive else end


def host_of(error: Exception) -> str:
    request = getattr(error, "request", None)
    url = getattr(request, "url", None) or ""
    return urlsplit(url).netloc or "the API host"


def first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0][:300]


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait per Retry-After (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        when = http_date(value)
        if when is None:
            return None
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


@dataclass
class RetryAfterBackoffStrategy(BackoffStrategy):
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
            message = (
                f"Ultravox asked the connector to wait {wait:.0f} s before retrying, longer than "
                f"its limit of {self.max_wait_seconds:.0f} s. The sync will pick up from its last "
                "state on the next run."
            )
            # internal_message too: the CDK's closing summary of failed streams quotes only that one.
            raise AirbyteTracedException(
                message=message, internal_message=message, failure_type=FailureType.transient_error
            )
        wait = max(wait, self.min_seconds)
        if wait >= 5:
            logger.info("Ultravox asked to slow down; waiting %.1f s before retrying.", wait)
        return wait


# --------------------------------------------------------------------------- allTime


@dataclass
class RangeTotalsRetriever(Retriever):
    """allTime: the API's totals of the whole range in one request or, if Ultravox refuses the range
    as too large, their field-by-field sum over the range read in windows of window_days (a window
    still refused is halved, down to one day). No YAML component adds up the records of several
    requests. `retriever` reads one range, given as a slice; the record says the range it covers."""

    retriever: SimpleRetriever
    config: Config
    parameters: InitVar[Mapping[str, Any]]
    from_date: str
    to_date: str
    window_days: str
    # Fields added up over windows: numbers, and duration strings ("125.5s") with their
    # <name>Seconds. Any other field of a window's record is left out of the sum.
    sums: list[str] = field(default_factory=list)
    durations: list[str] = field(default_factory=list)

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        def evaluated(template: str) -> str:
            return str(InterpolatedString.create(template, parameters=parameters).eval(self.config))

        self.first = date.fromisoformat(evaluated(self.from_date))
        self.last = date.fromisoformat(evaluated(self.to_date))
        self.width = timedelta(days=int(evaluated(self.window_days)))

    def read_records(
        self, records_schema: Mapping[str, Any], stream_slice: StreamSlice | None = None
    ) -> Iterable[StreamData]:
        try:
            total = yield from self.read_range(records_schema, self.first, self.last)
        except RangeTooLargeError as refusal:
            logger.info(
                "allTime: %s Summing the range from windows of at most %d days instead.",
                refusal.message,
                self.width.days,
            )
            total = self.summed((yield from self.read_windows(records_schema, refusal)))
        yield {**total, "fromDate": self.first.isoformat(), "toDate": self.last.isoformat()}

    def read_range(
        self, records_schema: Mapping[str, Any], first: date, last: date
    ) -> Generator[StreamData, None, Mapping[str, Any]]:
        """Reads first..last in one request: yields its other messages, returns its one record."""
        window = StreamSlice(
            partition={}, cursor_slice={"start_time": first.isoformat(), "end_time": last.isoformat()}
        )
        records = []
        for item in self.retriever.read_records(records_schema, window):
            if isinstance(item, Mapping):
                records.append(item)
            else:
                yield item
        if len(records) != 1:
            raise system_error(
                f"Ultravox's answer for allTime {first}..{last} holds no totals (its allTime object is "
                "empty). The connector stops rather than report zeros; please report this response shape."
            )
        return records[0]

    def read_windows(
        self, records_schema: Mapping[str, Any], refusal: "RangeTooLargeError"
    ) -> Generator[StreamData, None, list[Mapping[str, Any]]]:
        """The range's records in windows of window_days (of half the range, if it is one window);
        a window still refused halves the width of it and of every window after it, down to one day."""
        days = (self.last - self.first).days + 1
        width = self.width.days if days > self.width.days else self.halved(days, refusal)
        parts = []
        start = self.first
        while start <= self.last:
            end = min(start + timedelta(days=width - 1), self.last)
            try:
                parts.append((yield from self.read_range(records_schema, start, end)))
            except RangeTooLargeError as again:
                if start == end:
                    raise config_error(
                        f"Ultravox refused allTime's range even one day at a time ({start}): "
                        f"{again.message} Narrow start_date..end_date or the filters."
                    ) from None
                width = self.halved((end - start).days + 1, again)
                continue
            start = end + timedelta(days=1)
        return parts

    @staticmethod
    def halved(days: int, refusal: "RangeTooLargeError") -> int:
        width = (days + 1) // 2
        logger.info("allTime: %s Reading windows of at most %d days.", refusal.message, width)
        return width

    def summed(self, records: list[Mapping[str, Any]]) -> dict[str, Any]:
        """Each field's exact decimal sum, in the order of a window's record; integers stay integers.
        If every window answered the same totals, Ultravox's allTime does not depend on the dates
        (a lifetime total, which the API notes leave open): those totals, not their sum."""
        seconds_of = {f"{name}Seconds": name for name in self.durations}
        fields = [*self.sums, *self.durations, *seconds_of]
        if len(records) > 1 and all(
            {k: r.get(k) for k in fields} == {k: records[0].get(k) for k in fields} for r in records
        ):
            logger.info(
                "allTime: every window answered the same totals, so they are not dated: kept, not summed."
            )
            return {name: value for name, value in records[0].items() if name in fields}
        total: dict[str, Any] = {}
        for name in records[0]:
            if name in self.sums:
                values = [record[name] for record in records]
                exact = sum(Decimal(repr(value)) for value in values)
                total[name] = int(exact) if all(type(value) is int for value in values) else float(exact)
            elif name in self.durations or name in seconds_of:
                duration = seconds_of.get(name, name)
                seconds = sum(Decimal(DURATION.fullmatch(record[duration]).group(1)) for record in records)
                total[name] = float(seconds) if name in seconds_of else duration_text(seconds)
        return total


def duration_text(seconds: Decimal) -> str:
    """A duration as protobuf's JSON writes it: whole seconds bare, else 3, 6 or 9 fraction digits."""
    for digits in (0, 3, 6):
        if seconds == seconds.quantize(Decimal(1).scaleb(-digits)):
            return f"{seconds.quantize(Decimal(1).scaleb(-digits))}s"
    return f"{seconds.quantize(Decimal('1e-9'))}s"


# --------------------------------------------------------------------------- state


@dataclass
class CursorCheckStateMigration(StateMigration):
    """A saved cursor that does not parse would end in a system error with a stack trace deep in
    the CDK, and a state without the cursor (concurrency's `timestamp` before 0.5.0) would silently
    restart from start_date and keep the old key for good: this names the stream and the value, as
    a config error, before anything is read. It never changes a state. The CDK's own states (its
    full-refresh marker, `state_type`) pass; a partition router would need its per-partition format."""

    declarative_stream: DeclarativeStreamModel
    config: Config
    parameters: InitVar[Mapping[str, Any] | None] = None

    def should_migrate(self, stream_state: Mapping[str, Any]) -> bool:
        cursor = self.declarative_stream.incremental_sync
        if not stream_state or cursor is None or {"state_type", NO_CURSOR_STATE_KEY} & set(stream_state):
            return False
        name, fmt = cursor.cursor_field, cursor.datetime_format
        stream = self.declarative_stream.name
        if name not in stream_state:
            raise config_error(
                f"The saved state of stream {stream} has no {name} cursor (it holds "
                f"{', '.join(sorted(stream_state))}): it was written by an older version of the "
                f"connector. Refresh the {stream} stream (clear its data and state) and sync again."
            )
        value = stream_state[name]
        try:
            datetime.strptime(value, fmt)  # noqa: DTZ007 (a format check, not a time)
        except (TypeError, ValueError):
            example = date(2025, 3, 4).strftime(fmt)
            raise config_error(
                f"The saved state of stream {stream} has {name}={value!r}, which is not a cursor "
                f"this connector wrote (expected {name} like {example!r}). Reset the {stream} "
                "stream, or fix the state, and sync again."
            ) from None
        return False

    def migrate(self, stream_state: Mapping[str, Any]) -> Mapping[str, Any]:
        return stream_state
