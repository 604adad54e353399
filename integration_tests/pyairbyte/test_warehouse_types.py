"""What a warehouse gets from this connector through PyAirbyte: column types and incremental merges.

All streams are read with PyAirbyte (`local_executable`, the connector installed in .venv) from the
sandbox into DuckDB, the warehouse PyAirbyte uses by default. Checked: the column types DuckDB
ends up with (counts and hour BIGINT, minutes and seconds numeric, dates DATE, hourStart a UTC
TIMESTAMP), and that an incremental read after the sandbox's clock moved merges on the primary
keys: no duplicate keys, the re-read days hold their new figures, and the tables equal the
sandbox's ground truth.

Run in the PyAirbyte environment: .venv-pyairbyte/bin/python -m pytest integration_tests/pyairbyte
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from ultravox_sandbox import Sandbox

pytestmark = [
    pytest.mark.pyairbyte,
    # Google client libraries that PyAirbyte imports warn about Python 3.11's end of life.
    pytest.mark.filterwarnings("ignore:.*Python version:FutureWarning"),
]

# The sandbox fixture's clock is 2025-03-04T15:55Z with history from 2024-11-20.
CONNECTOR_NAME = "source-ultravox-usage"
START = "2024-11-20"
END = "2025-03-04"
CALL_STREAMS = ["allTime", "daily", "hourly"]
STREAMS = [*CALL_STREAMS, "agentDaily", "concurrency", "billingDaily"]
COUNT_COLUMNS = ("totalcount", "errorcount", "joinedcount")
NUMERIC_COLUMNS = ("durationseconds", "billedminutes")
# PyAirbyte lower-cases table and column names (allTime -> alltime, billedMinutes -> billedminutes).
EXPECTED_COLUMNS = {
    "alltime": ["fromdate", "todate", *COUNT_COLUMNS, "duration", *NUMERIC_COLUMNS],
    "daily": ["date", *COUNT_COLUMNS, "duration", *NUMERIC_COLUMNS],
    "hourly": ["date", "hour", "hourstart", *COUNT_COLUMNS, "duration", *NUMERIC_COLUMNS],
}
NEW_COLUMNS = {
    "agentdaily": {
        "agentid": "VARCHAR",
        "agentname": "VARCHAR",
        "date": "DATE",
        "calls": "BIGINT",
        "billedminutes": "DECIMAL(38,9)",
    },
    "concurrency": {
        "bucketstart": "TIMESTAMP",
        "bucket": "VARCHAR",
        "maxtotalcalls": "BIGINT",
        "maxjoinedcalls": "BIGINT",
        "avgtotalcalls": "DECIMAL(38,9)",
        "avgjoinedcalls": "DECIMAL(38,9)",
    },
    "billingdaily": {"date": "DATE", "minutes": "DECIMAL(38,9)", "sipminutes": "DECIMAL(38,9)"},
}
README = Path(__file__).resolve().parents[2] / "README.md"
AIRBYTE_COLUMNS = ["_airbyte_raw_id", "_airbyte_extracted_at", "_airbyte_meta"]


def make_source(executable: Path, sandbox: Sandbox, end: str = END, streams: list[str] = STREAMS) -> Any:
    import airbyte as ab

    config = {"api_key": sandbox.api_key, "api_url": sandbox.url, "start_date": START, "end_date": end}
    source = ab.get_source(CONNECTOR_NAME, local_executable=executable, config=config)
    source.select_all_streams()
    assert sorted(source.get_selected_streams()) == sorted(STREAMS)
    source.select_streams(streams)
    return source


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


def query(cache: Any, sql: str, **params: Any) -> list[dict[str, Any]]:
    from sqlalchemy import text

    with cache.processor.get_sql_connection() as connection:
        return [dict(row._mapping) for row in connection.execute(text(sql), params)]


def column_types(cache: Any, table: str) -> dict[str, str]:
    rows = query(
        cache,
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = :schema AND table_name = :table ORDER BY ordinal_position",
        schema=cache.schema_name,
        table=table,
    )
    return {row["column_name"]: row["data_type"] for row in rows}


def is_numeric(duckdb_type: str) -> bool:
    return duckdb_type.startswith("DECIMAL") or duckdb_type in ("DOUBLE", "FLOAT", "REAL")


def figures(row: dict[str, Any]) -> tuple[int, int, int, Decimal, Decimal]:
    """A row's figures, from DuckDB (lower-case names) or from the sandbox (API names)."""
    if "totalCount" in row:
        seconds = Decimal(row["duration"].removesuffix("s"))
        return (
            row["totalCount"],
            row["errorCount"],
            row["joinedCount"],
            Decimal(str(row["billedMinutes"])),
            seconds,
        )
    return (
        row["totalcount"],
        row["errorcount"],
        row["joinedcount"],
        Decimal(row["billedminutes"]).normalize(),
        Decimal(row["durationseconds"]).normalize(),
    )


