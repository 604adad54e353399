"""agentDaily, concurrency and billingDaily end to end: the installed CLI against the sandbox equals
the sandbox's truth, in full refresh and across incremental syncs with late-changing data, under
both answers to every unknown; with exact requests per endpoint."""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

import pytest

from integration_tests.cli import CliResult, configured_catalog, run_cli
from integration_tests.test_end_to_end import (
    assert_ok,
    assert_stream_equals,
    by_pk,
    config_for,
    cursors_of,
    dates,
    day,
    expected_windows,
    pk,
)
from ultravox_sandbox import CREDITED_AGENT_ID, UNNAMED_AGENT_ID, Faults, Sandbox, billing_usage
from ultravox_sandbox.pytest_plugin import SANDBOX_HISTORY_START, SANDBOX_NOW

TODAY = SANDBOX_NOW.date()
AGENTS_PATH = "/api/agents/usage"
CONCURRENCY_PATH = "/api/accounts/me/usage/concurrency"
BILLING_PATH = "/api/accounts/me/billing/usage"
NEW_STREAMS = ("agentDaily", "concurrency", "billingDaily")


def catalog(*streams: str, incremental: bool = True) -> dict[str, Any]:
    return configured_catalog(streams, incremental)


# -- the truth, straight from the sandbox's answers for the whole range --------------------------


def agent_truth(
    box: Sandbox, start: date, end: date, filters: dict[str, list[str]] | None = None
) -> list[dict]:
    body = box.agent_usage_truth(
        {"fromDate": [start.isoformat()], "toDate": [end.isoformat()], **(filters or {})}
    )
    return [
        {**row, "agentId": entry["agent"]["agentId"], "agentName": entry["agent"]["name"]}
        for entry in body
        for row in entry["usage"]
    ]


def concurrency_truth(box: Sandbox, start: date, end: date, bucket: str) -> list[dict]:
    """Asked a week at a time (whole days, so buckets are the same), within any range limit."""
    points = []
    for first, last in expected_windows(start, end, 7):
        query = {"bucket": [bucket], "start": [f"{first}T00:00:00Z"], "end": [f"{last}T23:59:59Z"]}
        points += box.concurrency_truth(query)["timeSeries"]
    return [as_record(point, bucket) for point in points]


def as_record(point: dict, bucket: str) -> dict:
    """A concurrency record: the API's `timestamp` is emitted as `bucketStart`, with the bucket."""
    fields = {k: v for k, v in point.items() if k != "timestamp"}
    return {**fields, "bucketStart": point["timestamp"], "bucket": bucket}


def billing_truth(box: Sandbox, start: date, end: date) -> list[dict]:
    """The days the connector writes: those of the API's zero mode, whatever the sandbox's, since
    it writes a zero day for each day up to today that the API leaves out."""
    rows = []
    for first, last in expected_windows(start, end, 90):  # the endpoint takes at most 90 days at once
        params = {"fromDate": [first], "toDate": [(day(last) + timedelta(days=1)).isoformat()]}
        rows += billing_usage(box.calls, params, box.now, "zero", box.future_buckets)["dailyUsage"]
    return rows


def assert_equals(result: CliResult, stream: str, truth: list[dict]) -> None:
    """Exactly the truth's rows, none repeated (within one sync no window overlaps another)."""
    got = result.records(stream)
    keys = [pk(stream, r) for r in got]
    assert len(keys) == len(set(keys)), f"{stream}: a primary key emitted twice"
    assert by_pk(stream, got) == by_pk(stream, truth)


def paths(box: Sandbox) -> dict[str, list[dict[str, list[str]]]]:
    sent: dict[str, list[dict[str, list[str]]]] = {}
    for request in box.requests:
        assert request.status == 200, request
        sent.setdefault(request.path, []).append(request.query)
    return sent


# -- full refresh ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "modes",
    [
        {},
        {
            "agents_without_calls": "list",
            "agent_empty_days": "zero",
            "concurrency_empty_buckets": "omit",
            "concurrency_end": "inclusive",
            "billing_empty_days": "omit",
        },
    ],
    ids=["default-answers", "other-answers"],
)
@pytest.mark.parametrize("bucket", ["hour", "day"])
def test_full_refresh_equals_the_truth_with_one_request_per_window(make_sandbox, modes, bucket) -> None:
    box = make_sandbox(**modes)
    start, window_days = SANDBOX_HISTORY_START, 30
    config = config_for(box, start, TODAY, window_days=window_days, concurrency_bucket=bucket)
    result = run_cli("read", config, catalog(*NEW_STREAMS, incremental=False), timeout=300)
    assert_ok(result)
    assert_equals(result, "agentDaily", agent_truth(box, start, TODAY))
    assert_equals(result, "concurrency", concurrency_truth(box, start, TODAY, bucket))
    assert_equals(result, "billingDaily", billing_truth(box, start, TODAY))
    days = (TODAY - start).days + 1
    sent = paths(box)
    assert sorted((q["fromDate"][0], q["toDate"][0]) for q in sent[AGENTS_PATH]) == expected_windows(
        start, TODAY, window_days
    )
    assert sorted((q["start"][0], q["end"][0], q["bucket"][0]) for q in sent[CONCURRENCY_PATH]) == [
        (f"{a}T00:00:00Z", f"{b}T23:59:59Z", bucket) for a, b in expected_windows(start, TODAY, window_days)
    ]
    assert sorted((q["fromDate"][0], q["toDate"][0]) for q in sent[BILLING_PATH]) == [
        (a, (day(b) + timedelta(days=1)).isoformat()) for a, b in expected_windows(start, TODAY, window_days)
    ]
    assert [len(sent[p]) for p in (AGENTS_PATH, CONCURRENCY_PATH, BILLING_PATH)] == [math.ceil(days / 30)] * 3


