"""The README's SQL for Snowflake and BigQuery (and DuckDB/PostgreSQL), checked without those warehouses.

1. Every block parses in its warehouse's sqlglot dialect, names only tables and columns that exist
   there under that warehouse's naming rules (Snowflake: unquoted names are upper case, a quoted
   name must be too; BigQuery: tables case-sensitive and in the `ultravox_usage` dataset, no double
   quotes, which are string literals there; PostgreSQL: unquoted names fold to lower case), calls
   only functions sqlglot knows, and selects the same columns as the other warehouses' blocks.
   JSON is read only from an `object` field (metadata), by a key its calls hold (keys are
   case-sensitive everywhere), and as text: `->>` in DuckDB and PostgreSQL (`->` is JSON),
   `JSON_VALUE` with a `$` path in BigQuery (`JSON_QUERY` is JSON), a path cast `::STRING` in
   Snowflake (uncast it is a VARIANT that compares and shows with its quotes).
2. The Snowflake blocks run on fakesnow (Snowflake's SQL translated onto DuckDB) against the busy
   sync's rows, loaded into tables named and typed as PyAirbyte's SnowflakeCache makes them, and
   answer exactly what the sandbox's truth says. fakesnow resolves names case-insensitively (as
   DuckDB does), so name case is checked by 1, not here.
3. PyAirbyte's own SnowflakeCache syncs all streams into fakesnow, twice (incremental): its tables
   hold the sandbox's truth with no key twice, with the column types it created, and the README's
   Snowflake SQL answers on them too. fakesnow lacks a few things PyAirbyte's Snowflake load needs;
   the adapters below stand in for exactly those, each saying what it replaces and why.

Run in the PyAirbyte environment: .venv-pyairbyte/bin/python -m pytest integration_tests/pyairbyte
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.optimizer.qualify import qualify

from integration_tests.pyairbyte.docs import documented_types, readme_queries
from integration_tests.pyairbyte.expected import (
    BUSY,
    ORDER_KEYS,
    QUESTIONS,
    STREAMS,
    BusySync,
    answer_rows,
    make_source,
    readme_answers,
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

# The README's warehouse names (first line of each block) and the sqlglot dialects each must parse in.
DIALECTS = {"DuckDB": "duckdb", "PostgreSQL": "postgres", "Snowflake": "snowflake", "BigQuery": "bigquery"}
DATASET = "ultravox_usage"  # the BigQuery destination's dataset the README's BigQuery SQL uses
# The keys of the sandbox's call metadata (ultravox_sandbox/calls.py); JSON keys are case-sensitive.
METADATA_KEYS = {"customer", "campaign", "tier"}
AIRBYTE_COLUMNS = ["_AIRBYTE_RAW_ID", "_AIRBYTE_EXTRACTED_AT", "_AIRBYTE_META"]


def snowflake_types() -> dict[str, str]:
    """The docs page's "Snowflake (PyAirbyte)" types, by field: NUMBER(38,0), NUMBER(38,9),
    VARCHAR, DATE, TIMESTAMP_NTZ (UTC wall time: PyAirbyte creates a TIMESTAMP without zone)."""
    return documented_types("Snowflake (PyAirbyte)")


def snowflake_type(data_type: str, precision: int | None, scale: int | None) -> str:
    """A column's type as Snowflake's information_schema reports it, written as the docs write it."""
    if data_type == "NUMBER":
        return f"NUMBER({precision},{scale})"
    return {"TEXT": "VARCHAR"}.get(data_type, data_type)  # Snowflake reports VARCHAR as TEXT


BLOCKS = [
    pytest.param(question, warehouse, dialect, id=f"{question[:24]}-{dialect}")
    for question in QUESTIONS
    for warehouse, dialect in DIALECTS.items()
]


# -- 1. Static checks ------------------------------------------------------------------------------


def warehouse_tables(dialect: str) -> dict[str, dict[str, str]]:
    """Each warehouse's tables and columns, as that warehouse stores their names."""
    fields = stream_fields()
    if dialect == "snowflake":  # PyAirbyte's lower-case names, stored upper case by Snowflake
        return {
            stream.upper(): {name.upper(): "VARCHAR" for name in props} for stream, props in fields.items()
        }
    if dialect == "bigquery":  # the destination keeps the stream's and fields' names
        return {stream: dict.fromkeys(props, "STRING") for stream, props in fields.items()}
    return {stream.lower(): {name.lower(): "VARCHAR" for name in props} for stream, props in fields.items()}


