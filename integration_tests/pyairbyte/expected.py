"""What the warehouse tests expect, computed from the sandbox's own truth (never from a sync), shared
by the DuckDB and Snowflake tests so that every warehouse is held to the same answers.

- `stream_fields()`: each stream's fields, from the manifest's schemas (PyAirbyte's column order).
- `stream_truth(box)`: every stream's rows by primary key, as a warehouse table should hold them.
- `readme_answers(box)`: the answer to each of the README's SQL questions; `answer_rows` reads a
  warehouse's result rows into the same shape. The ledger's answers (customer weeks, the monthly
  bill, the cap days) come from helpers that the PostgreSQL test uses on its own sandbox too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import yaml

from ultravox_sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "source_ultravox_usage" / "manifest.yaml"
CONNECTOR_NAME = "source-ultravox-usage"
# The sandbox fixture's clock is 2025-03-04T15:55Z with history from 2024-11-20.
START = "2024-11-20"
END = "2025-03-04"
CALL_STREAMS = ["allTime", "daily", "hourly"]
LEDGER_STREAMS = ["calls", "invoices", "account"]
STREAMS = [*CALL_STREAMS, "agentDaily", "concurrency", "billingDaily", *LEDGER_STREAMS]
# A busy account: a few calls at once, so that some UTC days reach the account's concurrency cap
# and some do not. The cap is 7, not the sandbox's default 5, so a query with 5 written in it
# answers wrong (7: 61 of 105 days at or above it).
BUSY = {
    "seed": 11,
    "history_start": date(2024, 11, 20),
    "now": datetime.fromisoformat("2025-03-04T15:55:00+00:00"),
    "calls_per_day": 400,
    "allowed_concurrent_calls": 7,
}
PER_AGENT = "Minutes per agent per week (weeks start on Monday)"
PER_CUSTOMER = (
    "Billed minutes per customer per week, the customer being the `customer` key of a call's "
    "metadata (weeks start on Monday; calls that name none are a row of their own)"
)
CAP_DAYS = (
    "Days that hit the account's concurrency cap (its `allowedConcurrentCalls` as last read), by UTC day"
)
BILLED = "Billed versus used minutes, per day"
MONTHLY_BILL = (
    "The bill per month (`amount` is an integer in a unit the API does not document, taken here as "
    "cents of the account's currency: check it against one of your invoices)"
)
QUESTIONS = (PER_AGENT, PER_CUSTOMER, CAP_DAYS, BILLED, MONTHLY_BILL)
NO_CUSTOMER = "(no customer)"  # the README's label for calls whose metadata names none
# What each question's ORDER BY promises, as a key that must not decrease down the result.
ORDER_KEYS: dict[str, Callable[[tuple], Any]] = {
    PER_AGENT: lambda row: (row[0], -row[3]),  # week, then billed minutes descending
    PER_CUSTOMER: lambda row: (row[0], -row[3]),
    CAP_DAYS: lambda row: row[0],
    BILLED: lambda row: row[0],
    MONTHLY_BILL: lambda row: row[0],
}
# A number column is DECIMAL(38,9) / NUMBER(38,9): it holds the API's number to 9 decimals.
NINE = Decimal("1e-9")


@dataclass
class BusySync:
    """The busy sandbox (BUSY) read once with PyAirbyte into DuckDB (conftest's `busy_sync`): `cache`
    holds its nine tables; `answers` and `tables` are what the sandbox's truth says they hold."""

    cache: Any
    answers: dict[str, list[tuple]]
    tables: dict[str, dict[tuple, tuple]]


def make_source(
    executable: Path, sandbox: Sandbox, end: str = END, streams: list[str] = STREAMS, start: str = START
) -> Any:
    import airbyte as ab

    config = {"api_key": sandbox.api_key, "api_url": sandbox.url, "start_date": start, "end_date": end}
    source = ab.get_source(CONNECTOR_NAME, local_executable=executable, config=config)
    source.select_all_streams()
    assert sorted(source.get_selected_streams()) == sorted(STREAMS)
    source.select_streams(streams)
    return source


def stream_fields() -> dict[str, dict[str, dict[str, Any]]]:
    """{stream: {field: JSON schema}} from the manifest, fields in the order PyAirbyte makes columns."""
    schemas = yaml.safe_load(MANIFEST.read_text())["schemas"]
    assert list(schemas) == STREAMS, list(schemas)
    return {stream: schemas[stream]["properties"] for stream in STREAMS}


def truth(sandbox: Sandbox, end: str = END) -> dict[str, Any]:
    return sandbox.ground_truth({"fromDate": [START], "toDate": [end]})


def new_stream_truth(sandbox: Sandbox, end: str = END) -> dict[str, list[dict[str, Any]]]:
    """What agentDaily, concurrency (hourly buckets) and billingDaily hold for START..end."""
    agents = sandbox.agent_usage_truth({"fromDate": [START], "toDate": [end]})
    buckets = sandbox.concurrency_truth(
        {"bucket": ["hour"], "start": [f"{START}T00:00:00Z"], "end": [f"{end}T23:59:59Z"]}
    )
    bill, first = [], date.fromisoformat(START)
    while first <= date.fromisoformat(end):  # at most 90 days a request
        last = min(first + timedelta(days=89), date.fromisoformat(end))
        query_ = {"fromDate": [first.isoformat()], "toDate": [(last + timedelta(days=1)).isoformat()]}
        bill += sandbox.billing_truth(query_)["dailyUsage"]
        first = last + timedelta(days=1)
    return {
        "agentDaily": [{**row, **a["agent"]} for a in agents for row in a["usage"]],
        "concurrency": buckets["timeSeries"],
        "billingDaily": bill,
    }


def number(value: Any) -> Decimal:
    """A number as a warehouse's DECIMAL(38,9) holds it: a JSON float rounded to 9 decimals, a
    DECIMAL as it is; DuckDB's DOUBLE results by their shortest text."""
    return Decimal(str(value)).quantize(NINE, rounding=ROUND_HALF_UP).normalize()


def _lower(row: Mapping[str, Any]) -> dict[str, Any]:
    # Snowflake answers with upper-case column names, DuckDB and PostgreSQL with lower case.
    return {key.lower(): value for key, value in row.items()}


def _figures(row: Mapping[str, Any]) -> tuple:
    """A /usage/calls bucket's figures, from the API (camelCase) or a warehouse (lower case)."""
    row = _lower(row)
    seconds = row["durationseconds"] if "durationseconds" in row else row["duration"].removesuffix("s")
    return (
        row["totalcount"],
        row["errorcount"],
        row["joinedcount"],
        row["duration"],
        number(seconds),
        number(row["billedminutes"]),
    )


def instant(value: str | None) -> datetime | None:
    """An RFC 3339 UTC timestamp of the API as a TIMESTAMP column holds it: UTC wall time, to the
    microsecond."""
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).replace(tzinfo=None)


