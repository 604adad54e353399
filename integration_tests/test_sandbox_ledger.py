"""The sandbox's ledger endpoints: GET /api/calls, /api/accounts/me/billing/invoices and
/api/accounts/me, checked against the raw call log and against the aggregate endpoints.

Expected values are recounted here from `Sandbox.calls` (a call's fields, filters, invoices, the
account's figures) with no code shared with ledger.py, invoices.py or account.py; the consistency
tests compare what /api/calls lists with what /accounts/me/usage/calls and /billing/usage answer.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from ultravox_sandbox import AGENT_IDS, SANDBOX_API_KEY, VOICE_IDS, Call, Faults, Sandbox
from ultravox_sandbox.pytest_plugin import SANDBOX_NOW

REPO_ROOT = Path(__file__).resolve().parents[1]
CALLS = "/calls"
INVOICES = "/accounts/me/billing/invoices"
ACCOUNT = "/accounts/me"
USAGE = "/accounts/me/usage/calls"
BILLING = "/accounts/me/billing/usage"
LEDGER_PATHS = [CALLS, INVOICES, ACCOUNT]
# DRF's rendering of a UTC datetime: microseconds only when not zero.
STAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z")
CALL_REQUIRED = {
    "agent", "agentId", "billedDuration", "billedSideInputTokens", "billedSideOutputTokens",
    "billingStatus", "callId", "clientVersion", "created", "endReason", "ended",
    "experimentalSettings", "firstSpeaker", "firstSpeakerSettings", "initialOutputMedium",
    "initialState", "joinUrl", "joined", "metadata", "requestContext", "shortSummary", "sipDetails",
    "summary",
}  # fmt: skip
ACCOUNT_REQUIRED = {
    "accountId", "activeCalls", "allowedConcurrentCalls", "allowedCorpora", "allowedVoices",
    "billingUrl", "freeTimeRemaining", "freeTimeUsed", "hasActiveSubscription", "name",
    "subscriptionCadence", "subscriptionExpiration", "subscriptionRenewal",
    "subscriptionScheduledUpdate", "subscriptionTier",
}  # fmt: skip
INVOICE_KEYS = ["invoiceDate", "amount", "billingReason", "invoiceNumber", "invoiceStatus", "invoiceUrl"]
MEDIUM_KINDS = {"webRtc", "twilio", "serverWebSocket", "telnyx", "plivo", "exotel", "sip"}
Params = dict[str, Any]


def get(box: Sandbox, path: str, params: Any = None, key: str | None = SANDBOX_API_KEY) -> requests.Response:
    headers = {} if key is None else {"X-API-Key": key}
    return requests.get(box.url + path, params=params, headers=headers, timeout=5)


def ok(box: Sandbox, path: str, params: Any = None) -> Any:
    resp = get(box, path, params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def follow(url: str) -> Any:
    resp = requests.get(url, headers={"X-API-Key": SANDBOX_API_KEY}, timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.json()


def every_page(box: Sandbox, path: str, params: Params) -> list[dict[str, Any]]:
    pages = [ok(box, path, params)]
    while pages[-1]["next"] is not None:
        pages.append(follow(pages[-1]["next"]))
    return pages


def listed(box: Sandbox, params: Params) -> list[dict[str, Any]]:
    return [c for page in every_page(box, CALLS, {"pageSize": 1000, **params}) for c in page["results"]]


def as_params(params: Params) -> dict[str, list[str]]:
    return {k: [str(x) for x in v] if isinstance(v, list) else [str(v)] for k, v in params.items()}


def stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def seconds(duration: str) -> Decimal:
    assert re.fullmatch(r"-?\d+(\.\d{1,9})?s", duration), duration
    return Decimal(duration[:-1])


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


# -- the raw log ---------------------------------------------------------------------------------------


def running(call: Call, now: datetime) -> bool:
    return call.created <= now < call.created + timedelta(seconds=call.duration_s)


def so_far(call: Call, now: datetime) -> Decimal:
    """Seconds the call has lasted at `now`."""
    if running(call, now):
        return Decimal((now - call.created) // timedelta(microseconds=1)) / 10**6
    return Decimal(str(call.duration_s))


def existing(box: Sandbox) -> list[Call]:
    return [c for c in box.calls if c.created <= box.now]


def billed_s(call: Call) -> int:
    """Whole billed seconds of an ended call: billed minutes are tenths."""
    return int(Decimal(str(call.billed_minutes)) * 60)


def expected_usage_fields(call: Call, now: datetime) -> dict[str, Any]:
    """The usage fields of a call as ledger.py's docstring states them."""
    if running(call, now):
        return {
            "ended": None,
            "endReason": None,
            "billedDuration": None,
            "billingStatus": "BILLING_STATUS_PENDING",
            "billedSideInputTokens": None,
            "billedSideOutputTokens": None,
        }
    if call.error:
        reason = "connection_error" if call.joined else "system_error"
    elif not call.joined:
        reason = "unjoined"
    elif call.duration_s == 1800:
        reason = "timeout"
    else:
        reason = "hangup|agent_hangup"
    secs = billed_s(call)
    if secs:
        status = "BILLING_STATUS_BILLED" if secs > 0 else "BILLING_STATUS_REFUNDED"
    else:
        status = (
            "BILLING_STATUS_FREE_SYSTEM_ERROR"
            if reason == "system_error"
            else "BILLING_STATUS_FREE_ZERO_EFFECTIVE_DURATION"
        )
    return {
        "ended": stamp(call.created + timedelta(seconds=call.duration_s)),
        "endReason": reason,
        "billedDuration": f"{secs}s",
        "billingStatus": status,
    }


