"""Hostile response bodies, property-based: missing fields, wrong types, unparsable durations, bad
dates and hours, unknown extra fields, broken top-level shapes; negative figures are valid (the
published schema sets no minimum). The connector either
emits every row unchanged (extra fields carried through) or stops with a system_error that quotes
the bad field; it never emits a record that violates its own schema.

In-process reads with requests-mock in place of the network (HTTPAdapter.send)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any
from unittest import mock

import jsonschema
import pytest
import requests
import requests_mock
from airbyte_cdk.models import ConfiguredAirbyteCatalogSerializer
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput
from airbyte_cdk.test.entrypoint_wrapper import read as cdk_read
from airbyte_cdk.test.models.scenario import ExpectedOutcome
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from source_ultravox_usage import SourceUltravoxUsage
from unit_tests.conftest import load_schema

USAGE_URL = "https://api.ultravox.ai/api/accounts/me/usage/calls"
DAYS = ("2025-03-01", "2025-03-02")
CONFIG = {
    "api_key": "hostile-responses-key-0",
    "start_date": DAYS[0],
    "end_date": DAYS[-1],
    "window_days": 30,
    "num_workers": 1,
}
STREAMS = ("allTime", "daily", "hourly")
COUNTS = ("totalCount", "errorCount", "joinedCount")
STAT_FIELDS = (*COUNTS, "duration", "billedMinutes")
COMPUTED = {"durationSeconds", "hourStart", "fromDate", "toDate"}  # set by the connector
SCHEMAS = {name: load_schema(name) for name in STREAMS}
DURATION = re.compile(r"-?\d+(\.\d+)?s")
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")

FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    # jsonschema checks date-time only with rfc3339-validator installed; check it here regardless.
    if not isinstance(value, str):
        return True
    if not RFC3339.fullmatch(value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


VALIDATORS = {
    name: jsonschema.Draft7Validator(schema, format_checker=FORMATS) for name, schema in SCHEMAS.items()
}


# --------------------------------------------------------------------------- harness


@pytest.fixture
def api() -> Iterator[requests_mock.Adapter]:
    adapter = requests_mock.Adapter()

    def send(self, request, **kwargs):  # noqa: ANN001 (HTTPAdapter.send's signature)
        return adapter.send(request, **kwargs)

    with mock.patch.object(requests.adapters.HTTPAdapter, "send", send):
        yield adapter


def catalog() -> Any:
    entries = []
    for name in STREAMS:
        cursor = {"allTime": [], "daily": ["date"], "hourly": ["hourStart"]}[name]
        entries.append(
            {
                "stream": {
                    "name": name,
                    "json_schema": {},
                    "supported_sync_modes": ["full_refresh", "incremental"] if cursor else ["full_refresh"],
                    "source_defined_cursor": bool(cursor),
                    "default_cursor_field": cursor,
                },
                "sync_mode": "incremental" if cursor else "full_refresh",
                "destination_sync_mode": "append_dedup" if cursor else "overwrite",
                "cursor_field": cursor,
                "primary_key": {"allTime": [], "daily": [["date"]], "hourly": [["date"], ["hour"]]}[name],
            }
        )
    return ConfiguredAirbyteCatalogSerializer.load({"streams": entries})


def read_body(api: requests_mock.Adapter, body: Any, raw: bytes | None = None) -> EntrypointOutput:
    api.reset()
    if raw is not None:
        api.register_uri("GET", USAGE_URL, content=raw, headers={"Content-Type": "application/json"})
    else:
        api.register_uri(
            "GET", USAGE_URL, text=json.dumps(body), headers={"Content-Type": "application/json"}
        )
    configured = catalog()
    source = SourceUltravoxUsage(catalog=configured, config=CONFIG, state=None)
    return cdk_read(source, CONFIG, configured, None, expected_outcome=ExpectedOutcome.ALLOW_ANY)


def emitted(output: EntrypointOutput) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in STREAMS}
    for message in output.records:
        found[message.record.stream].append(message.record.data)
    return found


def stream_errors(output: EntrypointOutput) -> list[Any]:
    return [m.trace.error for m in output.errors if m.trace.error.stream_descriptor]


def assert_every_record_matches_its_schema(output: EntrypointOutput) -> None:
    for name, records in emitted(output).items():
        for record in records:
            problems = [e.message for e in VALIDATORS[name].iter_errors(record)]
            assert problems == [], (name, record, problems)
            assert record["durationSeconds"] == float(record["duration"][:-1])
            if name == "hourly":
                assert record["hourStart"] == f"{record['date']}T{record['hour']:02d}:00:00Z"
            if name == "allTime":
                assert (record["fromDate"], record["toDate"]) == DAYS[:: len(DAYS) - 1]


# --------------------------------------------------------------------------- the API contract (oracle)


def field_problems(stream: str, row: Any) -> list[str]:
    """Every field of `row` that breaks the published schema. All of them, not the first: the
    connector may check a row's fields in any order and name whichever bad one it meets first."""
    if not isinstance(row, dict):
        return ["row"]
    problems = []
    for name in COUNTS:
        if type(row.get(name)) is not int:
            problems.append(name)
    minutes = row.get("billedMinutes")
    if isinstance(minutes, bool) or not isinstance(minutes, int | float):
        problems.append("billedMinutes")
    if not (isinstance(row.get("duration"), str) and DURATION.fullmatch(row["duration"])):
        problems.append("duration")
    if stream == "allTime":
        return problems
    day = row.get("date")
    try:
        if not (isinstance(day, str) and date.fromisoformat(day).isoformat() == day):
            problems.append("date")
    except ValueError:
        problems.append("date")
    if stream == "hourly" and not (type(row.get("hour")) is int and 0 <= row["hour"] <= 23):
        problems.append("hour")
    return problems