def truth(sandbox: Sandbox, end: str = END) -> dict[str, Any]:
    return sandbox.ground_truth({"fromDate": [START], "toDate": [end]})


def warehouse_daily(cache: Any) -> dict[date, tuple]:
    return {row["date"]: figures(row) for row in query(cache, "SELECT * FROM main.daily")}


def warehouse_hourly(cache: Any) -> dict[tuple[date, int], tuple]:
    return {(row["date"], row["hour"]): figures(row) for row in query(cache, "SELECT * FROM main.hourly")}


def normalized(values: dict[Any, tuple]) -> dict[Any, tuple]:
    return {
        key: tuple(v.normalize() if isinstance(v, Decimal) else v for v in row) for key, row in values.items()
    }


def assert_equals_ground_truth(cache: Any, sandbox: Sandbox, end: str = END) -> None:
    expected = truth(sandbox, end)
    daily = {date.fromisoformat(row["date"]): figures(row) for row in expected["daily"]}
    hourly = {(date.fromisoformat(row["date"]), row["hour"]): figures(row) for row in expected["hourly"]}
    assert normalized(warehouse_daily(cache)) == normalized(daily)
    assert normalized(warehouse_hourly(cache)) == normalized(hourly)
    (all_time,) = query(cache, "SELECT * FROM main.alltime")
    assert normalized({0: figures(all_time)}) == normalized({0: figures(expected["allTime"])})
    assert (all_time["fromdate"], all_time["todate"]) == (date.fromisoformat(START), date.fromisoformat(end))


def assert_unique_keys(cache: Any) -> None:
    (daily,) = query(cache, "SELECT count(*) AS n, count(DISTINCT date) AS keys FROM main.daily")
    assert daily["n"] == daily["keys"]
    (hourly,) = query(cache, "SELECT count(*) AS n, count(DISTINCT (date, hour)) AS keys FROM main.hourly")
    assert hourly["n"] == hourly["keys"]


