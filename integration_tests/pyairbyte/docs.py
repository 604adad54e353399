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


def _table_rows(lines: list[str]) -> list[list[str]]:
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def documented_types(column: str) -> dict[str, str]:
    """The docs page's warehouse table, one column of it (e.g. "PostgreSQL (PyAirbyte)"):
    {field name: type}, the type being the cell's first `quoted` value (a note may follow it)."""
    rows = _table_rows(DOCS.read_text().split("<!-- warehouse-types", 1)[1].splitlines()[1:])
    header, body = rows[0], rows[2:]
    at = header.index(column)
    types: dict[str, str] = {}
    for row in body:
        assert len(row) == len(header), row
        for name in re.findall(r"`([^`]+)`", row[0]):
            types[name] = re.findall(r"`([^`]+)`", row[at])[0]
    return types
