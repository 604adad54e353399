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
from decimal import Decimal
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
STREAMS = ["allTime", "daily", "hourly"]
COUNT_COLUMNS = ("totalcount", "errorcount", "joinedcount")
NUMERIC_COLUMNS = ("durationseconds", "billedminutes")
# PyAirbyte lower-cases table and column names (allTime -> alltime, billedMinutes -> billedminutes).
EXPECTED_COLUMNS = {
    "alltime": ["fromdate", "todate", *COUNT_COLUMNS, "duration", *NUMERIC_COLUMNS],
    "daily": ["date", *COUNT_COLUMNS, "duration", *NUMERIC_COLUMNS],
    "hourly": ["date", "hour", "hourstart", *COUNT_COLUMNS, "duration", *NUMERIC_COLUMNS],
}
AIRBYTE_COLUMNS = ["_airbyte_raw_id", "_airbyte_extracted_at", "_airbyte_meta"]


def make_source(executable: Path, sandbox: Sandbox, end: str = END) -> Any:
    import airbyte as ab

    config = {"api_key": sandbox.api_key, "api_url": sandbox.url, "start_date": START, "end_date": end}
    source = ab.get_source(CONNECTOR_NAME, local_executable=executable, config=config)
    source.select_all_streams()
    assert sorted(source.get_selected_streams()) == sorted(STREAMS)
    return source


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
    assert result.processed_records == 1 + len(expected["daily"]) + len(expected["hourly"])
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


def test_incremental_read_merges_on_primary_keys(
    sandbox: Sandbox, connector_executable: Path, duckdb_cache: Any
) -> None:
    source = make_source(connector_executable, sandbox)
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
