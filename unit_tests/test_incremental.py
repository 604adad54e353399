"""Incremental sync: first sync state, lookback restarts shared by both streams, empty windows,
month and year boundaries, future and malformed state."""

from __future__ import annotations

import pytest

from unit_tests.conftest import (
    days,
    errors,
    final_state,
    make_config,
    make_state,
    records,
    run_read,
    states,
    stats,
    windows,
)

WINDOW_STREAMS = ["daily", "hourly"]


def daily_rows(*dates: str) -> list[dict]:
    return [{"date": d, **stats(total=i + 1)} for i, d in enumerate(dates)]


def hourly_rows(*dates: str, hour: int = 5) -> list[dict]:
    return [{"date": d, "hour": hour, **stats(total=i + 1)} for i, d in enumerate(dates)]


def test_first_sync_state_is_the_last_record(api):
    dates = days("2025-03-01", "2025-03-06")
    api.serve(daily=daily_rows(*dates), hourly=hourly_rows(*dates, hour=22))
    output = run_read(make_config(end_date="2025-03-06", window_days=2), streams=WINDOW_STREAMS)
    assert errors(output) == []
    assert final_state(output, "daily") == {"date": "2025-03-06"}
    assert final_state(output, "hourly") == {"hourStart": "2025-03-06T22:00:00Z"}
    assert sorted(r["date"] for r in records(output, "daily")) == dates
    assert api.date_ranges() == windows("2025-03-01", "2025-03-06", 2)


def test_state_is_checkpointed_per_window_and_never_goes_back(api):
    dates = days("2025-03-01", "2025-03-06")
    api.serve(daily=daily_rows(*dates), hourly=hourly_rows(*dates))
    output = run_read(
        make_config(end_date="2025-03-06", window_days=2, num_workers=1), streams=WINDOW_STREAMS
    )
    assert errors(output) == []
    daily = [s["date"] for s in states(output, "daily")]
    hourly = [s["hourStart"] for s in states(output, "hourly")]
    # At least one checkpoint per window (3), each at or after the previous one.
    assert len(daily) >= 3 and len(hourly) >= 3
    assert daily == sorted(daily) and hourly == sorted(hourly)
    assert {"2025-03-02", "2025-03-04", "2025-03-06"} <= set(daily)


@pytest.mark.parametrize("hour", [0, 5, 23])
@pytest.mark.parametrize("lookback", [0, 2, 7])
def test_second_sync_restarts_at_cursor_minus_lookback_for_both_streams(api, hour, lookback):
    api.serve(daily=daily_rows("2025-03-10", "2025-03-12"), hourly=hourly_rows("2025-03-10", "2025-03-12"))
    state = make_state(daily={"date": "2025-03-10"}, hourly={"hourStart": f"2025-03-10T{hour:02d}:00:00Z"})
    config = make_config(
        start_date="2025-01-01", end_date="2025-03-16", window_days=5, lookback_days=lookback
    )
    output = run_read(config, streams=WINDOW_STREAMS, state=state)
    assert errors(output) == []
    restart = {0: "2025-03-10", 2: "2025-03-08", 7: "2025-03-03"}[lookback]
    # One request per window, shared by daily and hourly.
    assert api.date_ranges() == windows(restart, "2025-03-16", 5)
    assert final_state(output, "daily") == {"date": "2025-03-12"}
    assert final_state(output, "hourly") == {"hourStart": "2025-03-12T05:00:00Z"}
    # Re-read days come back with their current figures (deduped downstream on the primary key).
    assert sorted(r["date"] for r in records(output, "daily")) == ["2025-03-10", "2025-03-12"]


