"""The fault matrix: the installed CLI against the sandbox's fault switches (and, for the read
timeout, an in-process requests-mock API). Every case ends either in a complete sync equal to the
sandbox's ground truth or in a typed error a user can act on; never a non-JSON line on stdout, a
traceback on stderr, a hang, or a state that moves past data that was not emitted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
import requests
import requests_mock
from airbyte_cdk.models import ConfiguredAirbyteCatalogSerializer
from airbyte_cdk.test.entrypoint_wrapper import read as cdk_read
from airbyte_cdk.test.models.scenario import ExpectedOutcome

from integration_tests.cli import CliResult, configured_catalog, run_cli
from source_ultravox_usage import SourceUltravoxUsage
from ultravox_sandbox import VOICE_IDS, Faults, Sandbox, SandboxBadRequest
from ultravox_sandbox.pytest_plugin import SANDBOX_HISTORY_START, SANDBOX_NOW

START, END = "2025-02-01", "2025-03-04"  # 5 windows of 7 days; END is the sandbox's today
WINDOWS = [
    ("2025-02-01", "2025-02-07"),
    ("2025-02-08", "2025-02-14"),
    ("2025-02-15", "2025-02-21"),
    ("2025-02-22", "2025-02-28"),
    ("2025-03-01", "2025-03-04"),
]
USAGE_PATH = "/accounts/me/usage/calls"
API_FIELDS = ("totalCount", "errorCount", "joinedCount", "duration", "billedMinutes")
CLI_TIMEOUT = 90  # a hang fails the test (subprocess.TimeoutExpired) instead of blocking CI
# Obviously fake, not the sandbox's, and long enough (16+ characters) to reach the API.
BAD_KEY = "not-the-sandbox-key-0000"
AIRBYTE_MESSAGE_TYPES = {"RECORD", "STATE", "LOG", "TRACE", "SPEC", "CONNECTION_STATUS", "CATALOG", "CONTROL"}


def config_for(box: Sandbox, **overrides: Any) -> dict[str, Any]:
    config = {
        "api_key": box.api_key,
        "api_url": box.url,
        "start_date": START,
        "end_date": END,
        "window_days": 7,
        "num_workers": 1,
    }
    config.update(overrides)
    return config


def sync(
    box: Sandbox, faults: Faults | None = None, streams=("allTime", "daily", "hourly"), **config
) -> CliResult:
    if faults is not None:
        box.faults = faults
    result = run_cli("read", config_for(box, **config), configured_catalog(streams), timeout=CLI_TIMEOUT)
    assert_clean_output(result)
    assert_state_never_past_missing_data(result, config.get("start_date", START))
    return result


# --------------------------------------------------------------------------- invariants


def assert_clean_output(result: CliResult) -> None:
    """Every stdout line is an Airbyte message; nothing crashes onto stderr."""
    not_json = [m["line"] for m in result.of_type("_NOT_JSON")]
    assert not_json == [], f"stdout lines that are not Airbyte JSON messages: {not_json[:3]}"
    assert "Traceback" not in result.stderr, result.stderr[-2000:]


def _stream_of(message: dict[str, Any]) -> str:
    return message["state"]["stream"]["stream_descriptor"]["name"]


def assert_state_never_past_missing_data(result: CliResult, start_date: str) -> None:
    """At each STATE message, the stream's cursor is at most the last bucket of the gap-free run
    of buckets emitted so far from start_date (the sandbox answers every bucket, zeros included).
    A cursor still at the very start is the CDK's "nothing synced yet" marker."""
    first = datetime.fromisoformat(start_date).replace(tzinfo=UTC)
    seen: dict[str, set[datetime]] = {"daily": set(), "hourly": set()}
    for message in result.messages:
        if message.get("type") == "RECORD" and message["record"]["stream"] in seen:
            data = message["record"]["data"]
            if message["record"]["stream"] == "daily":
                seen["daily"].add(datetime.fromisoformat(data["date"]).replace(tzinfo=UTC))
            else:
                seen["hourly"].add(datetime.fromisoformat(data["hourStart"].replace("Z", "+00:00")))
        elif message.get("type") == "STATE" and _stream_of(message) in seen:
            name = _stream_of(message)
            blob = message["state"]["stream"]["stream_state"]
            value = blob["date"] if name == "daily" else blob["hourStart"]
            cursor = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if cursor.tzinfo is None:
                cursor = cursor.replace(tzinfo=UTC)
            step = timedelta(days=1) if name == "daily" else timedelta(hours=1)
            covered, bucket = None, first
            while bucket in seen[name]:
                covered, bucket = bucket, bucket + step
            assert cursor == first or (covered is not None and cursor <= covered), (
                f"{name} state {value} is past the emitted data (gap-free up to {covered})"
            )


