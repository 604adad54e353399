"""Behaviour of the local Ultravox usage sandbox, checked against independent brute-force recounts."""

from __future__ import annotations

import json
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from ultravox_sandbox import (
    AGENT_IDS,
    SANDBOX_API_KEY,
    VOICE_IDS,
    Call,
    Faults,
    Sandbox,
    SandboxBadRequest,
    aggregate,
    format_duration,
    generate_calls,
    pytest_plugin,
)
from ultravox_sandbox.pytest_plugin import SANDBOX_HISTORY_START, SANDBOX_NOW

# The plugin's fixture, so this file runs whether or not a conftest loads the plugin.
sandbox = pytest_plugin.sandbox

REPO_ROOT = Path(__file__).resolve().parents[1]
USAGE = "/accounts/me/usage/calls"
DURATION_RE = re.compile(r"\d+(\.\d{3}|\.\d{6}|\.\d{9})?s")
Params = dict[str, list[str]]


def get(
    box: Sandbox, params: Any = None, key: str | None = SANDBOX_API_KEY, timeout: float = 5, **kw: Any
) -> requests.Response:
    headers = {} if key is None else {"X-API-Key": key}
    return requests.get(box.url + USAGE, params=params, headers=headers, timeout=timeout, **kw)


def as_params(params: dict[str, Any]) -> Params:
    return {k: v if isinstance(v, list) else [v] for k, v in params.items()}


# -- an independent recount: plain loops over the log, no code shared with aggregate() --------


def seconds(duration: str) -> Decimal:
    assert DURATION_RE.fullmatch(duration), duration
    return Decimal(duration[:-1])


