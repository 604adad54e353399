"""Windows (whole UTC days, no overlap, no gap, the same for daily and hourly, each reading them with
its own requests) and each stream's records."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from unit_tests.conftest import (
    MANIFEST,
    days,
    errors,
    make_config,
    records,
    run_discover,
    run_read,
    schema_errors,
    stats,
    usage_body,
    windows,
    zero_day,
    zero_hour,
)

# A window covers at most window_days days: the last one is the shorter remainder (a one-day
# remainder was once merged into the previous window, breaking the window size).
# (start, end, window_days); N = days in the range.
RANGES = [
    pytest.param("2025-03-01", "2025-03-01", 30, id="one-day"),
    pytest.param("2025-03-01", "2025-03-06", 2, id="6d-w2-exact"),
    pytest.param("2025-03-01", "2025-03-07", 3, id="7d-w3-remainder-1"),
    pytest.param("2025-03-01", "2025-03-08", 3, id="8d-w3-remainder-2"),
    pytest.param("2025-03-01", "2025-03-04", 1, id="4d-w1"),
    pytest.param("2025-02-20", "2025-03-10", 7, id="feb-mar-w7"),
    pytest.param("2024-12-20", "2025-01-09", 7, id="year-boundary-w7"),
    pytest.param("2024-12-20", "2025-01-10", 7, id="year-boundary-w7-remainder-1"),
    pytest.param("2024-02-27", "2024-03-03", 2, id="leap-day-w2"),
    pytest.param("2024-01-01", "2024-12-31", 366, id="leap-year-one-window"),
    pytest.param("2024-01-01", "2025-03-31", 30, id="15-months-w30"),
]


def n_days(start: str, end: str) -> int:
    return len(days(start, end))


def test_expected_windows_helper():
    assert windows("2025-03-01", "2025-03-07", 3) == [
        ("2025-03-01", "2025-03-03"),
        ("2025-03-04", "2025-03-06"),
        ("2025-03-07", "2025-03-07"),
    ]


@pytest.mark.parametrize(("start", "end", "width"), RANGES)
def test_daily_and_hourly_each_request_every_window(api, start, end, width):
    api.register(json=usage_body())
    output = run_read(make_config(start_date=start, end_date=end, window_days=width))
    assert errors(output) == []
    expected = windows(start, end, width)
    assert len(expected) == math.ceil(n_days(start, end) / width)
    # allTime's single request over the whole range, plus one request per window for daily and
    # one for hourly: the same windows, each stream sending its own.
    assert api.date_ranges() == sorted([(start, end), *expected, *expected])
    assert api.call_count == 2 * math.ceil(n_days(start, end) / width) + 1


@pytest.mark.parametrize(("start", "end", "width"), RANGES)
@pytest.mark.parametrize("stream", ["daily", "hourly"])
def test_one_stream_reads_every_window_once(api, stream, start, end, width):
    api.register(json=usage_body())
    output = run_read(make_config(start_date=start, end_date=end, window_days=width), streams=[stream])
    assert errors(output) == []
    assert api.date_ranges() == windows(start, end, width)


@pytest.mark.parametrize("incremental", [True, False], ids=["incremental", "full-refresh"])
def test_full_refresh_reads_the_same_windows(api, incremental):
    api.register(json=usage_body())
    output = run_read(
        make_config(start_date="2025-03-01", end_date="2025-03-06", window_days=3), incremental=incremental
    )
    assert errors(output) == []
    assert api.date_ranges() == [
        ("2025-03-01", "2025-03-03"),
        ("2025-03-01", "2025-03-03"),
        ("2025-03-01", "2025-03-06"),
        ("2025-03-04", "2025-03-06"),
        ("2025-03-04", "2025-03-06"),
    ]


def test_all_time_alone_sends_one_request_for_the_whole_range(api):
    api.register(json=usage_body())
    output = run_read(
        make_config(start_date="2024-01-01", end_date="2025-03-05", window_days=7), streams=["allTime"]
    )
    assert errors(output) == []
    assert api.date_ranges() == [("2024-01-01", "2025-03-05")]


def test_end_date_defaults_to_today_utc(api):
    api.register(json=usage_body())
    today = datetime.now(UTC).date()
    start = (today - timedelta(days=5)).isoformat()
    output = run_read(make_config(start_date=start, end_date=None, window_days=4))
    assert errors(output) == []
    assert records(output, "allTime")[0]["toDate"] == today.isoformat()
    # 6 days: one window of 4, then today's window of 2 (today's partial figures are read), each
    # read by daily and by hourly.
    expected = windows(start, today.isoformat(), 4)
    assert expected == [
        (start, (today - timedelta(days=2)).isoformat()),
        ((today - timedelta(days=1)).isoformat(), today.isoformat()),
    ]
    assert api.date_ranges() == sorted([(start, today.isoformat()), *expected, *expected])


def test_default_start_date_and_window(api):
    """start_date defaults to 2024-01-01 and window_days to the spec's default (30)."""
    api.register(json=usage_body())
    output = run_read(make_config(start_date=None, end_date="2024-03-30", window_days=None))
    assert errors(output) == []
    assert api.date_ranges() == [
        ("2024-01-01", "2024-01-30"),
        ("2024-01-01", "2024-01-30"),
        ("2024-01-01", "2024-03-30"),
        ("2024-01-31", "2024-02-29"),
        ("2024-01-31", "2024-02-29"),
        ("2024-03-01", "2024-03-30"),
        ("2024-03-01", "2024-03-30"),
    ]