def assert_complete(
    result: CliResult,
    box: Sandbox,
    start: str = START,
    end: str = END,
    streams=("allTime", "daily", "hourly"),
) -> None:
    """The sync succeeded and the records of `streams` equal the sandbox's ground truth."""
    assert result.returncode == 0, (result.errors, result.stderr[-2000:])
    assert result.errors == []
    truth = box.ground_truth({"fromDate": [start], "toDate": [end]})
    if "daily" in streams:
        daily = {r["date"]: r for r in result.records("daily")}
        assert sorted(daily) == [row["date"] for row in truth["daily"]]
        for row in truth["daily"]:
            assert {k: daily[row["date"]][k] for k in row} == row
    if "hourly" in streams:
        hourly = {(r["date"], r["hour"]): r for r in result.records("hourly")}
        assert sorted(hourly) == [(row["date"], row["hour"]) for row in truth["hourly"]]
        for row in truth["hourly"]:
            assert {k: hourly[(row["date"], row["hour"])][k] for k in row} == row
    if "allTime" in streams:
        (all_time,) = result.records("allTime")
        assert {k: all_time[k] for k in API_FIELDS} == truth["allTime"]
        assert (all_time["fromDate"], all_time["toDate"]) == (start, end)


def stream_errors(result: CliResult) -> list[dict[str, Any]]:
    """The errors raised for one stream; the CDK then adds one summary error of its own."""
    return [e for e in result.errors if e.get("stream_descriptor")]


def assert_typed_failure(result: CliResult, failure_type: str, *phrases: str) -> list[dict[str, Any]]:
    assert result.returncode != 0
    errors = stream_errors(result)
    assert errors, result.errors
    for error in errors:
        assert error["failure_type"] == failure_type, error
        for phrase in phrases:
            assert phrase.lower() in error["message"].lower(), error["message"]
    # The CDK closes every failed concurrent read with a summary error that it types config_error
    # on purpose ("this combined error isn't actionable"); the stream errors above carry the type.
    summary = [e for e in result.errors if not e.get("stream_descriptor")]
    assert [e["failure_type"] for e in summary] in ([], ["config_error"])
    return errors


def log_lines(result: CliResult) -> list[dict[str, Any]]:
    return [m["log"] for m in result.of_type("LOG")]


# --------------------------------------------------------------------------- the matrix


@pytest.fixture
def box() -> Iterator[Sandbox]:
    with Sandbox(seed=7, history_start=SANDBOX_HISTORY_START, now=SANDBOX_NOW) as sandbox:
        yield sandbox


def test_429_storm_with_retry_after_seconds_is_waited_out(box: Sandbox) -> None:
    result = sync(box, Faults(rate_limit_first=2, retry_after="0"))
    assert_complete(result, box)
    assert [r.status for r in box.requests[:3]] == [429, 429, 200]
    # Each 429 surfaces as a RUNNING stream status with reason RATE_LIMITED.
    statuses = [
        m["trace"]["stream_status"]
        for m in result.of_type("TRACE")
        if m["trace"]["type"] == "STREAM_STATUS" and m["trace"]["stream_status"].get("reasons")
    ]
    assert len(statuses) == 2
    assert all(s["reasons"][0]["type"] == "RATE_LIMITED" for s in statuses)