def recount(
    box: Sandbox,
    keep: Callable[[Call, Decimal], bool] = lambda c, s: True,
    lo: datetime | None = None,
    hi: datetime | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(allTime, {date: daily}) with counts, Decimal seconds and billed minutes.

    `keep(call, seconds_so_far)` plays the filters; running calls count with their duration so far.
    """
    now = box.now
    total: dict[str, Any] = {"n": 0, "err": 0, "joined": 0, "secs": Decimal(0), "billed": 0.0}
    days: dict[str, dict[str, Any]] = {}
    for call in box.calls:
        if (
            call.created > now
            or (lo is not None and call.created < lo)
            or (hi is not None and call.created > hi)
        ):
            continue
        running = call.created + timedelta(seconds=call.duration_s) > now
        if running:
            secs = Decimal((now - call.created) // timedelta(microseconds=1)) / 1_000_000
        else:
            secs = Decimal(str(call.duration_s))
        if not keep(call, secs):
            continue
        for bucket in (total, days.setdefault(call.created.date().isoformat(), dict.fromkeys(total, 0))):
            bucket["n"] += 1
            bucket["err"] += 0 if running else int(call.error)
            bucket["joined"] += int(call.joined)
            bucket["secs"] += secs
            bucket["billed"] += 0.0 if running else call.billed_minutes
    return total, days


def assert_stats(row: dict[str, Any], expected: dict[str, Any]) -> None:
    assert row["totalCount"] == expected["n"]
    assert row["errorCount"] == expected["err"]
    assert row["joinedCount"] == expected["joined"]
    assert seconds(row["duration"]) == expected["secs"]
    assert isinstance(row["billedMinutes"], float)
    assert row["billedMinutes"] == pytest.approx(expected["billed"], abs=1e-6)


def assert_matches_recount(
    body: dict[str, Any], total: dict[str, Any], days: dict[str, dict[str, Any]]
) -> None:
    assert_stats(body["allTime"], total)
    nonempty = {row["date"]: row for row in body["daily"] if row["totalCount"]}
    assert sorted(nonempty) == sorted(days)
    for day, expected in days.items():
        assert_stats(nonempty[day], expected)


# -- auth, routing -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "wrong-key", SANDBOX_API_KEY + "x", ""])
def test_missing_or_wrong_key_is_401(sandbox: Sandbox, key: str | None) -> None:
    resp = get(sandbox, key=key)
    assert resp.status_code == 401
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json() == {"detail": "Invalid API key."}


def test_auth_is_checked_before_routing_and_params(sandbox: Sandbox) -> None:
    assert requests.get(sandbox.url + "/nope", timeout=5).status_code == 401
    assert get(sandbox, {"fromDate": "garbage"}, key=None).status_code == 401


def test_other_paths_404_and_other_methods_405(sandbox: Sandbox) -> None:
    headers = {"X-API-Key": sandbox.api_key}
    resp = requests.get(sandbox.url + "/accounts/me/usage/voices", headers=headers, timeout=5)
    assert (resp.status_code, resp.json()) == (404, {"detail": "Not found."})
    assert requests.get(sandbox.origin + USAGE, headers=headers, timeout=5).status_code == 404  # no /api
    assert requests.get(sandbox.url + USAGE + "/", headers=headers, timeout=5).status_code == 404
    resp = requests.post(sandbox.url + USAGE, headers=headers, timeout=5)
    assert resp.status_code == 405
    assert resp.json() == {"detail": 'Method "POST" not allowed.'}
    assert sandbox.url.endswith("/api") and sandbox.url.startswith("http://127.0.0.1:")


def test_default_key_is_not_shaped_like_a_real_key() -> None:
    assert not re.fullmatch(r"[A-Za-z0-9]{8}\.[A-Za-z0-9]{32}", SANDBOX_API_KEY)


# -- response shape and the unfiltered figures ----------------------------------------------------


def test_unfiltered_response_matches_recount_and_ground_truth(sandbox: Sandbox) -> None:
    resp = get(sandbox)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    body = resp.json()
    assert body == sandbox.ground_truth()
    assert_matches_recount(body, *recount(sandbox))
    assert list(body) == ["allTime", "daily", "hourly"]
    stats = {"totalCount", "errorCount", "joinedCount", "duration", "billedMinutes"}
    assert set(body["allTime"]) == stats
    assert all(set(row) == stats | {"date"} for row in body["daily"])
    assert all(set(row) == stats | {"date", "hour"} for row in body["hourly"])
    # The fixture's default window crosses a month and a year boundary.
    dates = [row["date"] for row in body["daily"]]
    assert dates[0] == SANDBOX_HISTORY_START.isoformat() and dates[-1] == SANDBOX_NOW.date().isoformat()
    assert dates == sorted(dates)
    keys = [(row["date"], row["hour"]) for row in body["hourly"]]
    assert keys == sorted(keys)


def test_hourly_rows_add_up_to_daily_rows(sandbox: Sandbox) -> None:
    body = get(sandbox, {"fromDate": "2025-02-20"}).json()
    for day in body["daily"]:
        hours = [h for h in body["hourly"] if h["date"] == day["date"]]
        assert sum(h["totalCount"] for h in hours) == day["totalCount"]
        assert sum(seconds(h["duration"]) for h in hours) == seconds(day["duration"])
        assert sum(h["billedMinutes"] for h in hours) == pytest.approx(day["billedMinutes"])
        assert all(0 <= h["hour"] <= 23 for h in hours)


def test_duration_strings_and_float_billed_minutes_in_raw_json(sandbox: Sandbox) -> None:
    text = get(sandbox).text
    durations = re.findall(r'"duration": "([^"]*)"', text)
    assert durations and all(DURATION_RE.fullmatch(d) for d in durations)
    assert '"duration": "0s"' in text
    billed = re.findall(r'"billedMinutes": ([^,}]*)', text)
    assert billed and all("." in b for b in billed)  # 0.0 and 12.0, never 0 or 12
    assert format_duration(3_600_000_000) == "3600s"
    assert format_duration(1_234_500_000) == "1234.500s"
    assert format_duration(1_500_001) == "1.500001s"
    assert format_duration(0) == "0s"


# -- filters ------------------------------------------------------------------------------------

FILTER_CASES: list[tuple[str, dict[str, Any], Callable[[Call, Decimal], bool]]] = [
    ("one agent", {"agentIds": AGENT_IDS[1]}, lambda c, s: c.agent_id == AGENT_IDS[1]),
    (
        "two agents (repeated key)",
        {"agentIds": [AGENT_IDS[0], AGENT_IDS[3]]},
        lambda c, s: c.agent_id in (AGENT_IDS[0], AGENT_IDS[3]),
    ),
    ("voice", {"voiceId": VOICE_IDS[2]}, lambda c, s: c.voice_id == VOICE_IDS[2]),
    ("uppercase uuid", {"voiceId": VOICE_IDS[1].upper()}, lambda c, s: c.voice_id == VOICE_IDS[1]),
    ("durationMin", {"durationMin": "300s"}, lambda c, s: s >= 300),
    ("durationMax", {"durationMax": "12.5s"}, lambda c, s: s <= Decimal("12.5")),
    (
        "duration window",
        {"durationMin": "60s", "durationMax": "120.25s"},
        lambda c, s: 60 <= s <= Decimal("120.25"),
    ),
    (
        "metadata one pair",
        {"metadata.campaign": "spring"},
        lambda c, s: c.metadata.get("campaign") == "spring",
    ),
    (
        "metadata all pairs",
        {"metadata.campaign": "summer", "metadata.tier": "gold"},
        lambda c, s: c.metadata.get("campaign") == "summer" and c.metadata.get("tier") == "gold",
    ),
    ("metadata unknown value", {"metadata.tier": "platinum"}, lambda c, s: False),
    ("search is case-insensitive", {"search": "REFUND"}, lambda c, s: "refund" in c.text.lower()),
    ("search a name", {"search": "alice"}, lambda c, s: "alice" in c.text.lower()),
    (
        "time of day window",
        {"timeOfDayStart": "09:00:00", "timeOfDayEnd": "11:30:00"},
        lambda c, s: "09:00:00" <= c.created.strftime("%H:%M:%S.%f") <= "11:30:00",
    ),
    (
        "time of day end only, fractional",
        {"timeOfDayEnd": "06:15:30.5"},
        lambda c, s: c.created.strftime("%H:%M:%S.%f") <= "06:15:30.500000",
    ),
    (
        "late evening",
        {"timeOfDayStart": "23:40:00"},
        lambda c, s: c.created.strftime("%H:%M:%S") >= "23:40:00",
    ),
    (
        "combined",
        {"agentIds": AGENT_IDS[0], "voiceId": VOICE_IDS[0], "metadata.tier": "silver", "durationMin": "30s"},
        lambda c, s: (
            c.agent_id == AGENT_IDS[0]
            and c.voice_id == VOICE_IDS[0]
            and c.metadata.get("tier") == "silver"
            and s >= 30
        ),
    ),
    ("unknown parameters are ignored", {"pageSize": "5", "foo": "bar"}, lambda c, s: True),
]


@pytest.mark.parametrize(
    ("params", "keep"), [case[1:] for case in FILTER_CASES], ids=[c[0] for c in FILTER_CASES]
)
def test_filter_figures_match_brute_force(sandbox: Sandbox, params: dict[str, Any], keep: Callable) -> None:
    unfiltered = get(sandbox).json()
    body = get(sandbox, params).json()
    total, days = recount(sandbox, keep)
    assert_matches_recount(body, total, days)
    assert body == sandbox.ground_truth(as_params(params))
    if "foo" not in params:
        assert body["allTime"] != unfiltered["allTime"]  # each filter really narrows
    # Zero mode keeps the whole requested range, filter or not.
    assert [r["date"] for r in body["daily"]] == [r["date"] for r in unfiltered["daily"]]


def test_filters_narrow_the_date_window_too(sandbox: Sandbox) -> None:
    params = {"fromDate": "2024-12-30", "toDate": "2025-01-02", "metadata.campaign": "winter"}
    lo, hi = datetime(2024, 12, 30, tzinfo=UTC), datetime(2025, 1, 2, 23, 59, 59, 999999, tzinfo=UTC)
    body = get(sandbox, params).json()
    assert_matches_recount(
        body, *recount(sandbox, lambda c, s: c.metadata.get("campaign") == "winter", lo, hi)
    )
    assert [r["date"] for r in body["daily"]] == ["2024-12-30", "2024-12-31", "2025-01-01", "2025-01-02"]
    assert len(body["hourly"]) == 4 * 24


# -- date bounds --------------------------------------------------------------------------------


def a_finished_call(box: Sandbox, day: date) -> Call:
    return next(c for c in box.calls if c.created.date() == day and c.created.microsecond)


def test_datetime_bounds_are_inclusive_to_the_microsecond(sandbox: Sandbox) -> None:
    call = a_finished_call(sandbox, date(2025, 2, 12))
    at = call.created.strftime("%Y-%m-%dT%H:%M:%S.%f")
    just_after = (call.created + timedelta(microseconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    just_before = (call.created - timedelta(microseconds=1)).isoformat()  # "+00:00" offset

    def count(params: dict[str, str]) -> int:
        return get(sandbox, params).json()["allTime"]["totalCount"]

    assert count({"fromDate": at, "toDate": at}) == 1
    assert count({"fromDate": just_after, "toDate": at}) == 0
    assert count({"fromDate": at, "toDate": just_before}) == 0
    assert count({"fromDate": at}) == sum(
        1 for c in sandbox.calls if call.created <= c.created <= sandbox.now
    )
    assert count({"toDate": at}) == sum(1 for c in sandbox.calls if c.created <= call.created)


def test_date_only_bounds_cover_whole_days(sandbox: Sandbox) -> None:
    lo, hi = datetime(2025, 1, 10, tzinfo=UTC), datetime(2025, 1, 12, 23, 59, 59, 999999, tzinfo=UTC)
    body = get(sandbox, {"fromDate": "2025-01-10", "toDate": "2025-01-12"}).json()
    assert_matches_recount(body, *recount(sandbox, lo=lo, hi=hi))
    assert [r["date"] for r in body["daily"]] == ["2025-01-10", "2025-01-11", "2025-01-12"]
    # The late call of a day (23:40 or later) is inside a date-only toDate.
    late = [c for c in sandbox.calls if c.created.date() == date(2025, 1, 12) and c.created.hour == 23]
    explicit = get(sandbox, {"fromDate": "2025-01-10T00:00:00", "toDate": "2025-01-12T23:00:00"}).json()
    assert body["allTime"]["totalCount"] - explicit["allTime"]["totalCount"] == len(late)


def test_offsets_are_converted_to_utc(sandbox: Sandbox) -> None:
    # 2025-01-11T01:00+02:00 is 2025-01-10T23:00Z; requests percent-encodes the "+".
    body = get(
        sandbox, {"fromDate": "2025-01-11T01:00:00+02:00", "toDate": "2025-01-11T01:59:59-00:00"}
    ).json()
    lo, hi = datetime(2025, 1, 10, 23, tzinfo=UTC), datetime(2025, 1, 11, 1, 59, 59, tzinfo=UTC)
    assert_matches_recount(body, *recount(sandbox, lo=lo, hi=hi))
    assert [r["date"] for r in body["daily"]] == ["2025-01-10", "2025-01-11"]


def test_to_date_in_the_future_stops_at_today(sandbox: Sandbox) -> None:
    body = get(sandbox, {"fromDate": "2025-03-01", "toDate": "2025-12-31"}).json()
    assert body["daily"][-1]["date"] == "2025-03-04"
    assert body["hourly"][-1] == {**body["hourly"][-1], "date": "2025-03-04", "hour": 15}
    assert not get(sandbox, {"fromDate": "2025-04-01"}).json()["daily"]


# -- modes ----------------------------------------------------------------------------------------


def test_zero_and_omit_modes_differ_only_in_empty_buckets() -> None:
    kwargs = {"seed": 11, "history_start": date(2024, 6, 1), "now": datetime(2024, 9, 1, 7, 45, tzinfo=UTC)}
    with Sandbox(**kwargs) as zero, Sandbox(empty_buckets="omit", **kwargs) as omit:
        zero_body, omit_body = get(zero).json(), get(omit).json()
    days = [row["date"] for row in zero_body["daily"]]
    expected_days = [(date(2024, 6, 1) + timedelta(days=i)).isoformat() for i in range(93)]
    assert days == expected_days
    assert any(row["totalCount"] == 0 for row in zero_body["daily"])  # empty days exist in the log
    assert len(zero_body["hourly"]) == 92 * 24 + 8  # today: hours 0..7, nothing after now
    assert zero_body["allTime"] == omit_body["allTime"]
    assert omit_body["daily"] == [row for row in zero_body["daily"] if row["totalCount"]]
    assert omit_body["hourly"] == [row for row in zero_body["hourly"] if row["totalCount"]]
    assert all(row["totalCount"] > 0 for row in omit_body["daily"] + omit_body["hourly"])


def test_range_and_lifetime_all_time() -> None:
    kwargs = {"history_start": date(2024, 11, 20), "now": SANDBOX_NOW}
    params = {"fromDate": "2025-02-01", "toDate": "2025-02-28", "voiceId": VOICE_IDS[0]}
    with Sandbox(**kwargs) as ranged, Sandbox(all_time_scope="lifetime", **kwargs) as lifetime:
        r, lt = get(ranged, params).json(), get(lifetime, params).json()
        in_range, _ = recount(
            ranged,
            lambda c, s: c.voice_id == VOICE_IDS[0],
            datetime(2025, 2, 1, tzinfo=UTC),
            datetime(2025, 2, 28, 23, 59, 59, 999999, tzinfo=UTC),
        )
        ever, _ = recount(lifetime, lambda c, s: c.voice_id == VOICE_IDS[0])
    assert_stats(r["allTime"], in_range)
    assert_stats(lt["allTime"], ever)  # other filters still apply
    assert lt["daily"] == r["daily"] and lt["hourly"] == r["hourly"]
    assert lt["allTime"]["totalCount"] > r["allTime"]["totalCount"]


@pytest.mark.parametrize(
    ("shape", "bodies"),
    [
        (
            "list",
            [
                ["fromDate: enter a valid date/time (got 'yesterday')."],
                ["Date range too large"],
                ["Invalid API key."],
                ["Not found."],
                ['Method "POST" not allowed.'],
                ["Request was throttled."],
            ],
        ),
        (
            "fields",
            [
                {"fromDate": ["enter a valid date/time (got 'yesterday')."]},
                {"non_field_errors": ["Date range too large"]},
                {"non_field_errors": ["Invalid API key."]},
                {"non_field_errors": ["Not found."]},
                {"non_field_errors": ['Method "POST" not allowed.']},
                {"non_field_errors": ["Request was throttled."]},
            ],
        ),
    ],
)
def test_error_bodies_shape_every_4xx_as_drf_may(shape: str, bodies: list[Any]) -> None:
    """400 (a bad parameter, a range too large), 401, 404, 405, 429: the switch changes the body's
    shape only, never the status, the headers or a 200."""
    kwargs = {"history_start": date(2025, 1, 1), "now": SANDBOX_NOW}
    with Sandbox(**kwargs) as plain, Sandbox(error_bodies=shape, **kwargs) as shaped:
        answers = []
        for box in (plain, shaped):
            headers = {"X-API-Key": box.api_key}
            box.faults = Faults(reject_window_days_over=30)
            answers.append(
                [
                    get(box, {"fromDate": "yesterday"}),
                    get(box, {"fromDate": "2025-01-01", "toDate": "2025-02-28"}),
                    get(box, key="wrong-key"),
                    requests.get(box.url + "/nope", headers=headers, timeout=5),
                    requests.post(box.url + USAGE, headers=headers, timeout=5),
                ]
            )
            box.faults = Faults(rate_limit_first=1)
            answers[-1].append(get(box))
            answers[-1].append(get(box, {"fromDate": "2025-02-10"}))
        before, after = answers
    assert [r.json() for r in after[:-1]] == bodies
    assert [(r.status_code, r.headers.get("Allow"), r.headers.get("Retry-After")) for r in after] == [
        (r.status_code, r.headers.get("Allow"), r.headers.get("Retry-After")) for r in before
    ]
    assert [r.status_code for r in after] == [400, 400, 401, 404, 405, 429, 200]
    assert [r.json() for r in before[:-1]] == [
        {"detail": "fromDate: enter a valid date/time (got 'yesterday')."},
        {"detail": "Date range too large"},
        {"detail": "Invalid API key."},
        {"detail": "Not found."},
        {"detail": 'Method "POST" not allowed.'},
        {"detail": "Request was throttled."},
    ]
    assert after[-1].json() == before[-1].json()


def test_bad_modes_are_rejected() -> None:
    with pytest.raises(ValueError):
        Sandbox(error_bodies="html")
    with pytest.raises(ValueError):
        Sandbox(empty_buckets="none")
    with pytest.raises(ValueError):
        Sandbox(all_time_scope="forever")
    with pytest.raises(ValueError):
        aggregate([], {}, SANDBOX_NOW, empty_buckets="skip")


# -- the clock --------------------------------------------------------------------------------------


def test_running_calls_count_but_are_not_billed(sandbox: Sandbox) -> None:
    now = sandbox.now
    running = [c for c in sandbox.calls if c.created <= now < c.created + timedelta(seconds=c.duration_s)]
    assert running, "the fixture's now should catch some calls in progress"
    today = now.date().isoformat()
    body = get(sandbox, {"fromDate": today}).json()
    assert_matches_recount(body, *recount(sandbox, lo=datetime.combine(now.date(), datetime.min.time(), UTC)))
    call = running[0]
    stamp = call.created.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    one = get(sandbox, {"fromDate": stamp, "toDate": stamp}).json()["allTime"]
    assert one["totalCount"] == 1 and one["billedMinutes"] == 0.0 and one["errorCount"] == 0
    assert one["joinedCount"] == int(call.joined)
    assert seconds(one["duration"]) == Decimal((now - call.created) // timedelta(microseconds=1)) / 10**6
    # Calls created later today are in the log but do not exist yet.
    later = [c for c in sandbox.calls if c.created > now and c.created.date() == now.date()]
    assert later and body["allTime"]["totalCount"] == body["daily"][-1]["totalCount"]
    assert body["allTime"]["totalCount"] == sum(
        1 for c in sandbox.calls if c.created.date() == now.date()
    ) - len(later)

    sandbox.advance(timedelta(hours=1))
    after = get(sandbox, {"fromDate": stamp, "toDate": stamp}).json()["allTime"]
    assert seconds(after["duration"]) == Decimal(str(call.duration_s))
    assert after["billedMinutes"] == call.billed_minutes
    assert after["errorCount"] == int(call.error)


def test_moving_the_clock_past_midnight_changes_yesterday() -> None:
    log = generate_calls(seed=7, start=date(2025, 1, 1), end=date(2025, 3, 1))
    late = next(c for c in log if c.created.hour == 23 and c.created.minute >= 40 and c.duration_s > 1000)
    yesterday = late.created.date()
    after_midnight = datetime.combine(yesterday + timedelta(days=1), datetime.min.time(), UTC) + timedelta(
        minutes=1
    )
    assert late.created + timedelta(seconds=late.duration_s) > after_midnight
    with Sandbox(history_start=date(2025, 1, 1), now=after_midnight) as box:
        params = {"fromDate": yesterday.isoformat(), "toDate": yesterday.isoformat()}
        before = get(box, params).json()
        box.advance(timedelta(hours=1))
        after = get(box, params).json()
        assert_matches_recount(
            after,
            *recount(
                box,
                lo=datetime.combine(yesterday, datetime.min.time(), UTC),
                hi=datetime.combine(yesterday, datetime.max.time(), UTC),
            ),
        )
    assert before["daily"][0]["totalCount"] == after["daily"][0]["totalCount"]
    assert (
        after["daily"][0]["billedMinutes"] >= before["daily"][0]["billedMinutes"] + late.billed_minutes - 1e-9
    )
    assert seconds(after["daily"][0]["duration"]) > seconds(before["daily"][0]["duration"])


def test_advancing_the_clock_makes_new_calls_arrive(sandbox: Sandbox) -> None:
    before = get(sandbox).json()
    now = sandbox.advance(timedelta(days=2, hours=3))
    assert now == SANDBOX_NOW + timedelta(days=2, hours=3) == sandbox.now
    after = get(sandbox).json()
    assert after["allTime"]["totalCount"] > before["allTime"]["totalCount"]
    assert after["daily"][-1]["date"] == "2025-03-06"
    assert_matches_recount(after, *recount(sandbox))
    sandbox.now = datetime(2025, 6, 1, tzinfo=UTC)  # past the generated horizon: the log grows
    assert sandbox.calls[-1].created > datetime(2025, 6, 1, tzinfo=UTC)
    assert get(sandbox, {"fromDate": "2025-05-31"}).json()["daily"][0]["date"] == "2025-05-31"


# -- 400s ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"fromDate": "2025-13-01"}, "fromDate"),
        ({"fromDate": "yesterday"}, "fromDate"),
        ({"toDate": "2025-01-01T10:00:00 01:00"}, "toDate"),  # an unencoded "+" arrives as a space
        ({"toDate": ""}, "toDate"),
        ({"agentIds": [AGENT_IDS[0], "not-a-uuid"]}, "agentIds"),
        ({"voiceId": "1234"}, "voiceId"),
        ({"durationMin": "300"}, "durationMin"),
        ({"durationMax": "5m"}, "durationMax"),
        ({"durationMax": '"""30"""s'}, "durationMax"),
        ({"search": ""}, "search"),
        ({"timeOfDayStart": "25:00:00"}, "timeOfDayStart"),
        ({"timeOfDayEnd": "noon"}, "timeOfDayEnd"),
    ],
)
def test_malformed_params_are_400_naming_the_parameter(sandbox: Sandbox, params: dict, name: str) -> None:
    resp = get(sandbox, params)
    assert resp.status_code == 400
    assert resp.json()["detail"].startswith(f"{name}:")
    with pytest.raises(SandboxBadRequest) as err:
        sandbox.ground_truth(as_params(params))
    assert err.value.detail == resp.json()["detail"]


# -- faults -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "retry_after", ["1", format_datetime(datetime(2025, 3, 4, 15, 31, tzinfo=UTC), usegmt=True)]
)
def test_rate_limit_first_n_requests(sandbox: Sandbox, retry_after: str) -> None:
    sandbox.faults = Faults(rate_limit_first=3, retry_after=retry_after)
    answers = [get(sandbox) for _ in range(5)]
    assert [r.status_code for r in answers] == [429, 429, 429, 200, 200]
    assert all(r.headers["Retry-After"] == retry_after for r in answers[:3])
    assert answers[0].json() == {"detail": "Request was throttled."}
    assert "Retry-After" not in answers[3].headers


def test_rate_limit_counts_down_exactly_under_concurrency(sandbox: Sandbox) -> None:
    sandbox.faults = Faults(rate_limit_first=7)
    statuses: list[int] = []
    lock = threading.Lock()

    def hit() -> None:
        code = get(sandbox).status_code
        with lock:
            statuses.append(code)

    threads = [threading.Thread(target=hit) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] * 9 + [429] * 7


def test_unauthenticated_requests_do_not_use_up_throttling(sandbox: Sandbox) -> None:
    sandbox.faults = Faults(rate_limit_first=1)
    assert get(sandbox, key=None).status_code == 401
    assert [get(sandbox).status_code for _ in range(2)] == [429, 200]


def test_server_errors_first_n_then_recovery(sandbox: Sandbox) -> None:
    sandbox.faults = Faults(server_errors_first=2)
    assert [get(sandbox).status_code for _ in range(3)] == [503, 503, 200]
    sandbox.faults = Faults(server_errors_first=1, server_error_status=502, rate_limit_first=1)
    assert [get(sandbox).status_code for _ in range(3)] == [429, 502, 200]


def test_error_rate_is_seeded(sandbox: Sandbox) -> None:
    sandbox.faults = Faults(error_rate=0.5)
    first = [get(sandbox).status_code for _ in range(20)]
    sandbox.faults = Faults(error_rate=0.5)
    assert [get(sandbox).status_code for _ in range(20)] == first
    assert set(first) == {200, 500}
    sandbox.faults = Faults(error_rate=1.0)
    assert get(sandbox).json() == {"detail": "A server error occurred."}


def test_drop_connection_first_n(sandbox: Sandbox) -> None:
    sandbox.faults = Faults(drop_connection_first=2)
    for _ in range(2):
        with pytest.raises(requests.ConnectionError):
            get(sandbox)
    assert get(sandbox).status_code == 200
    assert [r.status for r in sandbox.requests] == [0, 0, 200]


def test_a_client_that_resets_its_connection_is_no_server_error(sandbox: Sandbox, capfd) -> None:
    # A SIGKILLed connector resets its connections: the client's doing, not a traceback to print.
    address = urlsplit(sandbox.origin)
    with socket.create_connection((address.hostname, address.port), timeout=5) as client:
        client.sendall(b"GET /api")  # half a request line: the server waits for the rest
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
    time.sleep(0.3)  # the server's thread meets the reset
    assert get(sandbox).status_code == 200
    assert "Traceback" not in capfd.readouterr().err


def test_hang_outlasts_a_client_timeout(sandbox: Sandbox) -> None:
    sandbox.faults = Faults(hang_s=2.0)
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        get(sandbox, timeout=0.3)
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    ("faults", "content_type"),
    [
        (Faults(malformed_json=True), "application/json"),
        (Faults(wrong_shape=True), "application/json"),
        (Faults(non_json=True), "text/html; charset=utf-8"),
    ],
)
def test_bad_200_bodies(sandbox: Sandbox, faults: Faults, content_type: str) -> None:
    good = get(sandbox).text
    sandbox.faults = faults
    resp = get(sandbox)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == content_type
    if faults.malformed_json:
        assert good.startswith(resp.text) and len(resp.text) < len(good)
        with pytest.raises(json.JSONDecodeError):
            json.loads(resp.text)
    elif faults.wrong_shape:
        assert resp.json() == {"results": []}
    else:
        assert resp.text.startswith("<!doctype html>")


def test_malformed_json_first_n(sandbox: Sandbox) -> None:
    good = get(sandbox).text
    sandbox.faults = Faults(malformed_json_first=2, rate_limit_first=1)
    answers = [get(sandbox) for _ in range(4)]
    # A 429 is not a 200 answer and does not count; the next two bodies are cut, then whole again.
    assert [a.status_code for a in answers] == [429, 200, 200, 200]
    assert [a.text for a in answers[1:]] == [good[: len(good) // 2]] * 2 + [good]


def test_redirect_to_another_host_keeps_path_and_query(sandbox: Sandbox) -> None:
    with Sandbox(history_start=SANDBOX_HISTORY_START, now=SANDBOX_NOW) as other:
        sandbox.faults = Faults(redirect_to=other.origin)
        params = {"fromDate": "2025-03-01", "agentIds": [AGENT_IDS[0], AGENT_IDS[1]]}
        resp = get(sandbox, params, allow_redirects=False)
        assert resp.status_code == 302
        location = urlsplit(resp.headers["Location"])
        assert f"{location.scheme}://{location.netloc}" == other.origin
        assert location.path == "/api" + USAGE
        assert parse_qs(location.query) == as_params(params)
        # What a naive client does: follow it, sending the custom header along.
        get(sandbox, params)
        assert other.requests[0].headers.get("X-API-Key") == SANDBOX_API_KEY
        assert other.requests[0].query == as_params(params)


def test_reject_window_days_over(sandbox: Sandbox) -> None:
    sandbox.faults = Faults(reject_window_days_over=30)

    def status(params: dict[str, str]) -> int:
        return get(sandbox, params).status_code

    assert status({"fromDate": "2025-01-01", "toDate": "2025-01-30"}) == 200  # 30 whole days
    assert status({"fromDate": "2025-01-01T00:00:00Z", "toDate": "2025-01-31T00:00:00Z"}) == 200
    assert status({"fromDate": "2025-01-01T00:00:00Z", "toDate": "2025-01-31T00:00:00.000001Z"}) == 400
    resp = get(sandbox, {"fromDate": "2025-01-01", "toDate": "2025-01-31"})
    assert (resp.status_code, resp.json()) == (400, {"detail": "Date range too large"})
    assert status({"fromDate": "2025-02-10"}) == 200  # an open end means now
    assert status({"toDate": "2025-03-01"}) == 400  # an open start means the first call
    assert status({}) == 400


def test_large_response_pad(sandbox: Sandbox) -> None:
    plain = get(sandbox)
    sandbox.faults = Faults(large_response_pad=2_000_000)
    padded = get(sandbox)
    assert len(padded.content) >= len(plain.content) + 2_000_000
    body = padded.json()
    assert body.pop("_pad") == "x" * 2_000_000
    assert body == plain.json()


def test_latency_is_visible_in_the_log(sandbox: Sandbox) -> None:
    sandbox.faults = Faults(latency_s=0.05)
    get(sandbox)
    get(sandbox, key=None)
    entries = sandbox.requests
    assert [e.status for e in entries] == [200, 401]
    assert all(e.ended - e.started >= 0.05 for e in entries)


# -- request log ---------------------------------------------------------------------------------------


def test_request_log_records_params_and_headers(sandbox: Sandbox) -> None:
    params = {
        "fromDate": "2025-03-01T00:00:00Z",
        "agentIds": [AGENT_IDS[2], AGENT_IDS[4]],
        "metadata.tier": "gold",
    }
    get(sandbox, params)
    requests.get(sandbox.url + "/elsewhere?x=1", headers={"X-API-Key": "bad", "User-Agent": "t/1"}, timeout=5)
    assert sandbox.request_count == 2
    first, second = sandbox.requests
    assert (first.method, first.path, first.status) == ("GET", "/api" + USAGE, 200)
    assert first.query == as_params(params)
    assert first.headers["x-api-key"] == SANDBOX_API_KEY == first.headers["X-API-Key"]
    assert first.started <= first.ended
    assert (second.path, second.query, second.status) == ("/api/elsewhere", {"x": ["1"]}, 401)
    assert second.headers["User-Agent"] == "t/1"
    assert SANDBOX_API_KEY not in repr(first)
    sandbox.clear_log()
    assert sandbox.request_count == 0 and sandbox.requests == []


# -- the synthetic log -----------------------------------------------------------------------------------


def test_generated_log_is_deterministic_and_realistic() -> None:
    calls = generate_calls(seed=3, start=date(2024, 1, 1), end=date(2024, 12, 31))
    assert calls == generate_calls(seed=3, start=date(2024, 1, 1), end=date(2024, 12, 31))
    assert calls != generate_calls(seed=4, start=date(2024, 1, 1), end=date(2024, 12, 31))
    assert [c.created for c in calls] == sorted(c.created for c in calls)
    assert all(c.created.tzinfo is not None and c.created.utcoffset() == timedelta(0) for c in calls)
    n = len(calls)
    assert 4000 < n < 8000
    assert 0.05 < sum(c.error for c in calls) / n < 0.15
    assert 0.75 < sum(c.joined for c in calls) / n < 0.85
    assert all(5 <= c.duration_s <= 1800 for c in calls)
    assert sum(c.duration_s != int(c.duration_s) for c in calls) > 0.9 * n
    assert all(c.billed_minutes == 0 for c in calls if not c.joined)
    assert all(
        c.billed_minutes * 60 >= c.duration_s > (c.billed_minutes - 0.1) * 60 for c in calls if c.joined
    )
    business = sum(8 <= c.created.hour < 18 for c in calls)
    assert business > 0.7 * n
    weekday_days = {c.created.date() for c in calls if c.created.weekday() < 5}
    weekend_days = {c.created.date() for c in calls if c.created.weekday() >= 5}
    weekday_rate = sum(c.created.weekday() < 5 for c in calls) / len(weekday_days)
    weekend_rate = sum(c.created.weekday() >= 5 for c in calls) / len(weekend_days)
    assert weekend_rate < 0.6 * weekday_rate
    active = {c.created.date() for c in calls}
    assert 10 < 366 - len(active) < 40  # idle days exist, including multi-day gaps
    # A few percent of calls have no agent (see test_sandbox_endpoints.py for the exact rule).
    assert {c.agent_id for c in calls} == {*AGENT_IDS, None} and {c.voice_id for c in calls} == set(VOICE_IDS)
    # Campaign and tier come from the log's RNG; a customer from a hash of the call id (calls.py).
    drawn = [{k: v for k, v in c.metadata.items() if k != "customer"} for c in calls]
    assert sum(m == {"campaign": "spring", "tier": "gold"} for m in drawn) > 50
    assert sum(not m for m in drawn) > 0.3 * n
    assert 0.6 < sum("customer" in c.metadata for c in calls) / n < 0.7
    past_midnight = [
        c for c in calls if (c.created + timedelta(seconds=c.duration_s)).date() > c.created.date()
    ]
    assert len(past_midnight) > 100


def test_log_for_a_day_does_not_depend_on_the_range() -> None:
    whole = generate_calls(seed=7, start=date(2025, 1, 1), end=date(2025, 1, 31))
    part = generate_calls(seed=7, start=date(2025, 1, 15), end=date(2025, 1, 16))
    assert part == [c for c in whole if date(2025, 1, 15) <= c.created.date() <= date(2025, 1, 16)]


def test_aggregate_is_fast_on_three_years() -> None:
    calls = generate_calls(seed=7, start=date(2023, 1, 1), end=date(2025, 12, 31))
    now = datetime(2025, 12, 31, 12, tzinfo=UTC)
    params = {"fromDate": ["2025-06-01"], "toDate": ["2025-06-30"]}
    aggregate(calls, params, now)
    started = time.perf_counter()
    for _ in range(20):
        aggregate(calls, params, now)
    assert (time.perf_counter() - started) / 20 < 0.02


# -- the command line -------------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_module_cli_prints_url_serves_and_stops_cleanly(signum: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ultravox_sandbox", "--port", "0", "--days", "40", "--empty-buckets", "omit"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip() if proc.stdout else ""
        match = re.fullmatch(r"ULTRAVOX_SANDBOX_URL=(http://127\.0\.0\.1:\d+/api)", line)
        assert match, line
        resp = requests.get(match[1] + USAGE, headers={"X-API-Key": SANDBOX_API_KEY}, timeout=5)
        assert resp.status_code == 200
        body = resp.json()
        assert body["daily"] and all(row["totalCount"] for row in body["daily"])
        assert body["daily"][-1]["date"] <= datetime.now(UTC).date().isoformat()
    finally:
        proc.send_signal(signum)
        try:
            _, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()  # never leave a server behind, even when it ignores the signal
            proc.communicate()
            raise
    assert proc.returncode == 0
    assert "Traceback" not in err and SANDBOX_API_KEY not in err


def test_stop_closes_keep_alive_connections() -> None:
    box = Sandbox(now=SANDBOX_NOW, history_start=SANDBOX_HISTORY_START).start()
    session = requests.Session()
    url = box.url + USAGE
    assert session.get(url, headers={"X-API-Key": box.api_key}, timeout=5).status_code == 200
    box.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(url, headers={"X-API-Key": box.api_key}, timeout=5)


@pytest.fixture
def two_sandboxes() -> Iterator[tuple[Sandbox, Sandbox]]:
    with Sandbox(now=SANDBOX_NOW) as a, Sandbox(now=SANDBOX_NOW) as b:
        yield a, b


def test_instances_are_independent(two_sandboxes: tuple[Sandbox, Sandbox]) -> None:
    a, b = two_sandboxes
    a.faults = Faults(rate_limit_first=1)
    assert get(b).status_code == 200
    assert get(a).status_code == 429
    assert (a.request_count, b.request_count) == (1, 1)
    assert a.url != b.url


@pytest.mark.parametrize("calls_per_day", [2_000, 100_000])
def test_a_big_accounts_day_has_its_calls_per_day(calls_per_day: int) -> None:
    """A Poisson draw of exp(-rate) underflows past a rate of ~745 and capped a day at ~700 calls:
    above 500 a day is drawn from the normal approximation, within five standard deviations."""
    from ultravox_sandbox.calls import calls_for_day

    monday = date(2025, 3, 3)  # a weekday: the weekend rate is lower
    calls = calls_for_day(7, monday, calls_per_day)
    assert abs(len(calls) - calls_per_day) < 5 * calls_per_day**0.5 + 1