DAILY = [
    {"date": "2025-03-03", **stats(total=5, errors=0, joined=4, duration="300s", minutes=5.0)},
    {"date": "2025-03-04", **stats(total=2, errors=1, joined=1, duration="1234.5s", minutes=20.6)},
]
HOURLY = [
    {"date": "2025-03-03", "hour": 0, **stats(total=1, duration="0s", minutes=0)},
    {"date": "2025-03-04", "hour": 7, **stats(total=2, duration="61.25s", minutes=1.5)},
    {"date": "2025-03-04", "hour": 23, **stats(total=4, duration="3600s", minutes=60)},
]
ALL_TIME = stats(total=11, errors=2, joined=7, duration="5195.75s", minutes=87.1)


@pytest.fixture
def served(api):
    api.serve(daily=DAILY, hourly=HOURLY, all_time=ALL_TIME)
    return api


def test_daily_records(served):
    """The API's rows, and a zero row for each day of the range it left out."""
    output = run_read(make_config(window_days=2), streams=["daily"])
    assert errors(output) == []
    assert sorted(records(output, "daily"), key=lambda r: r["date"]) == [
        zero_day("2025-03-01"),
        zero_day("2025-03-02"),
        {**DAILY[0], "durationSeconds": 300.0},
        {**DAILY[1], "durationSeconds": 1234.5},
        zero_day("2025-03-05"),
    ]


def test_hourly_records(served):
    """The API's rows, and a zero row for each hour of the range it left out."""
    output = run_read(make_config(window_days=2), streams=["hourly"])
    assert errors(output) == []
    expected = {
        (day, hour): zero_hour(day, hour) for day in days("2025-03-01", "2025-03-05") for hour in range(24)
    }
    expected[("2025-03-03", 0)] = {**HOURLY[0], "durationSeconds": 0.0, "hourStart": "2025-03-03T00:00:00Z"}
    expected[("2025-03-04", 7)] = {**HOURLY[1], "durationSeconds": 61.25, "hourStart": "2025-03-04T07:00:00Z"}
    expected[("2025-03-04", 23)] = {
        **HOURLY[2],
        "durationSeconds": 3600.0,
        "hourStart": "2025-03-04T23:00:00Z",
    }
    assert sorted(records(output, "hourly"), key=lambda r: r["hourStart"]) == list(expected.values())
    # The API's fields in its order, then what the connector derives, as 0.5.0 wrote them.
    assert {tuple(record)[-2:] for record in records(output, "hourly")} == {("durationSeconds", "hourStart")}


def test_all_time_record(served):
    output = run_read(make_config(window_days=2), streams=["allTime"])
    assert errors(output) == []
    assert records(output, "allTime") == [
        {**ALL_TIME, "durationSeconds": 5195.75, "fromDate": "2025-03-01", "toDate": "2025-03-05"}
    ]


def test_all_streams_records_match_their_schemas(served):
    output = run_read(make_config(window_days=2))
    assert errors(output) == []
    counts = {stream: len(records(output, stream)) for stream in ("allTime", "daily", "hourly")}
    assert counts == {"allTime": 1, "daily": 5, "hourly": 5 * 24}  # zero rows included
    for message in output.records:
        assert schema_errors(message.record.stream, message.record.data) == [], message.record.data


def test_schema_checker_can_fail():
    assert schema_errors("hourly", {"date": "2025-03-04", "hour": 7, "hourStart": "2025-03-04 07:00"})
    assert schema_errors("daily", {"date": "2025-02-30"})


def test_unknown_api_fields_pass_through(api):
    extra = {"sipCount": 3, "nested": {"a": [1, 2]}, "note": "new"}
    api.register(
        json=usage_body(
            all_time=stats(**extra),
            daily=[{"date": "2025-03-02", **stats(**extra)}],
            hourly=[{"date": "2025-03-02", "hour": 1, **stats(**extra)}],
        )
    )
    output = run_read(make_config())
    assert errors(output) == []
    for stream in ("allTime", "daily", "hourly"):
        [record] = [r for r in records(output, stream) if r.get("totalCount")]  # not a zero row
        assert {k: record[k] for k in extra} == extra, stream
        assert schema_errors(stream, record) == []