def test_429_with_retry_after_http_date_waits_until_then_and_logs_the_wait(box: Sandbox) -> None:
    # Far enough ahead that the wait is still over 5 s (the "long wait" log) after CLI start-up.
    until = datetime.now(UTC) + timedelta(seconds=9)
    started = time.monotonic()
    result = sync(
        box, Faults(rate_limit_first=1, retry_after=format_datetime(until, usegmt=True)), streams=["allTime"]
    )
    assert_complete(result, box, streams=["allTime"])
    first, second = box.requests[:2]
    assert first.status == 429 and second.status == 200
    # The HTTP date has whole seconds; the retry waits until then (not the 1 s default backoff).
    assert second.started - first.ended >= 4.5
    assert time.monotonic() - started < 30
    waits = [line["message"] for line in log_lines(result) if "waiting" in line["message"].lower()]
    assert any("slow down" in w for w in waits), "a long wait must be logged so a slow sync is explained"


def test_429_asking_for_a_wait_over_the_cap_fails_fast_as_transient(box: Sandbox) -> None:
    started = time.monotonic()
    result = sync(box, Faults(rate_limit_first=1, retry_after="3600"), streams=["allTime"])
    assert time.monotonic() - started < 20
    (error,) = assert_typed_failure(result, "transient_error", "3600", "600", "next run")
    assert error["stream_descriptor"] == {"name": "allTime"}
    assert box.request_count == 1


def test_5xx_burst_is_retried_to_a_complete_sync(box: Sandbox) -> None:
    result = sync(box, Faults(server_errors_first=2, server_error_status=502))
    assert_complete(result, box)
    assert [r.status for r in box.requests[:3]] == [502, 502, 200]


def test_a_dropped_connection_is_retried_to_a_complete_sync(box: Sandbox) -> None:
    result = sync(box, Faults(drop_connection_first=1))
    assert_complete(result, box)
    assert [r.status for r in box.requests[:2]] == [0, 200]


@pytest.mark.parametrize(
    "faults",
    [Faults(malformed_json=True), Faults(non_json=True), Faults(wrong_shape=True)],
    ids=["truncated-json", "html-not-json", "wrong-shape"],
)
def test_a_body_that_is_not_usage_is_a_system_error_naming_the_endpoint(box: Sandbox, faults: Faults) -> None:
    result = sync(box, faults)
    assert_typed_failure(result, "system_error", USAGE_PATH, "allTime, daily and hourly")
    assert result.records() == []
    # Never an empty "successful" sync, never a retry of a body that will not change: allTime's
    # one request and each of the 5 windows once for daily and once for hourly.
    assert box.request_count == 11
    ranges = sorted((r.query["fromDate"][0], r.query["toDate"][0]) for r in box.requests)
    assert ranges == sorted([*WINDOWS, *WINDOWS, (START, END)])


def test_a_very_large_response_is_read_completely(box: Sandbox) -> None:
    # ~8 MB per answer; the padding is an unknown top-level field, which the connector ignores.
    result = sync(box, Faults(large_response_pad=8_000_000), num_workers=2)
    assert_complete(result, box)


def test_windows_the_api_refuses_as_too_large_are_split_to_a_complete_sync(box: Sandbox) -> None:
    result = sync(box, Faults(reject_window_days_over=3), streams=["daily", "hourly"])
    assert_complete(result, box, streams=["daily", "hourly"])
    assert any(r.status == 400 for r in box.requests)


