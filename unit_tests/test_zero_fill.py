"""A bucket the API leaves out is a zero row (issue 15, point 4): daily, hourly and billingDaily
emit one for every day, and every hour, of a read window up to now that the API did not list, as
the API's own zero mode lists it. An API that leaves out empty buckets also leaves out a bucket
whose calls were deleted since the last sync, and only a row for it overwrites the figures that
sync wrote. Never a bucket after now (the connector's UTC clock, or the API's Date header when it
is earlier), never a day outside the request."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

from unit_tests.conftest import (
    BILLING_URL,
    days,
    errors,
    final_state,
    make_config,
    make_state,
    query,
    records,
    run_read,
    stats,
    zero_day,
    zero_hour,
)

WINDOW_STREAMS = ["daily", "hourly"]


def daily_row(day: str, **figures: Any) -> dict[str, Any]:
    return {**stats(**figures), "date": day}


def hourly_row(day: str, hour: int, **figures: Any) -> dict[str, Any]:
    return {**stats(**figures), "date": day, "hour": hour}


def as_daily(row: dict[str, Any]) -> dict[str, Any]:
    """The record the connector writes for an API row of daily."""
    return {**row, "durationSeconds": float(row["duration"].removesuffix("s"))}


def as_hourly(row: dict[str, Any]) -> dict[str, Any]:
    return {**as_daily(row), "hourStart": f"{row['date']}T{row['hour']:02d}:00:00Z"}


def zero_days(first: str, last: str) -> list[dict[str, Any]]:
    return [zero_day(day) for day in days(first, last)]


def zero_hours(day: str, hours: range = range(24)) -> list[dict[str, Any]]:
    return [zero_hour(day, hour) for hour in hours]


def by_bucket(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (r["date"], r.get("hour", -1)))


def window_queries(api) -> list[dict[str, list[str]]]:
    return sorted((query(r) for r in api.requests), key=lambda q: sorted(q.items()))


def bill(day: str, minutes: float = 12.5, sip: float = 2.0) -> dict[str, Any]:
    return {"date": day, "minutes": minutes, "sipMinutes": sip}


def zero_bill(day: str) -> dict[str, Any]:
    return {"date": day, "minutes": 0.0, "sipMinutes": 0.0}


def serve_bill(api, rows: list[dict[str, Any]]) -> None:
    """The days of `rows` from fromDate up to, not including, toDate."""

    def answer(request, context) -> dict[str, Any]:
        q = query(request)
        inside = [r for r in rows if q["fromDate"][0] <= r["date"] < q["toDate"][0]]
        return {
            "dailyUsage": inside,
            "totalMinutes": sum(r["minutes"] for r in inside),
            "totalSipMinutes": sum(r["sipMinutes"] for r in inside),
        }

    api.register(url=BILLING_URL, json=answer)


def within_one_hour(read: Callable[[], Any]) -> tuple[Any, datetime]:
    """read() and the UTC clock it ran at, read again if it ran across an hour boundary: the
    buckets up to now are then the same for the test and for the connector."""
    for _ in range(3):
        before = datetime.now(UTC)
        result = read()
        if datetime.now(UTC).replace(minute=0, second=0, microsecond=0) == before.replace(
            minute=0, second=0, microsecond=0
        ):
            return result, before
    raise AssertionError("three reads in a row ran across an hour boundary")


def test_days_and_hours_the_api_left_out_are_zero_rows(api):
    day1, day3 = daily_row("2025-03-02", total=4), hourly_row("2025-03-02", 5, total=4)
    api.serve(daily=[day1], hourly=[day3])
    output = run_read(make_config(start_date="2025-03-01", end_date="2025-03-03"), streams=WINDOW_STREAMS)
    assert errors(output) == []
    assert window_queries(api) == [{"fromDate": ["2025-03-01"], "toDate": ["2025-03-03"]}] * 2
    assert by_bucket(records(output, "daily")) == [
        *zero_days("2025-03-01", "2025-03-01"),
        as_daily(day1),
        *zero_days("2025-03-03", "2025-03-03"),
    ]
    assert by_bucket(records(output, "hourly")) == [
        *zero_hours("2025-03-01"),
        *zero_hours("2025-03-02", range(5)),
        as_hourly(day3),
        *zero_hours("2025-03-02", range(6, 24)),
        *zero_hours("2025-03-03"),
    ]
    # Every bucket of the window was emitted: the state is the window's last one.
    assert final_state(output, "daily") == {"date": "2025-03-03"}
    assert final_state(output, "hourly") == {"hourStart": "2025-03-03T23:00:00Z"}


def test_a_window_ending_today_fills_up_to_the_current_hour_and_no_further(api):
    api.serve()  # the API lists nothing at all

    def read() -> tuple[Any, date]:
        api.adapter.reset()
        today = datetime.now(UTC).date()
        config = make_config(start_date=(today - timedelta(days=1)).isoformat(), end_date=today.isoformat())
        return run_read(config, streams=WINDOW_STREAMS), today

    (output, today), now = within_one_hour(read)
    yesterday = (today - timedelta(days=1)).isoformat()
    assert errors(output) == []
    assert window_queries(api) == [{"fromDate": [yesterday], "toDate": [today.isoformat()]}] * 2
    assert by_bucket(records(output, "daily")) == zero_days(yesterday, today.isoformat())
    assert by_bucket(records(output, "hourly")) == [
        *zero_hours(yesterday),
        *zero_hours(today.isoformat(), range(now.hour + 1)),
    ]
    assert final_state(output, "daily") == {"date": today.isoformat()}
    assert final_state(output, "hourly") == {"hourStart": f"{today}T{now.hour:02d}:00:00Z"}


def test_no_zero_row_after_the_clock_of_the_apis_date_header(api):
    """The API's clock may be behind the connector's: a bucket it has not reached yet is not one it
    left out. Its day and hour are UTC's whatever offset the header writes; a Date header that
    does not parse is no clock."""
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    said = datetime.combine(yesterday, datetime.min.time(), UTC) + timedelta(hours=22, minutes=15)
    body = {"allTime": stats(), "daily": [], "hourly": []}
    config = make_config(start_date=yesterday.isoformat(), end_date=today.isoformat())
    for header in (
        format_datetime(said, usegmt=True),
        format_datetime(said.astimezone(timezone(timedelta(hours=2)))),
    ):
        api.adapter.reset()
        api.register(json=body, headers={"Date": header})
        output = run_read(config.copy(), streams=WINDOW_STREAMS)
        assert errors(output) == []
        assert by_bucket(records(output, "daily")) == zero_days(yesterday.isoformat(), yesterday.isoformat())
        assert by_bucket(records(output, "hourly")) == zero_hours(yesterday.isoformat(), range(23))
        assert final_state(output, "hourly") == {"hourStart": f"{yesterday}T22:00:00Z"}

    api.adapter.reset()
    api.register(json=body, headers={"Date": "yesterday, late"})
    output = run_read(config.copy(), streams=["daily"])
    assert by_bucket(records(output, "daily")) == zero_days(yesterday.isoformat(), today.isoformat())


def test_a_day_left_out_when_read_again_in_the_lookback_is_a_zero_row(api):
    """Its calls were deleted since the last sync: the API now leaves the day out, and its row,
    with the figures the last sync wrote, is overwritten by a zero row."""
    kept = [daily_row("2025-03-02", total=2), daily_row("2025-03-04", total=5)]
    kept_hours = [hourly_row("2025-03-02", 9, total=2), hourly_row("2025-03-04", 7, total=5)]
    api.serve(daily=kept, hourly=kept_hours)  # 2025-03-03 had figures; now it is left out
    state = make_state(daily={"date": "2025-03-04"}, hourly={"hourStart": "2025-03-04T23:00:00Z"})
    config = make_config(start_date="2025-01-01", end_date="2025-03-04", lookback_days=2)
    output = run_read(config, streams=WINDOW_STREAMS, state=state)
    assert errors(output) == []
    assert window_queries(api) == [{"fromDate": ["2025-03-02"], "toDate": ["2025-03-04"]}] * 2
    assert by_bucket(records(output, "daily")) == [
        as_daily(kept[0]),
        *zero_days("2025-03-03", "2025-03-03"),
        as_daily(kept[1]),
    ]
    # Every hour of the window's days, as the API's zero mode lists them.
    assert by_bucket(records(output, "hourly")) == [
        *zero_hours("2025-03-02", range(9)),
        as_hourly(kept_hours[0]),
        *zero_hours("2025-03-02", range(10, 24)),
        *zero_hours("2025-03-03"),
        *zero_hours("2025-03-04", range(7)),
        as_hourly(kept_hours[1]),
        *zero_hours("2025-03-04", range(8, 24)),
    ]
    assert final_state(output, "daily") == {"date": "2025-03-04"}
    assert final_state(output, "hourly") == {"hourStart": "2025-03-04T23:00:00Z"}


def test_billing_days_left_out_are_zero_rows_up_to_today_only(api):
    """toDate is exclusive: the window's last day is the day before it, and today's window asks
    for tomorrow, which is never filled."""
    today = datetime.now(UTC).date()
    first = today - timedelta(days=3)
    billed = bill((today - timedelta(days=2)).isoformat())
    serve_bill(api, [billed])
    output = run_read(
        make_config(start_date=first.isoformat(), end_date=today.isoformat()), streams=["billingDaily"]
    )
    if datetime.now(UTC).date() != today:  # ran across midnight: the last window ended on "yesterday"
        return
    assert errors(output) == []
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert window_queries(api) == [{"fromDate": [first.isoformat()], "toDate": [tomorrow]}]
    # The API's days, then those it left out.
    assert records(output, "billingDaily") == [
        billed,
        zero_bill(first.isoformat()),
        zero_bill((today - timedelta(days=1)).isoformat()),
        zero_bill(today.isoformat()),
    ]
    assert final_state(output, "billingDaily") == {"date": today.isoformat()}


def test_a_billing_day_left_out_when_read_again_in_the_lookback_is_a_zero_row(api):
    serve_bill(api, [bill("2025-03-03"), bill("2025-03-05", 1.5, 0.0)])  # 2025-03-04: left out now
    state = make_state(billingDaily={"date": "2025-03-05"})
    config = make_config(start_date="2025-01-01", end_date="2025-03-05", lookback_days=2)
    output = run_read(config, streams=["billingDaily"], state=state)
    assert errors(output) == []
    assert window_queries(api) == [{"fromDate": ["2025-03-03"], "toDate": ["2025-03-06"]}]
    assert records(output, "billingDaily") == [
        bill("2025-03-03"),
        bill("2025-03-05", 1.5, 0.0),
        zero_bill("2025-03-04"),
    ]
    assert final_state(output, "billingDaily") == {"date": "2025-03-05"}
