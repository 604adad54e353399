"""What a PostgreSQL warehouse gets through PyAirbyte's PostgresCache, on a real server whose
session time zone is America/New_York, synced across that zone's autumn DST change.

PyAirbyte 0.71 loads PostgreSQL batches with pandas: read_json turns columns *named* like dates
(`timestamp`, `date`, `*_at`) into datetimes, and a zoned one is then stored in the session's
zone. The connector's names (bucketStart, hourStart) avoid that. Checked after a sync before the
change and an incremental one after it: every table equals the sandbox's truth, timestamps as UTC
instants, with 2026-11-01T05:00Z and 06:00Z (both 01:00 in New York) two rows; the calls'
timestamps to the microsecond, their metadata as json; no duplicate primary key; the column types
the docs page lists; the README's PostgreSQL SQL answers its questions, the cap one with the cap
the account had at the second sync (it changed between the two: account keeps a row per sync).

Run in the PyAirbyte environment: .venv-pyairbyte/bin/python -m pytest integration_tests/pyairbyte
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from integration_tests.pyairbyte.conftest import CONNECTOR_EXECUTABLE
from integration_tests.pyairbyte.docs import README, documented_types, readme_queries
from integration_tests.pyairbyte.expected import (
    BILLED,
    CAP_DAYS,
    MONTHLY_BILL,
    PER_AGENT,
    PER_CUSTOMER,
    QUESTIONS,
    STREAMS,
    answer_rows,
    cap_days,
    customer_weeks,
    ledger_truth,
    make_source,
    monthly_bill,
    table_rows,
)
from integration_tests.pyairbyte.postgres_server import PostgresServer, postgres_server
from ultravox_sandbox import Sandbox

pytestmark = [
    pytest.mark.pyairbyte,
    # Google client libraries that PyAirbyte imports warn about Python 3.11's end of life.
    pytest.mark.filterwarnings("ignore:.*Python version:FutureWarning"),
]

SERVER_ZONE = "America/New_York"
START = "2026-10-25"
# New York's clocks go back at 2026-11-01T06:00Z: 05:00Z and 06:00Z are both 01:00 there.
BEFORE_CHANGE = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
AFTER_CHANGE = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
FIRST_END, SECOND_END = "2026-11-01", "2026-11-02"
CHANGE_HOURS = [datetime(2026, 11, 1, 5, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC)]
# Seed 4 at 400 calls a day: days at the concurrency cap of 5, days below it, a day without
# calls, and calls in both hours of the change (different figures in each).
SEED, CALLS_PER_DAY = 4, 400
DATABASE = "usage"
# The account's cap at each sync: 5 at the first, 8 at the second. Days at or above 8: three of nine.
FIRST_CAP, SECOND_CAP = 5, 8
# PyAirbyte lower-cases table and column names.
PRIMARY_KEYS = {
    "daily": ["date"],
    "hourly": ["date", "hour"],
    "agentdaily": ["agentid", "date"],
    "concurrency": ["bucketstart", "bucket"],
    "billingdaily": ["date"],
    "calls": ["callid"],
    "invoices": ["invoicenumber"],
    "account": ["accountid", "readat"],
}
TABLES = ["alltime", *PRIMARY_KEYS]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NANO = Decimal("0.000000001")  # numeric(38,9)


@dataclass
class Synced:
    server: PostgresServer
    sandbox: Sandbox
    cache: Any
    source: Any
    first_keys: dict[str, set[tuple]]  # each table's primary keys after the first sync
    second_requests: set[tuple[str, str]]  # (path, first day) of each request of the second sync


def query(
    server: PostgresServer, sql: str, *params: Any, search_path: str = "airbyte_raw"
) -> list[dict[str, Any]]:
    """Rows of `sql` over a connection of our own, in the server's zone like PyAirbyte's."""
    connection = server.connect(DATABASE)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SET search_path TO {search_path}")
            cursor.execute(sql, params or None)  # no params: a % in the README's SQL stays a %
            names = [column.name for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        connection.close()


def instant(epoch: Decimal) -> datetime:
    """`extract(epoch FROM column)`: a timestamp without time zone counts as UTC, a timestamptz
    is its instant; the session's zone plays no part either way."""
    return EPOCH + timedelta(microseconds=int(epoch * 1_000_000))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def number(value: Any) -> Decimal:
    """A JSON number as numeric(38,9) holds it: nine decimals, half away from zero."""
    return Decimal(str(value)).quantize(NANO, rounding=ROUND_HALF_UP)