@pytest.mark.parametrize(
    ("limit", "window_days", "windows"),
    [
        (10, 7, WINDOWS),
        # The first 7-day window is refused too: it and every window after it are 4 days.
        (
            5,
            7,
            [
                ("2025-02-01", "2025-02-04"),
                ("2025-02-05", "2025-02-08"),
                ("2025-02-09", "2025-02-12"),
                ("2025-02-13", "2025-02-16"),
                ("2025-02-17", "2025-02-20"),
                ("2025-02-21", "2025-02-24"),
                ("2025-02-25", "2025-02-28"),
                ("2025-03-01", "2025-03-04"),
            ],
        ),
    ],
)
def test_an_all_time_range_the_api_refuses_is_the_sum_of_its_windows(
    box: Sandbox, limit: int, window_days: int, windows: list[tuple[str, str]]
) -> None:
    result = sync(box, Faults(reject_window_days_over=limit), streams=["allTime"], window_days=window_days)
    assert result.returncode == 0 and result.errors == [], result.errors
    answered = [(r.query["fromDate"][0], r.query["toDate"][0]) for r in box.requests if r.status == 200]
    assert answered == windows
    parts = [box.ground_truth({"fromDate": [first], "toDate": [last]})["allTime"] for first, last in windows]
    whole = box.ground_truth({"fromDate": [START], "toDate": [END]})["allTime"]
    (record,) = result.records("allTime")
    # Counts and durations add up exactly to the API's figures for the whole range; billed minutes
    # are the exact decimal sum of the windows' (each rounded by the API), so within its rounding.
    assert {k: record[k] for k in ("totalCount", "errorCount", "joinedCount", "duration")} == {
        k: whole[k] for k in ("totalCount", "errorCount", "joinedCount", "duration")
    }
    assert record["billedMinutes"] == float(sum(Decimal(repr(part["billedMinutes"])) for part in parts))
    assert record["billedMinutes"] == pytest.approx(whole["billedMinutes"], abs=1e-6 * len(windows))
    assert (record["fromDate"], record["toDate"]) == (START, END)
    assert [m["log"]["message"] for m in result.of_type("LOG") if m["log"]["message"].startswith("allTime:")][
        0
    ] == (
        f"allTime: Ultravox refused the date range {START}..{END} as too large (HTTP 400). "
        f"Summing the range from windows of at most {window_days} days instead."
    )


@pytest.mark.parametrize("shape", ["list", "fields"])
def test_windows_refused_as_too_large_in_other_drf_shapes_are_split_to_a_complete_sync(shape: str) -> None:
    """["Date range too large"] and {"non_field_errors": ["Date range too large"]} split as the
    detail does."""
    with Sandbox(seed=7, history_start=SANDBOX_HISTORY_START, now=SANDBOX_NOW, error_bodies=shape) as box:
        result = sync(box, Faults(reject_window_days_over=3), streams=["daily", "hourly"])
        assert_complete(result, box, streams=["daily", "hourly"])
        assert any(r.status == 400 for r in box.requests)


class VoiceRefusingSandbox(Sandbox):
    """Refuses every voiceId on /usage/calls, as DRF refuses a voice the account cannot use."""

    def _usage(self, query, limit):  # type: ignore[no-untyped-def]
        if "voiceId" in query:
            raise SandboxBadRequest("voiceId: Select a valid choice. That voice is not available.")
        return super()._usage(query, limit)


@pytest.mark.parametrize(
    ("shape", "key", "status", "expected"),
    [
        (
            "fields",
            None,
            400,
            "Ultravox refused the request (voiceId: Select a valid choice. That voice is not available.). "
            "Check the connector's filters and dates.",
        ),
        (
            "list",
            BAD_KEY,
            401,
            "Ultravox rejected the API key (Invalid API key.). "
            "Check that api_key is a current API key of your Ultravox account.",
        ),
    ],
    ids=["400-fields", "401-list"],
)
def test_an_error_in_another_drf_shape_is_the_exact_config_error(
    shape: str, key: str | None, status: int, expected: str
) -> None:
    options = {"seed": 7, "history_start": SANDBOX_HISTORY_START, "now": SANDBOX_NOW, "error_bodies": shape}
    with VoiceRefusingSandbox(**options) as box:
        result = sync(box, streams=["allTime"], voice_id=VOICE_IDS[0], api_key=key or box.api_key)
        (error,) = assert_typed_failure(result, "config_error")
        assert (error["message"], error["internal_message"]) == (expected, f"{status}: {expected}")
        assert [r.status for r in box.requests] == [status]


def test_a_lifetime_all_time_over_a_refused_range_is_kept_not_summed() -> None:
    """An API whose allTime is the lifetime total answers every window with it: the record is that
    total, not the total times the number of windows."""
    options = {"seed": 7, "history_start": SANDBOX_HISTORY_START, "now": SANDBOX_NOW}
    with Sandbox(**options, all_time_scope="lifetime") as box:
        result = sync(box, Faults(reject_window_days_over=10), streams=["allTime"])
        assert result.returncode == 0 and result.errors == [], result.errors
        (record,) = result.records("allTime")
        lifetime = box.ground_truth({"fromDate": [START], "toDate": [END]})["allTime"]
        assert {k: record[k] for k in API_FIELDS} == lifetime
        assert len([r for r in box.requests if r.status == 200]) == len(WINDOWS)


