"""Shared helpers for the unit tests: a requests-mock API in place of the network, config/catalog/
state builders, and runners for the in-process entrypoint and the CLI.

The API is mocked at `HTTPAdapter.send`, the last step before the wire, so everything the CDK and
the connector do with a request (the authenticator, requests' hooks and redirects, the API budget,
retries) runs as it does against the real API."""

from __future__ import annotations

import json
import logging
import re
import sys
import types
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
import requests
import requests_mock
import yaml
from airbyte_cdk.models import (
    AirbyteMessageSerializer,
    AirbyteStateMessage,
    AirbyteStateMessageSerializer,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteCatalogSerializer,
    Type,
)
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, _run_command, make_file
from airbyte_cdk.test.entrypoint_wrapper import discover as cdk_discover
from airbyte_cdk.test.entrypoint_wrapper import read as cdk_read
from airbyte_cdk.test.models.scenario import ExpectedOutcome

from source_ultravox_usage import SourceUltravoxUsage
from source_ultravox_usage.run import run as cli_run

# The config keys, in the spec's order: the table, num_workers (issue 5), and the calls
# stream's window and page size.
CONFIG_KEYS = (
    "api_key",
    "start_date",
    "end_date",
    "lookback_days",
    "window_days",
    "num_workers",
    "agent_ids",
    "voice_id",
    "duration_min",
    "duration_max",
    "metadata",
    "search",
    "time_of_day_start",
    "time_of_day_end",
    "concurrency_bucket",
    "calls_window_days",
    "calls_page_size",
    "api_url",
)

# Distinctive, and deliberately not shaped like a real key (8 alnum + '.' + 32 alnum).
API_KEY = "unit-test-key-0123456789"
API_BASE = "https://api.ultravox.ai/api"
USAGE_URL = f"{API_BASE}/accounts/me/usage/calls"
# The streams of the call-usage endpoint (USAGE_URL), the default of the runners below.
ALL_STREAMS = ("allTime", "daily", "hourly")
CURSORS = {
    "allTime": [],
    "daily": ["date"],
    "hourly": ["hourStart"],
    "agentDaily": ["date"],
    "concurrency": ["bucketStart"],
    "billingDaily": ["date"],
    "calls": ["created"],
    "invoices": [],
    "account": [],
}
PRIMARY_KEYS = {
    "allTime": [],
    "daily": [["date"]],
    "hourly": [["date"], ["hour"]],
    "agentDaily": [["agentId"], ["date"]],
    "concurrency": [["bucketStart"], ["bucket"]],
    "billingDaily": [["date"]],
    "calls": [["callId"]],
    "invoices": [["invoiceNumber"]],
    "account": [["accountId"], ["readAt"]],
}
AGENTS_URL = f"{API_BASE}/agents/usage"
CONCURRENCY_URL = f"{API_BASE}/accounts/me/usage/concurrency"
BILLING_URL = f"{API_BASE}/accounts/me/billing/usage"
CALLS_URL = f"{API_BASE}/calls"
INVOICES_URL = f"{API_BASE}/accounts/me/billing/invoices"
ACCOUNT_URL = f"{API_BASE}/accounts/me"


# --------------------------------------------------------------------------- API payloads


def stats(
    total: int = 3, errors: int = 1, joined: int = 2, duration: str = "125.5s", minutes: float = 2.5, **extra
) -> dict[str, Any]:
    return {
        "totalCount": total,
        "errorCount": errors,
        "joinedCount": joined,
        "duration": duration,
        "billedMinutes": minutes,
        **extra,
    }


# What the API's zero mode lists for a bucket without calls: the connector writes it, with
# durationSeconds (and hourStart), for each bucket the API leaves out.
ZERO_STATS = {"totalCount": 0, "errorCount": 0, "duration": "0s", "joinedCount": 0, "billedMinutes": 0.0}


def zero_day(day: str) -> dict[str, Any]:
    """The daily record of a day the API left out."""
    return {**ZERO_STATS, "date": day, "durationSeconds": 0.0}


def zero_hour(day: str, hour: int) -> dict[str, Any]:
    """The hourly record of an hour the API left out."""
    return {**zero_day(day), "hour": hour, "hourStart": f"{day}T{hour:02d}:00:00Z"}