def test_column_types_a_warehouse_gets(
    sandbox: Sandbox, connector_executable: Path, duckdb_cache: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A local time zone far from UTC: hourStart must still hold the UTC hour, not a shifted one.
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        result = make_source(connector_executable, sandbox).read(cache=duckdb_cache)
    finally:
        monkeypatch.undo()
        time.tzset()

    expected = truth(sandbox)
    more = new_stream_truth(sandbox)
    assert result.processed_records == 1 + len(expected["daily"]) + len(expected["hourly"]) + sum(
        len(rows) for rows in more.values()
    )
    assert len(expected["daily"]) == (date.fromisoformat(END) - date.fromisoformat(START)).days + 1

    types = {table: column_types(duckdb_cache, table) for table in EXPECTED_COLUMNS}
    for table, columns in EXPECTED_COLUMNS.items():
        assert list(types[table]) == columns + AIRBYTE_COLUMNS, table
        for column in COUNT_COLUMNS:
            assert types[table][column] == "BIGINT", (table, column)
        for column in NUMERIC_COLUMNS:
            assert is_numeric(types[table][column]), (table, column, types[table][column])
        assert types[table]["duration"] == "VARCHAR"  # the API's own string, e.g. "1234.5s"
    assert types["daily"]["date"] == "DATE"
    assert types["hourly"]["date"] == "DATE"
    assert types["hourly"]["hour"] == "BIGINT"
    # PyAirbyte 0.71 maps date-time (even with airbyte_type timestamp_with_timezone) to a plain
    # TIMESTAMP holding UTC wall time; accept WITH TIME ZONE too, but check the values either way.
    assert types["hourly"]["hourstart"] in ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE")
    assert types["alltime"]["fromdate"] == "DATE"
    assert types["alltime"]["todate"] == "DATE"
    # Exact decimals: DECIMAL(38,9) keeps the API's minutes and seconds without float error.
    assert types["daily"]["billedminutes"] == "DECIMAL(38,9)"

    (shifted,) = query(
        duckdb_cache,
        "SELECT count(*) AS n FROM main.hourly "
        "WHERE CAST(hourstart AS TIMESTAMP) <> CAST(date AS TIMESTAMP) + hour * INTERVAL 1 HOUR",
    )
    assert shifted["n"] == 0
    (last,) = query(duckdb_cache, "SELECT max(hourstart) AS hs FROM main.hourly")
    assert last["hs"].replace(tzinfo=None) == datetime(2025, 3, 4, 15, 0)  # the clock's current hour
    (numbers,) = query(duckdb_cache, "SELECT typeof(billedminutes + 1) AS t FROM main.daily LIMIT 1")
    assert is_numeric(numbers["t"])  # arithmetic works on it in SQL, no casts needed

    assert_unique_keys(duckdb_cache)
    assert_equals_ground_truth(duckdb_cache, sandbox)

    for table, columns in NEW_COLUMNS.items():
        assert column_types(duckdb_cache, table) == {**columns, **dict.fromkeys(AIRBYTE_COLUMNS, ANY)}, table
    (stamp,) = query(
        duckdb_cache, "SELECT min(bucketstart) AS t, max(bucketstart) AS last FROM main.concurrency"
    )
    assert stamp["t"].replace(tzinfo=None) == datetime(2024, 11, 20, 0, 0)  # UTC, not shifted by TZ
    assert stamp["last"].replace(tzinfo=None) == datetime(2025, 3, 4, 15, 0)
    rows = query(duckdb_cache, "SELECT agentid, date, calls, billedminutes FROM main.agentdaily")
    assert {
        (r["agentid"], r["date"]): (r["calls"], Decimal(r["billedminutes"]).normalize()) for r in rows
    } == {
        (t["agentId"], date.fromisoformat(t["date"])): (
            t["calls"],
            Decimal(str(t["billedMinutes"])).normalize(),
        )
        for t in more["agentDaily"]
    }
    rows = query(duckdb_cache, "SELECT date, minutes, sipminutes FROM main.billingdaily")
    assert {
        r["date"]: (Decimal(r["minutes"]).normalize(), Decimal(r["sipminutes"]).normalize()) for r in rows
    } == {
        date.fromisoformat(t["date"]): (
            Decimal(str(t["minutes"])).normalize(),
            Decimal(str(t["sipMinutes"])).normalize(),
        )
        for t in more["billingDaily"]
    }


class _Any:
    def __eq__(self, other: object) -> bool:
        return True


ANY = _Any()


def test_incremental_read_merges_on_primary_keys(
    sandbox: Sandbox, connector_executable: Path, duckdb_cache: Any
) -> None:
    source = make_source(connector_executable, sandbox, streams=CALL_STREAMS)
    first = source.read(cache=duckdb_cache)
    assert first.processed_records > 2000
    partial_day = warehouse_daily(duckdb_cache)[date(2025, 3, 4)]
    partial_hours = len(warehouse_hourly(duckdb_cache))

    # Ten hours later it is 01:55 on 2025-03-05: the calls of the 4th have ended and been billed,
    # and the 5th has begun. Sync up to the new day, from the state PyAirbyte saved in DuckDB.
    sandbox.advance(timedelta(hours=10))
    new_end = "2025-03-05"
    source.set_config({**source.get_config(), "end_date": new_end})
    sandbox.clear_log()
    second = source.read(cache=duckdb_cache)

    # Only the lookback window was fetched again: the cursor day 2025-03-04 minus 2 days onwards.
    sent_from = {request.query["fromDate"][0] for request in sandbox.requests if "fromDate" in request.query}
    windows = {q for q in sent_from if q != START}  # allTime always asks for the whole range
    assert windows == {"2025-03-02"}
    expected_days = 4  # 2025-03-02 .. 2025-03-05
    assert second.processed_records == 1 + expected_days + (3 * 24 + 2)

    assert_unique_keys(duckdb_cache)
    daily = warehouse_daily(duckdb_cache)
    assert len(daily) == (date(2025, 3, 5) - date(2024, 11, 20)).days + 1
    assert daily[date(2025, 3, 4)] != partial_day, "the re-read day kept its partial figures"
    assert (
        len(warehouse_hourly(duckdb_cache)) == partial_hours + 8 + 2
    )  # 16:00-23:00 of the 4th, 00:00-01:00 of the 5th
    assert_equals_ground_truth(duckdb_cache, sandbox, new_end)

    # Reading again without any change is idempotent: same rows, still no duplicates.
    before = normalized(warehouse_hourly(duckdb_cache))
    source.read(cache=duckdb_cache)
    assert_unique_keys(duckdb_cache)
    assert normalized(warehouse_hourly(duckdb_cache)) == before


def readme_queries() -> dict[str, str]:
    """The README's SQL blocks under "Three questions, in SQL", by the sentence that introduces each."""
    text = README.read_text()
    section = text.split("### Three questions, in SQL", 1)[1].split("\n## ", 1)[0]
    found, intro = {}, None
    for block in section.split("```"):
        if block.startswith("sql\n"):
            found[intro] = block.removeprefix("sql\n")
        else:
            intro = block.strip().splitlines()[-1] if block.strip() else intro
    return found


def test_the_readme_sql_answers_the_three_questions(connector_executable: Path, duckdb_cache: Any) -> None:
    """A busy account (a few calls at once, so some days reach the cap of 5), synced into DuckDB,
    and the README's queries run as a user would run them: each answers its question exactly as the
    sandbox's truth says."""
    with Sandbox(
        seed=11, history_start=date(2024, 11, 20), now=datetime.fromisoformat("2025-03-04T15:55:00+00:00"),
        calls_per_day=400,
    ) as box:  # fmt: skip
        make_source(connector_executable, box).read(cache=duckdb_cache)
        more = new_stream_truth(box)
        daily = {row["date"]: row for row in truth(box)["daily"]}
    queries = readme_queries()
    assert len(queries) == 3, list(queries)
    per_agent, cap_days, billed = (query(duckdb_cache, sql) for sql in queries.values())

    weeks: dict[tuple[date, str], list] = {}
    for row in more["agentDaily"]:
        day = date.fromisoformat(row["date"])
        key = (day - timedelta(days=day.weekday()), row["name"])
        weeks.setdefault(key, [0, Decimal(0)])
        weeks[key][0] += row["calls"]
        weeks[key][1] += Decimal(str(row["billedMinutes"]))
    assert {
        (r["week"], r["agentname"]): [r["calls"], Decimal(r["billed_minutes"]).normalize()] for r in per_agent
    } == {key: [calls, minutes.normalize()] for key, (calls, minutes) in weeks.items()}

    peaks: dict[date, int] = {}
    for point in more["concurrency"]:
        day = date.fromisoformat(point["timestamp"][:10])  # the API's name for bucketStart
        peaks[day] = max(peaks.get(day, 0), point["maxTotalCalls"])
    expected_cap_days = sorted((day, peak) for day, peak in peaks.items() if peak >= 5)
    assert expected_cap_days, "the busy sandbox never reached the cap: the query is not tested"
    assert [(r["day"], r["peak_calls"]) for r in cap_days] == expected_cap_days

    assert [r["date"] for r in billed] == sorted(date.fromisoformat(r["date"]) for r in more["billingDaily"])
    for row in billed:
        bill = next(b for b in more["billingDaily"] if b["date"] == row["date"].isoformat())
        calls = daily[row["date"].isoformat()]
        assert Decimal(row["billed_minutes"]).normalize() == Decimal(str(bill["minutes"])).normalize()
        assert Decimal(row["sip_minutes"]).normalize() == Decimal(str(bill["sipMinutes"])).normalize()
        used = Decimal(calls["duration"].removesuffix("s")) / 60
        # A DECIMAL divided by an integer is a DOUBLE in DuckDB: compare its decimal text.
        assert Decimal(str(row["used_minutes"])) == used.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), (
            row
        )