def seconds_of(duration: str | None) -> Decimal | None:
    return None if duration is None else number(duration.removesuffix("s"))


def ledger_truth(sandbox: Sandbox, start: str = START, end: str = END) -> dict[str, dict[tuple, tuple]]:
    """calls (every call created start..end, running ones with their nulls), invoices and account
    (as read at the sandbox's now; `table_rows` keeps an account's latest row) by primary key."""
    calls = {}
    for call in sandbox.calls_truth({"fromDate": [start], "toDate": [end]}):
        sip = call.get("sipDetails") or {}
        medium = call.get("medium") or {}
        calls[(call["callId"],)] = (
            instant(call["created"]),
            instant(call["joined"]),
            instant(call["ended"]),
            call["endReason"],
            call["billedDuration"],
            seconds_of(call["billedDuration"]),
            call["billingStatus"],
            call["billedSideInputTokens"],
            call["billedSideOutputTokens"],
            call["agentId"],
            call["metadata"],
            call["voice"],
            call["model"],
            next(iter(medium), None),
            sip.get("billedDuration"),
            seconds_of(sip.get("billedDuration")),
            sip.get("terminationReason"),
        )
    invoices = {
        (i["invoiceNumber"],): (
            instant(i["invoiceDate"]),
            i["amount"],
            i["billingReason"],
            i["invoiceStatus"],
        )
        for i in sandbox.invoices_truth()
    }
    a = sandbox.account_truth()
    account = {
        (a["accountId"],): (
            a["name"],
            a["freeTimeUsed"],
            seconds_of(a["freeTimeUsed"]),
            a["freeTimeRemaining"],
            seconds_of(a["freeTimeRemaining"]),
            a["hasActiveSubscription"],
            a["subscriptionTier"],
            a["subscriptionCadence"],
            instant(a["subscriptionExpiration"]),
            instant(a["subscriptionScheduledUpdate"]),
            instant(a["subscriptionRenewal"]),
            a["activeCalls"],
            a["allowedConcurrentCalls"],
            a["allowedVoices"],
            a["allowedCorpora"],
        )
    }
    return {"calls": calls, "invoices": invoices, "account": account}