def test_calls_without_an_agent_make_agent_sums_lower_than_daily(sandbox: Sandbox) -> None:
    config = config_for(sandbox, SANDBOX_HISTORY_START, TODAY)
    result = run_cli("read", config, catalog("daily", "agentDaily"))
    assert_ok(result)
    per_day: dict[str, int] = {}
    for row in result.records("agentDaily"):
        per_day[row["date"]] = per_day.get(row["date"], 0) + row["calls"]
    daily = {row["date"]: row["totalCount"] for row in result.records("daily")}
    assert all(per_day.get(d, 0) <= total for d, total in daily.items())
    assert sum(per_day.values()) < sum(daily.values()), "the sandbox has calls without an agent"


def test_agent_daily_takes_the_call_filters(sandbox: Sandbox) -> None:
    agent = next(c.agent_id for c in sandbox.calls if c.agent_id)
    voice = sandbox.calls[0].voice_id
    config = config_for(
        sandbox,
        SANDBOX_HISTORY_START,
        TODAY,
        agent_ids=[agent],
        voice_id=voice,
        duration_min=30,
        metadata=[{"key": "tier", "value": "gold"}],
    )
    result = run_cli("read", config, catalog(*NEW_STREAMS))
    assert_ok(result)
    filters = {"agentIds": [agent], "voiceId": [voice], "durationMin": ["30s"], "metadata.tier": ["gold"]}
    assert_equals(result, "agentDaily", agent_truth(sandbox, SANDBOX_HISTORY_START, TODAY, filters))
    assert {r["agentId"] for r in result.records("agentDaily")} == {agent}
    sent = paths(sandbox)
    for query in sent[AGENTS_PATH]:
        assert {k: v for k, v in query.items() if k not in ("fromDate", "toDate")} == filters
    # The two other endpoints take no call filter.
    assert all(set(q) == {"bucket", "start", "end"} for q in sent[CONCURRENCY_PATH])
    assert all(set(q) == {"fromDate", "toDate"} for q in sent[BILLING_PATH])


def test_an_empty_agent_name_and_negative_minutes_sync_as_the_sandbox_sends_them(make_sandbox) -> None:
    """The values the published schema allows and the checks once refused: an agent named "" and
    the Sundays a credit makes negative, in agentDaily, billingDaily and daily alike."""
    box = make_sandbox(odd_values=True)
    start = TODAY - timedelta(days=30)
    result = run_cli(
        "read", config_for(box, start, TODAY, window_days=7), catalog("daily", "agentDaily", "billingDaily")
    )
    assert_ok(result)
    agents, bill = agent_truth(box, start, TODAY), billing_truth(box, start, TODAY)
    daily = box.ground_truth(dates(start, TODAY))["daily"]
    assert_equals(result, "agentDaily", agents)
    assert_equals(result, "billingDaily", bill)
    assert_stream_equals(result, "daily", daily)
    # The truth holds what this test is about.
    sundays = ["2025-02-02", "2025-02-09", "2025-02-16", "2025-02-23", "2025-03-02"]
    assert {r["agentName"] for r in agents if r["agentId"] == UNNAMED_AGENT_ID} == {""}
    assert [r["date"] for r in agents if r["billedMinutes"] < 0] == sundays
    assert {r["agentId"] for r in agents if r["billedMinutes"] < 0} == {CREDITED_AGENT_ID}
    assert [r["date"] for r in bill if r["minutes"] < 0] == sundays
    assert [r["date"] for r in daily if r["billedMinutes"] < 0] == sundays


