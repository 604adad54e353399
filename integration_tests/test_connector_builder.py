"""The Connector Builder's own road, as users meet it: the manifest and components.py injected as
text into `python -m airbyte_cdk.connector_builder.main read` (what the Builder and the CDK's
manifest server run), in the environment of airbyte-cdk alone, against the sandbox.

The config is the user's plus `__injected_declarative_manifest`, `__command` (`resolve_manifest`
or `test_read`), `__test_read_config` (the limits) and `__injected_components_py` with its md5;
custom code runs only with AIRBYTE_ENABLE_UNSAFE_CODE=true. The answer is one RECORD whose data is
the resolved manifest or the StreamRead (slices -> pages -> request, response, records; logs).
A test read shows every window of an aggregate stream as a slice of one page (those endpoints are
not paginated), and every window of calls as a slice of its pages, each the request of the previous
page's `next`; invoices and account are a slice of one page; each page with its request and
response, the same records as the console script, within the user's limits, with no warning, and
the API key never appears."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml
from airbyte_cdk.sources.declarative.parsers.custom_code_compiler import AirbyteCustomCodeNotPermittedError

from integration_tests.cli import SHORT_RANGE, STREAMS, CliResult, configured_catalog, run_cli, sandbox_config
from integration_tests.manifest_only_env import manifest_only_python
from integration_tests.test_end_to_end import expected_windows
from ultravox_sandbox import (
    ACCOUNT_PATH,
    AGENT_USAGE_PATH,
    BILLING_USAGE_PATH,
    CALLS_PATH,
    CONCURRENCY_PATH,
    INVOICES_PATH,
    USAGE_PATH,
    Sandbox,
)

PACKAGE = Path(__file__).resolve().parents[1] / "source_ultravox_usage"
START, END = SHORT_RANGE["start_date"], SHORT_RANGE["end_date"]
WINDOWS = expected_windows(START, END, SHORT_RANGE["window_days"])  # 7 + 7 + 7 + 2 days
# Large enough for any stream of the range: 23 days of hours are 544 records, 4 windows.
ENOUGH = {"max_records": 1000, "max_pages_per_slice": 5, "max_slices": 10}
UNSAFE_CODE = "AIRBYTE_ENABLE_UNSAFE_CODE"
PATHS = {
    "allTime": USAGE_PATH,
    "daily": USAGE_PATH,
    "hourly": USAGE_PATH,
    "agentDaily": AGENT_USAGE_PATH,
    "concurrency": CONCURRENCY_PATH,
    "billingDaily": BILLING_USAGE_PATH,
    "calls": CALLS_PATH,
    "invoices": INVOICES_PATH,
    "account": ACCOUNT_PATH,
}
# The streams of the paginated list endpoints, and the rest (the aggregates: one page a window).
LISTS = ("calls", "invoices", "account")
AGGREGATES = tuple(name for name in STREAMS if name not in LISTS)
# calls: the range's four windows of 7 days (about 140 calls each in the `sandbox` fixture's log)
# in pages of 40, so that every slice has several pages, fewer than ENOUGH's max_pages_per_slice.
LIST_CONFIG = {"calls_window_days": 7, "calls_page_size": 40}
TIMEOUT = 120


# -- the Builder's request and answer -------------------------------------------------------------


def builder_config(
    box: Sandbox, command: str, limits: dict[str, int] | None = None, **overrides: Any
) -> dict[str, Any]:
    """The user's config as the Builder sends it: with the manifest, the command, the test-read
    limits and components.py with its checksum."""
    components = (PACKAGE / "components.py").read_text()
    return {
        **sandbox_config(box, **overrides),
        "__injected_declarative_manifest": yaml.safe_load((PACKAGE / "manifest.yaml").read_text()),
        "__command": command,
        "__test_read_config": limits or {},
        "__injected_components_py": components,
        "__injected_components_py_checksums": {
            "md5": hashlib.md5(components.encode(), usedforsecurity=False).hexdigest()
        },
    }


def builder_catalog(stream: str) -> dict[str, Any]:
    """The catalog the manifest server builds for a test read (`build_catalog`)."""
    return {
        "streams": [
            {
                "stream": {
                    "name": stream,
                    "json_schema": {},
                    "supported_sync_modes": ["full_refresh", "incremental"],
                },
                "sync_mode": "incremental",
                "destination_sync_mode": "overwrite",
            }
        ]
    }


@functools.cache
def builder_program() -> list[str]:
    """The Builder's entry point, in the environment of airbyte-cdk alone (checked once)."""
    return [str(manifest_only_python()), "-m", "airbyte_cdk.connector_builder.main"]