def seconds(duration: str) -> Decimal:
    return number(duration.removesuffix("s"))


def first_days(sandbox: Sandbox) -> set[tuple[str, str]]:
    return {
        (r.path, (r.query.get("fromDate") or r.query.get("start") or [""])[0][:10]) for r in sandbox.requests
    }


def buckets_truth(sandbox: Sandbox) -> list[dict[str, Any]]:
    whole_days = {"start": [f"{START}T00:00:00Z"], "end": [f"{SECOND_END}T23:59:59Z"]}
    return sandbox.concurrency_truth({"bucket": ["hour"], **whole_days})["timeSeries"]


def bill_truth(sandbox: Sandbox) -> list[dict[str, Any]]:
    return sandbox.billing_truth({"fromDate": [START], "toDate": ["2026-11-03"]})["dailyUsage"]  # exclusive


def primary_keys(server: PostgresServer, table: str) -> set[tuple]:
    sql = f"SELECT {', '.join(PRIMARY_KEYS[table])} FROM {table}"  # noqa: S608  - constants
    return {tuple(row.values()) for row in query(server, sql)}


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synced]:
    """One server, one sandbox, two syncs into one cache: before the change and after it."""
    from airbyte.caches import PostgresCache

    if not CONNECTOR_EXECUTABLE.exists():
        pytest.fail(f"{CONNECTOR_EXECUTABLE} is missing: run scripts/setup-pyairbyte first")
    history = date.fromisoformat(START)
    with (
        postgres_server(SERVER_ZONE) as server,
        Sandbox(
            seed=SEED,
            history_start=history,
            now=BEFORE_CHANGE,
            calls_per_day=CALLS_PER_DAY,
            allowed_concurrent_calls=FIRST_CAP,
        ) as box,
    ):
        server.create_database(DATABASE)
        cache = PostgresCache(
            host=server.host,
            port=server.port,
            username=server.user,
            password="unused-trust-auth",  # noqa: S106
            database=DATABASE,
            cache_dir=tmp_path_factory.mktemp("pyairbyte"),
        )
        try:
            source = make_source(CONNECTOR_EXECUTABLE, box, FIRST_END, start=START)
            source.read(cache=cache)
            first_keys = {table: primary_keys(server, table) for table in PRIMARY_KEYS}
            box.now = AFTER_CHANGE
            box.allowed_concurrent_calls = SECOND_CAP
            source.set_config({**source.get_config(), "end_date": SECOND_END})
            box.clear_log()
            source.read(cache=cache)  # incremental, from the state PyAirbyte saved in the database
            yield Synced(server, box, cache, source, first_keys, first_days(box))
        finally:
            cache.close()


def test_the_load_ran_on_postgresql_15_in_a_session_that_is_not_utc(synced: Synced) -> None:
    from sqlalchemy import text

    with synced.cache.processor.get_sql_connection() as connection:  # PyAirbyte's own session
        assert connection.execute(text("SHOW timezone")).scalar() == SERVER_ZONE
        assert int(connection.execute(text("SHOW server_version_num")).scalar()) // 10000 == 15


