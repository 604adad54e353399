"""The usage ledger end to end: the installed CLI syncs `calls`, `invoices` and `account` from the
sandbox, and what a destination holds is the sandbox's truth (`calls_truth`, `invoices_truth`,
`account_truth`) through the connector's allow-list.

- calls: every call of the range exactly once (by callId, deduplicated as an append+dedup
  destination would) across windows of calls_window_days and several pages per window (a small
  calls_page_size, cut further by the sandbox's calls_page_size_max), whether the API's `next`
  keeps the filters or not, with a filter (agent_ids, metadata) as without; through a window
  refused as too large (split), 429s, 5xx and cut bodies, and a SIGKILL after a page's records but
  before the window's state, then a resume. Each day's calls add up to `daily`'s row of the same
  sync (totalCount, joinedCount, billedMinutes = billedDurationSeconds / 60). A call running at one
  sync (listed with `ended` null) is complete after the next sync within the lookback.
- Records hold exactly the allow-list, and no prompt, summary, join URL, state, request context,
  SIP password, billing or invoice URL appears anywhere in the output, by key or by value.
- invoices equal invoices_truth() without invoiceUrl, the amount as sent (cents or dollars);
  account equals account_truth() without billingUrl, plus readAt (the sync's clock, to the second)
  and the free time in seconds.

Small sandboxes (20 calls a day, 11 days) keep the file's runtime modest."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from integration_tests.cli import CliResult, ForkedCli, configured_catalog, run_cli
from integration_tests.test_interrupted_sync import Run, read_and_kill
from ultravox_sandbox import CALLS_PATH, Faults, Sandbox
from ultravox_sandbox.pytest_plugin import SANDBOX_HISTORY_START, SANDBOX_NOW, SANDBOX_SEED

START, END = "2025-02-22", "2025-03-04"  # 11 days: windows of 3 days (3 + 3 + 3 + 2)
CALLS_WINDOW_DAYS = 3
PAGE_SIZE = 9  # asked for; the sandbox's calls_page_size_max cuts it to 7
PAGE_SIZE_MAX = 7
TIMEOUT = 120
# The calls stream's allow-list, in its order (manifest.yaml).
CALL_FIELDS = [
    "callId",
    "created",
    "joined",
    "ended",
    "endReason",
    "billedDuration",
    "billedDurationSeconds",
    "billingStatus",
    "billedSideInputTokens",
    "billedSideOutputTokens",
    "agentId",
    "metadata",
    "voice",
    "model",
    "mediumKind",
    "sipBilledDuration",
    "sipBilledDurationSeconds",
    "sipTerminationReason",
]
# Keys of the API's objects that must never reach the output.
NEVER_SYNCED = (
    "systemPrompt",
    "summary",
    "shortSummary",
    "joinUrl",
    "initialState",
    "requestContext",
    "billingUrl",
    "invoiceUrl",
    "sipDetails",
    "medium",
    "password",
)
FILTERS: dict[str, tuple[dict[str, Any], dict[str, list[str]]]] = {
    # name: (config, the same filter as /api/calls parameters)
    "no-filter": ({}, {}),
    "agent_ids": (
        {"agent_ids": ["0b6f7c1e-2a57-4d1a-9a41-5c0e8f3d2a01"]},
        {"agentIds": ["0b6f7c1e-2a57-4d1a-9a41-5c0e8f3d2a01"]},
    ),
    "metadata": ({"metadata": [{"key": "customer", "value": "Initech"}]}, {"metadata.customer": ["Initech"]}),
}


def make_box(**switches: Any) -> Sandbox:
    return Sandbox(
        seed=SANDBOX_SEED,
        history_start=SANDBOX_HISTORY_START,
        now=SANDBOX_NOW,
        calls_per_day=20,
        calls_page_size_max=PAGE_SIZE_MAX,
        **switches,
    )


@pytest.fixture
def box() -> Iterator[Sandbox]:
    with make_box() as sandbox:
        yield sandbox


def config_for(box: Sandbox, **overrides: Any) -> dict[str, Any]:
    return {
        "api_key": box.api_key,
        "api_url": box.url,
        "start_date": START,
        "end_date": END,
        "window_days": 7,
        "num_workers": 2,
        "lookback_days": 0,
        "calls_window_days": CALLS_WINDOW_DAYS,
        "calls_page_size": PAGE_SIZE,
        **overrides,
    }


def sync(
    box: Sandbox,
    streams: tuple[str, ...] = ("calls",),
    state: list[dict[str, Any]] | None = None,
    **overrides: Any,
) -> CliResult:
    """One read by the console script; it must succeed with clean output."""
    result = run_cli(
        "read", config_for(box, **overrides), configured_catalog(streams), state, timeout=TIMEOUT
    )
    assert result.returncode == 0 and result.errors == [], (result.errors, result.stderr[-2000:])
    assert result.of_type("_NOT_JSON") == []
    assert_nothing_unlisted(box, result.stdout)
    return result


def day_params(extra: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    return {"fromDate": [START], "toDate": [END], **(extra or {})}


def seconds(duration: str | None) -> float | None:
    return None if duration is None else float(duration.removesuffix("s"))


def as_record(call: dict[str, Any]) -> dict[str, Any]:
    """A Call of the API as the connector writes it: the allow-list, medium as its kind,
    sipDetails flattened, durations in seconds beside them, null fields left out (as the CDK
    writes them)."""
    sip = call.get("sipDetails") or {}
    medium = call.get("medium") or {}
    record = {
        **{name: call.get(name) for name in CALL_FIELDS},
        "billedDurationSeconds": seconds(call["billedDuration"]),
        "mediumKind": next(iter(medium), None),
        "sipBilledDuration": sip.get("billedDuration"),
        "sipBilledDurationSeconds": seconds(sip.get("billedDuration")),
        "sipTerminationReason": sip.get("terminationReason"),
    }
    return {name: value for name, value in record.items() if value is not None}


def ledger(*record_lists: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """An append+dedup destination on callId: later records win."""
    table: dict[str, dict[str, Any]] = {}
    for records in record_lists:
        for record in records:
            table[record["callId"]] = record
    return table


def assert_ledger_is_truth(box: Sandbox, table: dict[str, dict[str, Any]], extra: dict | None = None) -> None:
    truth = {call["callId"]: as_record(call) for call in box.calls_truth(day_params(extra))}
    assert truth, "the range has no call; the test proves nothing"
    assert sorted(table) == sorted(truth), (len(table), len(truth))
    for call_id, expected in truth.items():
        assert table[call_id] == expected, call_id


def assert_exactly_the_allow_list(records: list[dict[str, Any]]) -> None:
    for record in records:
        assert list(record) == [name for name in CALL_FIELDS if name in record], "fields or their order"
        assert {"callId", "created", "billingStatus", "metadata"} <= set(record)


def assert_nothing_unlisted(box: Sandbox, stdout: str) -> None:
    """No key of NEVER_SYNCED in any message, and no value of them either (a join URL's token, a
    prompt, a SIP password, the billing and invoice links)."""
    for key in NEVER_SYNCED:
        assert f'"{key}"' not in stdout, key
    secrets = {box.account_truth()["billingUrl"]} | {i["invoiceUrl"] for i in box.invoices_truth()}
    for call in box.calls_truth(day_params()):
        secrets |= {
            call["systemPrompt"],
            call["joinUrl"],
            call["summary"],
            json.dumps(call["requestContext"]),
        }
        outgoing = (call["medium"].get("sip") or {}).get("outgoing")
        if outgoing:
            secrets.add(outgoing["password"])
    for value in secrets - {None, "null", "{}"}:
        assert value not in stdout, value[:40]


def calls_requests(box: Sandbox) -> list[Any]:
    return [r for r in box.requests if r.path == CALLS_PATH]


# -- the ledger: every call once --------------------------------------------------------------------


@pytest.mark.parametrize("keeps_filters", [True, False], ids=["next-keeps-filters", "next-drops-filters"])
@pytest.mark.parametrize("name", list(FILTERS))
def test_the_ledger_holds_every_call_once_and_adds_up_to_daily(name: str, keeps_filters: bool) -> None:
    config, params = FILTERS[name]
    with make_box(next_keeps_filters=keeps_filters) as box:
        result = sync(box, ("calls", "daily"), **config)
        records = result.records("calls")
        # Once each: no call repeated across windows or pages, none missing.
        assert len(records) == len({r["callId"] for r in records})
        assert_ledger_is_truth(box, ledger(records), params)
        assert_exactly_the_allow_list(records)
        # Several pages per window, each later page the API's next (plus the filters it dropped).
        requests = calls_requests(box)
        windows = {
            (r.query["fromDate"][0], r.query["toDate"][0]) for r in requests if "cursor" not in r.query
        }
        assert len(windows) == math.ceil(11 / CALLS_WINDOW_DAYS)
        assert len(requests) > len(windows), "a page per window: the test proves nothing about pages"
        for request in requests:
            assert request.query["fromDate"] and request.query["toDate"], request.query
            assert {k: v for k, v in request.query.items() if k in params} == params
        # Each day's calls add up to daily's row of the same sync.
        daily = {row["date"]: row for row in result.records("daily")}
        assert sorted(daily) == [d.isoformat() for d in _days(START, END)]
        for day, row in daily.items():
            of_day = [r for r in records if r["created"][:10] == day]
            assert len(of_day) == row["totalCount"], day
            assert sum(1 for r in of_day if r.get("joined")) == row["joinedCount"], day
            billed = sum(r.get("billedDurationSeconds", 0) for r in of_day) / 60
            assert billed == pytest.approx(row["billedMinutes"], abs=1e-9), day


def _days(start: str, end: str) -> list[Any]:
    first, last = datetime.fromisoformat(start).date(), datetime.fromisoformat(end).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def test_a_window_refused_as_too_large_is_split_and_loses_nothing() -> None:
    with make_box(faults=Faults(reject_window_days_over=2)) as box:
        records = sync(box).records("calls")
        assert len(records) == len({r["callId"] for r in records})
        assert_ledger_is_truth(box, ledger(records))
        refused = [r for r in calls_requests(box) if r.status == 400]
        assert refused, "no window was refused; the test proves nothing"
        served = {
            (r.query["fromDate"][0], r.query["toDate"][0]) for r in calls_requests(box) if r.status == 200
        }
        spans = {(datetime.fromisoformat(b) - datetime.fromisoformat(a)).days + 1 for a, b in served}
        assert max(spans) <= 2, served


FAULTS = {
    "429": Faults(rate_limit_first=3, retry_after="1"),
    "5xx": Faults(server_errors_first=2, server_error_status=502),
}


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_faults_are_retried_and_the_ledger_is_whole(fault: Faults) -> None:
    with make_box(faults=fault) as box:
        records = sync(box, num_workers=1).records("calls")
        assert len(records) == len({r["callId"] for r in records})
        assert_ledger_is_truth(box, ledger(records))
        assert any(r.status != 200 for r in box.requests), "no fault served; the test proves nothing"


def test_a_cut_body_fails_the_sync_and_the_next_sync_completes_the_ledger() -> None:
    """A body cut in half mid-sync (after a window's state) is never retried (it is a system
    error naming the endpoint, as for the other streams); the state stays at the last whole
    window, and the next sync from it completes the ledger."""
    with make_box(faults=Faults(latency_s=0.02)) as box:
        config = config_for(box, num_workers=1)
        cut: list[bool] = []

        def cut_the_next_answer(run: Run) -> bool:
            if run.committed["calls"] and not cut:
                box.faults = Faults(malformed_json_first=1)
                cut.append(True)
            return False

        failed = read_and_kill(
            config, None, None, streams=["calls"], watch=cut_the_next_answer, start=ForkedCli
        )
        assert cut and failed.returncode == 1
        assert any(CALLS_PATH in e["message"] and e["failure_type"] == "system_error" for e in failed.errors)
        assert failed.committed["calls"] and "calls" in failed.state
        box.faults = Faults()
        resumed = sync(box, state=failed.state_file(), num_workers=1)
        assert_ledger_is_truth(box, ledger(failed.committed["calls"], resumed.records("calls")))


def test_a_sync_killed_mid_window_then_resumed_loses_nothing() -> None:
    """SIGKILL after a window's state and after a page of the next window (its records emitted, its
    state not), then a resume from the last state: the destination (each sync's committed records,
    deduplicated) is the truth."""
    with make_box(faults=Faults(latency_s=0.02)) as box:
        config = config_for(box, num_workers=1)

        def mid_window(run: Run) -> bool:
            return bool(run.committed["calls"]) and len(run.pending["calls"]) >= PAGE_SIZE_MAX + 1

        killed = read_and_kill(config, None, None, streams=["calls"], watch=mid_window, start=ForkedCli)
        assert killed.killed, "the sync ended before the kill; the test proves nothing"
        assert killed.pending["calls"] and "calls" in killed.state
        # The killed window's records are not committed: the resume reads that window again.
        resumed = run_cli("read", config, configured_catalog(["calls"]), killed.state_file(), timeout=TIMEOUT)
        assert resumed.returncode == 0 and resumed.errors == []
        again = {r["callId"] for r in resumed.records("calls")}
        assert {r["callId"] for r in killed.pending["calls"]} <= again
        assert_ledger_is_truth(box, ledger(killed.committed["calls"], resumed.records("calls")))


def test_a_running_call_is_complete_after_the_next_sync_within_the_lookback(box: Sandbox) -> None:
    first = sync(box, lookback_days=1)
    running = [r for r in first.records("calls") if "ended" not in r]
    assert running, "no call was running at the first sync; the test proves nothing"
    assert all(r["billingStatus"] == "BILLING_STATUS_PENDING" and "billedDuration" not in r for r in running)
    assert_ledger_is_truth(box, ledger(first.records("calls")))
    box.advance(timedelta(hours=1))  # the running calls end, new ones arrive
    second = sync(box, state=first.last_state(), lookback_days=1)
    table = ledger(first.records("calls"), second.records("calls"))
    assert_ledger_is_truth(box, table)
    for record in running:
        done = table[record["callId"]]
        assert done["ended"] and done["endReason"] and "billedDuration" in done, done


def test_without_running_calls_listed_the_next_sync_adds_them_ended() -> None:
    with make_box(running_calls="omitted") as box:
        first = sync(box, lookback_days=1)
        assert all("ended" in r for r in first.records("calls"))
        box.advance(timedelta(hours=1))
        second = sync(box, state=first.last_state(), lookback_days=1)
        assert_ledger_is_truth(box, ledger(first.records("calls"), second.records("calls")))


# -- invoices and account ---------------------------------------------------------------------------


def forked_sync(box: Sandbox, streams: tuple[str, ...], **overrides: Any) -> Run:
    """A read on the sandbox's clock (now_utc() is box.now), so that readAt is known."""

    def start(args: list[str], stderr: Path) -> ForkedCli:
        return ForkedCli(args, stderr, clock=box.now)

    run = read_and_kill(config_for(box, **overrides), None, None, streams=streams, start=start)
    assert (run.returncode, run.errors) == (0, [])
    return run


@pytest.mark.parametrize("unit", ["cents", "dollars"])
def test_invoices_and_the_account_are_the_truth_through_the_allow_list(unit: str) -> None:
    with make_box(invoice_amount_unit=unit) as box:
        box.advance(timedelta(minutes=7, seconds=31.25))  # a clock off the whole second
        run = forked_sync(box, ("invoices", "account"))
        invoices = run.committed["invoices"] + run.pending["invoices"]
        expected = [{k: v for k, v in i.items() if k != "invoiceUrl"} for i in box.invoices_truth()]
        assert invoices == expected  # newest first, as sent; the amount in the API's unit
        assert all(isinstance(i["amount"], int) for i in invoices)
        [account] = run.committed["account"] + run.pending["account"]
        truth = box.account_truth()
        assert account == {
            **{k: v for k, v in truth.items() if k != "billingUrl" and v is not None},
            "freeTimeUsedSeconds": seconds(truth["freeTimeUsed"]),
            "freeTimeRemainingSeconds": seconds(truth["freeTimeRemaining"]),
            "readAt": box.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        assert list(account)[-1] == "readAt"