def run_builder(
    box: Sandbox,
    command: str,
    stream: str = "daily",
    limits: dict[str, int] | None = None,
    unsafe_code: bool = True,
    **overrides: Any,
) -> CliResult:
    """The Builder's command on `stream`; the sandbox's log then holds its requests only."""
    env = {name: value for name, value in os.environ.items() if name != UNSAFE_CODE}
    if unsafe_code:
        env[UNSAFE_CODE] = "true"
    config = builder_config(box, command, limits, **overrides)
    box.clear_log()
    return run_cli(
        "read", config, builder_catalog(stream), timeout=TIMEOUT, program=builder_program(), env=env
    )


def assert_key_never_shown(result: CliResult, box: Sandbox) -> None:
    shown_on = [
        name for name, text in (("stdout", result.stdout), ("stderr", result.stderr)) if box.api_key in text
    ]
    assert shown_on == [], f"the API key appears on {shown_on}"


def builder_answer(result: CliResult, box: Sandbox) -> dict[str, Any]:
    """The data of the Builder's one RECORD, once the output is known not to show the API key."""
    assert_key_never_shown(result, box)
    assert result.returncode == 0
    answers = [m for m in result.messages if m["type"] != "LOG"]
    assert [m["type"] for m in answers] == ["RECORD"], [m.get("trace", {}).get("error") for m in answers]
    return answers[0]["record"]["data"]


def read_in_builder(box: Sandbox, stream: str, limits: dict[str, int], **overrides: Any) -> dict[str, Any]:
    """The StreamRead of a test read of `stream`."""
    return builder_answer(run_builder(box, "test_read", stream, limits, **overrides), box)


def warnings(result_messages: list[dict[str, Any]], stream_read: dict[str, Any] | None = None) -> list[str]:
    """Every WARN, ERROR or FATAL log: LOG messages and the StreamRead's own logs."""
    logs = [m["log"] for m in result_messages if m["type"] == "LOG"] + (stream_read or {}).get("logs", [])
    return [f"{log['level']}: {log['message']}" for log in logs if log["level"] in ("WARN", "ERROR", "FATAL")]


# -- what the connector asks and what the sandbox answers -----------------------------------------


def window_query(stream: str, first: str, last: str) -> dict[str, list[str]]:
    """The query of one window, as each endpoint takes it (README: How a sync works)."""
    if stream == "concurrency":
        return {"start": [f"{first}T00:00:00Z"], "end": [f"{last}T23:59:59Z"], "bucket": ["hour"]}
    if stream == "billingDaily":  # toDate exclusive
        return {"fromDate": [first], "toDate": [(date.fromisoformat(last) + timedelta(days=1)).isoformat()]}
    return {"fromDate": [first], "toDate": [last]}


def expected_queries(stream: str, windows: list[tuple[str, str]] = WINDOWS) -> list[dict[str, list[str]]]:
    return [window_query(stream, *window) for window in ([(START, END)] if stream == "allTime" else windows)]


def served(box: Sandbox, stream: str, query: dict[str, list[str]]) -> Any:
    """The body the sandbox answers to the stream's endpoint for `query`."""
    truth = {
        "agentDaily": box.agent_usage_truth,
        "concurrency": box.concurrency_truth,
        "billingDaily": box.billing_truth,
    }
    return truth.get(stream, box.ground_truth)(query)


def console_script_records(box: Sandbox, stream: str, **overrides: Any) -> list[dict[str, Any]]:
    result = run_cli("read", sandbox_config(box, **overrides), configured_catalog([stream]), timeout=TIMEOUT)
    assert result.returncode == 0 and result.errors == [], result.errors
    return result.records(stream)


def records_of(stream_read: dict[str, Any]) -> list[dict[str, Any]]:
    return [record for s in stream_read["slices"] for page in s["pages"] for record in page["records"]]


def canonical(records: list[dict[str, Any]]) -> list[str]:
    """Records in a comparable order: the Builder reads windows in turn, the CLI in parallel."""
    return sorted(json.dumps(record, sort_keys=True) for record in records)