def stream_truth(sandbox: Sandbox, end: str = END) -> dict[str, dict[tuple, tuple]]:
    """Every stream's rows for START..end by primary key (allTime's key is ()), as `table_rows`
    reads them from a warehouse."""
    calls, more = truth(sandbox, end), new_stream_truth(sandbox, end)
    day = date.fromisoformat
    return {
        "allTime": {(): (day(START), day(end), *_figures(calls["allTime"]))},
        "daily": {(day(r["date"]),): _figures(r) for r in calls["daily"]},
        "hourly": {
            (day(r["date"]), r["hour"]): (
                datetime.fromisoformat(r["date"]) + timedelta(hours=r["hour"]),  # UTC wall time
                *_figures(r),
            )
            for r in calls["hourly"]
        },
        "agentDaily": {
            (r["agentId"], day(r["date"])): (r["name"], r["calls"], number(r["billedMinutes"]))
            for r in more["agentDaily"]
        },
        "concurrency": {
            # The API's `timestamp` is the connector's bucketStart, a UTC instant ("...Z").
            (datetime.fromisoformat(r["timestamp"]).replace(tzinfo=None), "hour"): (
                r["maxTotalCalls"],
                r["maxJoinedCalls"],
                number(r["avgTotalCalls"]),
                number(r["avgJoinedCalls"]),
            )
            for r in more["concurrency"]
        },
        "billingDaily": {
            (day(r["date"]),): (number(r["minutes"]), number(r["sipMinutes"])) for r in more["billingDaily"]
        },
        **ledger_truth(sandbox, START, end),
    }