def body_problems(body: Any) -> list[tuple[str, str]]:
    """(stream, field) for every contract violation in the body."""
    if not isinstance(body, dict) or not {"allTime", "daily", "hourly"} <= set(body):
        return [("body", "shape")]
    problems = []
    if not isinstance(body["allTime"], dict):
        problems.append(("allTime", "allTime"))
    else:
        problems += [("allTime", bad) for bad in field_problems("allTime", body["allTime"])]
    for stream in ("daily", "hourly"):
        if not isinstance(body[stream], list):
            problems.append((stream, stream))
            continue
        for row in body[stream]:
            problems += [(stream, bad) for bad in field_problems(stream, row)]
    return problems


# --------------------------------------------------------------------------- strategies

# Negative figures included: the published schema sets no minimum (a credit makes minutes negative).
counts = st.integers(min_value=-(2**53), max_value=2**53)
durations = st.decimals(min_value=-(10**7), max_value=10**7, places=3, allow_nan=False).map(lambda d: f"{d}s")
minutes = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)


def stats() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "totalCount": counts,
            "errorCount": counts,
            "joinedCount": counts,
            "duration": durations,
            "billedMinutes": minutes,
        }
    )


daily_rows = st.lists(
    st.sampled_from(DAYS).flatmap(lambda day: stats().map(lambda s: {**s, "date": day})),
    max_size=3,
    unique_by=lambda row: row["date"],
)
hourly_rows = st.lists(
    st.tuples(st.sampled_from(DAYS), st.integers(0, 23)).flatmap(
        lambda key: stats().map(lambda s: {**s, "date": key[0], "hour": key[1]})
    ),
    max_size=4,
    unique_by=lambda row: (row["date"], row["hour"]),
)
valid_bodies = st.fixed_dictionaries({"allTime": stats(), "daily": daily_rows, "hourly": hourly_rows})

hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=-1),
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()),
    st.floats(min_value=0, max_value=1e6).filter(lambda x: x.is_integer()),  # 12.0 for a count
    st.text(max_size=8),
    st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(min_value=0, max_value=9), max_size=1),
    st.sampled_from(
        [
            "12",
            "12.5",
            "-3s",
            "1e3s",
            "s",
            ".5s",
            "1m",
            "12.5S",
            "",
            " 12s",
            "１２s",
            "0x10s",
            "12.s",
            "PT12S",
            "2025-02-30",
            "2025-3-1",
            "20250301",
            "2025-03-01T00:00:00Z",
            24,
            -1,
            "7",
            7.0,
        ]
    ),
)
extra_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),  # JSON parsers stop at 64 bits
        st.floats(allow_nan=False, allow_infinity=False),  # NaN/Infinity are not JSON
        st.text(max_size=10),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