@pytest.mark.parametrize("stream", ["allTime", "daily", "hourly"])
@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("12 minutes", "'12 minutes'"),
        (5, "5"),
        (None, "None"),
        ("", "''"),
        ("+3s", "'+3s'"),
        ("1e3s", "'1e3s'"),
    ],
)
def test_unparseable_duration_fails_quoting_the_value(api, stream, value, shown):
    row = stats(duration=value)
    body = usage_body(
        all_time=row if stream == "allTime" else None,
        daily=[{"date": "2025-03-02", **row}] if stream == "daily" else [],
        hourly=[{"date": "2025-03-02", "hour": 3, **row}] if stream == "hourly" else [],
    )
    api.register(json=body)
    output = run_read(make_config(), streams=[stream], fails=True)
    [(failure_type, message)] = errors(output)
    assert failure_type == "system_error"
    assert f"duration is {shown}" in message
    assert stream in message
    assert records(output, stream) == []


def test_negative_figures_and_counts_sync_as_sent(api):
    # The published schema sets no minimum on any figure: a credit makes a day's minutes negative,
    # and the connector has no grounds to refuse a negative count or duration either.
    credited = stats(total=-1, errors=0, joined=-1, duration="-3s", minutes=-12.5)
    api.register(
        json=usage_body(
            all_time=credited,
            daily=[{"date": "2025-03-02", **credited}],
            hourly=[{"date": "2025-03-02", "hour": 9, **credited}],
        )
    )
    output = run_read(make_config())
    assert errors(output) == []
    # The other days and hours of the window are the API's zero rows for what it left out.
    the_day = {"date": "2025-03-02", **credited, "durationSeconds": -3.0}
    the_hour = {**the_day, "hour": 9, "hourStart": "2025-03-02T09:00:00Z"}
    window = days("2025-03-01", "2025-03-05")
    assert sorted(records(output, "daily"), key=lambda r: r["date"]) == [
        the_day if day == "2025-03-02" else zero_day(day) for day in window
    ]
    assert sorted(records(output, "hourly"), key=lambda r: r["hourStart"]) == [
        the_hour if (day, hour) == ("2025-03-02", 9) else zero_hour(day, hour)
        for day in window
        for hour in range(24)
    ]
    assert records(output, "allTime") == [
        {**credited, "durationSeconds": -3.0, "fromDate": "2025-03-01", "toDate": "2025-03-05"}
    ]


@pytest.mark.parametrize("missing", ["totalCount", "errorCount", "joinedCount"])
def test_a_day_without_a_count_fails_naming_it(api, missing):
    # DailyCallStatistics requires all six fields.
    day = {"date": "2025-03-02", **stats()}
    del day[missing]
    api.register(json=usage_body(daily=[day]))
    output = run_read(make_config(), streams=["daily"], fails=True)
    assert errors(output) == [
        (
            "system_error",
            f"Ultravox sent a daily record whose {missing} is None, not an integer. "
            "The connector stops rather than guess; please report this response shape.",
        )
    ]
    assert records(output, "daily") == []


STOPS = "The connector stops rather than guess; please report this response shape."


@pytest.mark.parametrize(
    ("stream", "field", "value", "expected"),
    [
        ("daily", "totalCount", "3", "an integer"),
        ("daily", "errorCount", None, "an integer"),
        ("daily", "joinedCount", 1.5, "an integer"),
        ("daily", "joinedCount", 2.0, "an integer"),
        ("daily", "billedMinutes", "2.5", "a number"),
        ("daily", "billedMinutes", True, "a number"),
        ("hourly", "totalCount", False, "an integer"),
        ("allTime", "errorCount", "0", "an integer"),
    ],
)
def test_mistyped_numbers_fail_quoting_the_value(api, stream, field, value, expected):
    row = stats(**{field: value})
    api.register(
        json=usage_body(
            all_time=row if stream == "allTime" else None,
            daily=[{"date": "2025-03-02", **row}] if stream == "daily" else [],
            hourly=[{"date": "2025-03-02", "hour": 1, **row}] if stream == "hourly" else [],
        )
    )
    output = run_read(make_config(), streams=[stream], fails=True)
    assert errors(output) == [
        (
            "system_error",
            f"Ultravox sent a {stream} record whose {field} is {value!r}, not {expected}. {STOPS}",
        )
    ]
    assert records(output, stream) == []