def _when(value: Any) -> datetime | None:
    """A TIMESTAMP column's value as UTC wall time (a driver may give it a zone)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _json(value: Any) -> Any:
    """A JSON / VARIANT column's value: DuckDB and psycopg2 parse it, Snowflake's connector gives
    the text."""
    return json.loads(value) if isinstance(value, str) else value


def _maybe(value: Any) -> Decimal | None:
    return None if value is None else number(value)


def _ledger_values(stream: str, r: Mapping[str, Any]) -> tuple:
    if stream == "calls":
        return (
            _when(r["created"]),
            _when(r["joined"]),
            _when(r["ended"]),
            r["endreason"],
            r["billedduration"],
            _maybe(r["billeddurationseconds"]),
            r["billingstatus"],
            r["billedsideinputtokens"],
            r["billedsideoutputtokens"],
            r["agentid"],
            _json(r["metadata"]),
            r["voice"],
            r["model"],
            r["mediumkind"],
            r["sipbilledduration"],
            _maybe(r["sipbilleddurationseconds"]),
            r["sipterminationreason"],
        )
    if stream == "invoices":
        return (_when(r["invoicedate"]), r["amount"], r["billingreason"], r["invoicestatus"])
    return (
        r["name"],
        r["freetimeused"],
        _maybe(r["freetimeusedseconds"]),
        r["freetimeremaining"],
        _maybe(r["freetimeremainingseconds"]),
        r["hasactivesubscription"],
        r["subscriptiontier"],
        r["subscriptioncadence"],
        _when(r["subscriptionexpiration"]),
        _when(r["subscriptionscheduledupdate"]),
        _when(r["subscriptionrenewal"]),
        r["activecalls"],
        r["allowedconcurrentcalls"],
        r["allowedvoices"],
        r["allowedcorpora"],
    )


def table_rows(stream: str, rows: Iterable[Mapping[str, Any]]) -> dict[tuple, tuple]:
    """A warehouse table's rows (any case of column names) keyed as `stream_truth` keys them.
    A key held twice is an error: the table would not merge on its primary key. The account's key
    is (accountId, readAt), a row per sync: its latest row is kept, keyed by accountId."""
    found: dict[tuple, tuple] = {}
    read_at: dict[tuple, datetime] = {}
    for raw in rows:
        r = _lower(raw)
        if stream == "account":
            key, when = (r["accountid"],), _when(r["readat"])
            assert (key, when) not in read_at.items(), f"account: key {key} {when} twice"
            if key not in read_at or when > read_at[key]:
                read_at[key], found[key] = when, _ledger_values(stream, r)
            continue
        if stream in ("calls", "invoices"):
            key = (r["callid"],) if stream == "calls" else (r["invoicenumber"],)
            assert key not in found, f"{stream}: key {key} twice"
            found[key] = _ledger_values(stream, r)
            continue
        if stream == "allTime":
            key, values = (), (r["fromdate"], r["todate"], *_figures(r))
        elif stream == "daily":
            key, values = (r["date"],), _figures(r)
        elif stream == "hourly":
            key, values = (r["date"], r["hour"]), (r["hourstart"], *_figures(r))
        elif stream == "agentDaily":
            key, values = (r["agentid"], r["date"]), (r["agentname"], r["calls"], number(r["billedminutes"]))
        elif stream == "concurrency":
            key = (r["bucketstart"], r["bucket"])
            values = (
                r["maxtotalcalls"],
                r["maxjoinedcalls"],
                number(r["avgtotalcalls"]),
                number(r["avgjoinedcalls"]),
            )
        else:
            key, values = (r["date"],), (number(r["minutes"]), number(r["sipminutes"]))
        assert key not in found, f"{stream}: key {key} twice"
        found[key] = values
    return found


def customer_weeks(calls: Iterable[Mapping[str, Any]]) -> list[tuple]:
    """PER_CUSTOMER's answer from the API's calls: (week of the UTC creation day, customer or
    NO_CUSTOMER, calls, billed minutes to 2 decimals; a running call counts, its null adds none)."""
    weeks: dict[tuple[date, str], list] = {}
    for call in calls:
        day = instant(call["created"]).date()
        customer = call["metadata"].get("customer", NO_CUSTOMER)
        totals = weeks.setdefault((day - timedelta(days=day.weekday()), customer), [0, None])
        totals[0] += 1
        if call["billedDuration"] is not None:
            totals[1] = (totals[1] or Decimal(0)) + Decimal(call["billedDuration"].removesuffix("s"))
    return sorted(
        (week, customer, count, None if billed is None else number((billed / 60).quantize(Decimal("0.01"))))
        for (week, customer), (count, billed) in weeks.items()
    )


def cap_days(buckets: Iterable[Mapping[str, Any]], cap: int | None) -> list[tuple]:
    """CAP_DAYS' answer: (UTC day, its peak maxTotalCalls, the cap) for each day the peak reached
    the cap; none when the account has no cap."""
    peaks: dict[date, int] = {}
    for point in buckets:
        day = date.fromisoformat(point["timestamp"][:10])  # a UTC instant: its UTC day
        peaks[day] = max(peaks.get(day, 0), point["maxTotalCalls"])
    return sorted((day, peak, cap) for day, peak in peaks.items() if cap is not None and peak >= cap)


def monthly_bill(invoices: Iterable[Mapping[str, Any]]) -> list[tuple]:
    """MONTHLY_BILL's answer: (month, invoices, amount / 100, unpaid amount / 100)."""
    months: dict[date, list[int]] = {}
    for invoice in invoices:
        month = instant(invoice["invoiceDate"]).date().replace(day=1)
        totals = months.setdefault(month, [0, 0, 0])
        totals[0] += 1
        totals[1] += invoice["amount"]
        totals[2] += invoice["amount"] if invoice["invoiceStatus"] == "unpaid" else 0
    return sorted(
        (month, count, number(Decimal(amount) / 100), number(Decimal(unpaid) / 100))
        for month, (count, amount, unpaid) in months.items()
    )