def table_name(table: exp.Table, dialect: str) -> str:
    """The name the warehouse looks the table up by."""
    ident = table.this
    if dialect == "snowflake":
        return ident.this if ident.quoted else ident.this.upper()
    if dialect == "postgres":
        return ident.this if ident.quoted else ident.this.lower()
    if dialect == "duckdb":
        return ident.this.lower()  # DuckDB matches names case-insensitively, quoted or not
    return ident.this  # BigQuery table names are case-sensitive


def parsed(sql: str, dialect: str) -> exp.Expression:
    return sqlglot.parse_one(sql, read=dialect, error_level=sqlglot.ErrorLevel.RAISE)


def problems(sql: str, dialect: str) -> list[str]:
    """What would break in the warehouse that sqlglot can see; [] if nothing."""
    tree = parsed(sql, dialect)
    tables = warehouse_tables(dialect)
    found = []
    for table in tree.find_all(exp.Table):
        if table_name(table, dialect) not in tables:
            found.append(f"no table {table.sql(dialect)}")
        if dialect == "bigquery" and table.db != DATASET:
            found.append(f"{table.sql(dialect)} is not in the dataset {DATASET}")
        if dialect != "bigquery" and table.db:
            found.append(f"{table.sql(dialect)}: the README's blocks use the cache's schema unqualified")
    if dialect == "snowflake":  # the names it reads, not the aliases it gives, which may have any case
        aliases = {alias.alias for alias in tree.find_all(exp.Alias)}
        found += [
            f'"{ident.this}" is quoted with lower case: Snowflake stores these names upper case'
            for ident in [table.this for table in tree.find_all(exp.Table)]
            + [
                column.this
                for column in tree.find_all(exp.Column)
                if column.table or column.name not in aliases
            ]
            if isinstance(ident, exp.Identifier) and ident.quoted and ident.this != ident.this.upper()
        ]
    if dialect == "bigquery" and '"' in sql:
        found.append("double quotes in BigQuery are a string literal, not a name: use `backticks`")
    found += [f"unknown function {call.sql(dialect)}" for call in tree.find_all(exp.Anonymous)]
    found += json_problems(tree, sql, dialect)
    if not found:
        try:  # every column reference resolves to a column of its table, under the dialect's rules
            qualify(tree, schema=tables, dialect=dialect, validate_qualify_columns=True)
        except sqlglot.errors.OptimizeError as error:
            found.append(str(error))
    return found


def json_fields() -> set[str]:
    """The `object` fields, lower case: JSON (DuckDB, PostgreSQL, BigQuery) or VARIANT (Snowflake)."""
    return {
        name.lower()
        for props in stream_fields().values()
        for name, schema in props.items()
        if schema.get("type") == "object"
    }