@pytest.mark.parametrize(
    ("stream", "missing", "expected"),
    [
        ("allTime", "totalCount", "an integer"),
        ("hourly", "joinedCount", "an integer"),
        ("daily", "billedMinutes", "a number"),
        ("daily", "date", "a YYYY-MM-DD date"),
        ("hourly", "duration", "a seconds string such as '1234.5s'"),
    ],
)
def test_a_missing_required_field_fails_naming_it(api, stream, missing, expected):
    row = (
        {"date": "2025-03-02", "hour": 1, **stats()}
        if stream == "hourly"
        else {"date": "2025-03-02", **stats()}
    )
    row = {k: v for k, v in row.items() if k != missing and (stream != "allTime" or k != "date")}
    api.register(
        json=usage_body(
            all_time=row if stream == "allTime" else None,
            daily=[row] if stream == "daily" else [],
            hourly=[row] if stream == "hourly" else [],
        )
    )
    output = run_read(make_config(), streams=[stream], fails=True)
    assert errors(output) == [
        ("system_error", f"Ultravox sent a {stream} record whose {missing} is None, not {expected}. {STOPS}")
    ]
    assert records(output, stream) == []


@pytest.mark.parametrize(
    ("row", "field", "shown"),
    [
        ({"date": "2025-3-2", "hour": 1}, "date", "'2025-3-2'"),
        ({"date": "2025-03-02", "hour": 24}, "hour", "24"),
        ({"date": "2025-03-02", "hour": "7"}, "hour", "'7'"),
        ({"date": "2025-03-02"}, "hour", "None"),
    ],
)
def test_bad_hourly_bucket_fails_quoting_the_value(api, row, field, shown):
    api.register(json=usage_body(hourly=[{**row, **stats()}]))
    output = run_read(make_config(), streams=["hourly"], fails=True)
    [(failure_type, message)] = errors(output)
    assert failure_type == "system_error"
    assert f"{field} is {shown}" in message


def test_discover_lists_the_nine_streams(api):
    output = run_discover(make_config())
    streams = {s.name: s for s in output.catalog.catalog.streams}
    assert list(streams) == [
        "allTime",
        "daily",
        "hourly",
        "agentDaily",
        "concurrency",
        "billingDaily",
        "calls",
        "invoices",
        "account",
    ]
    for name in ("allTime", "invoices", "account"):
        assert [m.value for m in streams[name].supported_sync_modes] == ["full_refresh"], name
        assert not streams[name].source_defined_cursor, name
    for name in set(streams) - {"allTime", "invoices", "account"}:
        assert sorted(m.value for m in streams[name].supported_sync_modes) == ["full_refresh", "incremental"]
        assert streams[name].source_defined_cursor is True
    assert streams["daily"].default_cursor_field == ["date"]
    assert streams["daily"].source_defined_primary_key == [["date"]]
    assert streams["hourly"].default_cursor_field == ["hourStart"]
    assert streams["hourly"].source_defined_primary_key == [["date"], ["hour"]]
    assert streams["agentDaily"].default_cursor_field == ["date"]
    assert streams["agentDaily"].source_defined_primary_key == [["agentId"], ["date"]]
    assert streams["concurrency"].default_cursor_field == ["bucketStart"]
    assert streams["concurrency"].source_defined_primary_key == [["bucketStart"], ["bucket"]]
    assert streams["billingDaily"].default_cursor_field == ["date"]
    assert streams["billingDaily"].source_defined_primary_key == [["date"]]
    assert streams["calls"].default_cursor_field == ["created"]
    assert streams["calls"].source_defined_primary_key == [["callId"]]
    assert streams["invoices"].source_defined_primary_key == [["invoiceNumber"]]
    assert streams["account"].source_defined_primary_key == [["accountId"], ["readAt"]]
    assert api.call_count == 0
    hour_start = streams["hourly"].json_schema["properties"]["hourStart"]
    assert hour_start["format"] == "date-time"
    assert hour_start["airbyte_type"] == "timestamp_with_timezone"


def test_only_the_one_record_stream_renders_a_template_per_record():
    """AddFields, RemoveFields and KeysReplace render their Jinja templates or walk dpath for every
    record: over a year of minute buckets that was two fifths of the connector's CPU. Only account,
    one record a sync, uses one (readAt); CheckedRecordTransformation does the rest. The whole file
    is searched, definitions included, where a stream could take one from by $ref."""
    per_record = {"AddFields", "RemoveFields", "KeysReplace", "KeysToLower", "KeysToSnakeCase"}

    def found(node, where):
        """The path of each per-record transformation, a list item named by its `name`."""
        if isinstance(node, dict):
            if isinstance(node.get("type"), str) and node["type"] in per_record:
                yield where
            for key, value in node.items():
                yield from found(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                name = value.get("name", index) if isinstance(value, dict) else index
                yield from found(value, f"{where}/{name}")

    assert list(found(yaml.safe_load(MANIFEST.read_text()), "")) == ["/streams/account/transformations/0"]
