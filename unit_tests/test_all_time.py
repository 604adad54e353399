"""allTime over a range Ultravox refuses as too large: the field-by-field sum of the range read in
windows (RangeTotalsRetriever), and the range its record says it covers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from unit_tests.conftest import (
    errors,
    make_config,
    query,
    records,
    run_read,
    states,
    stats,
    usage_body,
)

TOO_LARGE = {"detail": "Date range too large"}


def by_first_day(first: str, last: str) -> dict:
    """Figures that differ from window to window (n = the first day of the month): windows that all
    answer the same totals are a lifetime allTime, which is kept, not summed."""
    n = int(first[-2:])
    return stats(n, 0, n, f"{n}s", n / 2)


def serve_refusing_ranges_over(api, limit_days: int, figures) -> None:
    """400 for a fromDate..toDate of more than limit_days days; else allTime = figures(from, to)."""

    def answer(request, context):
        q = query(request)
        first, last = q["fromDate"][0], q["toDate"][0]
        span = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).days + 1
        if span > limit_days:
            context.status_code = 400
            return TOO_LARGE
        return {"allTime": figures(first, last), "daily": [], "hourly": []}

    api.register(json=answer)


def ranges_in_order(api) -> list[tuple[str, str, int]]:
    """(fromDate, toDate, status) of every request, in the order sent: allTime reads one at a time."""
    return [(query(r)["fromDate"][0], query(r)["toDate"][0]) for r in api.requests]


def log_lines(output) -> list[str]:
    return [m.log.message for m in output.logs if m.log.message.startswith("allTime:")]


def test_a_range_refused_as_too_large_is_the_sum_of_its_windows(api):
    # Each window's figures differ, so a lost or doubled window shows in every field.
    figures = {
        ("2025-01-01", "2025-01-30"): stats(10, 1, 8, "600.5s", 12.1),
        ("2025-01-31", "2025-03-01"): stats(20, 2, 15, "1200.25s", 0.2),
        ("2025-03-02", "2025-03-31"): stats(5, 0, 5, "0.125s", 0.1),
    }
    serve_refusing_ranges_over(api, 45, lambda first, last: figures[(first, last)])
    output = run_read(
        make_config(start_date="2025-01-01", end_date="2025-03-31", window_days=30), ["allTime"]
    )

    assert errors(output) == []
    assert ranges_in_order(api) == [("2025-01-01", "2025-03-31"), *figures]
    # Exact decimal sums: 12.1 + 0.2 + 0.1 is 12.4, not 12.399999999999999; durations as the API writes them.
    assert records(output, "allTime") == [
        {
            "totalCount": 35,
            "errorCount": 3,
            "joinedCount": 28,
            "duration": "1800.875s",
            "durationSeconds": 1800.875,
            "billedMinutes": 12.4,
            "fromDate": "2025-01-01",
            "toDate": "2025-03-31",
        }
    ]
    assert log_lines(output) == [
        "allTime: Ultravox refused the date range 2025-01-01..2025-03-31 as too large (HTTP 400). "
        "Summing the range from windows of at most 30 days instead."
    ]
    assert states(output, "allTime") == [{"__ab_no_cursor_state_message": True}]


def test_a_window_still_refused_halves_the_width_of_the_windows_after_it(api):
    serve_refusing_ranges_over(api, 20, by_first_day)
    config = make_config(start_date="2025-01-01", end_date="2025-02-15", window_days=30)
    output = run_read(config, ["allTime"])

    assert errors(output) == []
    assert ranges_in_order(api) == [
        ("2025-01-01", "2025-02-15"),
        ("2025-01-01", "2025-01-30"),
        ("2025-01-01", "2025-01-15"),
        ("2025-01-16", "2025-01-30"),
        ("2025-01-31", "2025-02-14"),
        ("2025-02-15", "2025-02-15"),
    ]
    assert records(output, "allTime") == [
        {
            # Windows starting on the 1st, 16th, 31st and 15th.
            "totalCount": 63,
            "errorCount": 0,
            "joinedCount": 63,
            "duration": "63s",
            "durationSeconds": 63.0,
            "billedMinutes": 31.5,
            "fromDate": "2025-01-01",
            "toDate": "2025-02-15",
        }
    ]
    assert log_lines(output)[1:] == [
        "allTime: Ultravox refused the date range 2025-01-01..2025-01-30 as too large (HTTP 400). "
        "Reading windows of at most 15 days."
    ]


def test_an_all_time_that_ignores_the_dates_is_kept_not_summed(api):
    """If allTime is the lifetime total (API-NOTES leaves it open), every window answers the same
    totals: summing them would multiply it by the number of windows."""
    serve_refusing_ranges_over(api, 20, lambda first, last: stats(7, 1, 6, "70.5s", 3.5))
    config = make_config(start_date="2025-01-01", end_date="2025-02-15", window_days=30)
    output = run_read(config, ["allTime"])
    assert errors(output) == []
    assert records(output, "allTime") == [
        {
            **stats(7, 1, 6, "70.5s", 3.5),
            "durationSeconds": 70.5,
            "fromDate": "2025-01-01",
            "toDate": "2025-02-15",
        }
    ]
    assert log_lines(output)[-1] == (
        "allTime: every window answered the same totals, so they are not dated: kept, not summed."
    )


def test_a_single_day_refused_is_a_config_error_naming_it(api):
    serve_refusing_ranges_over(api, 0, lambda first, last: stats())
    output = run_read(
        make_config(start_date="2025-03-01", end_date="2025-03-02", window_days=1), ["allTime"], fails=True
    )
    assert records(output, "allTime") == []
    assert ranges_in_order(api) == [("2025-03-01", "2025-03-02"), ("2025-03-01", "2025-03-01")]
    assert errors(output) == [
        (
            "config_error",
            "Ultravox refused allTime's range even one day at a time (2025-03-01): Ultravox refused the "
            "date range 2025-03-01..2025-03-01 as too large (HTTP 400). Narrow start_date..end_date or "
            "the filters.",
        )
    ]


def test_fields_the_sum_does_not_know_are_left_out(api):
    # A figure the API may add later cannot be assumed to add up (an average would not).
    serve_refusing_ranges_over(
        api, 1, lambda first, last: stats(int(first[-1]), 0, 1, f"{first[-1]}.5s", 1, averageSeconds=2.5)
    )
    output = run_read(make_config(start_date="2025-03-01", end_date="2025-03-02", window_days=1), ["allTime"])
    assert records(output, "allTime") == [
        {
            "totalCount": 3,
            "errorCount": 0,
            "joinedCount": 2,
            "duration": "4s",
            "durationSeconds": 4.0,
            # Integers from the API stay integers.
            "billedMinutes": 2,
            "fromDate": "2025-03-01",
            "toDate": "2025-03-02",
        }
    ]


def test_a_future_end_date_reads_and_reports_up_to_today(api):
    api.register(json=usage_body())
    today = datetime.now(UTC).date()
    start, end = (today - timedelta(days=3)).isoformat(), (today + timedelta(days=20)).isoformat()
    output = run_read(make_config(start_date=start, end_date=end), ["allTime"])
    assert errors(output) == []
    assert ranges_in_order(api) == [(start, today.isoformat())]
    assert [(r["fromDate"], r["toDate"]) for r in records(output, "allTime")] == [(start, today.isoformat())]


def test_a_range_within_one_window_is_read_in_halves_not_asked_again(api):
    serve_refusing_ranges_over(api, 5, by_first_day)
    output = run_read(
        make_config(start_date="2025-03-01", end_date="2025-03-10", window_days=30), ["allTime"]
    )
    assert errors(output) == []
    assert ranges_in_order(api) == [
        ("2025-03-01", "2025-03-10"),
        ("2025-03-01", "2025-03-05"),
        ("2025-03-06", "2025-03-10"),
    ]
    assert [r["totalCount"] for r in records(output, "allTime")] == [1 + 6]


def test_a_range_the_api_times_out_on_is_summed_from_windows(api, sleeps):
    def answer(request, context):
        q = query(request)
        if (q["fromDate"][0], q["toDate"][0]) == ("2025-01-01", "2025-02-15"):
            context.status_code = 504
            return {"detail": "Gateway Timeout"}
        return usage_body(by_first_day(q["fromDate"][0], q["toDate"][0]))

    api.register(json=answer)
    output = run_read(
        make_config(start_date="2025-01-01", end_date="2025-02-15", window_days=30), ["allTime"]
    )
    assert errors(output) == []
    assert ranges_in_order(api) == [
        ("2025-01-01", "2025-02-15"),
        ("2025-01-01", "2025-01-30"),
        ("2025-01-31", "2025-02-15"),
    ]
    assert sleeps == []
    assert [r["totalCount"] for r in records(output, "allTime")] == [1 + 31]
    assert log_lines(output) == [
        "allTime: Ultravox timed out on the date range 2025-01-01..2025-02-15 (HTTP 504). "
        "Summing the range from windows of at most 30 days instead."
    ]


@pytest.mark.parametrize("empty_window", [None, ("2025-03-02", "2025-03-02")])
def test_an_empty_all_time_object_is_a_system_error_not_zeros(api, empty_window):
    """An answer whose allTime is {} has no totals: never a silent empty sync, never a sum that
    leaves a window out."""
    limit = 1 if empty_window else 30

    def figures(first, last):
        return {} if (empty_window is None or (first, last) == empty_window) else stats()

    serve_refusing_ranges_over(api, limit, figures)
    output = run_read(
        make_config(start_date="2025-03-01", end_date="2025-03-03", window_days=1), ["allTime"], fails=True
    )
    first, last = empty_window or ("2025-03-01", "2025-03-03")
    assert records(output, "allTime") == []
    assert errors(output) == [
        (
            "system_error",
            f"Ultravox's answer for allTime {first}..{last} holds no totals (its allTime object is "
            "empty). The connector stops rather than report zeros; please report this response shape.",
        )
    ]
