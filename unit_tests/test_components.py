"""The small pure functions of the custom components: Retry-After and durations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils import AirbyteTracedException

from source_ultravox_usage.components import parse_duration_seconds, retry_after_seconds

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
