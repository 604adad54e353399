"""Incremental sync: first sync state, each stream's restart at its own cursor minus lookback_days
(a stale state of another stream never drags it back), empty and failed windows, month and year
boundaries, future and malformed state.

daily and hourly each send their own request per window (the same whole-day windows), so a sync of
both asks for every window twice; a request does not say which stream sent it, so a catalog of one
stream is what pins a window list to a stream."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from unit_tests.conftest import (
    days,
    errors,
    final_state,
    make_config,
    make_state,
    query,
    records,
    run_read,
    states,
    stats,
    windows,
)

WINDOW_STREAMS = ["daily", "hourly"]


def each_stream(*window_lists: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The sorted (fromDate, toDate) of every request of a sync: the windows of each stream's own list."""
    return sorted(window for window_list in window_lists for window in window_list)


def both(window_list: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """daily and hourly read the same windows: each window is requested once by each stream."""
    return each_stream(window_list, window_list)


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
    # The last record is the zero row of 23:00, an hour the API left out.
    assert final_state(output, "hourly") == {"hourStart": "2025-03-06T23:00:00Z"}
    assert sorted(r["date"] for r in records(output, "daily")) == dates
    assert api.date_ranges() == both(windows("2025-03-01", "2025-03-06", 2))


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
def test_second_sync_restarts_each_stream_at_its_cursor_minus_lookback(api, hour, lookback):
    api.serve(daily=daily_rows("2025-03-10", "2025-03-12"), hourly=hourly_rows("2025-03-10", "2025-03-12"))
    state = make_state(daily={"date": "2025-03-10"}, hourly={"hourStart": f"2025-03-10T{hour:02d}:00:00Z"})
    config = make_config(
        start_date="2025-01-01", end_date="2025-03-16", window_days=5, lookback_days=lookback
    )
    output = run_read(config, streams=WINDOW_STREAMS, state=state)
    assert errors(output) == []
    restart = {0: "2025-03-10", 2: "2025-03-08", 7: "2025-03-03"}[lookback]
    # Both cursors are on 2025-03-10: hourly restarts at its hour, lookback_days earlier, and asks
    # for whole days, so both streams read the same windows, each with its own requests.
    assert api.date_ranges() == both(windows(restart, "2025-03-16", 5))
    # The last zero rows, of the days up to end_date that the API left out.
    assert final_state(output, "daily") == {"date": "2025-03-16"}
    assert final_state(output, "hourly") == {"hourStart": "2025-03-16T23:00:00Z"}
    # Re-read days come back with their current figures (deduped downstream on the primary key).
    daily = {r["date"]: r["totalCount"] for r in records(output, "daily")}
    assert sorted(daily) == days(restart, "2025-03-16")
    assert {d: n for d, n in daily.items() if n} == {"2025-03-10": 1, "2025-03-12": 2}


@pytest.mark.parametrize(
    ("daily_cursor", "hourly_cursor", "daily_restart", "hourly_restart"),
    [
        ("2025-03-10", "2025-03-05T13:00:00Z", "2025-03-08", "2025-03-03"),
        ("2025-03-05", "2025-03-10T23:00:00Z", "2025-03-03", "2025-03-08"),
    ],
    ids=["daily-ahead", "hourly-ahead"],
)
def test_cursors_left_apart_by_a_stopped_sync_each_restart_at_their_own_cursor(
    api, daily_cursor, hourly_cursor, daily_restart, hourly_restart
):
    """A stopped sync can leave the cursors apart; neither drags the other back or forward."""
    api.serve(daily=daily_rows("2025-03-12"), hourly=hourly_rows("2025-03-12"))
    state = make_state(daily={"date": daily_cursor}, hourly={"hourStart": hourly_cursor})
    config = make_config(start_date="2025-01-01", end_date="2025-03-16", window_days=5, lookback_days=2)
    output = run_read(config, streams=WINDOW_STREAMS, state=state)
    assert errors(output) == []
    assert api.date_ranges() == each_stream(
        windows(daily_restart, "2025-03-16", 5), windows(hourly_restart, "2025-03-16", 5)
    )
    # Each stream's records start at its own restart (the days the API left out are zero rows).
    assert sorted(r["date"] for r in records(output, "daily")) == days(daily_restart, "2025-03-16")
    assert sorted(r["date"] for r in records(output, "hourly")) == sorted(
        days(hourly_restart, "2025-03-16") * 24
    )
    assert [r["hourStart"] for r in records(output, "hourly") if r["totalCount"]] == ["2025-03-12T05:00:00Z"]
    assert final_state(output, "daily") == {"date": "2025-03-16"}
    assert final_state(output, "hourly") == {"hourStart": "2025-03-16T23:00:00Z"}


def test_only_hourly_selected_ignores_a_stale_daily_state(api):
    """The issue's regression: a catalog of hourly alone, with an old state of the unselected daily
    stream, restarted hourly at daily's day and read ten months again. hourly restarts at its own
    cursor minus lookback_days (2025-03-04T05:00:00Z - 2 days), and daily's state is left alone."""
    api.serve(
        daily=daily_rows("2024-06-01", "2025-03-03", "2025-03-05"),
        hourly=hourly_rows("2024-06-01", "2025-03-01", "2025-03-03", "2025-03-05", hour=7),
    )
    state = make_state(daily={"date": "2024-06-01"}, hourly={"hourStart": "2025-03-04T05:00:00Z"})
    config = make_config(
        start_date="2024-01-01", end_date="2025-03-06", window_days=2, lookback_days=2, num_workers=1
    )
    output = run_read(config, streams=["hourly"], state=state)
    assert errors(output) == []
    # num_workers=1: the windows are read in order, the first at the restart.
    assert query(api.requests[0])["fromDate"] == ["2025-03-02"]
    assert api.date_ranges() == [
        ("2025-03-02", "2025-03-03"),
        ("2025-03-04", "2025-03-05"),
        ("2025-03-06", "2025-03-06"),
    ]
    assert sorted(r["date"] for r in records(output, "hourly")) == sorted(
        days("2025-03-02", "2025-03-06") * 24
    )
    assert sorted(r["hourStart"] for r in records(output, "hourly") if r["totalCount"]) == [
        "2025-03-03T07:00:00Z",
        "2025-03-05T07:00:00Z",
    ]
    assert records(output, "daily") == []
    assert final_state(output, "hourly") == {"hourStart": "2025-03-06T23:00:00Z"}
    # Re-read days never take the state back, and the unselected stream's state is not rewritten.
    assert all(blob["hourStart"] >= "2025-03-04T05:00:00Z" for blob in states(output, "hourly"))
    assert states(output, "daily") == []


def test_only_daily_selected_ignores_a_stale_hourly_state(api):
    """The mirror case: daily alone, the unselected hourly's state far behind."""
    api.serve(
        daily=daily_rows("2024-06-01", "2025-03-01", "2025-03-03", "2025-03-05"),
        hourly=hourly_rows("2024-06-01", "2025-03-03", "2025-03-05", hour=7),
    )
    state = make_state(daily={"date": "2025-03-04"}, hourly={"hourStart": "2024-06-01T05:00:00Z"})
    config = make_config(
        start_date="2024-01-01", end_date="2025-03-06", window_days=2, lookback_days=2, num_workers=1
    )
    output = run_read(config, streams=["daily"], state=state)
    assert errors(output) == []
    # num_workers=1: the windows are read in order, the first at the restart.
    assert query(api.requests[0])["fromDate"] == ["2025-03-02"]
    assert api.date_ranges() == [
        ("2025-03-02", "2025-03-03"),
        ("2025-03-04", "2025-03-05"),
        ("2025-03-06", "2025-03-06"),
    ]
    assert sorted(r["date"] for r in records(output, "daily")) == days("2025-03-02", "2025-03-06")
    assert sorted(r["date"] for r in records(output, "daily") if r["totalCount"]) == [
        "2025-03-03",
        "2025-03-05",
    ]
    assert records(output, "hourly") == []
    assert final_state(output, "daily") == {"date": "2025-03-06"}
    assert all(blob["date"] >= "2025-03-04" for blob in states(output, "daily"))
    assert states(output, "hourly") == []


@pytest.mark.parametrize("stale", ["daily", "hourly"])
def test_a_stale_state_drags_back_only_its_own_stream(api, stale):
    """Both selected, one cursor months behind the other: that stream re-reads its months, the
    other reads only its own lookback."""
    api.serve(daily=daily_rows("2025-03-05"), hourly=hourly_rows("2025-03-05", hour=7))
    cursors = {"daily": "2025-03-04", "hourly": "2025-03-04T05:00:00Z"}
    cursors[stale] = {"daily": "2024-06-01", "hourly": "2024-06-01T05:00:00Z"}[stale]
    state = make_state(daily={"date": cursors["daily"]}, hourly={"hourStart": cursors["hourly"]})
    config = make_config(start_date="2024-01-01", end_date="2025-03-06", window_days=30, lookback_days=2)
    output = run_read(config, streams=WINDOW_STREAMS, state=state)
    assert errors(output) == []
    stale_windows = windows("2024-05-30", "2025-03-06", 30)
    assert len(stale_windows) == 10
    assert api.date_ranges() == each_stream(stale_windows, [("2025-03-02", "2025-03-06")])
    assert final_state(output, "daily") == {"date": "2025-03-06"}
    assert final_state(output, "hourly") == {"hourStart": "2025-03-06T23:00:00Z"}


def test_lookback_never_reaches_before_start_date(api):
    api.serve()
    state = make_state(daily={"date": "2025-03-02"}, hourly={"hourStart": "2025-03-02T10:00:00Z"})
    config = make_config(start_date="2025-03-01", end_date="2025-03-06", window_days=3, lookback_days=30)
    output = run_read(config, streams=WINDOW_STREAMS, state=state)
    assert errors(output) == []
    assert api.date_ranges() == both(windows("2025-03-01", "2025-03-06", 3))


def test_state_before_start_date_starts_at_start_date(api):
    api.serve()
    state = make_state(daily={"date": "2024-06-01"}, hourly={"hourStart": "2024-06-01T10:00:00Z"})
    config = make_config(start_date="2025-03-01", end_date="2025-03-06", window_days=3)
    output = run_read(config, streams=WINDOW_STREAMS, state=state)
    assert errors(output) == []
    assert api.date_ranges() == both(windows("2025-03-01", "2025-03-06", 3))


def test_windows_the_api_leaves_empty_move_the_state_by_their_zero_rows(api):
    """Their days and hours are zero rows, emitted: the state follows them, checkpoint by
    checkpoint, to the range's last hour."""
    api.serve(daily=daily_rows("2025-03-02"), hourly=hourly_rows("2025-03-02", hour=13))
    config = make_config(end_date="2025-03-09", window_days=2, num_workers=1)
    output = run_read(config, streams=WINDOW_STREAMS)
    assert errors(output) == []
    checkpoints = [s["date"] for s in states(output, "daily")]  # the last one is repeated
    assert list(dict.fromkeys(checkpoints)) == [
        "2025-03-02",
        "2025-03-04",
        "2025-03-06",
        "2025-03-08",
        "2025-03-09",
    ]
    assert states(output, "hourly")[-1] == {"hourStart": "2025-03-09T23:00:00Z"}


def test_all_empty_windows_move_the_incoming_state_to_their_last_zero_row(api):
    api.serve()
    state = make_state(daily={"date": "2025-03-10"}, hourly={"hourStart": "2025-03-10T05:00:00Z"})
    config = make_config(start_date="2025-03-01", end_date="2025-03-20", window_days=5)
    output = run_read(config, streams=WINDOW_STREAMS, state=state)
    assert errors(output) == []
    assert api.date_ranges() == both(windows("2025-03-08", "2025-03-20", 5))
    assert sorted(r["date"] for r in records(output, "daily")) == days("2025-03-08", "2025-03-20")
    assert final_state(output, "daily") == {"date": "2025-03-20"}
    assert final_state(output, "hourly") == {"hourStart": "2025-03-20T23:00:00Z"}


@pytest.mark.parametrize(("stream", "cursor"), [("daily", "date"), ("hourly", "hourStart")])
def test_a_failed_window_holds_the_state_before_it(api, sleeps, stream, cursor):
    """A window that keeps failing (500 after every retry) between two that succeed: the stream's
    state stays at the data before the failed window, so the next sync reads it again."""
    dates = days("2025-03-01", "2025-03-06")

    def answer(request, context):
        q = query(request)
        low, high = q["fromDate"][0], q["toDate"][0]
        if low == "2025-03-03":
            context.status_code = 500
            context.headers["Retry-After"] = "0"
            return {"detail": "boom"}
        return {
            "allTime": stats(),
            "daily": [row for row in daily_rows(*dates) if low <= row["date"] <= high],
            "hourly": [row for row in hourly_rows(*dates) if low <= row["date"] <= high],
        }

    api.register(json=answer)
    config = make_config(end_date="2025-03-06", window_days=2, num_workers=1)
    output = run_read(config, streams=[stream], fails=True)
    assert [failure_type for failure_type, _ in errors(output)] == ["transient_error"]
    # The failed window: its first request and 6 retries.
    assert api.date_ranges() == [
        ("2025-03-01", "2025-03-02"),
        *[("2025-03-03", "2025-03-04")] * 7,
        ("2025-03-05", "2025-03-06"),
    ]
    emitted = ["2025-03-01", "2025-03-02", "2025-03-05", "2025-03-06"]
    if stream == "hourly":  # the API's 05:00 and the zero rows of the hours it left out
        emitted = [f"{day}T{hour:02d}:00:00Z" for day in emitted for hour in range(24)]
    held = {"daily": "2025-03-02", "hourly": "2025-03-02T23:00:00Z"}[
        stream
    ]  # the last cursor before the failed window
    assert sorted(r[cursor] for r in records(output, stream)) == emitted
    assert states(output, stream) and {blob[cursor] for blob in states(output, stream)} == {held}


def test_month_and_year_boundaries(api):
    dates = ["2024-12-20", "2024-12-31", "2025-01-01", "2025-01-09"]
    api.serve(daily=daily_rows(*dates), hourly=hourly_rows(*dates, hour=23))
    config = make_config(start_date="2024-12-20", end_date="2025-01-09", window_days=7)
    output = run_read(config, streams=WINDOW_STREAMS)
    assert errors(output) == []
    assert api.date_ranges() == [
        ("2024-12-20", "2024-12-26"),
        ("2024-12-20", "2024-12-26"),
        ("2024-12-27", "2025-01-02"),
        ("2024-12-27", "2025-01-02"),
        ("2025-01-03", "2025-01-09"),
        ("2025-01-03", "2025-01-09"),
    ]
    listed = [r for r in records(output, "daily") if r["totalCount"]]  # the others are zero rows
    assert sorted(r["date"] for r in listed) == dates
    listed = [r for r in records(output, "hourly") if r["totalCount"]]
    assert sorted(r["hourStart"] for r in listed) == [f"{d}T23:00:00Z" for d in dates]
    assert final_state(output, "daily") == {"date": "2025-01-09"}
    assert final_state(output, "hourly") == {"hourStart": "2025-01-09T23:00:00Z"}

    # The next sync with lookback across the year boundary.
    api.adapter.reset()
    config = make_config(start_date="2024-12-01", end_date="2025-01-13", window_days=2, lookback_days=10)
    next_state = make_state(daily={"date": "2025-01-02"}, hourly={"hourStart": "2025-01-02T23:00:00Z"})
    output = run_read(config, streams=WINDOW_STREAMS, state=next_state)
    assert errors(output) == []
    assert api.date_ranges() == both(windows("2024-12-23", "2025-01-13", 2))


def test_month_boundary_in_february_of_a_leap_year(api):
    api.serve(daily=daily_rows("2024-02-29"), hourly=hourly_rows("2024-02-29"))
    state = make_state(daily={"date": "2024-03-01"}, hourly={"hourStart": "2024-03-01T00:00:00Z"})
    config = make_config(start_date="2024-01-01", end_date="2024-03-04", window_days=2, lookback_days=2)
    output = run_read(config, streams=WINDOW_STREAMS, state=state)
    assert errors(output) == []
    assert api.date_ranges() == [
        ("2024-02-28", "2024-02-29"),
        ("2024-02-28", "2024-02-29"),
        ("2024-03-01", "2024-03-02"),
        ("2024-03-01", "2024-03-02"),
        ("2024-03-03", "2024-03-04"),
        ("2024-03-03", "2024-03-04"),
    ]
    # A re-read day older than the cursor is still emitted (lookback); the days the API left out
    # are zero rows, the last of them the state.
    assert [r["date"] for r in records(output, "daily") if r["totalCount"]] == ["2024-02-29"]
    assert sorted(r["date"] for r in records(output, "daily")) == days("2024-02-28", "2024-03-04")
    assert final_state(output, "daily") == {"date": "2024-03-04"}
    assert final_state(output, "hourly") == {"hourStart": "2024-03-04T23:00:00Z"}


def test_a_future_end_date_stops_the_windows_and_the_state_at_today(api):
    """end_date may be later than today (a bounded backfill), and an API may list the days to come
    with zeros: the windows and the state stop at today (UTC), so the next sync reads those days."""
    for _ in range(2):  # again if the test ran across an hour boundary
        now = datetime.now(UTC)
        today = now.date()
        start, end = today - timedelta(days=5), today + timedelta(days=20)
        every_day = days(start.isoformat(), end.isoformat())
        api.adapter.reset()
        api.serve(daily=daily_rows(*every_day), hourly=hourly_rows(*every_day))
        config = make_config(start_date=start.isoformat(), end_date=end.isoformat(), window_days=3)
        output = run_read(config, streams=WINDOW_STREAMS)
        if datetime.now(UTC).strftime("%Y%m%d%H") == now.strftime("%Y%m%d%H"):
            break
    assert errors(output) == []
    assert api.date_ranges() == both(windows(start.isoformat(), today.isoformat(), 3))
    until_today = days(start.isoformat(), today.isoformat())
    # Sorted: the windows are read concurrently.
    assert sorted(record["date"] for record in records(output, "daily")) == until_today
    assert sorted({record["date"] for record in records(output, "hourly")}) == until_today
    assert final_state(output, "daily") == {"date": today.isoformat()}
    # Today's 05:00, or the zero row of the current hour (of those the API left out) when later.
    assert final_state(output, "hourly") == {"hourStart": f"{today}T{max(5, now.hour):02d}:00:00Z"}


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
    # Only the stream without a future state sends requests: its own windows, once each.
    assert api.date_ranges() == (windows("2025-03-01", "2025-03-05", 3) if others else [])


@pytest.mark.parametrize(
    ("stream", "blob", "shown"),
    [
        ("daily", {"date": "yesterday"}, "date='yesterday'"),
        ("daily", {"date": "2025-03-04T00:00:00Z"}, "date='2025-03-04T00:00:00Z'"),
        ("daily", {"date": 20250304}, "date=20250304"),
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


@pytest.mark.parametrize(
    ("stream", "blob", "holds"),
    [
        ("daily", {"cursor": "2025-03-04"}, "cursor"),
        # Up to 0.4.0 concurrency's cursor was the API's `timestamp`; 0.5.0 emits it as bucketStart.
        ("concurrency", {"timestamp": "2025-03-04T05:00:00Z"}, "timestamp"),
    ],
)
def test_a_state_without_the_cursor_asks_for_a_refresh_before_any_request(api, stream, blob, holds):
    api.serve()
    output = run_read(make_config(), state=make_state(**{stream: blob}), fails=True)
    cursor = {"daily": "date", "concurrency": "bucketStart"}[stream]
    assert errors(output) == [
        (
            "config_error",
            f"The saved state of stream {stream} has no {cursor} cursor (it holds {holds}): it was "
            f"written by an older version of the connector. Refresh the {stream} stream (clear its "
            "data and state) and sync again.",
        )
    ]
    assert api.call_count == 0
    assert output.records == []


def test_an_old_concurrency_state_stops_a_sync_that_does_not_select_concurrency(api):
    # The CDK builds every stream with its state, and PyAirbyte sends every stored state: the
    # migration guide says so (a full refresh of concurrency alone sends none).
    api.serve(daily=daily_rows("2025-03-02"))
    state = make_state(concurrency={"timestamp": "2025-03-04T05:00:00Z"})
    output = run_read(make_config(), streams=["daily"], state=state, fails=True)
    [(failure_type, message)] = errors(output)
    assert failure_type == "config_error"
    assert message.startswith("The saved state of stream concurrency has no bucketStart cursor")
    assert api.call_count == 0


def test_the_cdk_full_refresh_marker_is_no_state(api):
    """A stream synced in full refresh mode saves the CDK's marker: the next sync reads from start_date."""
    api.serve(daily=daily_rows("2025-03-02"))
    output = run_read(
        make_config(window_days=5),
        streams=["daily"],
        state=make_state(daily={"__ab_no_cursor_state_message": True}),
    )
    assert errors(output) == []
    assert api.date_ranges() == windows("2025-03-01", "2025-03-05", 5)