def json_problems(tree: exp.Expression, sql: str, dialect: str) -> list[str]:
    """What reads JSON wrong: a column that holds no JSON, a key the metadata has not, a value
    that stays JSON where text is meant."""
    found = []
    reads = list(tree.find_all(exp.JSONExtract, exp.JSONExtractScalar))
    for read in reads:
        column = read.this
        if not isinstance(column, exp.Column) or column.name.lower() not in json_fields():
            found.append(f"{read.sql(dialect)}: {column.sql(dialect)} is not a JSON column")
        keys = [part.this for part in read.expression.find_all(exp.JSONPathKey)]
        found += [f"{read.sql(dialect)}: no metadata key {key!r}" for key in keys if key not in METADATA_KEYS]
        if dialect == "snowflake":
            cast = read.parent
            if not (isinstance(cast, exp.Cast) and cast.to.is_type(*exp.DataType.TEXT_TYPES)):
                found.append(f"{read.sql(dialect)} is a VARIANT: cast it, {read.sql(dialect)}::STRING")
        elif isinstance(read, exp.JSONExtract):  # -> in DuckDB/PostgreSQL, JSON_QUERY in BigQuery
            text = "JSON_VALUE" if dialect == "bigquery" else "->>"
            found.append(f"{read.sql(dialect)} is JSON, not text: use {text}")
    if dialect == "bigquery":  # sqlglot reads 'customer' as '$.customer'; BigQuery refuses it
        for function, path in re.findall(r"(JSON_\w+)\s*\(\s*\w+\s*,\s*'([^']*)'", sql, re.IGNORECASE):
            if not path.startswith("$"):
                found.append(f"{function}(..., '{path}'): a JSONPath starts with '$'")
    found += [
        f"{column.sql(dialect)}: a JSON key is read with a JSON function or operator, not as a column"
        for column in tree.find_all(exp.Column)
        if column.table.lower() in json_fields()
    ]
    return found


@pytest.mark.parametrize(("question", "warehouse", "dialect"), BLOCKS)
def test_each_readme_block_would_run_in_its_warehouse(question: str, warehouse: str, dialect: str) -> None:
    queries = readme_queries()
    assert list(queries) == list(QUESTIONS)
    assert set(queries[question]) == set(DIALECTS)
    assert problems(queries[question][warehouse], dialect) == []


@pytest.mark.parametrize(
    ("dialect", "sql", "problem"),
    [
        ("snowflake", 'SELECT b."date" FROM billingdaily AS b', '"date" is quoted with lower case'),
        ("snowflake", 'SELECT "DATE" FROM daily AS "d" WHERE "d"."billedminutes" > 0', '"billedminutes" is'),
        ("snowflake", 'SELECT minutes FROM "billingdaily"', "no table"),
        ("snowflake", "SELECT b.minute FROM billingdaily AS b", "Unknown column: MINUTE"),
        ("bigquery", "SELECT minutes FROM ultravox_usage.billingdaily", "no table"),
        ("bigquery", "SELECT minutes FROM billingDaily", "not in the dataset"),
        ("bigquery", 'SELECT b."date" FROM ultravox_usage.billingDaily AS b', "double quotes"),
        ("postgres", 'SELECT "sipMinutes" FROM billingdaily', "sipMinutes' could not be resolved"),
        ("duckdb", "SELECT date_trunk('week', date) FROM agentdaily", "unknown function"),
        ("duckdb", "SELECT date FROM main.agentdaily", "unqualified"),
        ("duckdb", "SELECT metadata->'customer' AS customer FROM calls", "use ->>"),
        ("postgres", "SELECT metadata->>'Customer' FROM calls", "no metadata key 'Customer'"),
        ("postgres", "SELECT agentid->>'customer' FROM calls", "is not a JSON column"),
        ("snowflake", "SELECT metadata:customer AS customer FROM calls", "::STRING"),
        ("snowflake", "SELECT COALESCE(metadata:customer, 'none') FROM calls", "is a VARIANT"),
        ("snowflake", "SELECT metadata:Customer::STRING FROM calls", "no metadata key 'Customer'"),
        ("bigquery", "SELECT JSON_VALUE(metadata, 'customer') FROM ultravox_usage.calls", "starts with '$'"),
        ("bigquery", "SELECT JSON_QUERY(metadata, '$.customer') FROM ultravox_usage.calls", "use JSON_VALUE"),
        ("bigquery", "SELECT metadata.customer FROM ultravox_usage.calls", "not as a column"),
    ],
)
def test_the_checks_catch_what_would_break(dialect: str, sql: str, problem: str) -> None:
    """Each check above fails on a query that would not run in the warehouse."""
    found = problems(sql, dialect)
    assert any(problem in one for one in found), found


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [
        ("snowflake", 'SELECT "d"."DATE" AS "day", BilledMinutes FROM daily AS "d" ORDER BY "day"'),
        ("bigquery", "SELECT `date`, billedminutes FROM `ultravox_usage.daily`"),
        ("bigquery", "SELECT DATE(bucketStart) AS day FROM ultravox_usage.concurrency WHERE bucket = 'hour'"),
        ("postgres", 'SELECT "date", agentName FROM agentdaily'),
        ("postgres", "SELECT metadata->>'customer' AS customer FROM calls GROUP BY 1"),
        (
            "snowflake",
            "SELECT GET_PATH(metadata, 'customer')::VARCHAR AS c, metadata:tier::STRING FROM calls",
        ),
        ("bigquery", "SELECT JSON_EXTRACT_SCALAR(metadata, '$.campaign') AS c FROM ultravox_usage.calls"),
    ],
)
def test_the_checks_pass_what_would_run(dialect: str, sql: str) -> None:
    """No false alarm on what the warehouse resolves: quoted aliases, unquoted names in any case
    where the warehouse folds them, BigQuery backticks, single-quoted strings, JSON read as text
    in each warehouse's other spellings."""
    assert problems(sql, dialect) == []