@pytest.mark.parametrize(
    ("daily_cursor", "hourly_cursor"),
    [("2025-03-10", "2025-03-05T13:00:00Z"), ("2025-03-05", "2025-03-10T23:00:00Z")],
    ids=["daily-ahead", "hourly-ahead"],
)
def test_cursors_left_apart_by_a_stopped_sync_restart_together(api, daily_cursor, hourly_cursor):
    api.serve(daily=daily_rows("2025-03-12"), hourly=hourly_rows("2025-03-12"))
    state = make_state(daily={"date": daily_cursor}, hourly={"hourStart": hourly_cursor})
    config = make_config(start_date="2025-01-01", end_date="2025-03-16", window_days=5, lookback_days=2)
    output = run_read(config, streams=WINDOW_STREAMS, state=state)
    assert errors(output) == []
    # Both restart at the earlier cursor's day minus lookback_days, so every window is one request.
    assert api.date_ranges() == windows("2025-03-03", "2025-03-16", 5)
    assert final_state(output, "daily") == {"date": "2025-03-12"}
    assert final_state(output, "hourly") == {"hourStart": "2025-03-12T05:00:00Z"}


def test_lookback_never_reaches_before_start_date(api):
    api.serve()
    state = make_state(daily={"date": "2025-03-02"}, hourly={"hourStart": "2025-03-02T10:00:00Z"})
    config = make_config(start_date="2025-03-01", end_date="2025-03-06", window_days=3, lookback_days=30)
    output = run_read(config, streams=WINDOW_STREAMS, state=state)
    assert errors(output) == []
    assert api.date_ranges() == windows("2025-03-01", "2025-03-06", 3)


def test_state_before_start_date_starts_at_start_date(api):
    api.serve()
    state = make_state(daily={"date": "2024-06-01"}, hourly={"hourStart": "2024-06-01T10:00:00Z"})
    config = make_config(start_date="2025-03-01", end_date="2025-03-06", window_days=3)
    output = run_read(config, streams=WINDOW_STREAMS, state=state)
    assert errors(output) == []
    assert api.date_ranges() == windows("2025-03-01", "2025-03-06", 3)


def test_empty_windows_do_not_move_state_past_emitted_data(api):
    api.serve(daily=daily_rows("2025-03-02"), hourly=hourly_rows("2025-03-02", hour=13))
    output = run_read(make_config(end_date="2025-03-09", window_days=2), streams=WINDOW_STREAMS)
    assert errors(output) == []
    assert final_state(output, "daily") == {"date": "2025-03-02"}
    assert final_state(output, "hourly") == {"hourStart": "2025-03-02T13:00:00Z"}
    for blob in states(output, "daily"):
        assert blob["date"] <= "2025-03-02"
    for blob in states(output, "hourly"):
        assert blob["hourStart"] <= "2025-03-02T13:00:00Z"


def test_all_empty_windows_keep_the_incoming_state(api):
    api.serve()
    state = make_state(daily={"date": "2025-03-10"}, hourly={"hourStart": "2025-03-10T05:00:00Z"})
    config = make_config(start_date="2025-03-01", end_date="2025-03-20", window_days=5)
    output = run_read(config, streams=WINDOW_STREAMS, state=state)
    assert errors(output) == []
    assert api.date_ranges() == windows("2025-03-08", "2025-03-20", 5)
    assert {s["date"] for s in states(output, "daily")} == {"2025-03-10"}
    assert {s["hourStart"] for s in states(output, "hourly")} == {"2025-03-10T05:00:00Z"}


def test_a_sync_with_no_data_at_all_emits_no_cursor_past_start(api):
    api.serve()
    output = run_read(make_config(end_date="2025-03-06", window_days=3), streams=WINDOW_STREAMS)
    assert errors(output) == []
    assert records(output, "daily") == [] and records(output, "hourly") == []
    for blob in states(output, "daily"):
        assert blob.get("date", "") <= "2025-03-01", blob
    for blob in states(output, "hourly"):
        assert blob.get("hourStart", "") <= "2025-03-01T00:00:00Z", blob


