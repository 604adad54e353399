"""`check` reads one window of `daily` at most (at most window_days days), never the whole history:
against an API that refuses long ranges, check still succeeds and the windowed streams sync."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from integration_tests.cli import configured_catalog, run_cli
from integration_tests.test_end_to_end import assert_ok, assert_stream_equals, config_for, dates
from ultravox_sandbox import Faults
from ultravox_sandbox.pytest_plugin import SANDBOX_NOW

TODAY = SANDBOX_NOW.date()
THREE_YEARS_AGO = TODAY - timedelta(days=3 * 365)


def logged(box) -> list[tuple[str, str, int]]:
    return [(r.query["fromDate"][0], r.query["toDate"][0], r.status) for r in box.requests]


@pytest.mark.parametrize("window_days", [None, 7, 90])
def test_check_sends_one_request_of_at_most_window_days(make_sandbox, window_days) -> None:
    box = make_sandbox(history_start=THREE_YEARS_AGO)
    extra = {} if window_days is None else {"window_days": window_days}
    result = run_cli("check", config_for(box, THREE_YEARS_AGO, TODAY, **extra))
    assert result.connection_status == {"status": "SUCCEEDED"}
    width = window_days or 30
    last = THREE_YEARS_AGO + timedelta(days=width - 1)
    assert logged(box) == [(THREE_YEARS_AGO.isoformat(), last.isoformat(), 200)]


def test_check_with_defaults_reads_the_first_window_from_the_default_start(make_sandbox) -> None:
    box = make_sandbox(history_start=date(2023, 6, 1))
    result = run_cli("check", {"api_key": box.api_key, "api_url": box.url})
    assert result.connection_status == {"status": "SUCCEEDED"}
    assert logged(box) == [("2024-01-01", "2024-01-30", 200)]


def test_an_api_refusing_ranges_over_90_days_passes_check_and_syncs_completely(make_sandbox) -> None:
    box = make_sandbox(history_start=THREE_YEARS_AGO, faults=Faults(reject_window_days_over=90))
    config = config_for(box, THREE_YEARS_AGO, TODAY)
    check = run_cli("check", config)
    assert check.connection_status == {"status": "SUCCEEDED"}
    assert len(box.requests) == 1

    # allTime's one whole-range request is the one that cannot be split: it fails on such an API,
    # as the README says; the windowed streams sync every day and hour.
    box.clear_log()
    result = run_cli("read", config, configured_catalog(["daily", "hourly"]), timeout=300)
    assert_ok(result)
    truth = box.ground_truth(dates(THREE_YEARS_AGO, TODAY))
    assert_stream_equals(result, "daily", truth["daily"])
    assert_stream_equals(result, "hourly", truth["hourly"])
    assert {status for _, _, status in logged(box)} == {200}
