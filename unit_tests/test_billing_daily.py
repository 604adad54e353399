"""billingDaily: GET /accounts/me/billing/usage, one record per UTC day of the bill. Its toDate is
exclusive and at most 90 days after fromDate: windows are at most 90 days whatever window_days
says, and no day falls between two windows."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

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
)


def bill_day(day: str, minutes: float = 12.5, sip: float = 2.0, **extra) -> dict:
    return {"date": day, "minutes": minutes, "sipMinutes": sip, **extra}


def serve(api, rows: list[dict]) -> None:
    """Answer as the API does: days from fromDate up to, not including, toDate; over 90 days a 400."""

    def answer(request, context):
        q = query(request)
        low, high = date.fromisoformat(q["fromDate"][0]), date.fromisoformat(q["toDate"][0])
        if not low < high <= low + timedelta(days=90):
            context.status_code = 400
            return {"detail": "toDate must be after fromDate and at most 90 days after it."}
        inside = [r for r in rows if low.isoformat() <= r["date"] < high.isoformat()]
        return {
            "dailyUsage": inside,
            "totalMinutes": sum(r["minutes"] for r in inside),
            "totalSipMinutes": sum(r["sipMinutes"] for r in inside),
        }

    api.register(url=BILLING_URL, json=answer)


def read(config=None, **kwargs):
    return run_read(config or make_config(), streams=["billingDaily"], **kwargs)


def test_one_record_per_day_of_the_bill(api):
    serve(api, [bill_day("2025-03-01"), bill_day("2025-03-05", 1.5, 0.0, currency="USD")])
    output = read()
    assert errors(output) == []
    # The API's days, then a zero day for each day it left out.
    assert records(output, "billingDaily") == [
        bill_day("2025-03-01"),
        bill_day("2025-03-05", 1.5, 0.0, currency="USD"),
        *(bill_day(d, 0.0, 0.0) for d in days("2025-03-02", "2025-03-04")),
    ]
    assert final_state(output, "billingDaily") == {"date": "2025-03-05"}


def test_to_date_is_the_day_after_the_window_and_no_call_filter_is_sent(api):
    serve(api, [])
    config = make_config(
        start_date="2025-03-01", end_date="2025-03-10", window_days=4, search="x", voice_id=None
    )
    output = read(config)
    assert errors(output) == []
    assert sorted(sorted(query(r).items()) for r in api.requests) == [
        [("fromDate", ["2025-03-01"]), ("toDate", ["2025-03-05"])],
        [("fromDate", ["2025-03-05"]), ("toDate", ["2025-03-09"])],
        [("fromDate", ["2025-03-09"]), ("toDate", ["2025-03-11"])],
    ]


@pytest.mark.parametrize("window_days", [90, 91, 180, 366])
def test_windows_are_at_most_90_days_whatever_window_days_says(api, window_days):
    every = [bill_day(d, minutes=i) for i, d in enumerate(days("2024-01-01", "2024-12-31"))]
    serve(api, every)
    output = read(make_config(start_date="2024-01-01", end_date="2024-12-31", window_days=window_days))
    assert errors(output) == []
    windows = api.date_ranges()
    assert all(
        date.fromisoformat(high) - date.fromisoformat(low) <= timedelta(days=90) for low, high in windows
    )
    # Gap-free and without overlap: each window's exclusive end is the next one's start.
    assert windows[0][0] == "2024-01-01" and windows[-1][1] == "2025-01-01"
    assert all(windows[i][1] == windows[i + 1][0] for i in range(len(windows) - 1))
    assert len(windows) == -(-366 // 90)
    assert sorted(records(output, "billingDaily"), key=lambda r: r["date"]) == every


def test_a_one_day_sync_asks_for_that_day_only(api):
    serve(api, [bill_day("2025-03-04"), bill_day("2025-03-05")])
    output = read(make_config(start_date="2025-03-04", end_date="2025-03-04"))
    assert api.date_ranges() == [("2025-03-04", "2025-03-05")]
    assert [r["date"] for r in records(output, "billingDaily")] == ["2025-03-04"]


def test_incremental_restarts_at_its_own_cursor_minus_lookback(api):
    serve(api, [bill_day("2025-03-03"), bill_day("2025-03-05")])
    state = make_state(billingDaily={"date": "2025-03-04"})
    output = read(make_config(start_date="2025-01-01", end_date="2025-03-05", lookback_days=1), state=state)
    assert api.date_ranges() == [("2025-03-03", "2025-03-06")]
    assert [r["date"] for r in records(output, "billingDaily")] == ["2025-03-03", "2025-03-05", "2025-03-04"]
    assert final_state(output, "billingDaily") == {"date": "2025-03-05"}


def test_a_one_day_window_that_times_out_is_retried_not_split(api, sleeps):
    api.register(
        url=BILLING_URL,
        response_list=[
            {"status_code": 504, "headers": {"Retry-After": "0"}},
            {"json": {"dailyUsage": [bill_day("2025-03-04")], "totalMinutes": 12.5, "totalSipMinutes": 2.0}},
        ],
    )
    output = read(make_config(start_date="2025-03-04", end_date="2025-03-04"))
    assert errors(output) == []
    assert api.date_ranges() == [("2025-03-04", "2025-03-05")] * 2


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"dailyUsage": []}, "its top-level keys are ['dailyUsage']"),
        ({"dailyUsage": {}, "totalMinutes": 0, "totalSipMinutes": 0}, "its dailyUsage is a JSON dict"),
        ({"dailyUsage": [], "totalMinutes": "0", "totalSipMinutes": 0}, "its totalMinutes is a JSON str"),
    ],
)
def test_a_body_of_another_shape_is_a_system_error_naming_the_endpoint(api, body, why):
    api.register(url=BILLING_URL, json=body)
    output = read(fails=True)
    [(failure_type, message)] = errors(output)
    assert failure_type == "system_error"
    assert message == (
        f"Ultravox answered {BILLING_URL} with a body the connector does not expect "
        f"(it expects a JSON object with dailyUsage, totalMinutes and totalSipMinutes): {why}."
    )


def test_negative_minutes_sync_as_sent(api):
    # The published schema sets no minimum on minutes.
    rows = [
        bill_day("2025-03-01", minutes=-1.0, sip=-0.5),
        bill_day("2025-03-02", minutes=-0.1, sip=0.0),
        bill_day("2025-03-03", minutes=4.5, sip=0.0),
    ]
    api.register(url=BILLING_URL, json={"dailyUsage": rows, "totalMinutes": 3.4, "totalSipMinutes": -0.5})
    output = read()
    assert errors(output) == []
    assert records(output, "billingDaily") == [
        {"date": "2025-03-01", "minutes": -1.0, "sipMinutes": -0.5},
        {"date": "2025-03-02", "minutes": -0.1, "sipMinutes": 0.0},
        {"date": "2025-03-03", "minutes": 4.5, "sipMinutes": 0.0},
        # The days the API left out, as zero rows.
        {"minutes": 0.0, "sipMinutes": 0.0, "date": "2025-03-04"},
        {"minutes": 0.0, "sipMinutes": 0.0, "date": "2025-03-05"},
    ]
    assert final_state(output, "billingDaily") == {"date": "2025-03-05"}


@pytest.mark.parametrize(
    ("bad", "field", "shown", "expected"),
    [
        ({"date": "2025-03-01", "sipMinutes": 0.0}, "minutes", "None", "a number"),
        (bill_day("2025-03-01", minutes="-1"), "minutes", "'-1'", "a number"),
        (bill_day("2025-03-01", minutes=True), "minutes", "True", "a number"),
        (bill_day("2025-03-01", sip=None), "sipMinutes", "None", "a number"),
        ({"date": "2025-03-01", "minutes": 1.0}, "sipMinutes", "None", "a number"),
        ({"minutes": 1.0, "sipMinutes": 0.0}, "date", "None", "a YYYY-MM-DD date"),
        (bill_day("01/03/2025"), "date", "'01/03/2025'", "a YYYY-MM-DD date"),
    ],
)
def test_a_missing_field_or_a_wrong_type_is_a_system_error_quoting_it(api, bad, field, shown, expected):
    api.register(url=BILLING_URL, json={"dailyUsage": [bad], "totalMinutes": 0, "totalSipMinutes": 0})
    output = read(fails=True)
    assert errors(output) == [
        (
            "system_error",
            f"Ultravox sent a billingDaily record whose {field} is {shown}, not {expected}. "
            "The connector stops rather than guess; please report this response shape.",
        )
    ]
    assert records(output, "billingDaily") == []
