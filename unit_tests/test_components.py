"""The small parts of the custom components: Retry-After, durations, UTC timestamps, the decoder."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests
import requests_mock
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils import AirbyteTracedException

from source_ultravox_usage.components import (
    CheckedRecordTransformation,
    StrictJsonDecoder,
    parse_duration_seconds,
    retry_after_seconds,
    utc_timestamp,
)

# --------------------------------------------------------------------------- retry_after_seconds

NOW = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("3", 3.0),
        (" 7 ", 7.0),
        ("2.5", 2.5),
        ("-5", 0.0),
        ("soon", None),
        ("inf", None),
        ("nan", None),
        ("Tue, 04 Mar 2025 12:00:30 GMT", 30.0),
        ("Tue, 04 Mar 2025 11:59:00 GMT", 0.0),
        ("Tuesday, 04-Mar-25 12:01:00 GMT", 60.0),
        ("Tue Mar  4 12:00:10 2025", 10.0),
    ],
)
def test_retry_after_seconds(value, expected):
    assert retry_after_seconds(value, now=NOW) == expected


# --------------------------------------------------------------------------- parse_duration_seconds


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0s", 0.0),
        ("30s", 30.0),
        ("1234.5s", 1234.5),
        ("0.000001s", 0.000001),
        ("86400s", 86400.0),
        # A negative duration in the same seconds form: the schema sets no minimum on any figure.
        ("-3s", -3.0),
        ("-0.5s", -0.5),
    ],
)
def test_parse_duration_seconds(value, expected):
    assert parse_duration_seconds(value) == expected


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("12 minutes", "'12 minutes'"),
        (5, "5"),
        (None, "None"),
        ("", "''"),
        ("30", "'30'"),
        ("+3s", "'+3s'"),
        ("--3s", "'--3s'"),
        ("-s", "'-s'"),
        ("1e3s", "'1e3s'"),
        ("30S", "'30S'"),
        (" 30s", "' 30s'"),
        ("PT30S", "'PT30S'"),
        ("1:00:00", "'1:00:00'"),
    ],
)
def test_parse_duration_seconds_refuses_anything_else(value, shown):
    with pytest.raises(AirbyteTracedException) as raised:
        parse_duration_seconds(value, stream="hourly")
    assert raised.value.failure_type == FailureType.system_error
    assert f"hourly record whose duration is {shown}" in raised.value.message


# --------------------------------------------------------------------------- utc_timestamp


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Already in the one form: returned as it is (checked, not rewritten: the fast path).
        ("2025-03-04T15:54:00Z", "2025-03-04T15:54:00Z"),
        ("2024-02-29T23:59:59Z", "2024-02-29T23:59:59Z"),
        # Any other RFC 3339 form: rewritten in UTC, microseconds kept where there are some.
        ("2025-03-04T15:54:00+00:00", "2025-03-04T15:54:00Z"),
        ("2025-03-04T10:54:00-05:00", "2025-03-04T15:54:00Z"),
        ("2025-03-04T15:54:00.000000Z", "2025-03-04T15:54:00Z"),
        ("2025-03-04T15:54:00.120Z", "2025-03-04T15:54:00.120000Z"),
        ("2025-03-05T01:54:00.5+10:00", "2025-03-04T15:54:00.500000Z"),
    ],
)
def test_utc_timestamp(value, expected):
    assert utc_timestamp("concurrency", "timestamp", value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "2025-13-04T15:54:00Z",
        "2025-02-29T15:54:00Z",
        "2025-03-04T24:00:00Z",
        "2025-03-04T15:54:60Z",
        "\u0662\u0660\u0662\u0665-03-04T15:54:00Z",
        "2025-03-04 15:54:00Z",
        "2025-03-04T15:54:00",
        "2025-03-04",
        None,
    ],
)
def test_utc_timestamp_refuses_anything_else(value):
    with pytest.raises(AirbyteTracedException) as raised:
        utc_timestamp("concurrency", "timestamp", value)
    assert raised.value.failure_type == FailureType.system_error
    assert raised.value.message == (
        f"Ultravox sent a concurrency record whose timestamp is {value!r}, not an RFC 3339 date-time "
        "with a UTC offset. The connector stops rather than guess; please report this response shape."
    )


# --------------------------------------------------------------------------- StrictJsonDecoder


def test_a_list_page_is_parsed_once_for_its_own_response_only():
    """The records' decode parses a page with a `next`; the paginator's decode of that same response
    takes the same body (no second parse), whatever page was decoded in between; then it is gone."""
    session = requests.Session()
    adapter = requests_mock.Adapter()
    session.mount("mock://", adapter)
    adapter.register_uri(
        "GET", "mock://api/calls?page=1", json={"results": [{"callId": "a"}], "next": "mock://2"}
    )
    adapter.register_uri("GET", "mock://api/calls?page=2", json={"results": [{"callId": "b"}], "next": None})
    decoder = StrictJsonDecoder(parameters={}, expect={"results": "array"})
    first, second = session.get("mock://api/calls?page=1"), session.get("mock://api/calls?page=2")

    [records_body] = decoder.decode(first)
    [other_body] = decoder.decode(second)
    [paginator_body] = decoder.decode(first)
    [third_body] = decoder.decode(first)

    assert other_body == {"results": [{"callId": "b"}], "next": None}
    assert paginator_body is records_body
    assert third_body == records_body and third_body is not records_body


# --------------------------------------------------------------------------- CheckedRecordTransformation


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"timestamps": ["timestamp"], "nullable": ["timestamp"], "renamed": {"bucketStart": "timestamp"}},
            "concurrency: renamed ['timestamp'], which no kind checks as required",
        ),
        (
            {"renamed": {"bucketStart": "timestamp"}},
            "concurrency: renamed ['timestamp'], which no kind checks as required",
        ),
        (
            {"dates": ["date"], "hour_starts": {"hourStart": ["date", "hour"]}},
            "concurrency: hour_starts from [['date', 'hour']], not a checked date and hour",
        ),
    ],
)
def test_a_derived_field_from_an_unchecked_one_is_refused_when_the_manifest_is_read(settings, message):
    """renamed and hour_starts read their sources as the checks left them: a source no check
    requires would end a sync in a KeyError instead of the connector's own message."""
    with pytest.raises(ValueError) as raised:
        CheckedRecordTransformation(parameters={"name": "concurrency"}, **settings)
    assert str(raised.value).startswith(message)
