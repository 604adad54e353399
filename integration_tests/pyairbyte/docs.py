"""What the README and the docs page tell users about their warehouse, read for the tests to check:
the README's SQL per question and warehouse, and the docs page's table of column types."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs" / "ultravox-usage.md"
WAREHOUSES = ("DuckDB", "PostgreSQL", "Snowflake", "BigQuery")


SQL_SECTION = "### Five questions, in SQL"


def readme_queries() -> dict[str, dict[str, str]]:
    """The SQL blocks under SQL_SECTION: {question: {warehouse: sql}}. A question is the paragraph
    before its blocks, its lines joined by spaces and without its final colon; each block's first
    line names its warehouses (`-- DuckDB and PostgreSQL`)."""
    section = README.read_text().split(SQL_SECTION, 1)[1].split("\n## ", 1)[0]
    found: dict[str, dict[str, str]] = {}
    question = None
    for index, chunk in enumerate(section.split("```")):
        if index % 2 == 0:  # prose: its last paragraph introduces the blocks that follow
            paragraph = chunk.strip().split("\n\n")[-1]
            question = " ".join(paragraph.split()).rstrip(":") if paragraph else question
            continue
        body = chunk.removeprefix("sql\n")
        first, sql = body.split("\n", 1)
        names = re.split(r",\s*|\s+and\s+", first.removeprefix("-- ").strip())
        assert question and set(names) <= set(WAREHOUSES), (question, first)
        for name in names:
            found.setdefault(question, {})[name] = sql.strip()
    return found


# The rows the docs page's warehouse table still lacks for the ledger streams (calls, invoices,
# account), as they are to be added there, below its other rows. Until they are, the type tests
# hold the new columns to these rows (the DuckDB, PostgreSQL and Snowflake columns to what the
# caches create, BigQuery's to what PyAirbyte's load job declares); the Airbyte columns are from
# the destinations' documentation, not run here. test_loaders.py fails as soon as the page lists
# any of these fields: then delete the rows here.
PENDING_ROWS = """
| `callId`, `endReason`, `billedDuration`, `billingStatus`, `voice`, `model`, `mediumKind`, `sipBilledDuration`, `sipTerminationReason`, `invoiceNumber`, `billingReason`, `invoiceStatus`, `accountId`, `name`, `freeTimeUsed`, `freeTimeRemaining`, `subscriptionTier`, `subscriptionCadence` | `string`; the calls' and the subscription's may be `null` | `VARCHAR` | `character varying` | `VARCHAR` | `STRING` | `character varying` | `VARCHAR` | `STRING` |
| `billedSideInputTokens`, `billedSideOutputTokens`, `amount`, `activeCalls`, `allowedConcurrentCalls`, `allowedVoices`, `allowedCorpora` | `integer`; all but `amount` and `activeCalls` may be `null` | `BIGINT` | `bigint` | `NUMBER(38,0)` | `INTEGER` (INT64) | `bigint` | `NUMBER(38,0)` | `INT64` |
| `billedDurationSeconds`, `sipBilledDurationSeconds`, `freeTimeUsedSeconds`, `freeTimeRemainingSeconds` | `number`; the calls' may be `null` | `DECIMAL(38,9)` | `numeric(38,9)` | `NUMBER(38,9)` | `DECIMAL(38, 9)`: refused, see below | `numeric` | `FLOAT` | `NUMERIC` |
| `created`, `joined`, `ended`, `invoiceDate`, `subscriptionExpiration`, `subscriptionScheduledUpdate`, `subscriptionRenewal`, `readAt` | `string`, `format: date-time`, `timestamp_with_timezone`; all but `created`, `invoiceDate`, `readAt` may be `null`; microseconds kept where sent | `TIMESTAMP` (microseconds) | `timestamp without time zone` (microseconds) | `TIMESTAMP_NTZ` (nanoseconds) | `TIMESTAMP` (microseconds) | `timestamp with time zone` | `TIMESTAMP_TZ` | `TIMESTAMP` |
| `hasActiveSubscription` | `boolean` | `BOOLEAN` | `boolean` | `BOOLEAN` | `BOOLEAN` | `boolean` | `BOOLEAN` | `BOOL` |
| `metadata` | `object` of strings | `JSON`: `metadata->>'customer'` | `json`: `metadata->>'customer'` | `VARIANT`: `metadata:customer::STRING` | `JSON`: `JSON_VALUE(metadata, '$.customer')` | `jsonb` | `OBJECT` | `JSON` |
"""  # noqa: E501  - table rows, one a line


def _table_rows(lines: list[str]) -> list[list[str]]:
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _types(header: list[str], body: list[list[str]], column: str) -> dict[str, str]:
    at = header.index(column)
    types: dict[str, str] = {}
    for row in body:
        assert len(row) == len(header), row
        for name in re.findall(r"`([^`]+)`", row[0]):
            types[name] = re.findall(r"`([^`]+)`", row[at])[0]
    return types


def page_types(column: str) -> dict[str, str]:
    """The docs page's warehouse table, one column of it (e.g. "PostgreSQL (PyAirbyte)"):
    {field name: type}, the type being the cell's first `quoted` value (a note may follow it)."""
    rows = _table_rows(DOCS.read_text().split("<!-- warehouse-types", 1)[1].splitlines()[1:])
    return _types(rows[0], rows[2:], column)


def pending_types(column: str) -> dict[str, str]:
    """PENDING_ROWS, read as the page's table is."""
    header = _table_rows(DOCS.read_text().split("<!-- warehouse-types", 1)[1].splitlines()[1:])[0]
    return _types(header, _table_rows(PENDING_ROWS.strip().splitlines()), column)


def documented_types(column: str) -> dict[str, str]:
    """What the docs page tells users each field becomes in one column of its warehouse table,
    with PENDING_ROWS for the fields it does not list yet."""
    return {**pending_types(column), **page_types(column)}