def test_mixed_faults_end_in_a_complete_sync(box: Sandbox) -> None:
    faults = Faults(
        latency_s=0.02,
        drop_connection_first=1,
        rate_limit_first=1,
        retry_after="0",
        server_errors_first=1,
        server_error_status=502,
        large_response_pad=100_000,
    )
    result = sync(box, faults, num_workers=3)
    assert_complete(result, box)
    statuses = [r.status for r in box.requests]
    assert (statuses.count(0), statuses.count(429), statuses.count(502)) == (1, 1, 1)


def test_random_server_errors_under_concurrency_end_in_a_complete_sync(box: Sandbox) -> None:
    # Also the no-fault path at its end: most requests succeed first time, with three workers.
    result = sync(box, Faults(error_rate=0.15), num_workers=3, start_date="2025-02-15")
    assert_complete(result, box, start="2025-02-15")
    assert any(r.status == 500 for r in box.requests)


class WindowFaultSandbox(Sandbox):
    """Answers the windows starting on `broken_from` with truncated JSON; the rest normally."""

    broken_from: frozenset[str] = frozenset()

    def _answer(self, method, path, query, key, raw_path):  # type: ignore[no-untyped-def]
        if query.get("fromDate", [""])[0] in self.broken_from and (query.get("toDate") or [""])[0] != END:
            return 200, {}, "application/json", b'{"allTime": {"totalCount": 1, "dai'
        return super()._answer(method, path, query, key, raw_path)


@pytest.mark.parametrize("workers", [1, 3])
def test_a_broken_middle_window_stops_the_state_before_it(workers: int) -> None:
    """Later windows may complete (concurrently) but the state must not jump the broken one;
    the next sync from that state fills the gap."""
    with WindowFaultSandbox(seed=7, history_start=SANDBOX_HISTORY_START, now=SANDBOX_NOW) as box:
        box.broken_from = frozenset({"2025-02-15"})
        config = {"lookback_days": 0, "num_workers": workers}
        result = sync(box, streams=["daily", "hourly"], **config)
        assert_typed_failure(result, "system_error", USAGE_PATH)
        final = {
            s["stream"]["stream_descriptor"]["name"]: s["stream"]["stream_state"] for s in result.last_state()
        }
        assert final["daily"]["date"] <= "2025-02-14"
        assert final["hourly"]["hourStart"] <= "2025-02-14T23:00:00Z"
        box.broken_from = frozenset()
        resumed = run_cli(
            "read", config_for(box, **config), configured_catalog(["daily", "hourly"]), result.last_state()
        )
        assert_clean_output(resumed)
        assert resumed.returncode == 0, resumed.errors
        merged = CliResult(
            0, "", "", [m for m in result.messages + resumed.messages if m["type"] == "RECORD"]
        )
        assert_complete(merged, box, streams=["daily", "hourly"])


def test_typed_errors_are_traces_with_their_stack_and_nothing_reaches_stderr(box: Sandbox) -> None:
    """A transient or config error reaches the user as an ERROR trace with an actionable message;
    its stack is in the trace's stack_trace field (the Airbyte protocol's place for it). The CDK
    also logs the stack, inside JSON LOG messages: stdout stays Airbyte messages only, stderr stays
    empty, and the key is in none of it."""
    transient = sync(box, Faults(rate_limit_first=1, retry_after="3600"), streams=["allTime"])
    box.faults = Faults()
    config = run_cli(
        "read",
        config_for(box, api_key=BAD_KEY),
        configured_catalog(["allTime"]),
        timeout=CLI_TIMEOUT,
    )
    assert_clean_output(config)
    expected = {
        "transient_error": (
            "Ultravox asked the connector to wait 3600 s before retrying, longer than its limit of "
            "600 s. The sync will pick up from its last state on the next run."
        ),
        "config_error": (
            "Ultravox rejected the API key (Invalid API key.). Check that api_key is a current API "
            "key of your Ultravox account."
        ),
    }
    for result, failure_type, key in (
        (transient, "transient_error", box.api_key),
        (config, "config_error", BAD_KEY),
    ):
        (error,) = assert_typed_failure(result, failure_type)
        assert error["stream_descriptor"] == {"name": "allTime"}
        assert error["message"] == expected[failure_type]
        stack = error["stack_trace"]
        assert stack.startswith("Traceback (most recent call last):\n"), stack[:300]
        assert stack.rstrip().endswith(f"AirbyteTracedException: {expected[failure_type]}"), stack[-500:]
        assert result.stderr == ""
        assert all(m["type"] in AIRBYTE_MESSAGE_TYPES for m in result.messages), result.stdout[-2000:]
        assert key not in result.stdout
    assert [r.status for r in box.requests] == [429, 401]


