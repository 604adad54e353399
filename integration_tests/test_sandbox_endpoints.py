"""The sandbox's /agents/usage, /accounts/me/usage/concurrency and /accounts/me/billing/usage,
checked against brute-force recounts of the raw call log.

The recounts below loop over `Sandbox.calls` themselves and share no code with the sandbox's
aggregation (usage.py, agent_usage.py, concurrency.py, billing.py). Concurrency in particular is
recounted by sweeping start/end events in time order (and, for a few buckets, by sampling every
millisecond), where the sandbox sums per-call overlaps and counts calls at candidate instants.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from ultravox_sandbox import (
    AGENT_IDS,
    AGENT_NAMES,
    CREDITED_AGENT_ID,
    IDLE_AGENT_ID,
    SANDBOX_API_KEY,
    UNNAMED_AGENT_ID,
    VOICE_IDS,
    Call,
    Faults,
    Sandbox,
    SandboxBadRequest,
    concurrency,
    generate_calls,
)
from ultravox_sandbox.pytest_plugin import SANDBOX_HISTORY_START, SANDBOX_NOW, SANDBOX_SEED

REPO_ROOT = Path(__file__).resolve().parents[1]
USAGE = "/accounts/me/usage/calls"
AGENTS = "/agents/usage"
CONCURRENCY = "/accounts/me/usage/concurrency"
BILLING = "/accounts/me/billing/usage"
NEW_PATHS = [AGENTS, CONCURRENCY, BILLING]
US = timedelta(microseconds=1)
MS = timedelta(milliseconds=1)
UNKNOWN_AGENT = "00000000-0000-4000-8000-000000000000"
STAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:00Z")
Params = dict[str, list[str]]
Keep = Callable[[Call, Decimal], bool]
Spans = list[tuple[datetime, datetime, bool]]


def everything(call: Call, secs: Decimal) -> bool:
    return True


@pytest.fixture
def make_box() -> Iterator[Callable[..., Sandbox]]:
    """Started sandboxes with the plugin fixture's seed, history and clock unless overridden."""
    started: list[Sandbox] = []

    def make(**overrides: Any) -> Sandbox:
        options = {"seed": SANDBOX_SEED, "history_start": SANDBOX_HISTORY_START, "now": SANDBOX_NOW}
        box = Sandbox(**{**options, **overrides}).start()
        started.append(box)
        return box

    yield make
    for box in started:
        box.stop()


@pytest.fixture
def box(make_box: Callable[..., Sandbox]) -> Sandbox:
    return make_box()


@pytest.fixture(scope="module")
def busy() -> Iterator[Sandbox]:
    """400 calls a day, so calls overlap and concurrency peaks reach several calls."""
    with Sandbox(seed=SANDBOX_SEED, history_start=date(2025, 2, 20), now=SANDBOX_NOW, calls_per_day=400) as b:
        yield b


def get(
    box: Sandbox, path: str, params: Any = None, key: str | None = SANDBOX_API_KEY, **kw: Any
) -> requests.Response:
    headers = {} if key is None else {"X-API-Key": key}
    return requests.get(box.url + path, params=params, headers=headers, timeout=5, **kw)


def ok(box: Sandbox, path: str, params: Any = None) -> Any:
    resp = get(box, path, params)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == "application/json"
    return resp.json()


def as_params(params: dict[str, Any]) -> Params:
    return {k: v if isinstance(v, list) else [v] for k, v in params.items()}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- the raw log, read directly -----------------------------------------------------------------------


