"""The small pure functions of the custom components: query filters, date ranges, Retry-After,
durations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils import AirbyteTracedException

from source_ultravox_usage.components import (
    date_range_parameters,
    filter_parameters,
    parse_duration_seconds,
    retry_after_seconds,
)

AGENT = "2f1b1e6c-1c3a-4d5e-9f00-1234567890ab"


# --------------------------------------------------------------------------- filter_parameters


def test_filter_parameters_with_nothing_set():
    assert filter_parameters({}) == {}
    assert filter_parameters({"api_key": "k", "start_date": "2025-01-01", "window_days": 30}) == {}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"agent_ids": [AGENT, AGENT.upper()]}, {"agentIds": [AGENT, AGENT.upper()]}),
        ({"agent_ids": []}, {}),
        ({"voice_id": AGENT}, {"voiceId": AGENT}),
        ({"duration_min": 30}, {"durationMin": "30s"}),
        ({"duration_min": 12.5}, {"durationMin": "12.5s"}),
        ({"duration_min": 0}, {"durationMin": "0s"}),
        ({"duration_min": 0.0}, {"durationMin": "0s"}),
        ({"duration_max": 1e6}, {"durationMax": "1000000s"}),
        ({"duration_max": 0.1}, {"durationMax": "0.1s"}),
        ({"duration_max": None}, {}),
        (
            {"metadata": [{"key": "a", "value": "1"}, {"key": "b.c", "value": ""}]},
            {"metadata.a": "1", "metadata.b.c": ""},
        ),
        ({"metadata": []}, {}),
        ({"search": "x y"}, {"search": "x y"}),
        ({"search": ""}, {}),
        ({"time_of_day_start": "00:00:00"}, {"timeOfDayStart": "00:00:00"}),
        ({"time_of_day_end": "23:59:59"}, {"timeOfDayEnd": "23:59:59"}),
    ],
)
def test_filter_parameters(config, expected):
    assert filter_parameters(config) == expected


def test_filter_parameters_does_not_alias_the_config_list():
    config = {"agent_ids": [AGENT]}
    params = filter_parameters(config)
    params["agentIds"].append("x")
    assert config["agent_ids"] == [AGENT]


# --------------------------------------------------------------------------- date_range_parameters


CONFIG = {"start_date": "2024-01-01", "end_date": "2024-12-31"}
MARCH = ("2024-03-01", "2024-03-30")


@pytest.mark.parametrize(
    ("stream_slice", "expected"),
    [
        (None, ("2024-01-01", "2024-12-31")),
        ({}, ("2024-01-01", "2024-12-31")),
        ({"start_time": "2024-03-01", "end_time": "2024-03-30"}, ("2024-03-01", "2024-03-30")),
        (
            {"start_time": "2024-03-01T00:00:00Z", "end_time": "2024-03-30T23:00:00Z"},
            ("2024-03-01", "2024-03-30"),
        ),
        (
            {"start_time": "2024-03-01T00:00:00Z", "end_time": "2024-03-30T23:59:59Z"},
            ("2024-03-01", "2024-03-30"),
        ),
    ],
)
def test_date_range_parameters(stream_slice, expected):
    assert date_range_parameters(stream_slice, CONFIG) == {"fromDate": expected[0], "toDate": expected[1]}


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
    [("0s", 0.0), ("30s", 30.0), ("1234.5s", 1234.5), ("0.000001s", 0.000001), ("86400s", 86400.0)],
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
        ("-3s", "'-3s'"),
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