# --------------------------------------------------------------------------- read timeout, in-process

# A hung server is cut off by the requester's read timeout (120 s, documented). Waiting that long
# in a test is pointless: the transport raises ReadTimeout instead, and the backoff sleeps are
# recorded rather than slept.

USAGE_URL = "https://api.ultravox.ai/api/accounts/me/usage/calls"
VALID_BODY = {
    "allTime": {"totalCount": 0, "errorCount": 0, "joinedCount": 0, "duration": "0s", "billedMinutes": 0.0},
    "daily": [],
    "hourly": [],
}


@pytest.fixture
def fake_api() -> Iterator[tuple[requests_mock.Adapter, list[dict[str, Any]], list[float]]]:
    """requests-mock under the connector's own transport (HTTPAdapter.send), plus the kwargs of
    each send and the backoff sleeps the CDK asked for."""
    adapter = requests_mock.Adapter()
    sends: list[dict[str, Any]] = []
    sleeps: list[float] = []

    def send(self, request, **kwargs):  # noqa: ANN001
        sends.append(kwargs)
        return adapter.send(request, **kwargs)

    fake_time = SimpleNamespace(sleep=sleeps.append, time=time.time, monotonic=time.monotonic)
    with (
        mock.patch.object(requests.adapters.HTTPAdapter, "send", send),
        mock.patch("airbyte_cdk.sources.streams.http.rate_limiting.time", fake_time),
    ):
        yield adapter, sends, sleeps


def read_in_process(config: dict[str, Any], streams=("allTime",)):
    catalog = ConfiguredAirbyteCatalogSerializer.load(configured_catalog(streams, incremental=True))
    source = SourceUltravoxUsage(catalog=catalog, config=config, state=None)
    return cdk_read(source, config, catalog, None, expected_outcome=ExpectedOutcome.EXPECT_EXCEPTION)


def in_process_config(**overrides: Any) -> dict[str, Any]:
    return {"api_key": "fault-test-key-0", "start_date": "2025-03-01", "end_date": "2025-03-04", **overrides}


def test_read_timeouts_are_retried_with_bounded_backoff(fake_api) -> None:
    adapter, sends, sleeps = fake_api
    adapter.register_uri("GET", USAGE_URL, exc=requests.exceptions.ReadTimeout("read timed out"))
    output = read_in_process(in_process_config())
    assert adapter.call_count == 7  # the first try and 6 retries
    assert all(kw.get("timeout") == (10, 120) for kw in sends), sends[:1]  # connect 10 s, read 120 s
    # Exponential backoff from 1 s (the CDK adds 1 s to each wait); bounded in count and total.
    assert sleeps == [2.0, 3.0, 5.0, 9.0, 17.0, 33.0]
    assert output.records == []
    assert [e.trace.error.stream_descriptor for e in output.errors][0].name == "allTime"


NETWORK_FAULTS = [
    pytest.param(requests.exceptions.ReadTimeout("read timed out"), id="read-timeout"),
    pytest.param(requests.exceptions.ConnectTimeout("connect timed out"), id="connect-timeout"),
    pytest.param(requests.exceptions.ConnectionError("Connection aborted."), id="dropped-connection"),
]