def check_call(obj: dict[str, Any], call: Call, box: Sandbox) -> None:
    assert set(obj) >= CALL_REQUIRED, CALL_REQUIRED - set(obj)
    assert obj["callId"] == call.call_id and obj["created"] == stamp(call.created)
    for name in ("created", "joined", "ended"):
        assert obj[name] is None or STAMP_RE.fullmatch(obj[name]), obj[name]
    usage = expected_usage_fields(call, box.now)
    if usage.get("endReason") == "hangup|agent_hangup":
        assert obj["endReason"] in ("hangup", "agent_hangup")
        usage.pop("endReason")
    assert {k: obj[k] for k in usage} == usage
    if obj["ended"] is not None and call.joined:
        assert obj["billedSideInputTokens"] > 0 and obj["billedSideOutputTokens"] > 0
    elif obj["ended"] is not None:
        assert (obj["billedSideInputTokens"], obj["billedSideOutputTokens"]) == (0, 0)
    # joined: set exactly for joined calls, between created and ended (or now).
    assert (obj["joined"] is not None) == call.joined
    if call.joined:
        end = parse(obj["ended"]) if obj["ended"] else box.now
        assert call.created <= parse(obj["joined"]) <= end
    assert obj["agentId"] == call.agent_id
    assert obj["agent"] == (
        None if call.agent_id is None else {"agentId": call.agent_id, "name": box.agent_names[call.agent_id]}
    )
    assert obj["metadata"] == call.metadata and obj["voice"] == call.voice_id
    assert obj["model"] in ("ultravox-v0.7", "ultravox-v0.6")
    [kind] = obj["medium"]
    assert kind in MEDIUM_KINDS and (kind == "sip") == call.sip
    if call.sip:
        assert obj["sipDetails"]["billedDuration"] == obj["billedDuration"]
        assert (obj["sipDetails"]["terminationReason"] is None) == (obj["ended"] is None)
        assert obj["joinUrl"] is None
    else:
        assert obj["sipDetails"] is None
        assert re.fullmatch(rf"wss://[^/]+/calls/{call.call_id}/join\?token=[0-9a-f]+", obj["joinUrl"])
    assert obj["systemPrompt"] and isinstance(obj["requestContext"], dict)


# -- the Call objects and the consistency rule -----------------------------------------------------------


def test_every_listed_call_is_the_logs_with_its_usage_fields(sandbox: Sandbox) -> None:
    """Two weeks up to the clock, one running call among them (15:52:36, joined, 7.7 min)."""
    calls = listed(sandbox, {"fromDate": "2025-02-19", "toDate": "2025-03-04"})
    log = [c for c in existing(sandbox) if c.created.date() >= date(2025, 2, 19)]
    assert [c["callId"] for c in calls] == [c.call_id for c in log]
    for obj, call in zip(calls, log, strict=True):
        check_call(obj, call, sandbox)
    last = calls[-1]
    assert (last["created"], last["ended"], last["billingStatus"]) == (
        "2025-03-04T15:52:36.543000Z",
        None,
        "BILLING_STATUS_PENDING",
    )
    # All kinds of calls occur: SIP, agent-less, never joined, errors of both kinds, customers.
    assert {c["endReason"] for c in calls} >= {"hangup", "agent_hangup", "unjoined", "connection_error"}
    assert any(c["sipDetails"] for c in calls) and any(c["agentId"] is None for c in calls)
    assert any("customer" in c["metadata"] for c in calls)
    assert calls == sandbox.calls_truth(as_params({"fromDate": "2025-02-19", "toDate": "2025-03-04"}))