def test_billing_windows_are_at_most_90_days_whatever_window_days_says(make_sandbox) -> None:
    start = TODAY - timedelta(days=400)
    box = make_sandbox(history_start=start)
    result = run_cli("read", config_for(box, start, TODAY, window_days=366), catalog("billingDaily"))
    assert_ok(result)
    assert_equals(result, "billingDaily", billing_truth(box, start, TODAY))
    sent = sorted((q["fromDate"][0], q["toDate"][0]) for q in paths(box)[BILLING_PATH])
    assert sent == [
        (a, (day(b) + timedelta(days=1)).isoformat()) for a, b in expected_windows(start, TODAY, 90)
    ]
    assert len(sent) == math.ceil(401 / 90)


def test_a_concurrency_range_refused_as_too_large_is_split(make_sandbox) -> None:
    box = make_sandbox(concurrency_max_days=10)
    config = config_for(box, SANDBOX_HISTORY_START, TODAY, window_days=30)
    result = run_cli("read", config, catalog("concurrency"), timeout=300)
    assert result.returncode == 0 and result.errors == []
    assert_equals(result, "concurrency", concurrency_truth(box, SANDBOX_HISTORY_START, TODAY, "hour"))
    refused = [r for r in box.requests if r.status == 400]
    assert refused and all(r.path == CONCURRENCY_PATH for r in refused)


# -- incremental -----------------------------------------------------------------------------------


def test_incremental_syncs_with_late_data_end_equal_to_the_truth(make_sandbox) -> None:
    """Three scheduled syncs a day apart: each re-reads lookback_days, calls running across
    midnight change a day after it was read, and the deduped union equals the final truth."""
    box = make_sandbox()
    config = config_for(box, SANDBOX_HISTORY_START, TODAY, lookback_days=2)
    state = None
    merged: dict[str, dict[tuple, dict]] = {s: {} for s in NEW_STREAMS}
    requests_per_sync = []
    for step in range(3):
        if step:
            box.advance(timedelta(days=1))
        config["end_date"] = box.now.date().isoformat()  # today on the sandbox's clock
        box.clear_log()
        result = run_cli("read", config, catalog(*NEW_STREAMS), state)
        assert_ok(result)
        for stream in NEW_STREAMS:
            merged[stream].update(by_pk(stream, result.records(stream)))
        state = result.last_state()
        requests_per_sync.append({path: len(queries) for path, queries in paths(box).items()})
    today = box.now.date()
    assert merged["agentDaily"] == by_pk("agentDaily", agent_truth(box, SANDBOX_HISTORY_START, today))
    assert merged["concurrency"] == by_pk(
        "concurrency", concurrency_truth(box, SANDBOX_HISTORY_START, today, "hour")
    )
    assert merged["billingDaily"] == by_pk("billingDaily", billing_truth(box, SANDBOX_HISTORY_START, today))
    # A scheduled daily sync: one request per endpoint.
    assert requests_per_sync[1:] == [{AGENTS_PATH: 1, CONCURRENCY_PATH: 1, BILLING_PATH: 1}] * 2
    cursors = cursors_of(result)
    assert cursors["agentDaily"]["date"] <= today.isoformat()
    assert cursors["billingDaily"]["date"] <= today.isoformat()
    assert cursors["concurrency"]["bucketStart"][:10] == today.isoformat()


@pytest.mark.parametrize(
    "faults",
    [
        Faults(rate_limit_first=2, retry_after="0"),
        Faults(server_errors_first=2),
        Faults(drop_connection_first=2),
    ],
    ids=["429", "5xx", "drops"],
)
def test_faults_on_the_new_endpoints_still_end_in_the_truth(make_sandbox, faults) -> None:
    box = make_sandbox(faults=faults)
    config = config_for(box, TODAY - timedelta(days=20), TODAY, window_days=7, num_workers=2)
    result = run_cli("read", config, catalog(*NEW_STREAMS), timeout=300)
    assert result.returncode == 0 and result.errors == []
    start = day(config["start_date"])
    assert_equals(result, "agentDaily", agent_truth(box, start, TODAY))
    assert_equals(result, "concurrency", concurrency_truth(box, start, TODAY, "hour"))
    assert_equals(result, "billingDaily", billing_truth(box, start, TODAY))


@pytest.mark.parametrize("stream", NEW_STREAMS)
def test_a_body_of_the_wrong_shape_is_a_system_error_naming_the_endpoint(make_sandbox, stream) -> None:
    box = make_sandbox(faults=Faults(wrong_shape=True))
    result = run_cli("read", config_for(box, TODAY - timedelta(days=3), TODAY), catalog(stream))
    assert result.returncode == 1
    errors = [e for e in result.errors if e.get("internal_message") != "Concurrent read failure"]
    assert errors and {e["failure_type"] for e in errors} == {"system_error"}
    path = {"agentDaily": AGENTS_PATH, "concurrency": CONCURRENCY_PATH, "billingDaily": BILLING_PATH}[stream]
    assert all(f"{box.url.removesuffix('/api')}{path} with a body" in e["message"] for e in errors)
    assert result.records(stream) == []