def test_the_first_sync_ended_before_the_change_and_the_second_resumed_from_its_state(synced: Synced) -> None:
    # Up to 2026-11-01T05:00Z, the hour the first sync's clock was in.
    first_hours = [datetime(2026, 10, 25, tzinfo=UTC) + timedelta(hours=n) for n in range(7 * 24 + 6)]
    assert synced.first_keys["concurrency"] == {(hour.replace(tzinfo=None), "hour") for hour in first_hours}
    assert synced.first_keys["hourly"] == {(hour.date(), hour.hour) for hour in first_hours}
    first_dates = {(date(2026, 10, 25) + timedelta(days=n),) for n in range(8)}
    assert synced.first_keys["daily"] == synced.first_keys["billingdaily"] == first_dates
    # The second sync asked again from its cursor's day minus the lookback of 2 days only;
    # allTime is a full refresh of the whole range.
    # The calls list in windows of a day from there on; invoices and the account in full.
    assert synced.second_requests == {
        ("/api/accounts/me/usage/calls", START),
        ("/api/accounts/me/usage/calls", "2026-10-30"),
        ("/api/agents/usage", "2026-10-30"),
        ("/api/accounts/me/usage/concurrency", "2026-10-30"),
        ("/api/accounts/me/billing/usage", "2026-10-30"),
        *(("/api/calls", f"2026-{day}") for day in ("10-30", "10-31", "11-01", "11-02")),
        ("/api/accounts/me/billing/invoices", ""),
        ("/api/accounts/me", ""),
    }


def test_every_table_equals_the_sandbox_truth_as_utc_instants(synced: Synced) -> None:
    box, server = synced.sandbox, synced.server
    calls = box.ground_truth({"fromDate": [START], "toDate": [SECOND_END]})

    (all_time,) = query(
        server,
        "SELECT fromdate, todate, totalcount, errorcount, joinedcount, duration, durationseconds, "
        "billedminutes FROM alltime",
    )
    expected = calls["allTime"]
    assert all_time == {
        "fromdate": date.fromisoformat(START),
        "todate": date.fromisoformat(SECOND_END),
        "totalcount": expected["totalCount"],
        "errorcount": expected["errorCount"],
        "joinedcount": expected["joinedCount"],
        "duration": expected["duration"],
        "durationseconds": seconds(expected["duration"]),
        "billedminutes": number(expected["billedMinutes"]),
    }

    def call_figures(row: dict[str, Any]) -> tuple:
        if "totalCount" in row:  # the API's
            return (
                row["totalCount"],
                row["errorCount"],
                row["joinedCount"],
                row["duration"],
                seconds(row["duration"]),
                number(row["billedMinutes"]),
            )
        return (
            row["totalcount"],
            row["errorcount"],
            row["joinedcount"],
            row["duration"],
            row["durationseconds"],
            row["billedminutes"],
        )

    daily = query(server, "SELECT * FROM daily")
    assert {row["date"]: call_figures(row) for row in daily} == {
        date.fromisoformat(row["date"]): call_figures(row) for row in calls["daily"]
    }
    assert len(daily) == 9

    hourly = query(server, "SELECT *, extract(epoch FROM hourstart) AS hourstart FROM hourly")
    assert {
        (row["date"], row["hour"]): (instant(row["hourstart"]), *call_figures(row)) for row in hourly
    } == {
        (date.fromisoformat(row["date"]), row["hour"]): (
            utc(row["date"] + "T00:00:00Z") + timedelta(hours=row["hour"]),
            *call_figures(row),
        )
        for row in calls["hourly"]
    }
    assert len(hourly) == 8 * 24 + 16  # up to 2026-11-02T15:00Z, the hour the clock is in

    agents = box.agent_usage_truth({"fromDate": [START], "toDate": [SECOND_END]})
    rows = query(server, "SELECT agentid, agentname, date, calls, billedminutes FROM agentdaily")
    assert {(r["agentid"], r["date"]): (r["agentname"], r["calls"], r["billedminutes"]) for r in rows} == {
        (a["agent"]["agentId"], date.fromisoformat(u["date"])): (
            a["agent"]["name"],
            u["calls"],
            number(u["billedMinutes"]),
        )
        for a in agents
        for u in a["usage"]
    }

    buckets = buckets_truth(box)
    rows = query(
        server,
        "SELECT extract(epoch FROM bucketstart) AS bucketstart, bucket, maxtotalcalls, maxjoinedcalls, "
        "avgtotalcalls, avgjoinedcalls FROM concurrency",
    )
    stored = {(instant(r.pop("bucketstart")), r.pop("bucket")): tuple(r.values()) for r in rows}
    assert stored == {
        (utc(b["timestamp"]), "hour"): (  # the API's timestamp is the record's bucketStart
            b["maxTotalCalls"],
            b["maxJoinedCalls"],
            number(b["avgTotalCalls"]),
            number(b["avgJoinedCalls"]),
        )
        for b in buckets
    }
    assert len(rows) == 8 * 24 + 15  # up to 14:00Z: the bucket starting at the clock is not listed yet
    # The two hours New York calls 01:00 are two rows, each with its own figures.
    five, six = (stored[(hour, "hour")] for hour in CHANGE_HOURS)
    assert (five[0], six[0]) == (1, 2)  # maxTotalCalls
    hours = {instant(r["hourstart"]): r for r in hourly}
    assert [(hours[h]["date"], hours[h]["hour"]) for h in CHANGE_HOURS] == [
        (date(2026, 11, 1), 5),
        (date(2026, 11, 1), 6),
    ]

    bill = bill_truth(box)
    rows = query(server, "SELECT date, minutes, sipminutes FROM billingdaily")
    assert {r["date"]: (r["minutes"], r["sipminutes"]) for r in rows} == {
        date.fromisoformat(b["date"]): (number(b["minutes"]), number(b["sipMinutes"])) for b in bill
    }
    assert len(rows) == 9

    # The ledger: every call (those running at the first sync ended by the second), its
    # timestamps as UTC wall time to the microsecond, metadata a json object; the invoices; the
    # account's latest row (a row per sync, each with the cap it had).
    ledger = ledger_truth(box, START, SECOND_END)
    for table in ("calls", "invoices", "account"):
        assert table_rows(table, query(server, f"SELECT * FROM {table}")) == ledger[table], table  # noqa: S608
    stamps = query(
        server,
        "SELECT count(*) AS n, count(*) FILTER (WHERE created <> date_trunc('second', created)) AS fraction, "
        "count(*) FILTER (WHERE metadata->>'customer' IS NOT NULL) AS customers FROM calls",
    )
    assert stamps[0]["n"] > stamps[0]["fraction"] > 0 and 0 < stamps[0]["customers"] < stamps[0]["n"]
    caps = query(server, "SELECT allowedconcurrentcalls AS cap FROM account ORDER BY readat")
    assert [row["cap"] for row in caps] == [FIRST_CAP, SECOND_CAP]