extra_names = st.from_regex(r"x[A-Za-z_]{1,10}", fullmatch=True)


@st.composite
def mutated_bodies(draw: st.DrawFn) -> tuple[dict[str, Any], list[tuple[str, int | None, str]]]:
    """A valid body with 1-3 mutations; returns the body and the extra fields added (stream,
    row index, name)."""
    body = draw(valid_bodies)
    extras: list[tuple[str, int | None, str]] = []
    for _ in range(draw(st.integers(1, 3))):
        stream = draw(st.sampled_from(STREAMS))
        if stream == "allTime":
            row, index = body["allTime"], None
        else:
            if not body[stream]:
                continue
            index = draw(st.integers(0, len(body[stream]) - 1))
            row = body[stream][index]
        fields = (
            [*STAT_FIELDS]
            + (["date"] if stream != "allTime" else [])
            + (["hour"] if stream == "hourly" else [])
        )
        action = draw(st.sampled_from(["delete", "replace", "replace", "extra", "extra"]))
        if action == "extra":
            name = draw(extra_names)
            row[name] = draw(extra_values)
            extras.append((stream, index, name))
        else:
            name = draw(st.sampled_from(fields))
            if action == "delete":
                row.pop(name, None)
            else:
                row[name] = draw(hostile_values)
    return body, extras