@pytest.mark.parametrize("question", QUESTIONS)
def test_every_warehouse_answers_with_the_same_columns(question: str) -> None:
    """A user switching warehouse gets the same result columns (names compared case-insensitively:
    Snowflake returns them upper case)."""
    blocks = readme_queries()[question]
    columns = {
        warehouse: [select.alias_or_name.lower() for select in parsed(blocks[warehouse], dialect).selects]
        for warehouse, dialect in DIALECTS.items()
    }
    assert len({tuple(names) for names in columns.values()}) == 1, columns


# -- fakesnow --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_snowflake() -> Iterator[None]:
    """snowflake.connector replaced by fakesnow for this module, with three fixes to fakesnow 0.11.4
    itself (not to PyAirbyte, nor the connector) for snowflake-sqlalchemy 1.11, which PyAirbyte uses:
    - CURRENT_VERSION() answers DuckDB's "v1.4.3", which the dialect cannot parse (int("v1")).
    - information_schema.columns lacks IDENTITY_ORDERED and DATA_TYPE_ALIAS, which the dialect's
      table reflection selects: added as NULL, as Snowflake has them for these columns.
    - SHOW IMPORTED KEYS lists every primary key as a foreign key (and names a column twice, so the
      dialect reads 'NO ACTION' as a key position): no foreign keys, as in PyAirbyte's schema.
    """
    import fakesnow
    import fakesnow.info_schema
    import fakesnow.transforms
    from snowflake.sqlalchemy.snowdialect import SnowflakeDialect

    original_show_keys = fakesnow.transforms.show_keys

    def show_keys(expression: exp.Expression, current_database: str | None, *, kind: str) -> exp.Expression:
        shown = original_show_keys(expression, current_database, kind=kind)
        return shown.where(exp.false()) if kind == "FOREIGN" and shown is not expression else shown

    view = fakesnow.info_schema.SQL_CREATE_GLOBAL_INFORMATION_SCHEMA_COLUMNS_VIEW
    marker = "null::VARCHAR as IDENTITY_INCREMENT,"
    assert marker in view, "fakesnow's columns view changed: is the fix below still needed?"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SnowflakeDialect, "_get_server_version_info", lambda self, connection: (9, 0, 0))
        patch.setattr(
            fakesnow.info_schema,
            "SQL_CREATE_GLOBAL_INFORMATION_SCHEMA_COLUMNS_VIEW",
            view.replace(
                marker, f"{marker} null::VARCHAR as IDENTITY_ORDERED, null::VARCHAR as DATA_TYPE_ALIAS,"
            ),
        )
        patch.setattr(fakesnow.transforms, "show_keys", show_keys)
        with fakesnow.patch():
            yield


def run_snowflake(connection: Any, sql: str) -> list[dict[str, Any]]:
    import snowflake.connector

    with connection.cursor(snowflake.connector.DictCursor) as cursor:
        return cursor.execute(sql).fetchall()


# -- 2. README Snowflake SQL on the busy sync's rows -----------------------------------------------