def test_the_sandbox_shows_every_end_reason_and_billing_status_over_a_month(sandbox: Sandbox) -> None:
    calls = sandbox.calls_truth({"fromDate": ["2025-02-01"]})
    assert {c["endReason"] for c in calls} == {
        None, "unjoined", "hangup", "agent_hangup", "timeout", "connection_error", "system_error"
    }  # fmt: skip
    assert {c["billingStatus"] for c in calls} == {
        "BILLING_STATUS_PENDING",
        "BILLING_STATUS_BILLED",
        "BILLING_STATUS_FREE_SYSTEM_ERROR",
        "BILLING_STATUS_FREE_ZERO_EFFECTIVE_DURATION",
    }
    mediums = {next(iter(c["medium"])) for c in calls}
    assert mediums == {"webRtc", "twilio", "serverWebSocket", "sip"}
    directions = {next(iter(c["medium"]["sip"])) for c in calls if "sip" in c["medium"]}
    assert directions == {"incoming", "outgoing"}


def day_totals(calls: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """What a day's /usage/calls row should say, summed from the calls listed for it."""
    duration = Decimal(0)
    for c in calls:
        end = parse(c["ended"]) if c["ended"] else now
        duration += Decimal((end - parse(c["created"])) // timedelta(microseconds=1)) / 10**6
    billed = sum((seconds(c["billedDuration"]) for c in calls if c["billedDuration"]), Decimal(0))
    return {
        "totalCount": len(calls),
        "joinedCount": sum(c["joined"] is not None for c in calls),
        "errorCount": sum(c["endReason"] in ("connection_error", "system_error") for c in calls),
        "billedMinutes": billed / 60,
        "duration": duration,
    }


def row_totals(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "totalCount": row["totalCount"],
        "joinedCount": row["joinedCount"],
        "errorCount": row["errorCount"],
        "billedMinutes": Decimal(repr(row["billedMinutes"])),
        "duration": seconds(row["duration"]),
    }


DAYS = [(date(2025, 2, 21) + timedelta(days=i)).isoformat() for i in range(12)]  # to the clock's day


@pytest.mark.parametrize("odd_values", [False, True], ids=["default", "odd-values"])
def test_each_days_calls_add_up_to_its_usage_and_billing_rows(
    make_sandbox: Callable[..., Sandbox], odd_values: bool
) -> None:
    """For every day (weekends, Sundays with odd_values' credits, days whose late calls ended after
    midnight, today with its running call), the calls listed for it are what its daily rows count."""
    box = make_sandbox(odd_values=odd_values)
    usage = {r["date"]: r for r in ok(box, USAGE, {"fromDate": DAYS[0], "toDate": DAYS[-1]})["daily"]}
    bill = ok(box, BILLING, {"fromDate": DAYS[0], "toDate": "2025-03-05"})["dailyUsage"]
    assert [r["date"] for r in bill] == list(usage) == DAYS
    credits = 0
    for day, bill_row in zip(DAYS, bill, strict=True):
        calls = listed(box, {"fromDate": day, "toDate": day})
        assert all(c["created"].startswith(day) for c in calls)
        assert day_totals(calls, box.now) == row_totals(usage[day]), day
        # /billing/usage: the same billed minutes, and its SIP part from the SIP calls' sipDetails.
        sip = [c["sipDetails"]["billedDuration"] for c in calls if c["sipDetails"]]
        assert Decimal(repr(bill_row["minutes"])) == day_totals(calls, box.now)["billedMinutes"]
        assert Decimal(repr(bill_row["sipMinutes"])) == sum((seconds(s) for s in sip if s), Decimal(0)) / 60
        credits += sum(c["billingStatus"] == "BILLING_STATUS_REFUNDED" for c in calls)
    # The period holds two Sundays: with odd_values each has its credit, a call listed like any.
    assert credits == (2 if odd_values else 0)
    if odd_values:
        [credit] = [
            c
            for c in listed(box, {"fromDate": "2025-03-02", "toDate": "2025-03-02"})
            if c["billingStatus"] == "BILLING_STATUS_REFUNDED"
        ]
        assert (credit["created"], credit["ended"], credit["joined"], credit["endReason"]) == (
            "2025-03-02T12:00:00Z",
            "2025-03-02T12:00:00Z",
            None,
            "unjoined",
        )
        assert (
            seconds(credit["billedDuration"]) < 0
            and credit["sipDetails"]["billedDuration"] == credit["billedDuration"]
        )


# -- filters ------------------------------------------------------------------------------------------

Keep = Callable[[Call, Decimal], bool]


def everything(call: Call, secs: Decimal) -> bool:
    return True


FILTERS: list[tuple[str, Params, Keep]] = [
    (
        "agentIds repeated",
        {"agentIds": [AGENT_IDS[1], AGENT_IDS[3]]},
        lambda c, s: c.agent_id in AGENT_IDS[1:4:2],
    ),
    ("voiceId", {"voiceId": VOICE_IDS[2]}, lambda c, s: c.voice_id == VOICE_IDS[2]),
    ("durationMin", {"durationMin": "300s"}, lambda c, s: s >= 300),
    ("durationMax", {"durationMax": "12.5s"}, lambda c, s: s <= Decimal("12.5")),
    (
        "metadata customer",
        {"metadata.customer": "Globex Logistics"},
        lambda c, s: c.metadata.get("customer") == "Globex Logistics",
    ),
    (
        "metadata two keys",
        {"metadata.campaign": "spring", "metadata.customer": "Acme Dental"},
        lambda c, s: c.metadata.get("campaign") == "spring" and c.metadata.get("customer") == "Acme Dental",
    ),
    ("search", {"search": "REFUND"}, lambda c, s: "refund" in c.text.lower()),
    (
        "time of day",
        {"timeOfDayStart": "09:30:00", "timeOfDayEnd": "11:00:00"},
        lambda c, s: time(9, 30) <= c.created.time() <= time(11),
    ),
]


@pytest.mark.parametrize(("params", "keep"), [f[1:] for f in FILTERS], ids=[f[0] for f in FILTERS])
def test_each_filter_lists_the_calls_it_counts(sandbox: Sandbox, params: Params, keep: Keep) -> None:
    """The calls listed are the log's that pass the filter, and they add up to /usage/calls's allTime
    for the same parameters."""
    span = {"fromDate": "2025-02-17", "toDate": "2025-03-04", **params}
    calls = listed(sandbox, span)
    lo = datetime(2025, 2, 17, tzinfo=UTC)
    expected = [c.call_id for c in existing(sandbox) if c.created >= lo and keep(c, so_far(c, sandbox.now))]
    assert [c["callId"] for c in calls] == expected and expected
    assert day_totals(calls, sandbox.now) == row_totals(ok(sandbox, USAGE, span)["allTime"])


@pytest.mark.parametrize(
    ("params", "lo", "hi"),
    [
        # A date alone: that day's start, and its end (inclusive).
        (
            {"fromDate": "2025-03-03", "toDate": "2025-03-03"},
            "2025-03-03T00:00:00",
            "2025-03-03T23:59:59.999999",
        ),
        # Date-times, inclusive at both ends; an offset is converted to UTC.
        (
            {"fromDate": "2025-03-03T09:00:00Z", "toDate": "2025-03-03T13:30:00+01:00"},
            "2025-03-03T09:00:00",
            "2025-03-03T12:30:00",
        ),
        # No toDate: up to the clock; no fromDate: from the start of the log.
        ({"fromDate": "2025-03-04T12:00:00Z"}, "2025-03-04T12:00:00", "2025-03-04T15:55:00"),
        ({"toDate": "2024-11-21"}, "2024-11-20T00:00:00", "2024-11-21T23:59:59.999999"),
    ],
)
def test_from_and_to_date_bound_the_creation_time(sandbox: Sandbox, params: Params, lo: str, hi: str) -> None:
    low, high = (datetime.fromisoformat(x).replace(tzinfo=UTC) for x in (lo, hi))
    expected = [c.call_id for c in existing(sandbox) if low <= c.created <= high]
    assert [c["callId"] for c in listed(sandbox, params)] == expected and expected


def test_bad_filters_are_the_same_400_as_usage_calls(sandbox: Sandbox) -> None:
    for params in ({"fromDate": "2025-13-01"}, {"agentIds": "nope"}, {"durationMin": "5m"}, {"search": ""}):
        resp, usage = get(sandbox, CALLS, params), get(sandbox, USAGE, params)
        assert (resp.status_code, resp.json()) == (400, usage.json()) and usage.status_code == 400


# -- pagination ---------------------------------------------------------------------------------------


def test_following_next_lists_every_call_once_in_pages_of_page_size(sandbox: Sandbox) -> None:
    params = {
        "fromDate": "2025-02-24",
        "toDate": "2025-03-04",
        "agentIds": [AGENT_IDS[0], AGENT_IDS[2]],
        "pageSize": 7,
    }
    pages = every_page(sandbox, CALLS, params)
    truth = sandbox.calls_truth(as_params(params))
    total = len(truth)
    assert total > 30 and [len(p["results"]) for p in pages] == [7] * (total // 7) + (
        [total % 7] if total % 7 else []
    )
    assert [c for p in pages for c in p["results"]] == truth
    assert {p["total"] for p in pages} == {total}
    assert pages[0]["previous"] is None and pages[-1]["next"] is None
    origin = urlsplit(sandbox.origin)
    for page in pages[:-1]:
        link = urlsplit(page["next"])
        assert (link.scheme, link.netloc, link.path) == ("http", origin.netloc, "/api/calls")
        # DRF: the request's parameters, sorted, with the cursor replaced.
        query = query_of(page["next"])
        assert {k: v for k, v in query.items() if k != "cursor"} == as_params(params)
        assert list(query) == sorted(query)
    # previous leads back page by page.
    for before, page in zip(pages, pages[1:], strict=False):
        back = follow(page["previous"])
        assert back["results"] == before["results"] and back["next"] == before["next"]
    # Order: created, then callId.
    keys = [(parse(c["created"]), c["callId"]) for c in truth]
    assert keys == sorted(keys)
    # The links name the host the client asked for, as DRF's build_absolute_uri does.
    port = urlsplit(sandbox.origin).port
    resp = requests.get(
        f"{sandbox.url}{CALLS}",
        params=params,
        headers={"X-API-Key": SANDBOX_API_KEY, "Host": f"localhost:{port}"},
        timeout=5,
    )
    assert resp.json()["next"].startswith(f"http://localhost:{port}/api/calls?")


def test_page_size_default_cap_and_bad_values(make_sandbox: Callable[..., Sandbox]) -> None:
    box, capped = make_sandbox(), make_sandbox(calls_page_size_max=40)
    total = ok(box, CALLS)["total"]
    assert total > 1500  # the whole log, from 2024-11-20
    assert len(ok(box, CALLS)["results"]) == 100
    assert len(ok(box, CALLS, {"pageSize": 5000})["results"]) == 1000
    assert len(ok(capped, CALLS, {"pageSize": 41})["results"]) == 40
    assert len(ok(capped, CALLS, {"pageSize": 39})["results"]) == 39
    # As DRF: a pageSize that is no positive integer means the default.
    for bad in ("0", "-5", "ten", "2.5", ""):
        assert len(ok(box, CALLS, {"pageSize": bad})["results"]) == 100, bad
    # A capped page's next link keeps the pageSize asked for; following it still gives the cap.
    first = ok(capped, CALLS, {"pageSize": 500})
    assert query_of(first["next"])["pageSize"] == ["500"] and len(follow(first["next"])["results"]) == 40


def test_next_without_the_filters_loses_them_unless_the_client_sends_them_again(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    box = make_sandbox(next_keeps_filters=False)
    params = {"fromDate": "2025-03-01", "metadata.customer": "Initech", "pageSize": 2}
    first = ok(box, CALLS, params)
    assert set(query_of(first["next"])) == {"cursor", "pageSize"}
    assert query_of(first["next"])["pageSize"] == ["2"]
    followed = follow(first["next"])  # as it is: every call after the cursor, of any customer
    assert followed["total"] == len(box.calls_truth({})) > first["total"]
    # With the filters sent again beside the cursor, the filtered list goes on.
    pages = [first]
    while pages[-1]["next"]:
        pages.append(ok(box, CALLS, {**params, "cursor": query_of(pages[-1]["next"])["cursor"][0]}))
    assert [c for p in pages for c in p["results"]] == box.calls_truth(as_params(params))
    assert set(query_of(pages[-1]["previous"])) == {"cursor", "pageSize"}


def test_pages_survive_deletions_and_new_calls_between_requests(sandbox: Sandbox) -> None:
    params = {"fromDate": "2025-03-04", "pageSize": 5}
    first = ok(sandbox, CALLS, params)
    ids = [c["callId"] for c in first["results"]]
    later = sandbox.calls_truth(as_params(params))[5:]
    # The last call of the first page and the first of the second are deleted; the clock moves
    # on two hours, so calls arrive and the running one ends.
    sandbox.delete_calls([ids[-1], later[0]["callId"]])
    sandbox.advance(timedelta(hours=2))
    rest = []
    page = first
    while page["next"]:
        page = follow(page["next"])
        rest += page["results"]
    truth = sandbox.calls_truth(as_params(params))
    assert [c["callId"] for c in truth] == ids[:-1] + [c["callId"] for c in rest]
    assert rest == truth[4:] and len(rest) > len(later) - 1  # new calls of 15:55-17:55 at the end


def test_sort_and_the_default_sort_switch(make_sandbox: Callable[..., Sandbox]) -> None:
    box, newest = make_sandbox(), make_sandbox(calls_default_sort="-created")
    params = {"fromDate": "2025-03-03", "pageSize": 4}
    ascending = box.calls_truth(as_params(params))
    assert newest.calls_truth(as_params(params)) == ascending[::-1]
    for sandbox, sort, expected in [
        (box, "-created", ascending[::-1]),
        (newest, "created", ascending),
        (box, "callId", ascending),  # an unknown field is dropped: the default order
        (newest, "duration", ascending[::-1]),
    ]:
        pages = every_page(sandbox, CALLS, {**params, "sort": sort})
        assert [c for p in pages for c in p["results"]] == expected, sort
        back = follow(pages[2]["previous"])
        assert back["results"] == pages[1]["results"]


def test_a_bad_cursor_is_a_404(sandbox: Sandbox) -> None:
    for cursor in ("", "zz", "!!!", "cD0"):
        resp = get(sandbox, CALLS, {"cursor": cursor})
        assert (resp.status_code, resp.json()) == (404, {"detail": "Invalid cursor"}), cursor
    assert get(sandbox, INVOICES, {"cursor": "zz"}).status_code == 404


# -- running and deleted calls --------------------------------------------------------------------------


def test_running_calls_listed_or_omitted(make_sandbox: Callable[..., Sandbox]) -> None:
    listed_box, omitted_box = make_sandbox(), make_sandbox(running_calls="omitted")
    today = {"fromDate": "2025-03-04"}
    with_running, without = listed(listed_box, today), listed(omitted_box, today)
    [live] = [c for c in with_running if c["ended"] is None]
    call = next(c for c in listed_box.calls if c.call_id == live["callId"])
    assert without == [c for c in with_running if c is not live]
    assert ok(omitted_box, CALLS, today)["total"] == ok(listed_box, CALLS, today)["total"] - 1
    # The aggregates count the running call either way; activeCalls too.
    assert ok(omitted_box, USAGE, today) == ok(listed_box, USAGE, today)
    assert ok(omitted_box, ACCOUNT)["activeCalls"] == 1
    for box in (listed_box, omitted_box):
        box.advance(timedelta(minutes=10))  # it ends at 16:00:15, billed 7.7 min
        ended = next(c for c in listed(box, today) if c["callId"] == live["callId"])
        assert (ended["ended"], ended["billedDuration"]) == (stamp(call.ended), "462s")
        assert ended["endReason"] in ("hangup", "agent_hangup")


def test_deleted_calls_are_listed_no_more(sandbox: Sandbox) -> None:
    day = {"fromDate": "2025-03-03", "toDate": "2025-03-03"}
    before = listed(sandbox, day)
    gone = [before[0]["callId"], before[5]["callId"]]
    for call_id in gone:
        assert (
            requests.delete(
                f"{sandbox.url}/calls/{call_id}", headers={"X-API-Key": SANDBOX_API_KEY}, timeout=5
            ).status_code
            == 204
        )
    after = listed(sandbox, day)
    assert after == [c for c in before if c["callId"] not in gone]
    assert ok(sandbox, CALLS, day)["total"] == len(before) - 2
    assert day_totals(after, sandbox.now) == row_totals(ok(sandbox, USAGE, day)["daily"][0])


# -- invoices -----------------------------------------------------------------------------------------


def month_minutes(box: Sandbox) -> dict[str, Decimal]:
    """Billed minutes per month (YYYY-MM) of the calls ended by now, recounted from the log."""
    months: dict[str, Decimal] = {}
    for call in existing(box):
        if not running(call, box.now):
            key = call.created.strftime("%Y-%m")
            months[key] = months.get(key, Decimal(0)) + Decimal(str(call.billed_minutes))
    return {k: v for k, v in sorted(months.items()) if v}


def half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@pytest.mark.parametrize(("unit", "per_minute"), [("cents", Decimal(5)), ("dollars", Decimal("0.05"))])
def test_invoices_price_each_months_billed_minutes(
    make_sandbox: Callable[..., Sandbox], unit: str, per_minute: Decimal
) -> None:
    box = make_sandbox(invoice_amount_unit=unit)
    invoices = [i for p in every_page(box, INVOICES, {}) for i in p["results"]]
    assert invoices == box.invoices_truth()
    minutes = month_minutes(box)
    assert list(minutes) == ["2024-11", "2024-12", "2025-01", "2025-02", "2025-03"]
    assert [i["invoiceDate"] for i in invoices] == [f"{m}-01T00:00:00Z" for m in reversed(minutes)]
    assert [i["amount"] for i in invoices] == [half_up(minutes[m] * per_minute) for m in reversed(minutes)]
    assert all(type(i["amount"]) is int and list(i) == INVOICE_KEYS for i in invoices)
    assert [i["invoiceStatus"] for i in invoices] == ["unpaid"] + ["paid"] * 4
    assert [i["billingReason"] for i in invoices] == ["subscription_cycle"] * 4 + ["subscription_create"]
    numbers = [i["invoiceNumber"] for i in invoices]
    assert len(set(numbers)) == 5 and all(re.fullmatch(r"[0-9A-F]{8}-20\d{4}", n) for n in numbers)
    assert all(i["invoiceUrl"].startswith("https://") for i in invoices)
    # The same minutes as /billing/usage's days of each month.
    feb = ok(box, BILLING, {"fromDate": "2025-02-01", "toDate": "2025-03-01"})["dailyUsage"]
    assert sum(Decimal(repr(r["minutes"])) for r in feb) == minutes["2025-02"]
    if unit == "cents":
        assert [i["amount"] for i in invoices] == [938, 9389, 8504, 8820, 3600]


def test_invoices_move_with_the_clock_and_deletions(sandbox: Sandbox) -> None:
    before = sandbox.invoices_truth()
    sandbox.delete_calls([c.call_id for c in existing(sandbox) if c.created.date() == date(2025, 2, 3)])
    sandbox.advance(timedelta(days=30))  # into April: March is closed and paid
    after = sandbox.invoices_truth()
    assert [i["invoiceNumber"] for i in after[1:]] == [i["invoiceNumber"] for i in before]
    assert (after[0]["invoiceDate"], after[0]["invoiceStatus"]) == ("2025-04-01T00:00:00Z", "unpaid")
    assert after[1]["invoiceStatus"] == "paid" and after[1]["amount"] > before[0]["amount"]
    assert after[2]["amount"] < before[1]["amount"]  # February lost a day's calls
    assert after[3:] == before[2:]
    minutes = month_minutes(sandbox)
    assert [i["amount"] for i in after] == [half_up(minutes[m] * 5) for m in reversed(minutes)]


def test_invoice_pages(make_sandbox: Callable[..., Sandbox]) -> None:
    box = make_sandbox(history_start=date(2024, 1, 1))  # fifteen months of invoices
    truth = box.invoices_truth()
    assert len(truth) == 15
    default = every_page(box, INVOICES, {})
    assert [len(p["results"]) for p in default] == [10, 5]  # openapi's default page of 10
    assert set(default[0]) == {"results", "next", "previous"}  # no total on this list
    pages = every_page(box, INVOICES, {"pageSize": 4})
    assert [len(p["results"]) for p in pages] == [4, 4, 4, 3]
    assert [i for p in pages for i in p["results"]] == truth
    assert urlsplit(pages[0]["next"]).path == "/api/accounts/me/billing/invoices"
    assert follow(pages[2]["previous"])["results"] == pages[1]["results"]
    assert len(ok(box, INVOICES, {"pageSize": 1000})["results"]) == 15  # at most 100 a page


# -- the account --------------------------------------------------------------------------------------


def test_account_active_calls_and_cap(make_sandbox: Callable[..., Sandbox]) -> None:
    box = make_sandbox()
    body = ok(box, ACCOUNT)
    assert set(body) == ACCOUNT_REQUIRED and body == box.account_truth()
    assert (body["activeCalls"], body["allowedConcurrentCalls"]) == (1, 5)
    assert body["subscriptionRenewal"] == "2025-04-01T00:00:00Z"
    assert body["billingUrl"].startswith("https://") and re.search(r"[0-9a-f]{24}", body["billingUrl"])
    # A busy log: activeCalls = the calls running at the clock, at several instants.
    busy = make_sandbox(calls_per_day=400, history_start=date(2025, 3, 1), allowed_concurrent_calls=12)
    counts = []
    for _ in range(6):
        busy.advance(timedelta(minutes=7))
        expected = sum(running(c, busy.now) for c in busy.calls)
        counts.append(expected)
        assert ok(busy, ACCOUNT)["activeCalls"] == expected
        live = [c for c in listed(busy, {"fromDate": busy.now.date().isoformat()}) if c["ended"] is None]
        assert len(live) == expected
    assert max(counts) > 1 and ok(busy, ACCOUNT)["allowedConcurrentCalls"] == 12
    assert ok(make_sandbox(allowed_concurrent_calls=None), ACCOUNT)["allowedConcurrentCalls"] is None


def test_account_free_time(make_sandbox: Callable[..., Sandbox]) -> None:
    """30 free minutes: used by the billed seconds of ended calls and the time so far of running
    joined ones; the default log has used them all long ago."""
    assert ok(make_sandbox(), ACCOUNT)["freeTimeRemaining"] == "0s"
    day = date(2025, 3, 3)
    calls = [c for c in make_sandbox(history_start=day, now=SANDBOX_NOW).calls if c.created.date() == day]
    # Just after the third call of the day was created: the first calls used little.
    now = calls[2].created + timedelta(seconds=40)
    box = make_sandbox(history_start=day, now=now)
    used = Decimal(0)
    for call in existing(box):
        if not running(call, now):
            used += billed_s(call)
        elif call.joined:
            used += so_far(call, now)
    assert 0 < used < 1800
    body = ok(box, ACCOUNT)
    assert seconds(body["freeTimeUsed"]) == used
    assert seconds(body["freeTimeRemaining"]) == 1800 - used
    box.advance(timedelta(days=1))
    assert (ok(box, ACCOUNT)["freeTimeUsed"], ok(box, ACCOUNT)["freeTimeRemaining"]) == ("1800s", "0s")


# -- auth, routing, faults, the Date header, switches ---------------------------------------------------


@pytest.mark.parametrize("path", LEDGER_PATHS)
def test_auth_methods_faults_and_date_header(sandbox: Sandbox, path: str) -> None:
    for key in (None, "wrong-key"):
        resp = get(sandbox, path, {"cursor": "zz", "fromDate": "x"}, key=key)  # auth comes first
        assert (resp.status_code, resp.json()) == (401, {"detail": "Invalid API key."})
    resp = requests.post(sandbox.url + path, headers={"X-API-Key": SANDBOX_API_KEY}, timeout=5)
    assert (resp.status_code, resp.headers["Allow"]) == (405, "GET")
    assert get(sandbox, path + "/").status_code == 404
    assert get(sandbox, path).headers["Date"] == "Tue, 04 Mar 2025 15:55:00 GMT"
    sandbox.faults = Faults(rate_limit_first=1, retry_after="3")
    assert [get(sandbox, path).status_code for _ in range(2)] == [429, 200]
    sandbox.faults = Faults(wrong_shape=True)
    assert get(sandbox, path).json() == ({"results": []} if path == ACCOUNT else {"data": []})
    sandbox.faults = Faults()
    assert [(r.path, r.status) for r in sandbox.requests][-3:] == [
        ("/api" + path, 429),
        ("/api" + path, 200),
        ("/api" + path, 200),
    ]


def test_bad_switch_values_are_rejected() -> None:
    for bad in (
        {"running_calls": "hidden"},
        {"calls_default_sort": "newest"},
        {"invoice_amount_unit": "euros"},
        {"calls_page_size_max": 0},
        {"allowed_concurrent_calls": -1},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Sandbox(now=SANDBOX_NOW, **bad)


def test_module_cli_flags_set_the_ledger_switches() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ultravox_sandbox", "--port", "0", "--days", "20"]
        + ["--calls-page-size-max", "3", "--no-next-keeps-filters", "--running-calls", "omitted"]
        + [
            "--calls-default-sort=-created",
            "--invoice-amount-unit",
            "dollars",
            "--allowed-concurrent-calls",
            "9",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = (proc.stdout.readline().strip() if proc.stdout else "").removeprefix("ULTRAVOX_SANDBOX_URL=")
        headers = {"X-API-Key": SANDBOX_API_KEY}

        def fetch(path: str, params: Params | None = None) -> Any:
            return requests.get(url + path, params=params, headers=headers, timeout=5).json()

        page = fetch(CALLS, {"pageSize": 50, "voiceId": VOICE_IDS[0]})
        assert len(page["results"]) == 3 and set(query_of(page["next"])) == {"cursor", "pageSize"}
        created = [c["created"] for c in page["results"]]
        assert created == sorted(created, reverse=True)
        assert all(c["ended"] is not None for c in page["results"])
        assert fetch(ACCOUNT)["allowedConcurrentCalls"] == 9
        invoices = fetch(INVOICES)["results"]
        # Whole dollars: twenty days of the log bill some 1300 minutes, about $65.
        assert invoices and all(0 <= i["amount"] < 200 for i in invoices)
        assert 30 < sum(i["amount"] for i in invoices) < 120
    finally:
        proc.terminate()
        proc.communicate(timeout=5)
    assert proc.returncode == 0
