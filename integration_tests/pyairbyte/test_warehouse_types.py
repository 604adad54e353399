"""What a warehouse gets from this connector through PyAirbyte: column types and incremental merges.

All nine streams are read with PyAirbyte (`local_executable`, the connector installed in .venv)
from the sandbox into DuckDB, the warehouse PyAirbyte uses by default. Checked: every column's
DuckDB type is the one the docs page's warehouse table gives (hourStart, bucketStart and the
ledger's timestamps a TIMESTAMP holding UTC wall time to the microsecond, metadata JSON), the
tables equal the sandbox's ground truth (the calls' nulls and metadata objects included, the
account one row read during the sync), an incremental read after the sandbox's clock moved merges
on the primary keys (no duplicate keys, the re-read days hold their new figures, a call running at
the first read is ended), and the README's DuckDB SQL answers each of its questions exactly.

Run in the PyAirbyte environment: .venv-pyairbyte/bin/python -m pytest integration_tests/pyairbyte
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from integration_tests.pyairbyte.docs import documented_types, readme_queries
from integration_tests.pyairbyte.expected import (
    CALL_STREAMS,
    END,
    NO_CUSTOMER,
    ORDER_KEYS,
    PER_CUSTOMER,
    QUESTIONS,
    START,
    STREAMS,
    BusySync,
    answer_rows,
    make_source,
    stream_fields,
    stream_truth,
    table_rows,
)
from ultravox_sandbox import Sandbox

pytestmark = [
    pytest.mark.pyairbyte,
    # Google client libraries that PyAirbyte imports warn about Python 3.11's end of life.
    pytest.mark.filterwarnings("ignore:.*Python version:FutureWarning"),
]

AIRBYTE_COLUMNS = ["_airbyte_raw_id", "_airbyte_extracted_at", "_airbyte_meta"]


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


def table(cache: Any, stream: str) -> dict[tuple, tuple]:
    # PyAirbyte lower-cases table and column names (agentDaily -> agentdaily).
    return table_rows(stream, query(cache, f"SELECT * FROM main.{stream.lower()}"))  # noqa: S608


def assert_equals_ground_truth(
    cache: Any, sandbox: Sandbox, end: str = END, streams: list[str] = STREAMS
) -> None:
    expected = stream_truth(sandbox, end)
    for stream in streams:
        assert table(cache, stream) == expected[stream], stream


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
    before = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    try:
        result = make_source(connector_executable, sandbox).read(cache=duckdb_cache)
    finally:
        monkeypatch.undo()
        time.tzset()
    after = datetime.now(UTC).replace(tzinfo=None)

    expected = stream_truth(sandbox)
    assert result.processed_records == sum(len(rows) for rows in expected.values())
    assert len(expected["daily"]) == (date.fromisoformat(END) - date.fromisoformat(START)).days + 1

    # Every field of every stream is a column of the type the docs page tells users, in the order
    # of the stream's schema, then PyAirbyte's own columns.
    documented = {field.lower(): kind for field, kind in documented_types("DuckDB (PyAirbyte)").items()}
    fields = {stream: [field.lower() for field in schema] for stream, schema in stream_fields().items()}
    assert set(documented) == {field for names in fields.values() for field in names}  # none stale
    for stream, names in fields.items():
        types = column_types(duckdb_cache, stream.lower())
        assert list(types) == names + AIRBYTE_COLUMNS, stream
        assert {name: types[name] for name in names} == {name: documented[name] for name in names}, stream

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
    (stamp,) = query(
        duckdb_cache, "SELECT min(bucketstart) AS t, max(bucketstart) AS last FROM main.concurrency"
    )
    assert stamp["t"].replace(tzinfo=None) == datetime(2024, 11, 20, 0, 0)  # UTC, not shifted by TZ
    assert stamp["last"].replace(tzinfo=None) == datetime(2025, 3, 4, 15, 0)

    # The ledger: one account row, stamped during the sync in UTC; timestamps keep their
    # microseconds; metadata is JSON that DuckDB reads a key of as text.
    (account,) = query(duckdb_cache, "SELECT readat FROM main.account")
    assert before <= account["readat"] <= after
    (micro,) = query(
        duckdb_cache,
        "SELECT count(*) AS n, count(*) FILTER (WHERE microsecond(created) % 1000000 <> 0) AS fraction, "
        "count(*) FILTER (WHERE ended IS NULL) AS running, typeof(any_value(metadata)) AS t, "
        "count(metadata->>'customer') AS customers FROM main.calls",
    )
    assert micro["n"] > micro["fraction"] > 0 and micro["running"] > 0
    assert micro["t"] == "JSON" and 0 < micro["customers"] < micro["n"]

    assert_unique_keys(duckdb_cache)
    assert_equals_ground_truth(duckdb_cache, sandbox)


def test_incremental_read_merges_on_primary_keys(
    sandbox: Sandbox, connector_executable: Path, duckdb_cache: Any
) -> None:
    streams = [*CALL_STREAMS, "calls"]
    source = make_source(connector_executable, sandbox, streams=streams)
    first = source.read(cache=duckdb_cache)
    assert first.processed_records > 2000
    partial_day = table(duckdb_cache, "daily")[(date(2025, 3, 4),)]
    partial_hours = len(table(duckdb_cache, "hourly"))
    running = {key for key, values in table(duckdb_cache, "calls").items() if values[2] is None}
    assert running, "no call runs at the first read: the ledger's merge of an ended call is untested"

    # Ten hours later it is 01:55 on 2025-03-05: the calls of the 4th have ended and been billed,
    # and the 5th has begun. Sync up to the new day, from the state PyAirbyte saved in DuckDB.
    sandbox.advance(timedelta(hours=10))
    new_end = "2025-03-05"
    source.set_config({**source.get_config(), "end_date": new_end})
    sandbox.clear_log()
    second = source.read(cache=duckdb_cache)

    # Only the lookback window was fetched again: the cursor day 2025-03-04 minus 2 days onwards.
    sent_from = {
        request.query["fromDate"][0]
        for request in sandbox.requests
        if request.path == "/api/accounts/me/usage/calls" and "fromDate" in request.query
    }
    windows = {q for q in sent_from if q != START}  # allTime always asks for the whole range
    assert windows == {"2025-03-02"}
    # The calls list, in windows of a day, from the cursor's day minus the lookback too.
    listed = [
        r.query["fromDate"][0] for r in sandbox.requests if r.path == "/api/calls" and "fromDate" in r.query
    ]
    assert sorted(listed) == ["2025-03-02", "2025-03-03", "2025-03-04", "2025-03-05"]
    expected_days = 4  # 2025-03-02 .. 2025-03-05
    recent_calls = len(sandbox.calls_truth({"fromDate": ["2025-03-02"], "toDate": [new_end]}))
    assert second.processed_records == 1 + expected_days + (3 * 24 + 2) + recent_calls

    assert_unique_keys(duckdb_cache)
    daily = table(duckdb_cache, "daily")
    assert len(daily) == (date(2025, 3, 5) - date(2024, 11, 20)).days + 1
    assert daily[(date(2025, 3, 4),)] != partial_day, "the re-read day kept its partial figures"
    hourly = table(duckdb_cache, "hourly")
    assert len(hourly) == partial_hours + 8 + 2  # 16:00-23:00 of the 4th, 00:00-01:00 of the 5th
    assert_equals_ground_truth(duckdb_cache, sandbox, new_end, streams)
    calls = table(duckdb_cache, "calls")
    assert all(calls[key][2] is not None for key in running)  # merged on callId, ended now

    # Reading again without any change is idempotent: same rows, still no duplicates.
    source.read(cache=duckdb_cache)
    assert_unique_keys(duckdb_cache)
    assert table(duckdb_cache, "hourly") == hourly


def test_the_busy_sync_holds_the_sandbox_truth(busy_sync: BusySync) -> None:
    """The tables the README questions are asked of hold exactly the busy sandbox's figures, so a
    wrong answer below is the query's fault, not the sync's."""
    for stream in STREAMS:
        assert table(busy_sync.cache, stream) == busy_sync.tables[stream], stream


@pytest.mark.parametrize("question", QUESTIONS)
def test_the_readme_sql_answers_each_question(busy_sync: BusySync, question: str) -> None:
    """A busy account (a few calls at once, so that some days reach its cap of 7 and some do not;
    calls of four customers and calls of none), synced into DuckDB, and the README's DuckDB query
    run as a user would run it: it answers its question exactly as the sandbox's truth says, in the
    order its ORDER BY promises."""
    queries = readme_queries()
    assert list(queries) == list(QUESTIONS)
    got = answer_rows(question, query(busy_sync.cache, queries[question]["DuckDB"]))
    expected = busy_sync.answers[question]
    assert expected, f"the busy sandbox gives no answer to {question!r}: the query is not tested"
    assert sorted(got) == expected
    assert [ORDER_KEYS[question](row) for row in got] == sorted(ORDER_KEYS[question](row) for row in got)
    if question == PER_CUSTOMER:  # every customer, and the calls of none, in one week at least
        assert {row[1] for row in got} == {
            "Acme Dental",
            "Globex Logistics",
            "Initech",
            "Umbrella Health",
            NO_CUSTOMER,
        }