def usage_body(
    all_time: Mapping[str, Any] | None = None,
    daily: Iterable[Mapping[str, Any]] = (),
    hourly: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    return {"allTime": dict(all_time or stats()), "daily": list(daily), "hourly": list(hourly)}


def days(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def windows(first: str, last: str, width: int) -> list[tuple[str, str]]:
    """The non-overlapping, gap-free windows of at most `width` days from first to last."""
    all_days = days(first, last)
    return [
        (chunk[0], chunk[-1]) for chunk in (all_days[i : i + width] for i in range(0, len(all_days), width))
    ]


def query(request: Any) -> dict[str, list[str]]:
    """The exact query of a recorded request (requests-mock's `.qs` lower-cases values)."""
    return parse_qs(urlsplit(request.url).query, keep_blank_values=True)


class FakeUsageApi:
    """A requests-mock adapter standing in for the usage endpoint, plugged in at HTTPAdapter.send."""

    def __init__(self, adapter: requests_mock.Adapter) -> None:
        self.adapter = adapter

    def register(self, *args: Any, url: str = USAGE_URL, **kwargs: Any) -> Any:
        """register_uri('GET', url, ...) with a list of responses or one response."""
        if args:
            return self.adapter.register_uri("GET", url, *args, **kwargs)
        return self.adapter.register_uri("GET", url, **kwargs)

    def serve(
        self,
        daily: Iterable[Mapping[str, Any]] = (),
        hourly: Iterable[Mapping[str, Any]] = (),
        all_time: Mapping[str, Any] | None = None,
        url: str = USAGE_URL,
    ) -> None:
        """Answer each window with the rows whose date falls inside fromDate..toDate."""
        daily, hourly = list(daily), list(hourly)

        def answer(request: Any, context: Any) -> dict[str, Any]:
            q = query(request)
            low, high = q["fromDate"][0], q["toDate"][0]
            return usage_body(
                all_time,
                [row for row in daily if low <= row["date"] <= high],
                [row for row in hourly if low <= row["date"] <= high],
            )

        self.adapter.register_uri("GET", url, json=answer)

    @property
    def requests(self) -> list[Any]:
        return list(self.adapter.request_history)

    @property
    def call_count(self) -> int:
        return self.adapter.call_count

    def date_ranges(self) -> list[tuple[str, str]]:
        """(fromDate, toDate) of every request, sorted (workers run windows concurrently)."""
        return sorted((query(r)["fromDate"][0], query(r)["toDate"][0]) for r in self.requests)


@pytest.fixture
def api():
    adapter = requests_mock.Adapter()

    def send(self, request, **kwargs):  # noqa: ANN001 (HTTPAdapter.send's signature)
        # The history keeps each request as it was sent; the response points at the live request,
        # as HTTPAdapter.send's does, for requests' response hooks and redirects.
        response = adapter.send(request.copy(), **kwargs)
        response.request = request
        return response

    with mock.patch.object(requests.adapters.HTTPAdapter, "send", send):
        yield FakeUsageApi(adapter)


@pytest.fixture(autouse=True)
def airbyte_logger_at_info():
    """The CDK's test `discover()` passes --debug, which leaves the "airbyte" logger at DEBUG for the
    rest of the process: later in-process runs would print DEBUG lines that are not Airbyte messages."""
    yield
    logging.getLogger("airbyte").setLevel(logging.INFO)


@pytest.fixture
def sleeps(monkeypatch):
    """Record the CDK's retry waits instead of sleeping them (the CDK sleeps backoff + 1 s per retry).

    Only the CDK's rate_limiting module is patched: the connector's backoff strategy still computes
    every wait, and the list shows exactly what it asked for."""
    import time as real_time

    from airbyte_cdk.sources.streams.http import rate_limiting

    recorded: list[float] = []
    fake_time = types.SimpleNamespace(
        sleep=recorded.append, time=real_time.time, monotonic=real_time.monotonic
    )
    monkeypatch.setattr(rate_limiting, "time", fake_time)
    return recorded


# --------------------------------------------------------------------------- config, catalog, state


def make_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "api_key": API_KEY,
        "start_date": "2025-03-01",
        "end_date": "2025-03-05",
        "window_days": 30,
    }
    for name, value in overrides.items():
        if value is None:
            config.pop(name, None)
        else:
            config[name] = value
    return config


def catalog_dict(streams: Iterable[str] = ALL_STREAMS, incremental: bool = True) -> dict[str, Any]:
    entries = []
    for name in streams:
        has_cursor = bool(CURSORS[name])
        mode = "incremental" if incremental and has_cursor else "full_refresh"
        entries.append(
            {
                "stream": {
                    "name": name,
                    "json_schema": {},
                    "supported_sync_modes": ["full_refresh", "incremental"]
                    if has_cursor
                    else ["full_refresh"],
                    "source_defined_cursor": has_cursor,
                    "default_cursor_field": CURSORS[name],
                    "source_defined_primary_key": PRIMARY_KEYS[name],
                },
                "sync_mode": mode,
                "destination_sync_mode": "append_dedup" if mode == "incremental" else "overwrite",
                "cursor_field": CURSORS[name],
                "primary_key": PRIMARY_KEYS[name],
            }
        )
    return {"streams": entries}


def make_catalog(streams: Iterable[str] = ALL_STREAMS, incremental: bool = True) -> ConfiguredAirbyteCatalog:
    return ConfiguredAirbyteCatalogSerializer.load(catalog_dict(streams, incremental))


def state_dict(name: str, blob: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "STREAM", "stream": {"stream_descriptor": {"name": name}, "stream_state": dict(blob)}}


def make_state(**blobs: Mapping[str, Any]) -> list[AirbyteStateMessage]:
    return [AirbyteStateMessageSerializer.load(state_dict(name, blob)) for name, blob in blobs.items()]


# --------------------------------------------------------------------------- runners


def run_read(
    config: Mapping[str, Any],
    streams: Iterable[str] = ALL_STREAMS,
    state: list[AirbyteStateMessage] | None = None,
    *,
    fails: bool | None = False,
    incremental: bool = True,
    debug: bool = False,
) -> EntrypointOutput:
    """fails: True if the read must fail, False if it must succeed, None for either."""
    catalog = make_catalog(streams, incremental)
    source = SourceUltravoxUsage(catalog=catalog, config=config, state=state)
    outcome = {
        True: ExpectedOutcome.EXPECT_EXCEPTION,
        False: ExpectedOutcome.EXPECT_SUCCESS,
        None: ExpectedOutcome.ALLOW_ANY,
    }[fails]
    return cdk_read(source, config, catalog, state, expected_outcome=outcome, debug=debug)


def run_check(config: Mapping[str, Any], tmp_path: Any) -> EntrypointOutput:
    source = SourceUltravoxUsage(catalog=None, config=config, state=None)
    config_file = make_file(tmp_path / "check-config.json", dict(config))
    return _run_command(
        source, ["check", "--config", config_file], expected_outcome=ExpectedOutcome.EXPECT_SUCCESS
    )


def run_discover(config: Mapping[str, Any], *, fails: bool = False) -> EntrypointOutput:
    source = SourceUltravoxUsage(catalog=None, config=config, state=None)
    outcome = ExpectedOutcome.EXPECT_EXCEPTION if fails else ExpectedOutcome.EXPECT_SUCCESS
    return cdk_discover(source, config, expected_outcome=outcome)


def records(output: EntrypointOutput, stream: str) -> list[dict[str, Any]]:
    return [m.record.data for m in output.records if m.record.stream == stream]


def states(output: EntrypointOutput, stream: str) -> list[dict[str, Any]]:
    """The stream's state blobs in emission order."""
    found = []
    for message in output.state_messages:
        stream_state = message.state.stream
        if stream_state.stream_descriptor.name == stream:
            blob = stream_state.stream_state
            found.append(dict(blob.__dict__) if hasattr(blob, "__dict__") else dict(blob))
    return found


def final_state(output: EntrypointOutput, stream: str) -> dict[str, Any]:
    found = states(output, stream)
    assert found, f"no state message for {stream}"
    return found[-1]


# The CDK ends a failed concurrent read with one more trace, a config_error summarising the streams
# that failed ("During the sync, the following streams did not sync successfully: ..."); the
# actionable error is the stream's own trace before it.
CDK_SUMMARY = "Concurrent read failure"


def errors(output: EntrypointOutput) -> list[tuple[str, str]]:
    """(failure_type, message) of every error trace but the CDK's closing summary."""
    return [
        (m.trace.error.failure_type.value, m.trace.error.message)
        for m in output.errors
        if m.trace.error.internal_message != CDK_SUMMARY
    ]


def summary_errors(output: EntrypointOutput) -> list[str]:
    return [m.trace.error.message for m in output.errors if m.trace.error.internal_message == CDK_SUMMARY]


def all_text(output: EntrypointOutput) -> str:
    """Every message the entrypoint produced (records, state, logs, traces with stack traces)."""
    return "\n".join(
        json.dumps(AirbyteMessageSerializer.dump(m), default=str) for m in output.get_message_iterator()
    )


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, Any]], str, str]:
    """Run the console script's function in-process: (exit code, parsed messages, stdout, stderr)."""
    code = 0
    hook = sys.excepthook
    try:
        cli_run(args)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except Exception as error:  # noqa: BLE001 (a process would hand it to the excepthook launch() set)
        code = 1
        sys.excepthook(type(error), error, error.__traceback__)
    finally:
        sys.excepthook = hook
    captured = capsys.readouterr()
    messages = []
    for line in captured.out.splitlines():
        try:
            messages.append(json.loads(line))
        except ValueError:
            continue
    return code, messages, captured.out, captured.err


def write_json(path: Any, content: Any) -> str:
    path.write_text(json.dumps(content))
    return str(path)


def of_type(messages: list[dict[str, Any]], kind: str | Type) -> list[dict[str, Any]]:
    kind = kind.value if isinstance(kind, Type) else kind
    return [m for m in messages if m.get("type") == kind]


# --------------------------------------------------------------------------- schemas

MANIFEST = (
    __import__("pathlib").Path(__file__).resolve().parents[1] / "source_ultravox_usage" / "manifest.yaml"
)
FORMAT_CHECKER = jsonschema.FormatChecker()


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _is_rfc3339_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", value):
        raise ValueError(value)
    datetime.fromisoformat(value)
    return True


def load_schema(stream: str) -> dict[str, Any]:
    """The stream's JSON schema as the manifest declares it (its top-level `schemas:`)."""
    return yaml.safe_load(MANIFEST.read_text())["schemas"][stream]


def schema_errors(stream: str, record: Mapping[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(load_schema(stream), format_checker=FORMAT_CHECKER)
    return [error.message for error in validator.iter_errors(record)]
