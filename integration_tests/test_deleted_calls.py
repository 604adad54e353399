"""Calls deleted after a sync (issue 15, point 4), against the sandbox: the console script reads an
API that leaves empty days and hours out; a day whose calls are all deleted is then left out when
the next sync reads it again, and only the zero rows the connector writes for it replace the
figures the first sync wrote."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import requests

from integration_tests.cli import configured_catalog, run_cli
from integration_tests.test_end_to_end import (
    assert_ok,
    assert_stream_equals,
    by_pk,
    config_for,
    dates,
    logged_ranges,
    strip_added,
    written,
)
from integration_tests.test_usage_picture import assert_equals, billing_truth
from ultravox_sandbox import SANDBOX_API_KEY, Sandbox

STREAMS = ("daily", "hourly", "billingDaily")


def test_a_day_whose_calls_were_deleted_is_zeroed_by_the_next_sync(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    box = make_sandbox(empty_buckets="omit", billing_empty_days="omit")  # now: 2025-03-04 15:55
    start, today, doomed = date(2025, 2, 20), box.now.date(), date(2025, 3, 3)
    config = config_for(box, start, today)  # lookback_days 2
    catalog = configured_catalog(STREAMS)
    first = run_cli("read", config, catalog)
    assert_ok(first)
    assert any(r["date"] == doomed.isoformat() and r["totalCount"] for r in first.records("daily"))

    calls = [c for c in box.calls if c.created.date() == doomed]
    assert calls and all(c.ended <= box.now for c in calls)
    for call in calls:
        deleted = requests.delete(
            f"{box.url}/calls/{call.call_id}", headers={"X-API-Key": SANDBOX_API_KEY}, timeout=5
        )
        assert deleted.status_code == 204
    box.clear_log()
    box.advance(timedelta(hours=3))
    second = run_cli("read", config, catalog, first.last_state())
    assert_ok(second)

    # The API now leaves the day out of every answer.
    assert doomed.isoformat() not in [r["date"] for r in box.ground_truth(dates(doomed, doomed))["daily"]]
    assert box.billing_truth(dates(doomed, doomed + timedelta(days=1)))["dailyUsage"] == []
    # Each stream read again from its cursor (today) - 2 days, billing's toDate the day after.
    resume = today - timedelta(days=2)
    assert sorted(logged_ranges(box)) == sorted(
        [(resume.isoformat(), today.isoformat())] * 2
        + [(resume.isoformat(), (today + timedelta(days=1)).isoformat())]
    )
    # The second sync's records: every day and hour from the restart, the deleted day's as zeros.
    reread = written(box, dates(resume, today))
    assert_stream_equals(second, "daily", reread["daily"])
    assert_stream_equals(second, "hourly", reread["hourly"])
    assert_equals(second, "billingDaily", billing_truth(box, resume, today))
    zero_day = by_pk("daily", [strip_added("daily", r) for r in second.records("daily")])[
        (doomed.isoformat(),)
    ]
    assert zero_day == {
        "totalCount": 0,
        "errorCount": 0,
        "duration": "0s",
        "joinedCount": 0,
        "billedMinutes": 0.0,
        "date": doomed.isoformat(),
    }
    # Deduped on the primary key, later record winning: the tables are the truth.
    final = written(box, dates(start, today))
    for stream in ("daily", "hourly"):
        table = by_pk(
            stream, [strip_added(stream, r) for r in first.records(stream) + second.records(stream)]
        )
        assert table == by_pk(stream, final[stream]), stream
    bill = by_pk("billingDaily", first.records("billingDaily") + second.records("billingDaily"))
    assert bill == by_pk("billingDaily", billing_truth(box, start, today))
    assert bill[(doomed.isoformat(),)] == {"date": doomed.isoformat(), "minutes": 0.0, "sipMinutes": 0.0}