SETTINGS = settings(
    max_examples=70,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --------------------------------------------------------------------------- properties


def assert_rows_emitted_unchanged(output: EntrypointOutput, body: dict[str, Any]) -> None:
    records = emitted(output)
    (all_time,) = records["allTime"]
    # .get: the CDK's serializer omits null fields from record data, so null and absent are one.
    assert {k: all_time.get(k) for k in body["allTime"]} == body["allTime"]
    for stream in ("daily", "hourly"):
        # The body's rows, and the API's zero row for each day (hour) of DAYS the body left out.
        hours = range(24) if stream == "hourly" else [None]
        listed = {(row["date"], row.get("hour")) for row in body[stream]}
        left_out = [(day, hour) for day in DAYS for hour in hours if (day, hour) not in listed]
        zero = {"totalCount": 0, "errorCount": 0, "joinedCount": 0, "duration": "0s", "billedMinutes": 0.0}
        rows = body[stream] + [
            {**zero, "date": day, **({} if hour is None else {"hour": hour})} for day, hour in left_out
        ]
        assert len(records[stream]) == len(rows)
        for record, row in zip(
            sorted(records[stream], key=lambda r: (r["date"], r.get("hour", 0))),
            sorted(rows, key=lambda r: (r["date"], r.get("hour", 0))),
            strict=True,
        ):
            assert {k: record.get(k) for k in row} == row


@SETTINGS
@given(body=valid_bodies)
def test_valid_bodies_are_emitted_unchanged_and_valid(api, body) -> None:
    output = read_body(api, body)
    assert output.errors == [], [e.trace.error.message for e in output.errors]
    assert_every_record_matches_its_schema(output)
    assert_rows_emitted_unchanged(output, body)


ZERO = {"totalCount": 0, "errorCount": 0, "joinedCount": 0, "duration": "0.000s", "billedMinutes": 0.0}


@SETTINGS
@given(case=mutated_bodies())
# Found in CI: a row missing both `duration` and `date`; the connector names `date`, which is right.
@example(
    case=(
        {
            "allTime": {k: v for k, v in ZERO.items() if k != "totalCount"},
            "daily": [{**ZERO, "date": DAYS[0]}],
            "hourly": [
                {k: v for k, v in ZERO.items() if k != "duration"} | {"hour": 0},
                {**ZERO, "date": DAYS[0], "hour": 5},
            ],
        },
        [],
    )
)
# Found locally (hypothesis seed 102): allTime's streaming decoder refused -2**63, a valid integer.
@example(case=({"allTime": {**ZERO, "xA": -(2**63)}, "daily": [], "hourly": []}, [("allTime", None, "xA")]))
def test_hostile_bodies_are_a_clear_error_or_valid_records(api, case) -> None:
    body, extras = case
    output = read_body(api, body)
    assert_every_record_matches_its_schema(output)  # whatever happens, never a bad record
    problems = body_problems(body)
    if not problems:
        assert output.errors == [], [e.trace.error.message for e in output.errors]
        assert_rows_emitted_unchanged(output, body)
        records = emitted(output)
        for stream, index, name in extras:
            row = body["allTime"] if index is None else body[stream][index]
            carriers = [r for r in records[stream] if {k: r.get(k) for k in row} == row]
            # The CDK's serializer omits null fields from record data: null and absent are one.
            assert carriers and carriers[0].get(name) == row[name], (stream, name)
        return
    errors = stream_errors(output)
    assert errors, f"no error for a body with {problems}"
    assert all(e.failure_type.value == "system_error" for e in errors), errors
    failing_streams = {e.stream_descriptor.name for e in errors}
    assert failing_streams >= {stream for stream, _ in problems}
    for stream in failing_streams:
        # The stream stops at its first bad row: its error quotes one of the stream's bad fields.
        bad_fields = {field for where, field in problems if where == stream}
        messages = [e.message for e in errors if e.stream_descriptor.name == stream]
        assert any(field in m for field in bad_fields for m in messages), (stream, bad_fields, messages)
    # A row that breaks the contract is never emitted, not even partly.
    for stream, records in emitted(output).items():
        for record in records:
            assert field_problems(stream, {k: v for k, v in record.items() if k not in COMPUTED}) == []


# --------------------------------------------------------------------------- fixed cases


def base_body() -> dict[str, Any]:
    row = {"totalCount": 3, "errorCount": 1, "joinedCount": 2, "duration": "125.5s", "billedMinutes": 2.5}
    return {
        "allTime": dict(row),
        "daily": [{**row, "date": DAYS[0]}],
        "hourly": [{**row, "date": DAYS[0], "hour": 9}],
    }


@pytest.mark.parametrize(
    ("stream", "field", "value"),
    [
        ("daily", "totalCount", True),
        ("hourly", "errorCount", "3"),
        ("allTime", "joinedCount", 2.0),
        ("daily", "billedMinutes", "2.5"),
        ("hourly", "billedMinutes", None),
        ("daily", "duration", "1m"),
        ("hourly", "duration", "1e3s"),
        ("allTime", "duration", None),
        ("daily", "date", "2025-02-30"),
        ("hourly", "hour", 24),
        ("hourly", "hour", "9"),
    ],
)
def test_each_bad_value_is_a_system_error_quoting_field_and_value(
    api, stream: str, field: str, value: Any
) -> None:
    body = base_body()
    row = body["allTime"] if stream == "allTime" else body[stream][0]
    row[field] = value
    output = read_body(api, body)
    assert_every_record_matches_its_schema(output)
    assert emitted(output)[stream] == []
    (error,) = [e for e in stream_errors(output) if e.stream_descriptor.name == stream]
    assert error.failure_type.value == "system_error"
    assert field in error.message and repr(value) in error.message, error.message


@pytest.mark.parametrize("stream", ["daily", "hourly"])
@pytest.mark.parametrize("missing", STAT_FIELDS)
def test_a_missing_field_is_a_system_error_naming_it(api, stream: str, missing: str) -> None:
    # Daily and HourlyCallStatistics require every field.
    body = base_body()
    del body[stream][0][missing]
    output = read_body(api, body)
    (error,) = [e for e in stream_errors(output) if e.stream_descriptor.name == stream]
    assert error.failure_type.value == "system_error" and missing in error.message
    assert emitted(output)[stream] == []


def test_unknown_fields_are_carried_through_at_every_level(api) -> None:
    body = base_body()
    body["allTime"]["xNewMetric"] = {"p95": 12.5}
    body["daily"][0]["xCurrency"] = "USD"
    body["hourly"][0]["xRegions"] = ["eu", "us"]
    body["xTopLevel"] = [1, 2, 3]  # a new top-level key is ignored
    output = read_body(api, body)
    assert output.errors == []
    assert_every_record_matches_its_schema(output)
    records = emitted(output)
    assert records["allTime"][0]["xNewMetric"] == {"p95": 12.5}
    assert records["daily"][0]["xCurrency"] == "USD"
    assert records["hourly"][0]["xRegions"] == ["eu", "us"]


def test_an_unknown_field_holding_an_integer_past_64_bits_is_carried_or_a_clear_error(api) -> None:
    body = base_body()
    body["daily"][0]["xHuge"] = 2**64
    output = read_body(api, body)
    assert_every_record_matches_its_schema(output)
    records = emitted(output)["daily"]
    if records:
        assert records[0]["xHuge"] == 2**64
    else:
        # The decoder stops at 64-bit integers; the error is still typed and names the endpoint.
        errors = [e for e in stream_errors(output) if e.stream_descriptor.name == "daily"]
        assert errors and errors[0].failure_type.value == "system_error"
        assert "/accounts/me/usage/calls" in errors[0].message


@pytest.mark.parametrize(
    "raw",
    [b"", b"null", b"[]", b'"usage"', b'{"allTime": {}', b"<html>502</html>", b"{'allTime': 1}", b"NaN"],
    ids=["empty", "null", "list", "string", "truncated", "html", "python-repr", "nan"],
)
def test_bodies_that_are_not_the_usage_object_are_a_system_error_naming_the_endpoint(api, raw: bytes) -> None:
    output = read_body(api, None, raw=raw)
    errors = stream_errors(output)
    assert errors and all(e.failure_type.value == "system_error" for e in errors)
    assert all("/accounts/me/usage/calls" in e.message for e in errors), [e.message for e in errors]
    assert output.records == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("daily", None),
        ("hourly", None),
        ("daily", {"date": DAYS[0]}),
        ("hourly", "none"),
        ("daily", [None]),
        ("hourly", [7]),
        ("allTime", None),
        ("allTime", []),
    ],
)
def test_a_top_level_key_of_the_wrong_type_is_a_system_error(api, key: str, value: Any) -> None:
    body = base_body()
    body[key] = value
    output = read_body(api, body)
    assert_every_record_matches_its_schema(output)
    assert emitted(output)[key] == []
    errors = [e for e in stream_errors(output) if e.stream_descriptor.name == key]
    assert errors and all(e.failure_type.value == "system_error" for e in errors)


