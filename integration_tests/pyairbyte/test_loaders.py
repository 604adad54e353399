"""What PyAirbyte's loaders make of the connector's fields where no warehouse is needed to tell:
the column types its BigQuery cache declares in its load job, and which columns pandas' `read_json`
(PyAirbyte's PostgreSQL load reads each batch with it) turns into datetimes by their name."""

from __future__ import annotations

import io
import json

import pytest

from integration_tests.pyairbyte.docs import documented_types
from integration_tests.pyairbyte.expected import stream_fields

pytestmark = pytest.mark.filterwarnings("ignore:.*Python version:FutureWarning")


def test_bigquery_types_are_the_ones_the_docs_page_lists() -> None:
    """The types PyAirbyte's BigQuery load job declares (`str()` of its converter's type, as its
    processor passes it to bigquery.SchemaField); `DECIMAL(38, 9)` is the one BigQuery refuses."""
    from airbyte._processors.sql.bigquery import BigQueryTypeConverter

    converter, documented = BigQueryTypeConverter(), documented_types("BigQuery (PyAirbyte)")
    declared = {
        name: str(converter.to_sql_type(schema)).upper()
        for fields in stream_fields().values()
        for name, schema in fields.items()
    }
    assert declared == {name: documented[name] for name in declared}
    assert declared["billedMinutes"] == "DECIMAL(38, 9)"


@pytest.mark.parametrize("stream", list(stream_fields()))
def test_no_field_name_makes_pandas_read_a_zoned_datetime(stream: str) -> None:
    """pandas converts columns *named* like dates (`timestamp*`, `date`, `*_at`, `*_time`, ...),
    and a zoned value then lands in the PostgreSQL session's zone: no field of ours may be read so.
    A `date` column is read as a date without zone, which PostgreSQL stores as that day. Each field
    gets a value of its format; PyAirbyte lower-cases the names first."""
    import pandas as pd

    values = {"date": "2026-11-01", "date-time": "2026-11-01T05:00:00Z"}
    fields = stream_fields()[stream]
    line = json.dumps(
        {name.lower(): values.get(schema.get("format"), "1") for name, schema in fields.items()}
    )
    frame = pd.read_json(io.StringIO(line + "\n"), lines=True)
    zoned = [c for c in frame.columns if isinstance(frame[c].dtype, pd.DatetimeTZDtype)]
    assert zoned == []
    # The check can fail: the API's own name for bucketStart would be read as a zoned datetime.
    legacy = pd.read_json(io.StringIO('{"timestamp": "2026-11-01T05:00:00Z"}\n'), lines=True)
    assert isinstance(legacy["timestamp"].dtype, pd.DatetimeTZDtype)