@pytest.mark.parametrize("fault", NETWORK_FAULTS)
def test_network_faults_past_the_retry_budget_end_as_transient_errors(fake_api, fault: Exception) -> None:
    adapter, _, sleeps = fake_api
    adapter.register_uri("GET", USAGE_URL, exc=fault)
    output = read_in_process(in_process_config())
    assert adapter.call_count == 7 and len(sleeps) == 6
    errors = [e.trace.error for e in output.errors if e.trace.error.stream_descriptor]
    assert errors and all(e.failure_type.value == "transient_error" for e in errors), errors


def test_a_timeout_then_an_answer_completes(fake_api) -> None:
    adapter, _, sleeps = fake_api
    adapter.register_uri(
        "GET",
        USAGE_URL,
        [{"exc": requests.exceptions.ReadTimeout("read timed out")}, {"json": VALID_BODY}],
    )
    catalog = ConfiguredAirbyteCatalogSerializer.load(configured_catalog(["allTime"]))
    config = in_process_config()
    source = SourceUltravoxUsage(catalog=catalog, config=config, state=None)
    output = cdk_read(source, config, catalog, None)
    assert output.errors == []
    assert [m.record.data["totalCount"] for m in output.records] == [0]
    assert sleeps == [2.0]


def test_5xx_forever_is_bounded_and_ends_transient(fake_api) -> None:
    adapter, _, sleeps = fake_api
    adapter.register_uri("GET", USAGE_URL, status_code=503, json={"detail": "Service unavailable."})
    output = read_in_process(in_process_config())
    assert adapter.call_count == 7
    assert len(sleeps) == 6 and sum(sleeps) < 120
    errors = [e.trace.error for e in output.errors if e.trace.error.stream_descriptor]
    assert errors and all(e.failure_type.value == "transient_error" for e in errors)
    assert all("usage/calls" in e.message or "attempts" in e.message.lower() for e in errors), [
        e.message for e in errors
    ]


def test_429_storm_longer_than_the_retry_budget_ends_as_transient(fake_api) -> None:
    adapter, _, sleeps = fake_api
    adapter.register_uri(
        "GET",
        USAGE_URL,
        status_code=429,
        json={"detail": "Request was throttled."},
        headers={"Retry-After": "0"},
    )
    output = read_in_process(in_process_config())
    assert adapter.call_count == 7
    assert sleeps == [1.5] * 6  # Retry-After 0 -> the 0.5 s floor, plus the CDK's extra second
    errors = [e.trace.error for e in output.errors if e.trace.error.stream_descriptor]
    assert errors and all(e.failure_type.value == "transient_error" for e in errors)
    assert all("rate limit" in e.message.lower() for e in errors), [e.message for e in errors]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_bursts_of_each_status_are_retried_to_a_complete_sync(fake_api, status: int) -> None:
    adapter, _, sleeps = fake_api
    failure = {"status_code": status, "json": {"detail": "A server error occurred."}}
    adapter.register_uri("GET", USAGE_URL, [failure, failure, failure, {"json": VALID_BODY}])
    catalog = ConfiguredAirbyteCatalogSerializer.load(configured_catalog(["allTime"]))
    # One day: a 504 on a range of several days is read in windows instead (test_all_time.py).
    config = in_process_config(end_date="2025-03-01")
    output = cdk_read(SourceUltravoxUsage(catalog=catalog, config=config, state=None), config, catalog, None)
    assert output.errors == []
    assert len(output.records) == 1
    assert sleeps == [2.0, 3.0, 5.0]


def test_dropped_connections_then_an_answer_complete(fake_api) -> None:
    adapter, _, sleeps = fake_api
    dropped = {"exc": requests.exceptions.ConnectionError("Connection aborted.")}
    adapter.register_uri("GET", USAGE_URL, [dropped, dropped, {"json": VALID_BODY}])
    catalog = ConfiguredAirbyteCatalogSerializer.load(configured_catalog(["allTime"]))
    config = in_process_config()
    output = cdk_read(SourceUltravoxUsage(catalog=catalog, config=config, state=None), config, catalog, None)
    assert output.errors == []
    assert len(output.records) == 1
    assert len(sleeps) == 2