def as_text(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value) if isinstance(value, dict) else str(value)


@pytest.fixture(scope="module")
def readme_snowflake(busy_sync: BusySync, fake_snowflake: None) -> Iterator[Any]:
    """A Snowflake schema holding the busy sync's rows as PyAirbyte's SnowflakeCache holds them:
    tables and columns upper case, its column types, hourStart and bucketStart UTC wall time."""
    import pandas as pd
    import snowflake.connector
    from snowflake.connector.pandas_tools import write_pandas
    from sqlalchemy import text

    connection = snowflake.connector.connect(
        user="test", password="test", account="test", database="README_SQL", schema="AIRBYTE_RAW"
    )
    with busy_sync.cache.processor.get_sql_connection() as duck:
        for stream, props in stream_fields().items():
            columns = ", ".join(f"{name.upper()} {snowflake_types()[name]}" for name in props)
            connection.cursor().execute(f"CREATE TABLE {stream.upper()} ({columns})")
            rows = duck.execute(text(f"SELECT {', '.join(props).lower()} FROM main.{stream.lower()}"))  # noqa: S608
            # Loaded as text and cast by the column types, as a COPY of a CSV file would be; an
            # object as its JSON text (the VARIANT is parsed from it), a null as a null.
            frame = pd.DataFrame(
                [[as_text(value) for value in row] for row in rows], columns=[n.upper() for n in props]
            )
            assert write_pandas(connection, frame, stream.upper())[2] == len(busy_sync.tables[stream])
    yield connection
    connection.close()


@pytest.mark.parametrize("question", QUESTIONS)
def test_the_readme_snowflake_sql_answers_each_question(
    busy_sync: BusySync, readme_snowflake: Any, question: str
) -> None:
    got = answer_rows(question, run_snowflake(readme_snowflake, readme_queries()[question]["Snowflake"]))
    expected = busy_sync.answers[question]
    assert expected, f"the busy sandbox gives no answer to {question!r}: the query is not tested"
    assert sorted(got) == expected
    assert [ORDER_KEYS[question](row) for row in got] == sorted(ORDER_KEYS[question](row) for row in got)


# -- 3. PyAirbyte's SnowflakeCache on fakesnow ------------------------------------------------------


def fakesnow_cache_class() -> type:
    """SnowflakeCache with a processor that stands in for what fakesnow cannot run. Kept from
    PyAirbyte: table and temp-table creation, column names and types, the JSONL batch files and the
    `$1:"column"` expressions its COPY loads them with, the MERGE (or swap, for allTime) into the
    final tables, and the state it keeps."""
    from airbyte._processors.sql.snowflake import SnowflakeSqlProcessor
    from airbyte.caches import SnowflakeCache
    from sqlalchemy import text

    class FakesnowProcessor(SnowflakeSqlProcessor):
        def _init_connection_settings(self, connection: Any) -> None:
            # PyAirbyte sets QUOTED_IDENTIFIERS_IGNORE_CASE = TRUE and MULTI_STATEMENT_COUNT = 0;
            # fakesnow raises NotImplementedError on the first. Both are emulated below.
            pass

        def _quote_identifier(self, identifier: str) -> str:
            # QUOTED_IDENTIFIERS_IGNORE_CASE = TRUE: Snowflake stores and resolves "agentdaily" as
            # AGENTDAILY. Without it, SQLAlchemy's reflection would not find PyAirbyte's tables.
            return f'"{identifier.upper()}"'

        def _execute_sql(self, sql: Any) -> Any:
            # MULTI_STATEMENT_COUNT = 0: PyAirbyte swaps allTime's table in three statements at once.
            statements = (
                [s for s in re.split(r";\s*(?:\n|$)", sql) if s.strip()] if isinstance(sql, str) else [sql]
            )
            for statement in statements:
                result = super()._execute_sql(statement)
            return result

        def _write_files_to_new_table(self, files: list[Path], stream_name: str, batch_id: str) -> str:
            # PyAirbyte PUTs the gzipped JSONL files to the temp table's stage and runs COPY INTO ...
            # FROM (SELECT $1:"column", ...) FILE_FORMAT = (TYPE = JSON): fakesnow has no JSON
            # FILE_FORMAT. The same lines are read as VARIANTs instead and each column gets the same
            # path expression, cast to the column's type as COPY casts it implicitly.
            temp_table = self._create_table_for_loading(stream_name=stream_name, batch_id=batch_id)
            columns = self._get_sql_column_definitions(stream_name)
            lines = [
                line for path in files for line in gzip.decompress(path.read_bytes()).decode().splitlines()
            ]
            names = ", ".join(self._quote_identifier(name) for name in columns)
            # The JSON keys are PyAirbyte's lower-case names: the path is not an identifier.
            values = ", ".join(f'line.value:"{name}"::{sql_type}' for name, sql_type in columns.items())
            with self.get_sql_connection() as connection:
                connection.execute(
                    text(
                        f"INSERT INTO {self._fully_qualified(temp_table)} ({names}) SELECT {values} "  # noqa: S608
                        "FROM TABLE(FLATTEN(INPUT => PARSE_JSON(:lines))) AS line"
                    ),
                    {"lines": f"[{','.join(lines)}]"},
                )
            return temp_table

    class FakesnowCache(SnowflakeCache):
        _sql_processor_class = FakesnowProcessor

    return FakesnowCache