def test_unknown_numbers_are_read_alike_in_all_time_and_in_the_other_streams(api) -> None:
    """allTime's body is streamed (ijson), the others' parsed whole (orjson): an unknown field's
    number comes out the same in both, 64-bit integers whole, anything else a float."""
    extras = (
        '"xMin": -9223372036854775808, "xMax": 18446744073709551615, "xBig": 18446744073709551616, '
        '"xTenth": 0.1, "xExp": 1E2, "xZero": -0.0'
    )
    row = '"totalCount": 1, "errorCount": 0, "joinedCount": 1, "duration": "60s", "billedMinutes": 1.5'
    raw = (
        f'{{"allTime": {{{row}, {extras}}}, '
        f'"daily": [{{{row}, "date": "{DAYS[0]}", {extras}}}], "hourly": []}}'
    ).encode()
    output = read_body(api, None, raw=raw)
    assert output.errors == [], [e.trace.error.message for e in output.errors]
    records = emitted(output)
    expected = {
        "xMin": -(2**63),
        "xMax": 2**64 - 1,
        "xBig": 2.0**64,
        "xTenth": 0.1,
        "xExp": 100.0,
        "xZero": -0.0,
    }
    for stream in ("allTime", "daily"):
        record = records[stream][0]  # daily's others: the zero row of the day the body left out
        found = {name: record[name] for name in expected}
        assert found == expected and [type(v) for v in found.values()] == [type(v) for v in expected.values()]


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1" + "0" * 400])
def test_a_number_beyond_a_double_is_not_json_in_all_time_as_in_the_other_streams(api, number: str) -> None:
    row = '"totalCount": 1, "errorCount": 0, "joinedCount": 1, "duration": "60s", "billedMinutes": 1.5'
    raw = f'{{"allTime": {{{row}, "xHuge": {number}}}, "daily": [], "hourly": []}}'.encode()
    output = read_body(api, None, raw=raw)
    messages = {e.stream_descriptor.name: e.message for e in stream_errors(output)}
    assert messages["allTime"] == (
        f"Ultravox answered {USAGE_URL} with a body the connector does not expect "
        "(it expects a JSON object with allTime, daily and hourly): it is not JSON."
    )