def existing(box: Sandbox) -> list[tuple[Call, bool, Decimal]]:
    """(call, still running, seconds so far) for every call created at or before `now`."""
    out = []
    for call in box.calls:
        if call.created > box.now:
            continue
        running = call.created + timedelta(seconds=call.duration_s) > box.now
        secs = Decimal((box.now - call.created) // US) / 10**6 if running else Decimal(str(call.duration_s))
        out.append((call, running, secs))
    return out


def billed(call: Call, running: bool) -> Decimal:
    return Decimal(0) if running else Decimal(str(call.billed_minutes))


def exact(value: Any) -> Decimal:
    """A JSON number that must be a float, as a Decimal of its shortest repr."""
    assert isinstance(value, float), value
    return Decimal(repr(value))


# -- /agents/usage -----------------------------------------------------------------------------------


def recount_agents(
    box: Sandbox,
    keep: Keep = everything,
    lo: datetime | None = None,
    hi: datetime | None = None,
    agent_ids: set[str] | None = None,
    list_idle: bool = False,
    zero_days: bool = False,
) -> list[dict[str, Any]]:
    calls = existing(box)
    per_agent: dict[str, dict[str, list[Any]]] = {}
    for call, running, secs in calls:
        if (lo and call.created < lo) or (hi and call.created > hi) or not keep(call, secs):
            continue
        if call.agent_id is None or (agent_ids is not None and call.agent_id not in agent_ids):
            continue
        row = per_agent.setdefault(call.agent_id, {}).setdefault(call.created.date().isoformat(), [0, 0])
        row[0] += 1
        row[1] += billed(call, running)
    if zero_days:
        first = lo.date() if lo else calls[0][0].created.date()
        last = min(hi.date(), box.now.date()) if hi else box.now.date()
        span = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
        for days in per_agent.values():
            for day in span:
                days.setdefault(day, [0, 0])
    account = [a for a in AGENT_NAMES if agent_ids is None or a in agent_ids]
    listed = sorted((a for a in account if list_idle or a in per_agent), key=lambda a: (AGENT_NAMES[a], a))
    return [
        {
            "agent": {"agentId": a, "name": AGENT_NAMES[a]},
            "usage": [
                {"date": d, "billedMinutes": Decimal(m), "calls": n}
                for d, (n, m) in sorted(per_agent.get(a, {}).items())
            ],
        }
        for a in listed
    ]


def exact_agents(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert isinstance(body, list)
    for entry in body:
        assert list(entry) == ["agent", "usage"] and list(entry["agent"]) == ["agentId", "name"]
        for row in entry["usage"]:
            assert list(row) == ["date", "billedMinutes", "calls"] and type(row["calls"]) is int
            row["billedMinutes"] = exact(row["billedMinutes"])
    return body


AGENT_FILTERS: list[tuple[str, dict[str, Any], Keep, set[str] | None]] = [
    ("no filter", {}, everything, None),
    ("one agent", {"agentIds": AGENT_IDS[1]}, everything, {AGENT_IDS[1]}),
    (
        "an agent and the idle agent",
        {"agentIds": [AGENT_IDS[4], IDLE_AGENT_ID]},
        everything,
        {AGENT_IDS[4], IDLE_AGENT_ID},
    ),
    ("an id that is no agent", {"agentIds": UNKNOWN_AGENT}, everything, {UNKNOWN_AGENT}),
    ("voice", {"voiceId": VOICE_IDS[2]}, lambda c, s: c.voice_id == VOICE_IDS[2], None),
    ("durationMin", {"durationMin": "300s"}, lambda c, s: s >= 300, None),
    ("durationMax", {"durationMax": "20.5s"}, lambda c, s: s <= Decimal("20.5"), None),
    ("metadata", {"metadata.campaign": "spring"}, lambda c, s: c.metadata.get("campaign") == "spring", None),
    ("search", {"search": "REFUND"}, lambda c, s: "refund" in c.text.lower(), None),
    (
        "time of day",
        {"timeOfDayStart": "09:00:00", "timeOfDayEnd": "11:30:00"},
        lambda c, s: "09:00:00" <= c.created.strftime("%H:%M:%S.%f") <= "11:30:00",
        None,
    ),
    (
        "combined",
        {"agentIds": [AGENT_IDS[0], AGENT_IDS[2]], "metadata.tier": "gold", "durationMin": "30s"},
        lambda c, s: c.metadata.get("tier") == "gold" and s >= 30,
        {AGENT_IDS[0], AGENT_IDS[2]},
    ),
]
AGENT_MODES = [("omit", "omit"), ("list", "omit"), ("omit", "zero"), ("list", "zero")]
WINDOW = {"fromDate": "2025-01-05T12:00:00Z", "toDate": "2025-02-03"}
WINDOW_LO, WINDOW_HI = utc("2025-01-05T12:00:00"), utc("2025-02-03T23:59:59.999999")


@pytest.mark.parametrize(("agents_without_calls", "empty_days"), AGENT_MODES, ids=lambda m: m)
@pytest.mark.parametrize(
    ("params", "keep", "agent_ids"), [c[1:] for c in AGENT_FILTERS], ids=[c[0] for c in AGENT_FILTERS]
)
def test_agent_usage_matches_brute_force(
    make_box: Callable[..., Sandbox],
    params: dict[str, Any],
    keep: Keep,
    agent_ids: set[str] | None,
    agents_without_calls: str,
    empty_days: str,
) -> None:
    box = make_box(agents_without_calls=agents_without_calls, agent_empty_days=empty_days)
    modes = {"list_idle": agents_without_calls == "list", "zero_days": empty_days == "zero"}
    for extra, lo, hi in [({}, None, None), (WINDOW, WINDOW_LO, WINDOW_HI)]:
        query = {**params, **extra}
        body = ok(box, AGENTS, query)
        assert body == box.agent_usage_truth(as_params(query))
        expected = recount_agents(box, keep, lo, hi, agent_ids, **modes)
        assert exact_agents(body) == expected
        if agent_ids == {UNKNOWN_AGENT}:
            assert body == []


def test_agent_usage_modes_on_a_short_range(make_box: Callable[..., Sandbox]) -> None:
    # That weekend After-hours Line has no call and Returns & Refunds calls only on the Saturday.
    params = {"fromDate": "2025-02-08", "toDate": "2025-02-09"}
    bodies = {
        modes: ok(make_box(agents_without_calls=modes[0], agent_empty_days=modes[1]), AGENTS, params)
        for modes in AGENT_MODES
    }
    names = {m: [e["agent"]["name"] for e in b] for m, b in bodies.items()}
    assert names[("omit", "omit")] == ["Appointments", "Billing Support", "Reception", "Returns & Refunds"]
    assert names[("list", "omit")] == sorted(AGENT_NAMES.values())
    idle = [e for e in bodies[("list", "zero")] if e["agent"]["agentId"] == IDLE_AGENT_ID]
    assert idle == [{"agent": {"agentId": IDLE_AGENT_ID, "name": "Outbound Survey (draft)"}, "usage": []}]
    # Zero days: each agent with calls gets both days; without: only the days it has calls.
    assert all(
        [r["date"] for r in e["usage"]] == ["2025-02-08", "2025-02-09"] for e in bodies[("omit", "zero")]
    )
    returns = [e["usage"] for e in bodies[("omit", "omit")] if e["agent"]["name"] == "Returns & Refunds"]
    assert [[r["date"] for r in usage] for usage in returns] == [["2025-02-08"]]
    after_hours = [e for e in bodies[("list", "omit")] if e["agent"]["name"] == "After-hours Line"]
    assert after_hours == [{"agent": {"agentId": AGENT_IDS[4], "name": "After-hours Line"}, "usage": []}]
    assert [e for e in bodies[("list", "zero")] if e["usage"]] == bodies[("omit", "zero")]
    omit_rows = {(e["agent"]["agentId"], r["date"]): r for e in bodies[("omit", "omit")] for r in e["usage"]}
    zero_rows = {(e["agent"]["agentId"], r["date"]): r for e in bodies[("omit", "zero")] for r in e["usage"]}
    assert omit_rows == {k: r for k, r in zero_rows.items() if r["calls"]}
    assert all(r == {**r, "calls": 0, "billedMinutes": 0.0} for r in zero_rows.values() if not r["calls"])


def test_agent_usage_raw_json_types(box: Sandbox) -> None:
    text = get(box, AGENTS, {"fromDate": "2025-02-01"}).text
    billed_values = re.findall(r'"billedMinutes": ([^,}]*)', text)
    assert billed_values and all("." in b for b in billed_values)  # 0.0 and 24.0, never 0 or 24
    assert re.findall(r'"calls": ([^,}]*)', text) and all(
        v.isdigit() for v in re.findall(r'"calls": ([^,}]*)', text)
    )


AGENTLESS_CASES: list[tuple[dict[str, Any], Callable[[Call], bool]]] = [
    ({}, lambda c: True),
    ({"voiceId": VOICE_IDS[0]}, lambda c: c.voice_id == VOICE_IDS[0]),
    (WINDOW, lambda c: WINDOW_LO <= c.created <= WINDOW_HI),
]


def test_agentless_calls_count_only_in_usage_calls(box: Sandbox) -> None:
    calls = existing(box)
    agentless = [c for c, _, _ in calls if c.agent_id is None]
    assert 0.02 < len(agentless) / len(calls) < 0.07
    for params, keep in AGENTLESS_CASES:
        usage = ok(box, USAGE, params)
        agents = ok(box, AGENTS, params)
        assert all(e["agent"]["agentId"] in AGENT_IDS for e in agents)
        in_agents = sum(r["calls"] for e in agents for r in e["usage"])
        # Every call of /usage/calls is in some agent's rows, except exactly the agent-less ones.
        assert usage["allTime"]["totalCount"] - in_agents == sum(map(keep, agentless)) > 0
    # No agentIds filter matches an agent-less call, not even all agents at once.
    every_agent = ok(box, USAGE, {"agentIds": list(AGENT_NAMES)})["allTime"]["totalCount"]
    assert every_agent == len(calls) - len(agentless)


def hashed_share(call_id: str, salt: str) -> float:
    return int.from_bytes(hashlib.sha256(f"{salt}:{call_id}".encode()).digest()[:8], "big") / 2**64


def customer_by_hash(call_id: str) -> str | None:
    share, bound = hashed_share(call_id, "customer"), 0.0
    for name, part in (
        ("Acme Dental", 0.3),
        ("Globex Logistics", 0.2),
        ("Initech", 0.1),
        ("Umbrella Health", 0.05),
    ):
        bound += part
        if share < bound:
            return name
    return None


def test_agentless_and_sip_calls_are_chosen_by_call_id_and_change_nothing_else() -> None:
    calls = generate_calls(seed=7, start=date(2024, 11, 20), end=date(2025, 4, 3))
    assert len(calls) == 2116
    assert all((c.agent_id is None) == (hashed_share(c.call_id, "agentless") < 0.04) for c in calls)
    assert all(c.sip == (hashed_share(c.call_id, "sip") < 0.25) for c in calls)
    assert 0.2 < sum(c.sip for c in calls) / len(calls) < 0.3
    assert any(c.sip and c.agent_id is None for c in calls)

    def fingerprint(rows: list[Any]) -> str:
        return hashlib.sha256(repr(rows).encode()).hexdigest()

    # Both pinned values were computed with the call log as it was before agent-less and SIP
    # calls (and customers in the metadata) existed: every other attribute is unchanged, and
    # agents only went missing.
    assert all(c.metadata.get("customer") == customer_by_hash(c.call_id) for c in calls)
    others = [
        (c.call_id, c.created.isoformat(), c.duration_s, c.joined, c.error, c.billed_minutes)
        + (c.voice_id, sorted((k, v) for k, v in c.metadata.items() if k != "customer"), c.text)
        for c in calls
    ]
    assert fingerprint(others) == "aa51a7a9ad32e7d99dd27c06beda2d90745bdacab5e4d88edc57b587bf706258"
    kept = [(c.call_id, c.agent_id) for c in calls if c.agent_id is not None]
    assert fingerprint(kept) == "06cd7dc568b00e70c52d74d86397b21116032a0ae1742b39085871005f889611"


def test_agent_usage_bad_params_are_400_like_usage_calls(box: Sandbox) -> None:
    for params, name in [
        ({"fromDate": "yesterday"}, "fromDate"),
        ({"agentIds": "not-a-uuid"}, "agentIds"),
        ({"durationMin": "5m"}, "durationMin"),
        ({"search": ""}, "search"),
    ]:
        resp, usage = get(box, AGENTS, params), get(box, USAGE, params)
        assert resp.status_code == 400 and resp.json() == usage.json()
        assert resp.json()["detail"].startswith(f"{name}:")
        with pytest.raises(SandboxBadRequest):
            box.agent_usage_truth(as_params(params))


# -- /accounts/me/billing/usage ---------------------------------------------------------------------


def recount_billing(box: Sandbox, from_day: date, to_day: date, omit: bool = False) -> dict[str, Any]:
    days: dict[date, list[Decimal]] = {}
    if not omit:
        day = from_day
        while day < to_day and day <= box.now.date():
            days[day] = [Decimal(0), Decimal(0)]
            day += timedelta(days=1)
    for call, running, _ in existing(box):
        minutes = billed(call, running)
        if not from_day <= call.created.date() < to_day or not minutes:
            continue
        row = days.setdefault(call.created.date(), [Decimal(0), Decimal(0)])
        row[0] += minutes
        row[1] += minutes if call.sip else 0
    return {
        "dailyUsage": [
            {"date": d.isoformat(), "minutes": m, "sipMinutes": s} for d, (m, s) in sorted(days.items())
        ],
        "totalMinutes": sum((m for m, _ in days.values()), Decimal(0)),
        "totalSipMinutes": sum((s for _, s in days.values()), Decimal(0)),
    }


def exact_billing(body: dict[str, Any]) -> dict[str, Any]:
    assert list(body) == ["dailyUsage", "totalMinutes", "totalSipMinutes"]
    for row in body["dailyUsage"]:
        assert list(row) == ["date", "minutes", "sipMinutes"]
        row["minutes"], row["sipMinutes"] = exact(row["minutes"]), exact(row["sipMinutes"])
    body["totalMinutes"], body["totalSipMinutes"] = (
        exact(body["totalMinutes"]),
        exact(body["totalSipMinutes"]),
    )
    return body


BILLING_RANGES = [
    # (params, fromDate, toDate); the fixture's now is 2025-03-04 15:55.
    ({}, date(2025, 3, 1), date(2025, 3, 5)),  # the current month through today
    ({"fromDate": "2025-01-15", "toDate": "2025-02-10"}, date(2025, 1, 15), date(2025, 2, 10)),
    ({"fromDate": "2024-12-01", "toDate": "2025-03-01"}, date(2024, 12, 1), date(2025, 3, 1)),  # 90 days
    ({"fromDate": "2025-02-20"}, date(2025, 2, 20), date(2025, 3, 5)),  # toDate: tomorrow
    ({"fromDate": "2025-02-27", "toDate": "2025-04-01"}, date(2025, 2, 27), date(2025, 4, 1)),  # future end
    ({"fromDate": "2025-01-20", "toDate": "2025-01-21"}, date(2025, 1, 20), date(2025, 1, 21)),  # idle day
    ({"fromDate": "2025-03-04", "agentIds": AGENT_IDS[0], "voiceId": VOICE_IDS[1]}, date(2025, 3, 4), None),
]


@pytest.mark.parametrize("empty_days", ["zero", "omit"])
@pytest.mark.parametrize(("params", "from_day", "to_day"), BILLING_RANGES, ids=lambda v: str(v))
def test_billing_usage_matches_brute_force(
    make_box: Callable[..., Sandbox],
    params: dict[str, Any],
    from_day: date,
    to_day: date | None,
    empty_days: str,
) -> None:
    box = make_box(billing_empty_days=empty_days)
    to_day = to_day or date(2025, 3, 5)
    body = ok(box, BILLING, params)
    assert body == box.billing_truth(as_params(params))
    expected = recount_billing(box, from_day, to_day, omit=empty_days == "omit")
    assert exact_billing(body) == expected
    if empty_days == "zero":
        last = min(to_day - timedelta(days=1), box.now.date())
        assert [r["date"] for r in body["dailyUsage"]] == [
            (from_day + timedelta(days=i)).isoformat() for i in range((last - from_day).days + 1)
        ]
    else:
        assert all(r["minutes"] > 0 for r in body["dailyUsage"])


def test_billing_to_date_is_exclusive_and_sip_is_a_part(box: Sandbox) -> None:
    a = ok(box, BILLING, {"fromDate": "2025-02-10", "toDate": "2025-02-12"})
    b = ok(box, BILLING, {"fromDate": "2025-02-10", "toDate": "2025-02-13"})
    assert [r["date"] for r in a["dailyUsage"]] == ["2025-02-10", "2025-02-11"]
    day12 = sum(
        Decimal(str(c.billed_minutes)) for c, _, _ in existing(box) if c.created.date() == date(2025, 2, 12)
    )
    assert day12 > 0 and exact(b["totalMinutes"]) - exact(a["totalMinutes"]) == day12
    rows = ok(box, BILLING, {"fromDate": "2024-12-01", "toDate": "2025-03-01"})["dailyUsage"]
    assert all(0 <= r["sipMinutes"] <= r["minutes"] for r in rows)
    assert any(0 < r["sipMinutes"] < r["minutes"] for r in rows)
    assert any(r["sipMinutes"] == 0 < r["minutes"] for r in rows)
    assert '"sipMinutes": 0.0' in get(box, BILLING, {"fromDate": "2024-12-01", "toDate": "2025-03-01"}).text


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        (
            {"fromDate": "2024-12-01", "toDate": "2025-03-02"},
            "toDate: must be at most 90 days after fromDate.",
        ),
        ({"fromDate": "2024-11-25"}, "toDate: must be at most 90 days after fromDate."),  # toDate: tomorrow
        ({"fromDate": "2025-02-10", "toDate": "2025-02-10"}, "toDate: must be after fromDate."),
        ({"fromDate": "2025-02-10", "toDate": "2025-02-09"}, "toDate: must be after fromDate."),
        ({"toDate": "2025-02-15"}, "toDate: must be after fromDate."),  # fromDate: 2025-03-01
        (
            {"fromDate": "2025-02-30"},
            "fromDate: Date has wrong format. Use one of these formats instead: YYYY-MM-DD.",
        ),
        (
            {"toDate": "2025-03-01T00:00:00Z"},
            "toDate: Date has wrong format. Use one of these formats instead: YYYY-MM-DD.",
        ),
        ({"fromDate": ""}, "fromDate: Date has wrong format. Use one of these formats instead: YYYY-MM-DD."),
    ],
)
def test_billing_bad_ranges_are_400(box: Sandbox, params: dict[str, str], detail: str) -> None:
    resp = get(box, BILLING, params)
    assert (resp.status_code, resp.json()) == (400, {"detail": detail})
    with pytest.raises(SandboxBadRequest) as err:
        box.billing_truth(as_params(params))
    assert err.value.detail == detail