def readme_answers(sandbox: Sandbox) -> dict[str, list[tuple]]:
    """Each README question's answer for START..END, rows as `answer_rows` reads them."""
    more = new_stream_truth(sandbox)
    daily = {row["date"]: row for row in truth(sandbox)["daily"]}

    weeks: dict[tuple[date, str], list] = {}
    for row in more["agentDaily"]:
        day = date.fromisoformat(row["date"])
        totals = weeks.setdefault((day - timedelta(days=day.weekday()), row["name"]), [0, Decimal(0)])
        totals[0] += row["calls"]
        totals[1] += Decimal(str(row["billedMinutes"]))
    per_agent = [(week, name, calls, number(minutes)) for (week, name), (calls, minutes) in weeks.items()]

    billed = []
    for bill in more["billingDaily"]:
        calls = daily[bill["date"]]
        used = (Decimal(calls["duration"].removesuffix("s")) / 60).quantize(Decimal("0.01"), ROUND_HALF_UP)
        billed.append(
            (
                date.fromisoformat(bill["date"]),
                number(bill["minutes"]),
                number(bill["sipMinutes"]),
                used.normalize(),
                number(calls["billedMinutes"]),
            )
        )
    return {
        PER_AGENT: sorted(per_agent),
        PER_CUSTOMER: customer_weeks(sandbox.calls_truth({"fromDate": [START], "toDate": [END]})),
        CAP_DAYS: cap_days(more["concurrency"], sandbox.account_truth()["allowedConcurrentCalls"]),
        BILLED: sorted(billed),
        MONTHLY_BILL: monthly_bill(sandbox.invoices_truth()),
    }


def answer_rows(question: str, rows: Iterable[Mapping[str, Any]]) -> list[tuple]:
    """A warehouse's result rows for a question, in the order it returned them. Dates stay as the
    driver returns them: a TIMESTAMP where a DATE is promised does not equal the expected date."""
    found = []
    for raw in rows:
        r = _lower(raw)
        if question == PER_AGENT:
            found.append((r["week"], r["agentname"], r["calls"], number(r["billed_minutes"])))
        elif question == PER_CUSTOMER:
            found.append((r["week"], r["customer"], r["calls"], _maybe(r["billed_minutes"])))
        elif question == CAP_DAYS:
            found.append((r["day"], r["peak_calls"], r["allowed_calls"]))
        elif question == MONTHLY_BILL:
            found.append((r["month"], r["invoices"], number(r["amount"]), number(r["unpaid"])))
        else:
            used = Decimal(str(r["used_minutes"])).normalize()  # already rounded to 2 decimals
            found.append(
                (
                    r["date"],
                    number(r["billed_minutes"]),
                    number(r["sip_minutes"]),
                    used,
                    number(r["call_billed_minutes"]),
                )
            )
    return found