def assert_one_page_per_window(
    box: Sandbox, stream: str, stream_read: dict[str, Any], queries: list[dict[str, list[str]]]
) -> None:
    """A slice of exactly one page per window, in order, each page with the request sent for its
    window (exact URL and query, the key masked) and the sandbox's answer to it."""
    assert [len(s["pages"]) for s in stream_read["slices"]] == [1] * len(queries), "pages per slice"
    for s, query in zip(stream_read["slices"], queries, strict=True):
        request, response = s["pages"][0]["request"], s["pages"][0]["response"]
        assert request is not None and response is not None, f"a page without request or response: {query}"
        url = urlsplit(request["url"])
        assert (f"{url.scheme}://{url.netloc}{url.path}", parse_qs(url.query)) == (
            box.origin + PATHS[stream],
            query,
        )
        assert request["http_method"] == "GET"
        assert {name.lower(): value for name, value in request["headers"].items()}["x-api-key"] == "****"
        assert response["status"] == 200
        assert json.loads(response["body"]) == served(box, stream, query)
    assert [(r.path, r.query, r.status) for r in box.requests] == [
        (PATHS[stream], query, 200) for query in queries
    ], "the requests the sandbox received"


# -- tests ----------------------------------------------------------------------------------------


def test_resolve_manifest_loads_the_injected_files(sandbox: Sandbox) -> None:
    result = run_builder(sandbox, "resolve_manifest")
    manifest = builder_answer(result, sandbox)["manifest"]
    assert [stream["name"] for stream in manifest["streams"]] == list(STREAMS)
    assert warnings(result.messages) == []
    assert sandbox.requests == []


@pytest.mark.parametrize("stream", AGGREGATES)
def test_a_test_read_shows_the_console_scripts_records_page_by_page(sandbox: Sandbox, stream: str) -> None:
    expected = console_script_records(sandbox, stream)
    stream_read = read_in_builder(sandbox, stream, ENOUGH)
    assert canonical(records_of(stream_read)) == canonical(expected)
    assert_one_page_per_window(sandbox, stream, stream_read, expected_queries(stream))
    assert stream_read["test_read_limit_reached"] is False
    assert warnings([], stream_read) == []


def page_queries(stream: str) -> list[dict[str, list[str]]]:
    """The query of each slice's first page."""
    if stream == "calls":
        return [
            {**window_query(stream, *w), "pageSize": [str(LIST_CONFIG["calls_page_size"])]} for w in WINDOWS
        ]
    return [{"pageSize": ["100"]}] if stream == "invoices" else [{}]


def as_written(records: list[dict[str, Any]], stream: str) -> list[dict[str, Any]]:
    """Records as the console script writes them: the CDK leaves a null field out of the record
    it writes, and the Builder shows it; account's readAt aside (each read stamps its own)."""
    return [
        {k: v for k, v in record.items() if v is not None and not (stream == "account" and k == "readAt")}
        for record in records
    ]


KEYS = {"calls": "callId", "invoices": "invoiceNumber"}


@pytest.mark.parametrize("stream", LISTS)
def test_a_test_read_of_a_list_shows_each_slices_pages(sandbox: Sandbox, stream: str) -> None:
    """calls: a slice per window, several pages each, the first page the window's query, each later
    one the previous page's `next` as the API sent it; invoices and account: one slice of one page.
    Every page shows the request sent and the sandbox's answer to it, and the records are the
    console script's."""
    expected = console_script_records(sandbox, stream, **LIST_CONFIG)
    stream_read = read_in_builder(sandbox, stream, ENOUGH, **LIST_CONFIG)
    got = records_of(stream_read)
    if stream == "account":
        assert [len(r["readAt"]) for r in got] == [len("2025-03-04T15:55:00Z")]
    assert canonical(as_written(got, stream)) == canonical(as_written(expected, stream))
    queries = page_queries(stream)
    slices = stream_read["slices"]
    assert len(slices) == len(queries)
    sent = []
    for s, query in zip(slices, queries, strict=True):
        pages = s["pages"]
        if stream == "calls":
            assert 1 < len(pages) <= ENOUGH["max_pages_per_slice"] or s is slices[-1], "pages per slice"
        else:
            assert len(pages) == 1
        link = None
        for number, page in enumerate(pages):
            request, response = page["request"], page["response"]
            assert request is not None and response is not None
            url = urlsplit(request["url"])
            assert f"{url.scheme}://{url.netloc}{url.path}" == sandbox.origin + PATHS[stream]
            # The first page: the window's query; a later one: the previous page's next, as sent
            # (the sandbox's next keeps the filters by default, so nothing is added to it).
            assert parse_qs(url.query) == (query if number == 0 else parse_qs(urlsplit(link).query))
            assert {name.lower(): value for name, value in request["headers"].items()}["x-api-key"] == "****"
            assert (request["http_method"], response["status"]) == ("GET", 200)
            body = json.loads(response["body"])
            assert body == served_page(sandbox, request["url"])
            if stream == "account":
                assert [r["accountId"] for r in page["records"]] == [body["accountId"]]
            else:
                key = KEYS[stream]
                assert [r[key] for r in page["records"]] == [r[key] for r in body["results"]]
            link = body.get("next")
            sent.append((url.path, parse_qs(url.query)))
        assert link is None, "a slice ends on its last page"
    assert [(r.path, r.query, r.status) for r in sandbox.requests[: len(sent)]] == [(*q, 200) for q in sent]
    assert stream_read["test_read_limit_reached"] is False
    assert warnings([], stream_read) == []


