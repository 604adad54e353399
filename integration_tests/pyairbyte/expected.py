"""What the warehouse tests expect, computed from the sandbox's own truth (never from a sync), shared
by the DuckDB and Snowflake tests so that every warehouse is held to the same answers.

- `stream_fields()`: each stream's fields, from the manifest's schemas (PyAirbyte's column order).
- `stream_truth(box)`: every stream's rows by primary key, as a warehouse table should hold them.
- `readme_answers(box)`: the answer to each of the README's three SQL questions; `answer_rows`
  reads a warehouse's result rows into the same shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
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
STREAMS = [*CALL_STREAMS, "agentDaily", "concurrency", "billingDaily"]
# A busy account: a few calls at once, so that some days reach the concurrency cap of 5.
BUSY = {
    "seed": 11,
    "history_start": date(2024, 11, 20),
    "now": datetime.fromisoformat("2025-03-04T15:55:00+00:00"),
    "calls_per_day": 400,
}
PER_AGENT = "Minutes per agent per week (weeks start on Monday)"
CAP_DAYS = "Days that hit the concurrency cap (5 concurrent calls on pay-as-you-go), by UTC day"
BILLED = "Billed versus used minutes, per day"
QUESTIONS = (PER_AGENT, CAP_DAYS, BILLED)
# What each question's ORDER BY promises, as a key that must not decrease down the result.
ORDER_KEYS: dict[str, Callable[[tuple], Any]] = {
    PER_AGENT: lambda row: (row[0], -row[3]),  # week, then billed minutes descending
    CAP_DAYS: lambda row: row[0],
    BILLED: lambda row: row[0],
}
# A number column is DECIMAL(38,9) / NUMBER(38,9): it holds the API's number to 9 decimals.
NINE = Decimal("1e-9")


@dataclass
class BusySync:
    """The busy sandbox (BUSY) read once with PyAirbyte into DuckDB (conftest's `busy_sync`): `cache`
    holds its six tables; `answers` and `tables` are what the sandbox's truth says they hold."""

    cache: Any
    answers: dict[str, list[tuple]]
    tables: dict[str, dict[tuple, tuple]]


def make_source(executable: Path, sandbox: Sandbox, end: str = END, streams: list[str] = STREAMS) -> Any:
    import airbyte as ab

    config = {"api_key": sandbox.api_key, "api_url": sandbox.url, "start_date": START, "end_date": end}
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
    }


def table_rows(stream: str, rows: Iterable[Mapping[str, Any]]) -> dict[tuple, tuple]:
    """A warehouse table's rows (any case of column names) keyed as `stream_truth` keys them.
    A key held twice is an error: the table would not merge on its primary key."""
    found: dict[tuple, tuple] = {}
    for raw in rows:
        r = _lower(raw)
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

    peaks: dict[date, int] = {}
    for point in more["concurrency"]:
        day = date.fromisoformat(point["timestamp"][:10])  # a UTC instant: its UTC day
        peaks[day] = max(peaks.get(day, 0), point["maxTotalCalls"])
    cap_days = [(day, peak) for day, peak in peaks.items() if peak >= 5]

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
    return {PER_AGENT: sorted(per_agent), CAP_DAYS: sorted(cap_days), BILLED: sorted(billed)}


def answer_rows(question: str, rows: Iterable[Mapping[str, Any]]) -> list[tuple]:
    """A warehouse's result rows for a question, in the order it returned them. Dates stay as the
    driver returns them: a TIMESTAMP where a DATE is promised does not equal the expected date."""
    found = []
    for raw in rows:
        r = _lower(raw)
        if question == PER_AGENT:
            found.append((r["week"], r["agentname"], r["calls"], number(r["billed_minutes"])))
        elif question == CAP_DAYS:
            found.append((r["day"], r["peak_calls"]))
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
