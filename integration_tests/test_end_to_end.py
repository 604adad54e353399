"""End to end: the installed `source-ultravox-usage` console script, run as a subprocess against
the local Ultravox sandbox, compared record for record with the sandbox's ground truth."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from integration_tests.cli import STREAMS, CliResult, configured_catalog, run_cli
from ultravox_sandbox import AGENT_IDS, VOICE_IDS, Faults, Sandbox, aggregate

Params = dict[str, list[str]]
Key = tuple[Any, ...]

# Equality alone would let 3.0 stand for 3: these must be JSON integers.
INTEGER_FIELDS = ("totalCount", "errorCount", "joinedCount", "hour")
# Fields the connector adds to the API's own, per stream.
ADDED = {
    "allTime": {"durationSeconds", "fromDate", "toDate"},
    "daily": {"durationSeconds"},
    "hourly": {"durationSeconds", "hourStart"},
}
# Field names of each stream's primary key, from the catalog the CLI tests configure.
PRIMARY_KEY = {
    name: tuple(path[0] for path in s["primary_key"]) for name, s in STREAMS.items() if s["primary_key"]
}
DEFAULT_WINDOW_DAYS = 30
DEFAULT_LOOKBACK_DAYS = 2
# Obviously fake, and not the sandbox's.
BAD_KEY = "wrong-key-canary-0000-not-real"


# -- helpers ---------------------------------------------------------------------------------


def day(value: str | date | datetime) -> date:
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else date.fromisoformat(value)


def config_for(box: Sandbox, start: str | date, end: str | date, **extra: Any) -> dict[str, Any]:
    return {
        "api_url": box.url,
        "api_key": box.api_key,
        "start_date": day(start).isoformat(),
        "end_date": day(end).isoformat(),
        **extra,
    }


def dates(start: str | date, end: str | date) -> Params:
    return {"fromDate": [day(start).isoformat()], "toDate": [day(end).isoformat()]}


def written(box: Sandbox, params: Params) -> dict[str, Any]:
    """The /usage/calls answer the connector's records equal: the API's zero mode's, whatever the
    sandbox's mode, since the connector writes a zero row for each day and hour up to now that
    the API leaves out."""
    return aggregate(box.calls, params, box.now, "zero", box.all_time_scope, box.future_buckets)


def expected_windows(start: str | date, end: str | date, window_days: int) -> list[tuple[str, str]]:
    """Back-to-back windows of `window_days` whole days, the last one cut at `end`."""
    first, last = day(start), day(end)
    windows = []
    while first <= last:
        stop = min(first + timedelta(days=window_days - 1), last)
        windows.append((first.isoformat(), stop.isoformat()))
        first = stop + timedelta(days=1)
    return windows


def logged_ranges(box: Sandbox) -> list[tuple[str, str]]:
    """(fromDate, toDate) of every logged request; each must have been answered 200."""
    bad = [r for r in box.requests if r.status != 200]
    assert bad == [], bad
    return [(r.query["fromDate"][0], r.query["toDate"][0]) for r in box.requests]


def assert_ok(result: CliResult) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.errors == []
    assert result.of_type("_NOT_JSON") == []


def strip_added(stream: str, record: dict[str, Any]) -> dict[str, Any]:
    """The API's fields of a connector record, after checking the fields the connector adds."""
    assert ADDED[stream] <= set(record), (stream, record)
    assert all(type(record[f]) is int for f in INTEGER_FIELDS if f in record), record
    assert isinstance(record["billedMinutes"], float | int) and isinstance(record["durationSeconds"], float)
    assert record["durationSeconds"] == float(record["duration"].removesuffix("s")), record
    if stream == "hourly":
        assert record["hourStart"] == f"{record['date']}T{record['hour']:02d}:00:00Z", record
    return {k: v for k, v in record.items() if k not in ADDED[stream]}


def pk(stream: str, record: dict[str, Any]) -> Key:
    return tuple(record[name] for name in PRIMARY_KEY[stream])