def test_month_and_year_boundaries(api):
    dates = ["2024-12-20", "2024-12-31", "2025-01-01", "2025-01-09"]
    api.serve(daily=daily_rows(*dates), hourly=hourly_rows(*dates, hour=23))
    config = make_config(start_date="2024-12-20", end_date="2025-01-09", window_days=7)
    output = run_read(config, streams=WINDOW_STREAMS)
    assert errors(output) == []
    assert api.date_ranges() == [
        ("2024-12-20", "2024-12-26"),
        ("2024-12-27", "2025-01-02"),
        ("2025-01-03", "2025-01-09"),
    ]
    assert sorted(r["date"] for r in records(output, "daily")) == dates
    assert sorted(r["hourStart"] for r in records(output, "hourly")) == [f"{d}T23:00:00Z" for d in dates]
    assert final_state(output, "daily") == {"date": "2025-01-09"}
    assert final_state(output, "hourly") == {"hourStart": "2025-01-09T23:00:00Z"}

    # The next sync with lookback across the year boundary.
    api.adapter.reset()
    config = make_config(start_date="2024-12-01", end_date="2025-01-13", window_days=2, lookback_days=10)
    next_state = make_state(daily={"date": "2025-01-02"}, hourly={"hourStart": "2025-01-02T23:00:00Z"})
    output = run_read(config, streams=WINDOW_STREAMS, state=next_state)
    assert errors(output) == []
    assert api.date_ranges() == windows("2024-12-23", "2025-01-13", 2)


def test_month_boundary_in_february_of_a_leap_year(api):
    api.serve(daily=daily_rows("2024-02-29"), hourly=hourly_rows("2024-02-29"))
    state = make_state(daily={"date": "2024-03-01"}, hourly={"hourStart": "2024-03-01T00:00:00Z"})
    config = make_config(start_date="2024-01-01", end_date="2024-03-04", window_days=2, lookback_days=2)
    output = run_read(config, streams=WINDOW_STREAMS, state=state)
    assert errors(output) == []
    assert api.date_ranges() == [
        ("2024-02-28", "2024-02-29"),
        ("2024-03-01", "2024-03-02"),
        ("2024-03-03", "2024-03-04"),
    ]
    # A re-read day older than the cursor is still emitted (lookback), and the state keeps the max.
    assert [r["date"] for r in records(output, "daily")] == ["2024-02-29"]
    assert final_state(output, "daily") == {"date": "2024-03-01"}
    assert final_state(output, "hourly") == {"hourStart": "2024-03-01T00:00:00Z"}


@pytest.mark.parametrize(
    "blobs",
    [
        {"daily": {"date": "2030-01-01"}},
        {"hourly": {"hourStart": "2030-01-01T05:00:00Z"}},
        {"daily": {"date": "2030-01-01"}, "hourly": {"hourStart": "2030-01-01T05:00:00Z"}},
    ],
    ids=["daily", "hourly", "both"],
)
def test_future_state_reads_nothing_and_keeps_the_state(api, blobs):
    api.serve(daily=daily_rows("2025-03-02"), hourly=hourly_rows("2025-03-02"))
    output = run_read(make_config(window_days=3), streams=WINDOW_STREAMS, state=make_state(**blobs))
    assert errors(output) == []
    for stream, blob in blobs.items():
        assert records(output, stream) == []
        assert states(output, stream) and all(s == blob for s in states(output, stream)), stream
    others = [s for s in WINDOW_STREAMS if s not in blobs]
    # Only the stream without a future state sends requests: its own windows, unshared.
    assert api.date_ranges() == (windows("2025-03-01", "2025-03-05", 3) if others else [])


@pytest.mark.parametrize(
    ("stream", "blob", "shown"),
    [
        ("daily", {"date": "yesterday"}, "date='yesterday'"),
        ("daily", {"date": "2025-03-04T00:00:00Z"}, "date='2025-03-04T00:00:00Z'"),
        ("daily", {"date": 20250304}, "date=20250304"),
        ("daily", {"cursor": "2025-03-04"}, "date=None"),
        ("hourly", {"hourStart": 5}, "hourStart=5"),
        ("hourly", {"hourStart": "2025-03-04"}, "hourStart='2025-03-04'"),
        ("hourly", {"hourStart": "2025-03-04 05:00"}, "hourStart='2025-03-04 05:00'"),
    ],
)
def test_malformed_state_is_a_config_error_naming_the_stream_before_any_request(api, stream, blob, shown):
    api.serve()
    output = run_read(make_config(), state=make_state(**{stream: blob}), fails=True)
    [(failure_type, message)] = errors(output)
    assert failure_type == "config_error"
    assert f"stream {stream}" in message
    assert shown in message
    assert api.call_count == 0
    assert output.records == []