# -- /accounts/me/usage/concurrency ------------------------------------------------------------------

SIZES = {
    "minute": timedelta(minutes=1),
    "5min": timedelta(minutes=5),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}


def bucket_floor(t: datetime, bucket: str) -> datetime:
    t = t.replace(second=0, microsecond=0)
    if bucket == "5min":
        return t - timedelta(minutes=t.minute % 5)
    if bucket == "hour":
        return t.replace(minute=0)
    if bucket == "day":
        return t.replace(hour=0, minute=0)
    return t


def intervals(box: Sandbox | None, calls: list[Call] | None = None, now: datetime | None = None) -> Spans:
    """[created, stop) of every call that exists, a running call stopping at now."""
    calls, now = (box.calls, box.now) if box is not None else (calls or [], now or SANDBOX_NOW)
    out = []
    for call in calls:
        stop = min(call.created + timedelta(seconds=call.duration_s), now)
        if call.created <= now and stop > call.created:
            out.append((call.created, stop, call.joined))
    return out


def sweep(
    box: Sandbox | None,
    bucket: str = "minute",
    start: datetime | None = None,
    end: datetime | None = None,
    inclusive: bool = False,
    omit: bool = False,
    history: timedelta | None = None,
    spans: tuple[Spans, datetime] | None = None,
) -> list[dict[str, Any]]:
    """Walk the start/end events in time order (ends first at a tie), integrating the running count.

    Over the box's log, or over `spans` = (intervals, now) when no box is given."""
    ivals, now = (intervals(box), box.now) if box is not None else spans  # type: ignore[misc]
    size = SIZES[bucket]
    end = end or now
    start = start or end - timedelta(hours=24)
    events = sorted(
        [(s, 1, j) for s, _, j in ivals] + [(e, -1, j) for _, e, j in ivals], key=lambda ev: ev[:2]
    )
    starts, b = [], bucket_floor(start, bucket)
    while (b <= end if inclusive else b < end) and b < now:
        if history is None or b >= now - history:
            starts.append(b)
        b += size
    running, i, series = [0, 0], 0, []

    def apply(delta: int, joined: bool) -> None:
        running[0] += delta
        running[1] += delta if joined else 0

    for b in starts:
        w = min(b + size, now)
        while i < len(events) and events[i][0] <= b:
            apply(*events[i][1:])
            i += 1
        peak, area, cur = list(running), [0, 0], b
        while i < len(events) and events[i][0] < w:
            t, delta, joined = events[i]
            area = [area[k] + running[k] * ((t - cur) // US) for k in (0, 1)]
            apply(delta, joined)
            peak = [max(peak[k], running[k]) for k in (0, 1)]
            cur = t
            i += 1
        area = [area[k] + running[k] * ((w - cur) // US) for k in (0, 1)]
        if omit and not area[0]:
            continue
        series.append(
            {
                "timestamp": b.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "maxTotalCalls": peak[0],
                "maxJoinedCalls": peak[1],
                "avgTotalCalls": area[0] / ((w - b) // US),
                "avgJoinedCalls": area[1] / ((w - b) // US),
            }
        )
    return series


def check_series(body: dict[str, Any]) -> list[dict[str, Any]]:
    assert list(body) == ["timeSeries"]
    for row in body["timeSeries"]:
        assert list(row) == [
            "timestamp",
            "maxTotalCalls",
            "maxJoinedCalls",
            "avgTotalCalls",
            "avgJoinedCalls",
        ]
        assert STAMP_RE.fullmatch(row["timestamp"])
        assert type(row["maxTotalCalls"]) is int and type(row["maxJoinedCalls"]) is int
        assert isinstance(row["avgTotalCalls"], float) and isinstance(row["avgJoinedCalls"], float)
        assert row["maxJoinedCalls"] <= row["maxTotalCalls"]
        assert row["avgJoinedCalls"] <= row["avgTotalCalls"] <= row["maxTotalCalls"]
    return body["timeSeries"]


CONCURRENCY_CASES = [
    ({}, "minute", None, None),
    ({"bucket": "5min", "start": "2025-03-03T06:02:30Z"}, "5min", "2025-03-03T06:02:30", None),
    (
        {"bucket": "hour", "start": "2025-02-28", "end": "2025-03-03T12:00:00Z"},
        "hour",
        "2025-02-28",
        "2025-03-03T12:00",
    ),
    (
        {"bucket": "hour", "start": "2025-03-03T10:30:00+02:00", "end": "2025-03-04T09:20"},
        "hour",
        "2025-03-03T08:30",
        "2025-03-04T09:20",
    ),
    ({"bucket": "day", "start": "2025-02-20", "end": "2025-03-10"}, "day", "2025-02-20", "2025-03-10"),
    ({"bucket": "day", "end": "2025-03-02T00:00:00Z"}, "day", "2025-03-01", "2025-03-02"),
    (
        {"bucket": "minute", "start": "2025-03-04T09:00:00Z", "end": "2025-03-04T12:00:00Z"},
        "minute",
        "2025-03-04T09:00",
        "2025-03-04T12:00",
    ),
    (
        {"start": "2025-03-04T14:00:00Z", "agentIds": AGENT_IDS[0], "fromDate": "2025-01-01"},
        "minute",
        "2025-03-04T14:00",
        None,
    ),
]


@pytest.mark.parametrize("end_mode", ["exclusive", "inclusive"])
@pytest.mark.parametrize("empty_buckets", ["zero", "omit"])
@pytest.mark.parametrize(("params", "bucket", "start", "end"), CONCURRENCY_CASES, ids=lambda v: str(v))
def test_concurrency_matches_a_sweep(
    busy: Sandbox,
    params: dict[str, str],
    bucket: str,
    start: str | None,
    end: str | None,
    empty_buckets: str,
    end_mode: str,
) -> None:
    busy.concurrency_empty_buckets, busy.concurrency_end = empty_buckets, end_mode
    try:
        body = ok(busy, CONCURRENCY, params)
        assert body == busy.concurrency_truth(as_params(params))
    finally:
        busy.concurrency_empty_buckets, busy.concurrency_end = "zero", "exclusive"
    series = check_series(body)
    expected = sweep(
        busy,
        bucket,
        utc(start) if start else None,
        utc(end) if end else None,
        inclusive=end_mode == "inclusive",
        omit=empty_buckets == "omit",
    )
    assert series == expected
    assert any(r["maxTotalCalls"] >= 3 for r in series)  # real overlaps, not just single calls
    if empty_buckets == "zero" and params == {}:
        assert len(series) == 1440
        assert (series[0]["timestamp"], series[-1]["timestamp"]) == (
            "2025-03-03T15:55:00Z",
            "2025-03-04T15:54:00Z",
        )


def test_concurrency_fixed_values_on_a_busy_hour(busy: Sandbox) -> None:
    series = ok(
        busy, CONCURRENCY, {"bucket": "hour", "start": "2025-03-04T11:00:00Z", "end": "2025-03-04T12:00:00Z"}
    )
    assert series["timeSeries"][0]["timestamp"] == "2025-03-04T11:00:00Z"
    assert (series["timeSeries"][0]["maxTotalCalls"], series["timeSeries"][0]["maxJoinedCalls"]) == (7, 6)
    days = ok(busy, CONCURRENCY, {"bucket": "day", "start": "2025-03-03"})["timeSeries"]
    assert [r["timestamp"] for r in days] == ["2025-03-03T00:00:00Z", "2025-03-04T00:00:00Z"]
    # A day's average is its total call time over the day (the partial day: over 00:00..now).
    call_time = sum(((e - s) // US for s, e, _ in intervals(busy) if s >= utc("2025-03-04")), 0)
    overlapping_midnight = [(s, e) for s, e, _ in intervals(busy) if s < utc("2025-03-04") < e]
    call_time += sum((e - utc("2025-03-04")) // US for _, e in overlapping_midnight)
    assert days[1]["avgTotalCalls"] == call_time / ((SANDBOX_NOW - utc("2025-03-04")) // US)


def handmade(created: str, seconds: float, joined: bool = True) -> Call:
    return Call(
        call_id=f"handmade-{created}",
        created=utc(created),
        duration_s=seconds,
        joined=joined,
        error=False,
        billed_minutes=0.0,
        agent_id=None,
        voice_id=VOICE_IDS[0],
        metadata={},
        text="",
        sip=False,
    )


def test_concurrency_definitions_on_handmade_calls() -> None:
    calls = [
        handmade("2025-03-04T10:00:00", 30),  # A 10:00:00-10:00:30
        handmade("2025-03-04T10:00:30", 60),  # B 10:00:30-10:01:30: starts as A ends, never overlaps it
        handmade("2025-03-04T10:01:00", 90, joined=False),  # C 10:01:00-10:02:30, not joined
        handmade("2025-03-04T10:02:45", 600),  # D from 10:02:45, still running at now
        handmade("2025-03-04T10:04:00", 5),  # E does not exist yet
    ]
    now = utc("2025-03-04T10:03:15")

    def row(stamp: str, peaks: tuple[int, int], avgs: tuple[float, float]) -> dict[str, Any]:
        return {
            "timestamp": f"2025-03-04T{stamp}:00Z",
            "maxTotalCalls": peaks[0],
            "maxJoinedCalls": peaks[1],
            "avgTotalCalls": avgs[0],
            "avgJoinedCalls": avgs[1],
        }

    minutes = [
        row("10:00", (1, 1), (60 / 60, 60 / 60)),
        row("10:01", (2, 1), (90 / 60, 30 / 60)),  # B and C both at 10:01:00
        row("10:02", (1, 1), (45 / 60, 15 / 60)),  # C ends 15 s before D starts
        row("10:03", (1, 1), (15 / 15, 15 / 15)),  # partial: 15 s elapsed, D throughout
    ]
    # Starting at 09:30 begins with the bucket containing it; 10:00 averages over the 195 s up to now.
    hour = [row("09:00", (0, 0), (0.0, 0.0)), row("10:00", (2, 1), (210 / 195, 120 / 195))]
    for params, expected in [
        ({"start": ["2025-03-04T10:00:00Z"]}, minutes),
        ({"bucket": ["hour"], "start": ["2025-03-04T09:30:00Z"]}, hour),
    ]:
        assert concurrency(calls, params, now)["timeSeries"] == expected
        bucket, start = params.get("bucket", ["minute"])[0], utc(params["start"][0][:-1])
        assert sweep(None, bucket, start, spans=(intervals(None, calls, now), now)) == expected
    assert (
        concurrency(calls, {"start": ["2025-03-04T09:58:00Z"]}, now, empty_buckets="omit")["timeSeries"]
        == minutes
    )
    assert concurrency(calls, {"start": ["2025-03-04T09:58:00Z"]}, now)["timeSeries"][:2] == [
        row("09:58", (0, 0), (0.0, 0.0)),
        row("09:59", (0, 0), (0.0, 0.0)),
    ]


def sample_every_ms(box: Sandbox, b: datetime, w: datetime) -> tuple[int, int, Decimal, Decimal]:
    """(max total, max joined, avg total, avg joined) over [b, w) by counting at each millisecond."""
    to_ms = lambda t: (t - b) // MS  # noqa: E731
    spans = [(to_ms(s), to_ms(e), j) for s, e, j in intervals(box) if s < w and e > b]
    assert all((s - b) % MS == timedelta(0) and (e - b) % MS == timedelta(0) for s, e, _ in intervals(box))
    peak, area = [0, 0], [0, 0]
    for t in range(to_ms(w)):
        total = [j for s, e, j in spans if s <= t < e]
        counts = (len(total), sum(total))
        peak = [max(peak[k], counts[k]) for k in (0, 1)]
        area = [area[k] + counts[k] for k in (0, 1)]
    n = to_ms(w)
    return peak[0], peak[1], Decimal(area[0]) / n, Decimal(area[1]) / n


def test_concurrency_busiest_minutes_match_sampling_every_millisecond(busy: Sandbox) -> None:
    params = {"bucket": "minute", "start": "2025-03-04T08:00:00Z", "end": "2025-03-04T15:00:00Z"}
    series = check_series(ok(busy, CONCURRENCY, params))
    busiest = sorted(series, key=lambda r: (-r["maxTotalCalls"], r["timestamp"]))[:3]
    mixed = [r for r in series if r["maxJoinedCalls"] < r["maxTotalCalls"] and r["avgTotalCalls"] % 1 > 0][:2]
    assert busiest[0]["maxTotalCalls"] >= 5 and len(mixed) == 2
    for row in busiest + mixed:
        b = utc(row["timestamp"][:-1])
        peak_total, peak_joined, avg_total, avg_joined = sample_every_ms(busy, b, b + timedelta(minutes=1))
        assert (row["maxTotalCalls"], row["maxJoinedCalls"]) == (peak_total, peak_joined)
        assert row["avgTotalCalls"] == pytest.approx(float(avg_total), abs=1e-12)
        assert row["avgJoinedCalls"] == pytest.approx(float(avg_joined), abs=1e-12)


def test_concurrency_partial_bucket_and_the_clock(make_box: Callable[..., Sandbox]) -> None:
    box = make_box(now=SANDBOX_NOW + timedelta(seconds=30))  # 15:55:30, mid-minute
    call = next(c for c in box.calls if c.created <= box.now < c.ended)  # 15:52:36 .. 16:00:15
    series = check_series(ok(box, CONCURRENCY, {"start": "2025-03-04T15:50:00Z"}))
    assert [r["timestamp"][11:16] for r in series] == ["15:50", "15:51", "15:52", "15:53", "15:54", "15:55"]
    assert series == sweep(box, start=utc("2025-03-04T15:50"))
    # The partial bucket averages over its 30 elapsed seconds, during which the call runs throughout.
    assert series[-1] == {
        "timestamp": "2025-03-04T15:55:00Z",
        "maxTotalCalls": 1,
        "maxJoinedCalls": int(call.joined),
        "avgTotalCalls": 1.0,
        "avgJoinedCalls": float(call.joined),
    }
    first_part = (utc("2025-03-04T15:53") - call.created) / timedelta(minutes=1)
    assert series[2]["avgTotalCalls"] == first_part
    box.advance(timedelta(minutes=10))  # 16:05:30: the call ended at 16:00:15.042
    later = check_series(ok(box, CONCURRENCY, {"start": "2025-03-04T15:50:00Z"}))
    assert later == sweep(box, start=utc("2025-03-04T15:50"))
    assert later[:6] == series[:5] + [{**series[5], "avgTotalCalls": 1.0, "avgJoinedCalls": 1.0}]
    by_time = {r["timestamp"][11:16]: r for r in later}
    assert (
        by_time["16:00"]["avgTotalCalls"] == 15_042_000 / 60_000_000
        and by_time["16:01"]["maxTotalCalls"] == 0
    )
    assert later[-1]["timestamp"] == "2025-03-04T16:05:00Z"


def test_concurrency_bucket_starting_at_end_and_at_now(make_box: Callable[..., Sandbox]) -> None:
    exclusive, inclusive = make_box(), make_box(concurrency_end="inclusive")
    params = {"bucket": "hour", "start": "2025-03-04T08:00:00Z", "end": "2025-03-04T12:00:00Z"}
    stamps = [r["timestamp"][11:13] for r in ok(exclusive, CONCURRENCY, params)["timeSeries"]]
    assert stamps == ["08", "09", "10", "11"]
    assert [r["timestamp"][11:13] for r in ok(inclusive, CONCURRENCY, params)["timeSeries"]] == stamps + [
        "12"
    ]
    unaligned = {**params, "end": "2025-03-04T12:00:00.000001Z"}
    assert ok(exclusive, CONCURRENCY, unaligned) == ok(inclusive, CONCURRENCY, unaligned)
    assert len(ok(exclusive, CONCURRENCY, unaligned)["timeSeries"]) == 5
    # now is 15:55:00 sharp: the bucket starting at now has no elapsed time and is not listed.
    for box in (exclusive, inclusive):
        assert ok(box, CONCURRENCY, {"end": "2025-03-05T00:00:00Z"})["timeSeries"][-1]["timestamp"] == (
            "2025-03-04T15:54:00Z"
        )
    assert ok(exclusive, CONCURRENCY, {"start": "2025-03-04T15:55:00Z", "end": "2025-03-05"}) == {
        "timeSeries": []
    }
    assert ok(exclusive, CONCURRENCY, {"start": "2025-03-04T15:00:00Z", "end": "2025-03-04T15:00:00Z"}) == {
        "timeSeries": []
    }
    assert (
        len(
            ok(inclusive, CONCURRENCY, {"start": "2025-03-04T15:00:00Z", "end": "2025-03-04T15:00:00Z"})[
                "timeSeries"
            ]
        )
        == 1
    )


def test_concurrency_empty_buckets_zero_or_omit(make_box: Callable[..., Sandbox]) -> None:
    zero, omit = make_box(), make_box(concurrency_empty_buckets="omit")
    params = {"bucket": "5min", "start": "2025-03-02T00:00:00Z", "end": "2025-03-04T00:00:00Z"}
    z, o = ok(zero, CONCURRENCY, params)["timeSeries"], ok(omit, CONCURRENCY, params)["timeSeries"]
    assert len(z) == 2 * 24 * 12
    assert o == [r for r in z if r["maxTotalCalls"]] and 0 < len(o) < len(z) / 4
    assert all(
        r == {**r, "maxTotalCalls": 0, "maxJoinedCalls": 0, "avgTotalCalls": 0.0, "avgJoinedCalls": 0.0}
        for r in z
        if not r["maxTotalCalls"]
    )
    assert '"avgTotalCalls": 0.0' in get(zero, CONCURRENCY, params).text


def test_concurrency_max_range_and_history(make_box: Callable[..., Sandbox]) -> None:
    capped = make_box(concurrency_max_days=7)
    fine = {"bucket": "hour", "start": "2025-02-20T00:00:00Z", "end": "2025-02-27T00:00:00Z"}
    assert get(capped, CONCURRENCY, fine).status_code == 200
    assert get(capped, CONCURRENCY, {}).status_code == 200
    over = {**fine, "end": "2025-02-27T00:00:00.000001Z"}
    resp = get(capped, CONCURRENCY, over)
    detail = "Date range too large: start and end may be at most 7 days apart."
    assert (resp.status_code, resp.json()) == (400, {"detail": detail})
    with pytest.raises(SandboxBadRequest):
        capped.concurrency_truth(as_params(over))
    # The range is checked as requested, before clipping to now: a future end still counts.
    assert get(capped, CONCURRENCY, {"start": "2025-03-01", "end": "2025-03-09"}).status_code == 400

    limited = make_box(concurrency_history_days=2)  # buckets from 2025-03-02T15:55 on
    hours = ok(limited, CONCURRENCY, {"bucket": "hour", "start": "2025-02-25"})["timeSeries"]
    assert hours[0]["timestamp"] == "2025-03-02T16:00:00Z" and len(hours) == 48
    assert hours == sweep(limited, "hour", utc("2025-02-25"), history=timedelta(days=2))
    days = ok(limited, CONCURRENCY, {"bucket": "day", "start": "2025-02-25"})["timeSeries"]
    assert [r["timestamp"] for r in days] == ["2025-03-03T00:00:00Z", "2025-03-04T00:00:00Z"]
    assert ok(limited, CONCURRENCY, {"start": "2025-02-25", "end": "2025-02-27"}) == {"timeSeries": []}
    assert len(ok(limited, CONCURRENCY)["timeSeries"]) == 1440  # the default 24 h is inside the history


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"bucket": "week"}, 'bucket: "week" is not a valid choice.'),
        ({"bucket": ""}, 'bucket: "" is not a valid choice.'),
        ({"start": "garbage"}, "start: enter a valid date/time (got 'garbage')."),
        ({"end": "2025-13-01"}, "end: enter a valid date/time (got '2025-13-01')."),
        ({"start": "2025-03-04T12:00:00Z", "end": "2025-03-04T11:00:00Z"}, "start: must not be after end."),
    ],
)
def test_concurrency_bad_params_are_400(box: Sandbox, params: dict[str, str], detail: str) -> None:
    resp = get(box, CONCURRENCY, params)
    assert (resp.status_code, resp.json()) == (400, {"detail": detail})


# -- the clock: running calls end --------------------------------------------------------------------


def test_a_running_call_is_unbilled_until_it_ends_on_every_endpoint(box: Sandbox) -> None:
    call = next(c for c, running, _ in existing(box) if running)  # 15:52:36 .. 16:00:15, joined, 7.7 min
    assert call.agent_id == AGENT_IDS[0] and call.billed_minutes == 7.7 and not call.sip
    today = {"fromDate": "2025-03-04"}

    def reception_today() -> dict[str, Any]:
        entry = next(e for e in ok(box, AGENTS, today) if e["agent"]["agentId"] == AGENT_IDS[0])
        return entry["usage"][-1]

    before_agent, before_bill = reception_today(), ok(box, BILLING, today)
    assert before_agent["date"] == "2025-03-04"
    assert exact_billing(ok(box, BILLING, today)) == recount_billing(box, date(2025, 3, 4), date(2025, 3, 5))
    box.advance(timedelta(minutes=10))
    after_agent, after_bill = reception_today(), ok(box, BILLING, today)
    assert after_agent["calls"] == before_agent["calls"]
    assert exact(after_agent["billedMinutes"]) - exact(before_agent["billedMinutes"]) == Decimal("7.7")
    assert exact(after_bill["totalMinutes"]) - exact(before_bill["totalMinutes"]) == Decimal("7.7")
    assert after_bill["totalSipMinutes"] == before_bill["totalSipMinutes"]
    assert exact_billing(after_bill) == recount_billing(box, date(2025, 3, 4), date(2025, 3, 5))
    assert exact_agents(ok(box, AGENTS, today)) == recount_agents(box, lo=utc("2025-03-04"))


def test_a_day_whose_only_call_is_running(make_box: Callable[..., Sandbox]) -> None:
    # Just after the first call of 2025-03-03 starts, that day has one call and no billed minutes.
    first = next(c for c in generate_calls(SANDBOX_SEED, date(2025, 3, 3), date(2025, 3, 3)))
    now = first.created + timedelta(seconds=2)
    zero = make_box(now=now, agent_empty_days="zero")
    omit = make_box(now=now, billing_empty_days="omit")
    params = {"fromDate": "2025-03-03"}
    assert ok(zero, BILLING, params) == {
        "dailyUsage": [{"date": "2025-03-03", "minutes": 0.0, "sipMinutes": 0.0}],
        "totalMinutes": 0.0,
        "totalSipMinutes": 0.0,
    }
    assert ok(omit, BILLING, params) == {"dailyUsage": [], "totalMinutes": 0.0, "totalSipMinutes": 0.0}
    agents = ok(zero, AGENTS, params)
    if first.agent_id is not None:
        assert agents == [
            {
                "agent": {"agentId": first.agent_id, "name": AGENT_NAMES[first.agent_id]},
                "usage": [{"date": "2025-03-03", "billedMinutes": 0.0, "calls": 1}],
            }
        ]
    concurrency = ok(zero, CONCURRENCY, {"start": "2025-03-03T00:00:00Z"})["timeSeries"]
    assert concurrency[-1]["maxTotalCalls"] == 1 and concurrency[-1]["timestamp"] == now.strftime(
        "%Y-%m-%dT%H:%M:00Z"
    )
    assert concurrency == sweep(zero, start=utc("2025-03-03"))


# -- deleted calls, days to come, the Date header ------------------------------------------------------

ZERO_USAGE = {"totalCount": 0, "errorCount": 0, "duration": "0s", "joinedCount": 0, "billedMinutes": 0.0}


def delete(box: Sandbox, call_id: str, key: str | None = SANDBOX_API_KEY) -> requests.Response:
    headers = {} if key is None else {"X-API-Key": key}
    return requests.delete(f"{box.url}/calls/{call_id}", headers=headers, timeout=5)


def test_a_deleted_call_is_in_no_figure_of_any_endpoint(make_box: Callable[..., Sandbox]) -> None:
    """DELETE /api/calls/{callId} answers 204 without a body; then every endpoint answers as if the
    call had never been. Here every call of 2025-03-03 goes, so the omit modes leave the day out."""
    box = make_box(empty_buckets="omit", billing_empty_days="omit", concurrency_empty_buckets="omit")
    day = "2025-03-03"
    doomed = [c for c in box.calls if c.created.date().isoformat() == day]
    assert doomed and all(c.ended <= box.now for c in doomed)
    params = {"fromDate": "2025-03-01", "toDate": "2025-03-04"}
    before = ok(box, USAGE, params)
    assert day in [r["date"] for r in before["daily"]]
    for call in doomed:
        resp = delete(box, call.call_id)
        assert (resp.status_code, resp.content) == (204, b"")
        assert "Content-Length" not in resp.headers and "Content-Type" not in resp.headers
    assert [c for c in box.calls if c.created.date().isoformat() == day] == []

    after = ok(box, USAGE, params)
    assert after["daily"] == [r for r in before["daily"] if r["date"] != day]
    assert after["hourly"] == [r for r in before["hourly"] if r["date"] != day]
    assert after["allTime"]["totalCount"] == before["allTime"]["totalCount"] - len(doomed)
    # The other endpoints: what a recount of the log that is left gives.
    agents = ok(box, AGENTS, params)
    assert all(row["date"] != day for entry in agents for row in entry["usage"])
    assert exact_agents(agents) == recount_agents(
        box, lo=utc("2025-03-01"), hi=utc("2025-03-04T23:59:59.999999")
    )
    bill = ok(box, BILLING, {"fromDate": "2025-03-01", "toDate": "2025-03-05"})
    assert day not in [r["date"] for r in bill["dailyUsage"]]
    assert exact_billing(bill) == recount_billing(box, date(2025, 3, 1), date(2025, 3, 5), omit=True)
    window = {"bucket": "hour", "start": "2025-03-02T00:00:00Z", "end": "2025-03-05T00:00:00Z"}
    series = check_series(ok(box, CONCURRENCY, window))
    assert series == sweep(box, "hour", utc("2025-03-02"), utc("2025-03-05"), omit=True)
    # Only a call of the day before, running past midnight, is left in that day's buckets.
    assert [r["timestamp"] for r in series if r["timestamp"][:10] == day][1:] == []


def test_deleting_takes_the_key_and_a_call_that_exists(box: Sandbox) -> None:
    past, other = [c for c in box.calls if c.created <= box.now][-2:]
    future = next(c for c in box.calls if c.created > box.now)
    for key in (None, "wrong-key"):
        resp = delete(box, past.call_id, key=key)
        assert (resp.status_code, resp.json()) == (401, {"detail": "Invalid API key."})
    assert past in box.calls
    # Unknown, not a call id, and a call not created yet.
    for call_id in (UNKNOWN_AGENT, "not-a-uuid", future.call_id):
        resp = delete(box, call_id)
        assert (resp.status_code, resp.json()) == (404, {"detail": "Not found."})
    assert delete(box, past.call_id).status_code == 204
    assert delete(box, past.call_id).status_code == 404  # deleted already
    resp = requests.get(f"{box.url}/calls/{other.call_id}", headers={"X-API-Key": SANDBOX_API_KEY}, timeout=5)
    assert (resp.status_code, resp.json(), resp.headers["Allow"]) == (
        405,
        {"detail": 'Method "GET" not allowed.'},
        "DELETE",
    )
    # The Python method deletes all or nothing.
    with pytest.raises(KeyError, match=future.call_id):
        box.delete_calls([other.call_id, future.call_id])
    assert other in box.calls and future in box.calls
    box.delete_calls([other.call_id])
    assert other not in box.calls
    assert [r.method for r in box.requests] == ["DELETE"] * 7 + ["GET"]


def test_deletions_survive_the_clock_and_the_log_growing(box: Sandbox) -> None:
    gone = {c.call_id for c in box.calls if c.created.date() == date(2025, 3, 3)}
    box.delete_calls(gone)
    size = len(box.calls)
    box.advance(timedelta(days=40))  # the log grows by 40 days
    assert len(box.calls) > size
    assert not gone & {c.call_id for c in box.calls}
    body = ok(box, USAGE, {"fromDate": "2025-03-03", "toDate": "2025-03-03"})
    assert body["daily"] == [{**ZERO_USAGE, "date": "2025-03-03"}]
    assert body["hourly"] == [{**ZERO_USAGE, "date": "2025-03-03", "hour": hour} for hour in range(24)]


@pytest.mark.parametrize("empty_buckets", ["zero", "omit"])
def test_future_buckets_zero_lists_the_days_and_hours_to_come(
    make_box: Callable[..., Sandbox], empty_buckets: str
) -> None:
    """The clock is 2025-03-04 15:55: the days after it, and the hours after 15:00, that the request
    asks for are listed as zeros, whatever empty_buckets says; nothing else changes."""
    plain = make_box(empty_buckets=empty_buckets, billing_empty_days=empty_buckets)
    ahead = make_box(empty_buckets=empty_buckets, billing_empty_days=empty_buckets, future_buckets="zero")
    params = {"fromDate": "2025-03-03", "toDate": "2025-03-06"}
    was, now = ok(plain, USAGE, params), ok(ahead, USAGE, params)
    to_come = ["2025-03-05", "2025-03-06"]
    assert now["allTime"] == was["allTime"]
    assert now["daily"] == was["daily"] + [{**ZERO_USAGE, "date": d} for d in to_come]
    hours = [("2025-03-04", h) for h in range(16, 24)] + [(d, h) for d in to_come for h in range(24)]
    assert now["hourly"] == was["hourly"] + [{**ZERO_USAGE, "date": d, "hour": h} for d, h in hours]
    assert now == ahead.ground_truth(as_params(params))
    # Only days the request asks for: none without a toDate, none when toDate is past.
    for asked in ({"fromDate": "2025-03-03"}, {"fromDate": "2025-03-01", "toDate": "2025-03-03"}):
        assert ok(ahead, USAGE, asked) == ok(plain, USAGE, asked)
    only_ahead = ok(ahead, USAGE, {"fromDate": "2025-03-06", "toDate": "2025-03-06"})
    assert only_ahead["daily"] == [{**ZERO_USAGE, "date": "2025-03-06"}]
    assert len(only_ahead["hourly"]) == 24
    # The bill: toDate is exclusive.
    bill = {"fromDate": "2025-03-03", "toDate": "2025-03-07"}
    was_bill, now_bill = ok(plain, BILLING, bill), ok(ahead, BILLING, bill)
    assert now_bill == {
        **was_bill,
        "dailyUsage": was_bill["dailyUsage"]
        + [{"date": d, "minutes": 0.0, "sipMinutes": 0.0} for d in to_come],
    }
    assert now_bill == ahead.billing_truth(as_params(bill))
    for asked in ({"fromDate": "2025-03-03"}, {"fromDate": "2025-03-01", "toDate": "2025-03-05"}):
        assert ok(ahead, BILLING, asked) == ok(plain, BILLING, asked)


def test_the_date_header_is_the_sandbox_clock(box: Sandbox) -> None:
    for path in (USAGE, *NEW_PATHS):
        assert get(box, path).headers["Date"] == "Tue, 04 Mar 2025 15:55:00 GMT"
    assert get(box, USAGE, key=None).headers["Date"] == "Tue, 04 Mar 2025 15:55:00 GMT"
    box.advance(timedelta(days=1, hours=1, seconds=30.7))
    assert get(box, USAGE).headers["Date"] == "Wed, 05 Mar 2025 16:55:30 GMT"


# -- auth, routing, faults, request log -------------------------------------------------------------


@pytest.mark.parametrize("path", NEW_PATHS)
def test_auth_and_methods(box: Sandbox, path: str) -> None:
    for key in (None, "wrong-key", ""):
        resp = get(box, path, key=key)
        assert (resp.status_code, resp.json()) == (401, {"detail": "Invalid API key."})
    # Auth comes before parameter checks.
    assert get(box, path, {"bucket": "week", "fromDate": "x", "start": "x"}, key=None).status_code == 401
    resp = requests.post(box.url + path, headers={"X-API-Key": SANDBOX_API_KEY}, timeout=5)
    assert (resp.status_code, resp.json()) == (405, {"detail": 'Method "POST" not allowed.'})
    assert get(box, path + "/").status_code == 404
    assert (
        requests.get(box.origin + path, headers={"X-API-Key": SANDBOX_API_KEY}, timeout=5).status_code == 404
    )


@pytest.mark.parametrize("path", NEW_PATHS)
def test_count_based_faults_hit_the_new_paths(box: Sandbox, path: str) -> None:
    box.faults = Faults(rate_limit_first=2, retry_after="7")
    answers = [get(box, path) for _ in range(3)]
    assert [r.status_code for r in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "7" and answers[0].json() == {
        "detail": "Request was throttled."
    }
    box.faults = Faults(server_errors_first=1, server_error_status=502)
    assert [get(box, path).status_code for _ in range(2)] == [502, 200]
    box.faults = Faults(error_rate=1.0)
    assert get(box, path).json() == {"detail": "A server error occurred."}
    box.clear_log()
    box.faults = Faults(drop_connection_first=2)
    for _ in range(2):
        with pytest.raises(requests.ConnectionError):
            get(box, path)
    assert get(box, path).status_code == 200
    assert [(r.path, r.status) for r in box.requests] == [("/api" + path, 0)] * 2 + [("/api" + path, 200)]


@pytest.mark.parametrize("path", NEW_PATHS)
def test_bad_200_bodies_on_the_new_paths(box: Sandbox, path: str) -> None:
    params = {"fromDate": "2025-02-01"} if path != CONCURRENCY else {"bucket": "hour"}
    good = get(box, path, params)
    box.faults = Faults(malformed_json=True)
    resp = get(box, path, params)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
    assert good.text.startswith(resp.text) and len(resp.text) < len(good.text)
    with pytest.raises(json.JSONDecodeError):
        json.loads(resp.text)
    box.faults = Faults(wrong_shape=True)
    assert get(box, path, params).json() == {"results": []}
    box.faults = Faults(non_json=True)
    resp = get(box, path, params)
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8" and resp.text.startswith(
        "<!doctype html>"
    )
    box.faults = Faults(large_response_pad=100_000)
    padded = get(box, path, params)
    assert len(padded.content) >= len(good.content) + 100_000
    body = padded.json()
    if isinstance(body, dict):
        assert body.pop("_pad") == "x" * 100_000
    assert body == good.json()


def test_redirect_and_request_log_on_the_new_paths(box: Sandbox) -> None:
    params = {"bucket": "5min", "start": "2025-03-04T10:00:00Z", "agentIds": [AGENT_IDS[0], AGENT_IDS[1]]}
    for path in NEW_PATHS:
        get(box, path, params)
    assert [(r.method, r.path, r.status, r.query) for r in box.requests] == [
        ("GET", "/api" + p, 200, as_params(params)) for p in NEW_PATHS
    ]
    assert all(r.headers["X-API-Key"] == SANDBOX_API_KEY for r in box.requests)
    box.faults = Faults(redirect_to="http://127.0.0.1:9")
    resp = get(box, BILLING, {"fromDate": "2025-02-01"}, allow_redirects=False)
    location = urlsplit(resp.headers["Location"])
    assert resp.status_code == 302 and location.path == "/api" + BILLING
    assert parse_qs(location.query) == {"fromDate": ["2025-02-01"]}


def test_reject_window_fault_applies_to_agent_usage_and_the_calls_list_only(box: Sandbox) -> None:
    box.faults = Faults(reject_window_days_over=30)
    for path in (AGENTS, "/calls"):
        resp = get(box, path, {"fromDate": "2025-01-01", "toDate": "2025-01-31"})
        assert (resp.status_code, resp.json()) == (400, {"detail": "Date range too large"}), path
        assert get(box, path, {"fromDate": "2025-01-01", "toDate": "2025-01-30"}).status_code == 200, path
    assert get(box, BILLING, {"fromDate": "2024-12-01", "toDate": "2025-03-01"}).status_code == 200
    assert get(box, CONCURRENCY, {"bucket": "day", "start": "2024-12-01"}).status_code == 200


# -- switches and the command line ------------------------------------------------------------------


def stop_by_pid(proc: subprocess.Popen) -> None:
    """Stop a `python -m ultravox_sandbox` started by a test, killing it if SIGTERM is not enough."""
    proc.terminate()
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise


def test_odd_values_name_an_agent_empty_and_credit_sundays_alike_on_every_endpoint(
    make_box: Callable[..., Sandbox],
) -> None:
    odd, plain = make_box(odd_values=True), make_box()
    # The log is the default one plus one credit per Sunday: noon, no duration, billed < 0.
    credits = [c for c in odd.calls if c not in plain.calls]
    assert [c for c in odd.calls if c not in credits] == plain.calls
    sundays = [c.created.date() for c in credits]
    # Every Sunday of the log (2024-11-24 is the first after its start), up to its lookahead.
    assert sundays == [date(2024, 11, 24) + timedelta(weeks=i) for i in range(len(sundays))]
    assert sundays[-1] > odd.now.date() + timedelta(days=22)
    assert all(
        (c.created.weekday(), c.created.time(), c.duration_s, c.agent_id, c.sip)
        == (6, time(12), 0.0, CREDITED_AGENT_ID, True)
        and c.billed_minutes < 0
        for c in credits
    )
    params = {"fromDate": "2025-02-01", "toDate": "2025-03-04"}
    billing_params = {"fromDate": "2025-02-01", "toDate": "2025-03-05"}
    bodies = {
        name: (ok(odd, path, q), ok(plain, path, q))
        for name, path, q in [
            ("usage", USAGE, params),
            ("agents", AGENTS, params),
            ("billing", BILLING, billing_params),
        ]
    }
    assert bodies["usage"][0] == odd.ground_truth(as_params(params))
    assert bodies["agents"][0] == odd.agent_usage_truth(as_params(params))
    assert bodies["billing"][0] == odd.billing_truth(as_params(billing_params))
    assert exact_billing(ok(odd, BILLING, billing_params)) == recount_billing(
        odd, date(2025, 2, 1), date(2025, 3, 5)
    )
    in_range = {
        c.created.date().isoformat(): Decimal(str(c.billed_minutes))
        for c in credits
        if "2025-02-01" <= c.created.date().isoformat() <= "2025-03-04"
    }
    assert list(in_range) == ["2025-02-02", "2025-02-09", "2025-02-16", "2025-02-23", "2025-03-02"]

    def rows(body: list[dict[str, Any]] | dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
        if name == "usage":
            return {r["date"]: r for r in body["daily"]}
        if name == "billing":
            return {r["date"]: r for r in body["dailyUsage"]}
        return {r["date"]: r for e in body if e["agent"]["agentId"] == CREDITED_AGENT_ID for r in e["usage"]}

    # Each Sunday's figure is the default one plus the credit, and negative, on all three endpoints;
    # every other day is the default one.
    for name, field in (("usage", "billedMinutes"), ("agents", "billedMinutes"), ("billing", "minutes")):
        got, default = rows(bodies[name][0], name), rows(bodies[name][1], name)
        assert sorted(got) == sorted(default)
        for day, row in got.items():
            credit = in_range.get(day, Decimal(0))
            assert exact(row[field]) == exact(default[day][field]) + credit, (name, day)
            assert (row[field] < 0) == (day in in_range), (name, day)
    assert {
        d: r["sipMinutes"] < 0 for d, r in rows(bodies["billing"][0], "billing").items() if d in in_range
    } == dict.fromkeys(in_range, True)
    # The unnamed agent: listed first (sorted by name), its rows the default ones.
    names = [(e["agent"]["agentId"], e["agent"]["name"]) for e in bodies["agents"][0]]
    assert names[0] == (UNNAMED_AGENT_ID, "")
    assert names[1:] == [
        (e["agent"]["agentId"], e["agent"]["name"])
        for e in bodies["agents"][1]
        if e["agent"]["agentId"] != UNNAMED_AGENT_ID
    ]
    assert bodies["agents"][0][0]["usage"] == next(
        e["usage"] for e in bodies["agents"][1] if e["agent"]["agentId"] == UNNAMED_AGENT_ID
    )
    # A credit runs no time: concurrency is the default one.
    window = {"bucket": "hour", "start": "2025-02-01T00:00:00Z", "end": "2025-03-04T00:00:00Z"}
    assert ok(odd, CONCURRENCY, window) == ok(plain, CONCURRENCY, window)
    assert not plain.odd_values and odd.odd_values
    with pytest.raises(AttributeError):
        odd.odd_values = False  # type: ignore[misc]


def test_module_cli_flag_odd_values() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ultravox_sandbox", "--port", "0", "--days", "20", "--odd-values"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = (proc.stdout.readline().strip() if proc.stdout else "").removeprefix("ULTRAVOX_SANDBOX_URL=")
        headers = {"X-API-Key": SANDBOX_API_KEY}
        agents = requests.get(url + AGENTS, headers=headers, timeout=5).json()
        assert agents[0]["agent"] == {"agentId": UNNAMED_AGENT_ID, "name": ""}
        since = (datetime.now(UTC) - timedelta(days=15)).date().isoformat()
        bill = requests.get(url + BILLING, params={"fromDate": since}, headers=headers, timeout=5).json()
        # Fifteen days hold two Sundays whose noon has passed.
        negative = [r["date"] for r in bill["dailyUsage"] if r["minutes"] < 0]
        assert len(negative) >= 2 and all(date.fromisoformat(d).weekday() == 6 for d in negative)
    finally:
        stop_by_pid(proc)
    assert proc.returncode == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"agents_without_calls": "all"},
        {"agent_empty_days": "none"},
        {"concurrency_empty_buckets": "skip"},
        {"concurrency_end": "closed"},
        {"concurrency_max_days": 0},
        {"concurrency_history_days": -1},
        {"billing_empty_days": "blank"},
        {"error_bodies": "html"},
        {"future_buckets": "fill"},
    ],
)
def test_bad_switch_values_are_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        Sandbox(now=SANDBOX_NOW, **bad)


def test_module_cli_flags_set_the_new_switches() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ultravox_sandbox", "--port", "0", "--days", "20"]
        + ["--agents-without-calls", "list", "--agent-empty-days", "zero"]
        + ["--concurrency-empty-buckets", "omit", "--concurrency-end", "inclusive"]
        + ["--concurrency-max-days", "3", "--concurrency-history-days", "5", "--billing-empty-days", "omit"]
        + ["--error-bodies", "fields"]
        + ["--future-buckets", "zero"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip() if proc.stdout else ""
        url = line.removeprefix("ULTRAVOX_SANDBOX_URL=")
        headers = {"X-API-Key": SANDBOX_API_KEY}

        def fetch(path: str, params: dict[str, str] | None = None) -> requests.Response:
            return requests.get(url + path, params=params, headers=headers, timeout=5)

        agents = fetch(AGENTS).json()
        assert [e["agent"]["name"] for e in agents] == sorted(AGENT_NAMES.values())  # idle ones listed
        # Zero days: every agent with calls has the same consecutive days, up to today.
        spans = {tuple(r["date"] for r in e["usage"]) for e in agents if e["usage"]}
        assert len(spans) == 1 and 15 <= len(span := spans.pop()) <= 21
        assert span[-1] == datetime.now(UTC).date().isoformat()
        assert [date.fromisoformat(d).toordinal() for d in span] == list(
            range(date.fromisoformat(span[0]).toordinal(), date.fromisoformat(span[-1]).toordinal() + 1)
        )
        now = datetime.now(UTC)
        resp = fetch(CONCURRENCY, {"start": (now - timedelta(days=4)).isoformat()})
        [too_large] = resp.json()["non_field_errors"]  # error bodies as DRF field errors
        assert resp.status_code == 400 and too_large.startswith("Date range too large")
        resp = fetch(BILLING, {"fromDate": "2025-02-30"})
        assert (resp.status_code, resp.json()) == (
            400,
            {"fromDate": ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]},
        )
        series = fetch(CONCURRENCY, {"bucket": "hour", "start": (now - timedelta(days=2)).isoformat()}).json()
        assert all(r["maxTotalCalls"] > 0 for r in series["timeSeries"])  # omitted empty buckets
        days = fetch(BILLING, {"fromDate": (now - timedelta(days=20)).date().isoformat()}).json()[
            "dailyUsage"
        ]
        assert days and all(r["minutes"] > 0 for r in days)
        # The days to come that a request asks for, listed as zeros.
        today = now.date()
        ahead = [(today + timedelta(days=n)).isoformat() for n in (1, 2)]
        body = fetch(USAGE, {"fromDate": today.isoformat(), "toDate": ahead[-1]}).json()
        assert [r["date"] for r in body["daily"]][-2:] == ahead
        bill = fetch(
            BILLING, {"fromDate": today.isoformat(), "toDate": (today + timedelta(days=3)).isoformat()}
        )
        assert [r for r in bill.json()["dailyUsage"] if r["date"] > today.isoformat()] == [
            {"date": d, "minutes": 0.0, "sipMinutes": 0.0} for d in ahead
        ]
    finally:
        stop_by_pid(proc)
    assert proc.returncode == 0