def served_page(box: Sandbox, url: str) -> Any:
    """The sandbox's answer to that page's URL, asked again (the clock has not moved); the
    sandbox's log then holds this request too, after the Builder's."""
    response = requests.get(url, headers={"X-API-Key": box.api_key}, timeout=10)
    assert response.status_code == 200
    return response.json()


def test_a_test_read_logs_no_warning(sandbox: Sandbox) -> None:
    """Nothing worse than INFO, neither while the source is built (LOG messages, the same whatever
    the stream) nor in the read (the StreamRead's logs; also checked for each stream above)."""
    result = run_builder(sandbox, "test_read", "daily", ENOUGH)
    stream_read = builder_answer(result, sandbox)
    assert warnings(result.messages, stream_read) == []


def test_a_test_read_past_max_records_says_the_limit_was_reached(sandbox: Sandbox) -> None:
    """max_records: the Builder flags the limit. airbyte-cdk 7.39.1 does not cut the records there
    (its get_message_groups takes the limit and never applies it, for stock manifests too), so the
    read shows every record of the windows it read; nothing a connector can change."""
    hours = sorted(console_script_records(sandbox, "hourly"), key=lambda record: record["hourStart"])
    assert len(hours) > 100
    stream_read = read_in_builder(sandbox, "hourly", {**ENOUGH, "max_records": 100})
    assert stream_read["test_read_limit_reached"] is True
    assert canonical(records_of(stream_read)) == canonical(hours)


def test_a_test_read_stops_at_max_slices_and_max_pages_per_slice(sandbox: Sandbox) -> None:
    first_two_windows = [
        record for record in console_script_records(sandbox, "hourly") if record["date"] <= WINDOWS[1][1]
    ]
    stream_read = read_in_builder(sandbox, "hourly", {**ENOUGH, "max_slices": 2, "max_pages_per_slice": 1})
    assert canonical(records_of(stream_read)) == canonical(first_two_windows)
    assert_one_page_per_window(sandbox, "hourly", stream_read, expected_queries("hourly", WINDOWS[:2]))
    assert stream_read["test_read_limit_reached"] is True


@pytest.mark.parametrize("command", ["resolve_manifest", "test_read"])
def test_without_unsafe_code_the_builder_refuses_components_py(sandbox: Sandbox, command: str) -> None:
    result = run_builder(sandbox, command, "daily", ENOUGH, unsafe_code=False)
    assert_key_never_shown(result, sandbox)
    assert result.returncode == 0  # the Builder's main answers with a trace and exits 0
    [message] = result.messages
    error = message["trace"]["error"]
    refusal = str(AirbyteCustomCodeNotPermittedError())
    assert (message["type"], message["trace"]["type"], error["failure_type"]) == (
        "TRACE",
        "ERROR",
        "system_error",
    )
    assert (error["message"], error["internal_message"]) == (f"Error handling request: {refusal}", refusal)
    assert error["stack_trace"].strip().splitlines()[-1] == (
        "airbyte_cdk.sources.declarative.parsers.custom_code_compiler."
        f"AirbyteCustomCodeNotPermittedError: {refusal}"
    )
    assert sandbox.requests == []