def test_pyairbyte_snowflake_cache_syncs_and_merges(
    connector_executable: Path, fake_snowflake: None, tmp_path: Path
) -> None:
    from sqlalchemy import text

    cache = fakesnow_cache_class()(
        account="test",
        username="test",
        password="test",
        warehouse="test",
        role="test",
        database="PYAIRBYTE",
        cache_dir=tmp_path / "pyairbyte",
    )

    def select(sql: str) -> list[dict[str, Any]]:
        with cache.processor.get_sql_connection() as connection:
            return [
                {key.lower(): value for key, value in row._mapping.items()}
                for row in connection.execute(text(sql))
            ]

    def assert_tables_equal(expected: dict[str, dict[tuple, tuple]]) -> None:
        for stream in STREAMS:  # table_rows also fails on a key held twice: a merge that duplicated
            rows = select(f"SELECT * FROM airbyte_raw.{stream}")  # noqa: S608
            assert table_rows(stream, rows) == expected[stream], stream

    try:
        with Sandbox(**BUSY) as box:
            source = make_source(connector_executable, box)
            source.read(cache=cache)
            assert_tables_equal(stream_truth(box))

            # The types PyAirbyte created, as Snowflake's information_schema reports them.
            created = select(
                "SELECT table_name, column_name, data_type, numeric_precision, numeric_scale "
                "FROM information_schema.columns WHERE table_schema = 'AIRBYTE_RAW' ORDER BY ordinal_position"
            )
            for stream, props in stream_fields().items():
                types = {
                    row["column_name"]: snowflake_type(
                        row["data_type"], row["numeric_precision"], row["numeric_scale"]
                    )
                    for row in created
                    if row["table_name"] == stream.upper()
                }
                assert list(types) == [name.upper() for name in props] + AIRBYTE_COLUMNS, stream
                assert {name: types[name.upper()] for name in props} == {
                    name: snowflake_types()[name] for name in props
                }, stream

            # The README's Snowflake SQL, on the tables PyAirbyte itself made.
            answers = readme_answers(box)
            for question in QUESTIONS:
                # Unqualified names: the connection's schema is the cache's, airbyte_raw.
                got = answer_rows(question, select(readme_queries()[question]["Snowflake"]))
                assert sorted(got) == answers[question], question

            # Ten hours later, a sync up to the new day from the state PyAirbyte kept in Snowflake:
            # the re-read days merge on their keys, nothing twice, every table equals the new truth.
            box.advance(timedelta(hours=10))
            source.set_config({**source.get_config(), "end_date": "2025-03-05"})
            source.read(cache=cache)
            assert_tables_equal(stream_truth(box, "2025-03-05"))
    finally:
        cache.processor.sql_config.dispose_engine()