def by_pk(stream: str, records: Iterable[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    """Records deduped on the primary key, a later record winning, as append_dedup does."""
    return {pk(stream, r): r for r in records}


def assert_stream_equals(result: CliResult, stream: str, expected: list[dict[str, Any]]) -> None:
    """The stream's records are exactly `expected` (the API's rows), no row missing or repeated."""
    got = [strip_added(stream, r) for r in result.records(stream)]
    keys = [pk(stream, r) for r in got]
    assert len(keys) == len(set(keys)), f"{stream}: duplicate primary keys"
    assert sorted(keys) == [pk(stream, r) for r in expected]
    assert by_pk(stream, got) == by_pk(stream, expected)


def assert_all_time_equals(result: CliResult, expected: dict[str, Any], config: dict[str, Any]) -> None:
    records = result.records("allTime")
    assert len(records) == 1, records
    assert records[0]["fromDate"] == config["start_date"]
    assert records[0]["toDate"] == config["end_date"]
    assert strip_added("allTime", records[0]) == expected


def assert_equals_truth(result: CliResult, truth: dict[str, Any], config: dict[str, Any]) -> None:
    assert_all_time_equals(result, truth["allTime"], config)
    assert_stream_equals(result, "daily", truth["daily"])
    assert_stream_equals(result, "hourly", truth["hourly"])


def cursors_of(result: CliResult) -> dict[str, Any]:
    """The last stream_state per stream name."""
    states = result.last_state()
    return {s["stream"]["stream_descriptor"]["name"]: s["stream"]["stream_state"] for s in states}


def assert_checkpoints_never_ahead(result: CliResult, stream: str, expected: list[dict[str, Any]]) -> None:
    """At each of the stream's state messages, every expected row of a day before the cursor's day was
    emitted earlier (the next sync re-reads from the cursor's day at the latest, even with no lookback):
    a sync interrupted right after any checkpoint loses nothing."""
    cursor_field = {"daily": "date", "hourly": "hourStart"}[stream]
    emitted: set[Key] = set()
    checkpoints = 0
    for message in result.messages:
        if message["type"] == "RECORD" and message["record"]["stream"] == stream:
            emitted.add(pk(stream, message["record"]["data"]))
        elif message["type"] == "STATE" and message["state"]["stream"]["stream_descriptor"]["name"] == stream:
            checkpoints += 1
            cursor_day = message["state"]["stream"]["stream_state"][cursor_field][:10]
            done = [pk(stream, r) for r in expected if r["date"] < cursor_day]
            missing = [key for key in done if key not in emitted]
            assert missing == [], f"{stream} state {cursor_day} checkpointed before rows {missing[:5]}"
    assert checkpoints >= 1


def every_day(start: date, end: date) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


# -- full refresh ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("empty_buckets", "start", "window_days"),
    [
        # The whole history (105 days, across a month and a year boundary) at the default window.
        pytest.param("zero", "2024-11-20", None, id="zero-rows-default-window"),
        pytest.param("omit", "2024-12-01", 7, id="omitted-rows-7-day-windows"),
    ],
)
def test_full_refresh_equals_ground_truth(
    make_sandbox: Callable[..., Sandbox], empty_buckets: str, start: str, window_days: int | None
) -> None:
    box = make_sandbox(empty_buckets=empty_buckets, all_time_scope="range")
    end = box.now.date()  # 2025-03-04, a call in progress: today's partial figures
    extra = {} if window_days is None else {"window_days": window_days}
    config = config_for(box, start, end, **extra)

    result = run_cli("read", config, configured_catalog(incremental=False))

    assert_ok(result)
    # The same records whether the API lists empty days and hours or leaves them out.
    truth = written(box, dates(start, end))
    assert_equals_truth(result, truth, config)
    n_days = (end - day(start)).days + 1
    assert [row["date"] for row in truth["daily"]] == every_day(day(start), end)
    assert any(row["totalCount"] == 0 for row in truth["daily"]), "no empty day in range"
    answered = [row["date"] for row in box.ground_truth(dates(start, end))["daily"]]
    if empty_buckets == "omit":
        assert set(answered) < set(every_day(day(start), end)), "no day left out"
    assert any(c.created <= box.now < c.ended for c in box.calls), "no call in progress"

    # One request per window for each of daily and hourly (the same windows), plus one for allTime.
    window = window_days or DEFAULT_WINDOW_DAYS
    windows = expected_windows(start, end, window)
    assert len(windows) == math.ceil(n_days / window)
    assert box.request_count == 2 * math.ceil(n_days / window) + 1
    assert sorted(logged_ranges(box)) == sorted(
        [*windows, *windows, (day(start).isoformat(), end.isoformat())]
    )


@pytest.mark.parametrize(
    ("start", "end", "window_days"),
    [
        pytest.param("2025-02-27", "2025-03-04", 3, id="6-days-w3"),
        pytest.param("2025-02-26", "2025-03-04", 3, id="7-days-w3"),
        pytest.param("2025-03-01", "2025-03-04", 1, id="4-days-w1"),
    ],
)
def test_full_sync_makes_one_request_per_window_and_stream_plus_one(
    sandbox: Sandbox, start: str, end: str, window_days: int
) -> None:
    config = config_for(sandbox, start, end, window_days=window_days)

    result = run_cli("read", config, configured_catalog(incremental=False))

    assert_ok(result)
    assert_equals_truth(result, sandbox.ground_truth(dates(start, end)), config)
    n_days = (day(end) - day(start)).days + 1
    windows = expected_windows(start, end, window_days)
    # daily and hourly each send every window; allTime sends the whole range once.
    assert sorted(logged_ranges(sandbox)) == sorted([*windows, *windows, (start, end)])
    assert sandbox.request_count == 2 * math.ceil(n_days / window_days) + 1


# -- filters ---------------------------------------------------------------------------------

FILTER_START, FILTER_END = "2025-02-01", "2025-03-04"

SINGLE_FILTERS = [
    pytest.param(
        {"agent_ids": [AGENT_IDS[0], AGENT_IDS[3]]},
        {"agentIds": [AGENT_IDS[0], AGENT_IDS[3]]},
        id="agent_ids",
    ),
    pytest.param({"voice_id": VOICE_IDS[2]}, {"voiceId": [VOICE_IDS[2]]}, id="voice_id"),
    pytest.param({"duration_min": 300}, {"durationMin": ["300s"]}, id="duration_min"),
    pytest.param({"duration_max": 45.5}, {"durationMax": ["45.5s"]}, id="duration_max"),
    pytest.param(
        {"metadata": [{"key": "campaign", "value": "spring"}]},
        {"metadata.campaign": ["spring"]},
        id="metadata",
    ),
    pytest.param({"search": "Bruno Moreno"}, {"search": ["Bruno Moreno"]}, id="search"),
    pytest.param({"time_of_day_start": "17:30:00"}, {"timeOfDayStart": ["17:30:00"]}, id="time_of_day_start"),
    pytest.param({"time_of_day_end": "09:15:00"}, {"timeOfDayEnd": ["09:15:00"]}, id="time_of_day_end"),
]

COMBINED = {
    "agent_ids": [AGENT_IDS[0], AGENT_IDS[2]],
    "voice_id": VOICE_IDS[0],
    "duration_min": 20,
    "duration_max": 900,
    "metadata": [{"key": "campaign", "value": "winter"}],
    "time_of_day_start": "08:00:00",
    "time_of_day_end": "18:00:00",
}
COMBINED_PARAMS = {
    "agentIds": [AGENT_IDS[0], AGENT_IDS[2]],
    "voiceId": [VOICE_IDS[0]],
    "durationMin": ["20s"],
    "durationMax": ["900s"],
    "metadata.campaign": ["winter"],
    "timeOfDayStart": ["08:00:00"],
    "timeOfDayEnd": ["18:00:00"],
}
COMBINED_2 = {
    "metadata": [{"key": "campaign", "value": "summer"}, {"key": "tier", "value": "silver"}],
    "search": "an",
    "duration_max": 400,
    "time_of_day_start": "09:00:00",
}
COMBINED_2_PARAMS = {
    "metadata.campaign": ["summer"],
    "metadata.tier": ["silver"],
    "search": ["an"],
    "durationMax": ["400s"],
    "timeOfDayStart": ["09:00:00"],
}


@pytest.mark.parametrize(
    ("empty_buckets", "filters", "params"),
    [
        *[pytest.param("zero", *p.values, id=p.id) for p in SINGLE_FILTERS],
        pytest.param("zero", COMBINED, COMBINED_PARAMS, id="combined-zero"),
        pytest.param("omit", COMBINED, COMBINED_PARAMS, id="combined-omit"),
        pytest.param("omit", COMBINED_2, COMBINED_2_PARAMS, id="combined-metadata-search-omit"),
    ],
)
def test_filters_change_records_as_ground_truth_says(
    make_sandbox: Callable[..., Sandbox], empty_buckets: str, filters: dict[str, Any], params: Params
) -> None:
    box = make_sandbox(empty_buckets=empty_buckets)
    config = config_for(box, FILTER_START, FILTER_END, **filters)

    result = run_cli("read", config, configured_catalog(incremental=False))

    assert_ok(result)
    truth = written(box, {**dates(FILTER_START, FILTER_END), **params})
    unfiltered = written(box, dates(FILTER_START, FILTER_END))
    # The filter matters: it keeps some calls and drops others.
    assert 0 < truth["allTime"]["totalCount"] < unfiltered["allTime"]["totalCount"]
    assert truth["daily"] != unfiltered["daily"]
    assert_equals_truth(result, truth, config)
    # Every request (each window of daily and of hourly, and allTime's) carried exactly these
    # filter parameters besides its dates.
    n_days = (day(FILTER_END) - day(FILTER_START)).days + 1
    assert box.request_count == 2 * math.ceil(n_days / DEFAULT_WINDOW_DAYS) + 1
    for logged in box.requests:
        assert {k: v for k, v in logged.query.items() if k not in ("fromDate", "toDate")} == params


def test_a_changed_filter_mixes_two_filters_in_one_table_until_the_streams_are_refreshed(
    sandbox: Sandbox,
) -> None:
    """What the README warns of: an incremental sync after a filter change re-reads only the lookback
    span, so the days before it keep the old filter's figures; a refresh (no state) rebuilds them."""
    first, last = "2025-02-01", "2025-03-04"
    before = config_for(sandbox, first, last, agent_ids=[AGENT_IDS[0]])
    after = config_for(sandbox, first, last, agent_ids=[AGENT_IDS[1]])
    catalog = configured_catalog(["daily"])
    synced = run_cli("read", before, catalog)
    assert_ok(synced)
    table = {row["date"]: row for row in synced.records("daily")}

    changed = run_cli("read", after, catalog, synced.last_state())
    assert_ok(changed)
    table.update({row["date"]: row for row in changed.records("daily")})

    def figures(config: dict[str, Any], start: str) -> dict[str, tuple[int, float]]:
        params = {**dates(start, last), "agentIds": config["agent_ids"]}
        return {
            r["date"]: (r["totalCount"], r["billedMinutes"]) for r in sandbox.ground_truth(params)["daily"]
        }

    # The cursor is 2025-03-04 and lookback_days 2: only 03-02..03-04 were read with the new filter.
    reread = "2025-03-02"
    assert sorted(row["date"] for row in changed.records("daily")) == [
        "2025-03-02",
        "2025-03-03",
        "2025-03-04",
    ]
    mixed = {d: (row["totalCount"], row["billedMinutes"]) for d, row in table.items()}
    old, new = figures(before, first), figures(after, first)
    assert any(old[d] != new[d] for d in old if d < reread), "the two filters must differ before the lookback"
    assert mixed == {d: (old[d] if d < reread else new[d]) for d in old}

    refreshed = run_cli("read", after, catalog)
    assert_ok(refreshed)
    assert {r["date"]: (r["totalCount"], r["billedMinutes"]) for r in refreshed.records("daily")} == new


# -- incremental -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("empty_buckets", "start", "first_now", "second_now", "extra"),
    [
        # Across a year (and month) boundary; at 15:52 a call (15:50:43-15:53:32) is in progress and
        # more calls arrive on 2024-12-30 afterwards, one running past midnight; at 00:05 a call
        # created on 2025-01-01 at 23:48:33 is still running. 7-day windows, default lookback.
        pytest.param(
            "zero",
            "2024-12-01",
            datetime(2024, 12, 30, 15, 52, tzinfo=UTC),
            datetime(2025, 1, 2, 0, 5, tzinfo=UTC),
            {"window_days": 7},
            id="year-boundary-zero-rows",
        ),
        # Just after midnight: 2024-12-31 has no call yet and the API leaves it out, but its zero
        # rows move both cursors to it (hourly 00:00), as in zero mode, while 2024-12-30's last
        # call (23:42:59-00:00:46) still runs: the lookback reads that day again.
        pytest.param(
            "omit",
            "2024-12-01",
            datetime(2024, 12, 31, 0, 0, 20, tzinfo=UTC),
            datetime(2025, 1, 2, 0, 5, tzinfo=UTC),
            {"window_days": 7},
            id="year-boundary-omitted-rows",
        ),
        # Across a month boundary with lookback_days=1 and default windows; at 11:05 a call
        # (11:01:08-11:07:24) is running, and one created at 23:41:35 runs into February.
        pytest.param(
            "zero",
            "2025-01-15",
            datetime(2025, 1, 31, 11, 5, tzinfo=UTC),
            datetime(2025, 2, 2, 10, 0, tzinfo=UTC),
            {"lookback_days": 1},
            id="month-boundary-lookback-1",
        ),
        # start_date is the first sync's day, so cursor - lookback falls before it and is clamped.
        pytest.param(
            "omit",
            "2025-01-31",
            datetime(2025, 1, 31, 11, 5, tzinfo=UTC),
            datetime(2025, 2, 2, 10, 0, tzinfo=UTC),
            {},
            id="lookback-clamped-to-start-date-omitted-rows",
        ),
    ],
)
def test_incremental_union_equals_ground_truth(
    make_sandbox: Callable[..., Sandbox],
    empty_buckets: str,
    start: str,
    first_now: datetime,
    second_now: datetime,
    extra: dict[str, Any],
) -> None:
    box = make_sandbox(empty_buckets=empty_buckets, now=first_now)
    window = extra.get("window_days", DEFAULT_WINDOW_DAYS)
    lookback = extra.get("lookback_days", DEFAULT_LOOKBACK_DAYS)
    catalog = configured_catalog()
    # The scenario is the one it claims to be.
    assert any(c.created <= first_now < c.ended for c in box.calls), "no call running at the first sync"
    assert any(first_now < c.created and c.created.date() == first_now.date() for c in box.calls)
    assert any(c.created <= second_now < c.ended for c in box.calls), "no call running at the second sync"

    # First sync: the history up to the clock's day.
    config1 = config_for(box, start, first_now, **extra)
    first = run_cli("read", config1, catalog)
    assert_ok(first)
    truth1 = written(box, dates(start, first_now))
    assert_equals_truth(first, truth1, config1)
    for stream in ("daily", "hourly"):
        assert_checkpoints_never_ahead(first, stream, truth1[stream])
    n_days = (first_now.date() - day(start)).days + 1
    assert box.request_count == 2 * math.ceil(n_days / window) + 1
    state = first.last_state()
    cursors = cursors_of(first)
    assert cursors["daily"] == {"date": truth1["daily"][-1]["date"]}
    last_hour = truth1["hourly"][-1]
    assert cursors["hourly"] == {"hourStart": f"{last_hour['date']}T{last_hour['hour']:02d}:00:00Z"}
    cursor_day = date.fromisoformat(cursors["daily"]["date"])

    # The clock moves: running calls end, new calls arrive, also on the day already synced.
    box.clear_log()
    box.now = second_now
    config2 = config_for(box, start, second_now, **extra)
    second = run_cli("read", config2, catalog, state)
    assert_ok(second)

    # Both cursors end on the same day, so daily and hourly each resume at that day - lookback
    # and send the same windows.
    assert cursors["hourly"]["hourStart"][:10] == cursor_day.isoformat()
    resume = max(cursor_day - timedelta(days=lookback), day(start))
    windows = expected_windows(resume, second_now.date(), window)
    ranges = logged_ranges(box)
    all_time_range = (day(start).isoformat(), second_now.date().isoformat())
    assert sorted(ranges) == sorted([*windows, *windows, all_time_range])
    window_ranges = sorted(ranges)
    window_ranges.remove(all_time_range)
    assert window_ranges[0][0] == resume.isoformat()  # the first window starts at cursor - lookback
    if window >= lookback + (second_now.date() - cursor_day).days + 1:
        assert box.request_count == 3  # a scheduled sync: one window per stream plus allTime
    # The second sync re-reads from cursor - lookback, with the figures at the new clock.
    reread = written(box, dates(resume, second_now))
    assert_stream_equals(second, "daily", reread["daily"])
    assert_stream_equals(second, "hourly", reread["hourly"])
    for stream in ("daily", "hourly"):
        assert_checkpoints_never_ahead(second, stream, reread[stream])
    final = written(box, dates(start, second_now))
    assert_all_time_equals(second, final["allTime"], config2)

    # Deduped on the primary keys, later record winning, both syncs together are the truth.
    for stream in ("daily", "hourly"):
        both = first.records(stream) + second.records(stream)
        union = by_pk(stream, [strip_added(stream, r) for r in both])
        assert union == by_pk(stream, final[stream]), stream
    # Late-changing figures were actually re-read: the first sync's last day changed since.
    first_daily = by_pk("daily", first.records("daily"))
    second_daily = by_pk("daily", second.records("daily"))
    assert strip_added("daily", first_daily[(cursor_day.isoformat(),)]) != strip_added(
        "daily", second_daily[(cursor_day.isoformat(),)]
    )
    # Every day and hour up to now, in either mode.
    union_days = {r["date"] for r in first.records("daily") + second.records("daily")}
    assert sorted(union_days) == every_day(day(start), second_now.date())
    union_hours = {r["hourStart"] for r in first.records("hourly") + second.records("hourly")}
    first_hour = datetime.combine(day(start), datetime.min.time(), tzinfo=UTC)
    n_hours = int((second_now - first_hour) / timedelta(hours=1)) + 1
    assert sorted(union_hours) == [
        (first_hour + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ") for h in range(n_hours)
    ]
    final_state = cursors_of(second)
    assert final_state["daily"] == {"date": final["daily"][-1]["date"]}
    last_hour = final["hourly"][-1]
    assert final_state["hourly"] == {"hourStart": f"{last_hour['date']}T{last_hour['hour']:02d}:00:00Z"}


# -- errors and faults -----------------------------------------------------------------------


@pytest.mark.parametrize("good_key", [True, False], ids=["good-key", "bad-key"])
def test_check(sandbox: Sandbox, good_key: bool) -> None:
    config = config_for(sandbox, "2025-02-01", "2025-03-04")
    if not good_key:
        config["api_key"] = BAD_KEY

    result = run_cli("check", config)

    status = result.connection_status
    assert status is not None, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.returncode == 0
    # check reads one window of daily, its first: start_date and the next window_days - 1 days.
    first_window = ("2025-02-01", "2025-03-02")
    assert [(r.query["fromDate"][0], r.query["toDate"][0]) for r in sandbox.requests] == [first_window]
    if good_key:
        assert status["status"] == "SUCCEEDED", status
        assert [r.status for r in sandbox.requests] == [200]
    else:
        assert status["status"] == "FAILED"
        assert "Ultravox rejected the API key" in status["message"]
        # Not retried: a 401 will not get better.
        assert [r.status for r in sandbox.requests] == [401]
        assert BAD_KEY not in result.stdout + result.stderr


@pytest.mark.parametrize("num_workers", [None, 1], ids=["default-workers", "one-worker"])
def test_read_with_bad_key_is_a_config_error(sandbox: Sandbox, num_workers: int | None) -> None:
    config = {**config_for(sandbox, "2025-02-01", "2025-03-04"), "api_key": BAD_KEY}
    if num_workers is not None:
        config["num_workers"] = num_workers

    result = run_cli("read", config, configured_catalog())

    assert result.returncode != 0
    assert result.records() == []
    assert len(result.errors) >= 1
    error = result.errors[0]
    assert error["failure_type"] == "config_error"
    assert "Ultravox rejected the API key" in error["message"]
    assert sandbox.request_count >= 1
    assert {r.status for r in sandbox.requests} == {401}
    assert BAD_KEY not in result.stdout + result.stderr
    if num_workers == 1:
        # One request at a time: each stream sends the rejected key once, then no more (its
        # later window fails without a request).
        ranges = sorted((r.query["fromDate"][0], r.query["toDate"][0]) for r in sandbox.requests)
        first_window = ("2025-02-01", "2025-03-02")
        assert ranges == sorted([("2025-02-01", "2025-03-04"), first_window, first_window])


@pytest.mark.parametrize(
    ("faults", "failing_status", "failures"),
    [
        pytest.param(Faults(rate_limit_first=3, retry_after="0"), 429, 3, id="rate-limited"),
        pytest.param(Faults(server_errors_first=2), 503, 2, id="5xx-burst"),
    ],
)
def test_faults_end_in_a_complete_sync(
    sandbox: Sandbox, faults: Faults, failing_status: int, failures: int
) -> None:
    start, end = "2025-01-01", "2025-03-04"
    sandbox.faults = faults
    config = config_for(sandbox, start, end)

    result = run_cli("read", config, configured_catalog(incremental=False))

    assert_ok(result)
    assert_equals_truth(result, sandbox.ground_truth(dates(start, end)), config)
    statuses = [r.status for r in sandbox.requests]
    assert statuses.count(failing_status) == failures
    assert set(statuses) == {200, failing_status}
    # Each window was answered once per windowed stream, and allTime once; no window was skipped
    # or fetched again.
    answered = sorted(
        (r.query["fromDate"][0], r.query["toDate"][0]) for r in sandbox.requests if r.status == 200
    )
    windows = expected_windows(start, end, DEFAULT_WINDOW_DAYS)
    assert answered == sorted([*windows, *windows, (start, end)])