@pytest.mark.parametrize("table", list(PRIMARY_KEYS))
def test_no_primary_key_is_duplicated(synced: Synced, table: str) -> None:
    keys = ", ".join(PRIMARY_KEYS[table])
    duplicated = f"SELECT {keys}, count(*) FROM {table} GROUP BY {keys} HAVING count(*) > 1"  # noqa: S608
    assert query(synced.server, duplicated) == []


def test_column_types_are_the_ones_the_docs_page_lists(synced: Synced) -> None:
    documented = {name.lower(): kind for name, kind in documented_types("PostgreSQL (PyAirbyte)").items()}
    for table, stream in zip(TABLES, STREAMS, strict=True):
        columns = query(
            synced.server,
            "SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_catalog.pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            f"{synced.cache.schema_name}.{table}",
        )
        fields = [name.lower() for name in synced.source.get_stream_json_schema(stream)["properties"]]
        ours = {c["attname"]: c["type"] for c in columns if not c["attname"].startswith("_airbyte_")}
        assert sorted(ours) == sorted(fields), table
        assert ours == {name: documented.get(name, "(not on the docs page)") for name in ours}, table


def test_the_readme_postgresql_sql_answers_each_question(synced: Synced) -> None:
    """Each question's PostgreSQL block, run as the README says: in the cache's schema."""
    (schema,) = set(re.findall(r"SET search_path TO (\w+)", README.read_text()))
    assert schema == synced.cache.schema_name
    questions = readme_queries()
    assert list(questions) == list(QUESTIONS)
    answers = {
        question: query(synced.server, sql["PostgreSQL"], search_path=schema)
        for question, sql in questions.items()
    }
    box = synced.sandbox

    weeks: dict[tuple[date, str], list] = {}
    for agent in box.agent_usage_truth({"fromDate": [START], "toDate": [SECOND_END]}):
        for row in agent["usage"]:
            day = date.fromisoformat(row["date"])
            figures = weeks.setdefault((day - timedelta(days=day.weekday()), agent["agent"]["name"]), [0, 0])
            figures[0] += row["calls"]
            figures[1] += number(row["billedMinutes"])
    per_agent = answers[PER_AGENT]
    assert {(r["week"], r["agentname"]): [r["calls"], r["billed_minutes"]] for r in per_agent} == weeks
    assert len(per_agent) == len(weeks)
    order = [(r["week"], -r["billed_minutes"]) for r in per_agent]
    assert order == sorted(order)  # by week, the most billed agent first

    per_customer = answer_rows(PER_CUSTOMER, answers[PER_CUSTOMER])
    expected = customer_weeks(box.calls_truth({"fromDate": [START], "toDate": [SECOND_END]}))
    assert sorted(per_customer) == expected
    assert len({row[1] for row in expected}) == 5  # four customers and the calls of none
    order = [(row[0], -row[3]) for row in per_customer]
    assert order == sorted(order)

    # The cap of the latest account row (8), not the first sync's (5), nor a constant.
    buckets = buckets_truth(box)
    expected = cap_days(buckets, SECOND_CAP)
    assert 0 < len(expected) < len({b["timestamp"][:10] for b in buckets}), (
        "the cap is reached on every day or none"
    )
    assert expected != cap_days(buckets, FIRST_CAP)
    assert answer_rows(CAP_DAYS, answers[CAP_DAYS]) == expected

    calls = {
        row["date"]: row for row in box.ground_truth({"fromDate": [START], "toDate": [SECOND_END]})["daily"]
    }
    billed = answers[BILLED]
    assert list(billed[0]) == ["date", "billed_minutes", "sip_minutes", "used_minutes", "call_billed_minutes"]
    assert [tuple(r.values()) for r in billed] == [
        (
            date.fromisoformat(b["date"]),
            number(b["minutes"]),
            number(b["sipMinutes"]),
            (seconds(calls[b["date"]]["duration"]) / 60).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP),
            number(calls[b["date"]]["billedMinutes"]),
        )
        for b in sorted(bill_truth(box), key=lambda b: b["date"])
    ]

    expected = monthly_bill(box.invoices_truth())
    assert len(expected) == 2  # October (paid) and November (unpaid)
    assert answer_rows(MONTHLY_BILL, answers[MONTHLY_BILL]) == expected


def test_the_readme_utc_day_of_a_destination_timestamptz(synced: Synced) -> None:
    """The README's advice for Airbyte's PostgreSQL destination, whose bucketStart is a
    `timestamp with time zone` under its own name: a plain CAST takes the session's day, the
    README's expression the UTC day. The table holds the synced buckets as that destination would."""
    (advice,) = set(re.findall(r"`(CAST\(\"bucketStart\" AT TIME ZONE 'UTC' AS DATE\))`", README.read_text()))
    make = "CREATE TEMP TABLE destination AS SELECT bucketstart AT TIME ZONE 'UTC' AS \"bucketStart\" "
    make += "FROM concurrency"
    days = f'SELECT DISTINCT {advice} AS utc_day, CAST("bucketStart" AS DATE) AS session_day FROM destination'  # noqa: S608
    rows = query(synced.server, f"{make}; {days} WHERE \"bucketStart\" = '2026-11-01T03:00:00Z'")
    assert rows == [{"utc_day": date(2026, 11, 1), "session_day": date(2026, 10, 31)}]
